//! Durable storage as the protocols see it: a small ordered key-value "disk".
//!
//! A protocol writes with [`StorageOp`] effects and makes them durable with a sync effect. When the
//! node boots, its driver hands it a [`Durable`] – everything that was synced (and, after a crash
//! with torn writes, possibly a torn prefix of what was not). Protocols that need integrity against
//! torn writes check it themselves (checksums), as they must on a real disk.
//!
//! Keys are strings so that traces and data directories stay readable (`"raft/vote"`,
//! `"raft/log/00000000000000000042"`); zero-padded numbers keep them ordered.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ops::Bound;

/// One write to durable storage.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StorageOp {
    Put {
        key: String,
        value: Vec<u8>,
    },
    Delete {
        key: String,
    },
    /// Delete every key in `[start, end)`.
    DeleteRange {
        start: String,
        end: String,
    },
}

impl StorageOp {
    /// Bytes this write puts on the disk (for accounting and torn-write modelling).
    pub fn size(&self) -> usize {
        match self {
            StorageOp::Put { key, value } => key.len() + value.len(),
            StorageOp::Delete { key } => key.len(),
            StorageOp::DeleteRange { start, end } => start.len() + end.len(),
        }
    }
}

/// The durable contents of one node's disk: what a process boots from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Durable {
    entries: BTreeMap<String, Vec<u8>>,
}

impl Durable {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn get(&self, key: &str) -> Option<&[u8]> {
        self.entries.get(key).map(Vec::as_slice)
    }

    /// All entries whose key starts with `prefix`, in key order.
    pub fn scan_prefix<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = (&'a str, &'a [u8])> + 'a {
        self.entries
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(move |(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.as_str(), v.as_slice()))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Total bytes stored (keys and values).
    pub fn bytes(&self) -> usize {
        self.entries.iter().map(|(k, v)| k.len() + v.len()).sum()
    }

    /// Apply one write, taking ownership (no copies: the simulator's disks use this).
    pub fn apply_owned(&mut self, op: StorageOp) {
        match op {
            StorageOp::Put { key, value } => {
                self.entries.insert(key, value);
            }
            other => self.apply(&other),
        }
    }

    /// Apply one write.
    pub fn apply(&mut self, op: &StorageOp) {
        match op {
            StorageOp::Put { key, value } => {
                self.entries.insert(key.clone(), value.clone());
            }
            StorageOp::Delete { key } => {
                self.entries.remove(key);
            }
            StorageOp::DeleteRange { start, end } => {
                if start < end {
                    let doomed: Vec<String> =
                        self.entries.range(start.clone()..end.clone()).map(|(k, _)| k.clone()).collect();
                    for key in doomed {
                        self.entries.remove(&key);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(k: &str, v: &[u8]) -> StorageOp {
        StorageOp::Put { key: k.into(), value: v.to_vec() }
    }

    #[test]
    fn prefix_scan_is_ordered_and_bounded() {
        let mut d = Durable::new();
        for op in [put("log/2", b"b"), put("log/1", b"a"), put("vote", b"v"), put("lof", b"x")] {
            d.apply(&op);
        }
        let keys: Vec<&str> = d.scan_prefix("log/").map(|(k, _)| k).collect();
        assert_eq!(keys, ["log/1", "log/2"]);
    }

    #[test]
    fn delete_range_is_half_open() {
        let mut d = Durable::new();
        for k in ["a", "b", "c", "d"] {
            d.apply(&put(k, b""));
        }
        d.apply(&StorageOp::DeleteRange { start: "b".into(), end: "d".into() });
        let keys: Vec<&str> = d.scan_prefix("").map(|(k, _)| k).collect();
        assert_eq!(keys, ["a", "d"]);
        d.apply(&StorageOp::Delete { key: "a".into() });
        assert_eq!(d.get("a"), None);
        assert_eq!(d.get("d"), Some(&b""[..]));
    }
}
