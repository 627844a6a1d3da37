//! Reading structure out of fuzz bytes.
//!
//! The driver only ever mutates flat byte strings, so that every input can be stored as a file and
//! replayed. A target that needs structure – an HTTP request, a sequence of WAL batches – reads it
//! from those bytes with a [`Cursor`]: each call takes a few bytes and turns them into a choice, a
//! number or a slice. When the bytes run out every call answers zero or empty, so any input, even
//! an empty one, describes exactly one test case, and a mutation of the bytes is a mutation of the
//! case.

/// A reader of choices from fuzz bytes (see the module docs).
#[derive(Clone, Debug)]
pub struct Cursor<'a> {
    data: &'a [u8],
}

impl<'a> Cursor<'a> {
    pub fn new(data: &'a [u8]) -> Cursor<'a> {
        Cursor { data }
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The next byte (0 once the input is used up).
    pub fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }

    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }

    pub fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | u64::from(self.u32()) << 32
    }

    /// A number in `0..n` (`n` > 0): one byte for small ranges, two otherwise.
    pub fn below(&mut self, n: usize) -> usize {
        assert!(n > 0, "below(0)");
        if n <= 256 {
            self.byte() as usize % n
        } else {
            self.u16() as usize % n
        }
    }

    /// One of `items`.
    pub fn pick<'b, T>(&mut self, items: &'b [T]) -> &'b T {
        &items[self.below(items.len())]
    }

    /// True about `percent`% of the time.
    pub fn chance(&mut self, percent: u8) -> bool {
        self.byte() % 100 < percent
    }

    /// Up to `max` bytes: a length byte (or two), then that many bytes (fewer if the input ends).
    pub fn bytes(&mut self, max: usize) -> &'a [u8] {
        let len = self.below(max + 1).min(self.data.len());
        let (taken, rest) = self.data.split_at(len);
        self.data = rest;
        taken
    }

    /// Whatever is left.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }
}

#[cfg(test)]
mod tests {
    use super::Cursor;

    #[test]
    fn a_used_up_cursor_answers_zero_and_empty() {
        let mut c = Cursor::new(&[7, 1, 2]);
        assert_eq!(c.byte(), 7);
        assert_eq!(c.bytes(10), &[2][..]); // length byte 1 % 11 = 1 → one byte
        assert!(c.is_empty());
        assert_eq!(c.u64(), 0);
        assert_eq!(c.below(5), 0);
        assert_eq!(c.bytes(10), &[] as &[u8]);
    }
}
