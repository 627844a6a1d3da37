//! Doubly linked lists threaded through slot numbers, for `O(1)` move-to-front and unlink.
//!
//! The store keeps entries in a slab (a `Vec` indexed by [`Slot`]); a policy's queues are lists
//! of slot numbers whose links live in one [`Links`] array, also indexed by slot. Every operation
//! is `O(1)` and the order is exactly the order of the operations: nothing depends on a hash
//! map's iteration order.

use super::Slot;

const NIL: Slot = Slot::MAX;

#[derive(Clone, Copy, Debug)]
struct Link {
    prev: Slot,
    next: Slot,
}

/// One list: the *front* is the newest end (insertions, move-to-front), the *back* the oldest
/// end (eviction).
#[derive(Clone, Copy, Debug)]
pub struct List {
    front: Slot,
    back: Slot,
    len: usize,
}

impl Default for List {
    fn default() -> Self {
        List { front: NIL, back: NIL, len: 0 }
    }
}

impl List {
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The oldest slot, if any.
    pub fn back(&self) -> Option<Slot> {
        (self.back != NIL).then_some(self.back)
    }
}

/// The links of every list of one policy (a slot is in at most one list at a time).
#[derive(Clone, Debug, Default)]
pub struct Links {
    links: Vec<Link>,
}

impl Links {
    fn grow_to(&mut self, slot: Slot) {
        let needed = slot as usize + 1;
        if self.links.len() < needed {
            self.links.resize(needed, Link { prev: NIL, next: NIL });
        }
    }

    /// Put `slot` (in no list) at the front of `list`.
    pub fn push_front(&mut self, list: &mut List, slot: Slot) {
        self.grow_to(slot);
        self.links[slot as usize] = Link { prev: NIL, next: list.front };
        if list.front != NIL {
            self.links[list.front as usize].prev = slot;
        } else {
            list.back = slot;
        }
        list.front = slot;
        list.len += 1;
    }

    /// Take `slot` out of `list` (it must be in it).
    pub fn unlink(&mut self, list: &mut List, slot: Slot) {
        let Link { prev, next } = self.links[slot as usize];
        if prev != NIL {
            self.links[prev as usize].next = next;
        } else {
            debug_assert_eq!(list.front, slot, "unlink of a slot not in this list");
            list.front = next;
        }
        if next != NIL {
            self.links[next as usize].prev = prev;
        } else {
            debug_assert_eq!(list.back, slot, "unlink of a slot not in this list");
            list.back = prev;
        }
        self.links[slot as usize] = Link { prev: NIL, next: NIL };
        list.len -= 1;
    }

    /// Remove and return the oldest slot of `list`.
    pub fn pop_back(&mut self, list: &mut List) -> Option<Slot> {
        let slot = list.back()?;
        self.unlink(list, slot);
        Some(slot)
    }

    /// The slots of `list` from front (newest) to back (oldest); for tests and debugging.
    pub fn iter_front_to_back(&self, list: &List) -> Vec<Slot> {
        let mut out = Vec::with_capacity(list.len);
        let mut at = list.front;
        while at != NIL {
            out.push(at);
            at = self.links[at as usize].next;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_unlink_pop_keep_order() {
        let mut links = Links::default();
        let mut list = List::default();
        for slot in [3, 1, 4, 0] {
            links.push_front(&mut list, slot);
        }
        assert_eq!(links.iter_front_to_back(&list), vec![0, 4, 1, 3]);
        links.unlink(&mut list, 4);
        assert_eq!(links.iter_front_to_back(&list), vec![0, 1, 3]);
        assert_eq!(links.pop_back(&mut list), Some(3));
        links.unlink(&mut list, 0);
        assert_eq!(links.pop_back(&mut list), Some(1));
        assert_eq!(links.pop_back(&mut list), None);
        assert!(list.is_empty());
    }
}
