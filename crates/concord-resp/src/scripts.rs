//! The node's script cache: what `SCRIPT LOAD`, `SCRIPT EXISTS`, `SCRIPT FLUSH` and `EVALSHA` see.
//!
//! A script runs inside the replicated state machine (`concord_kv::redis::script`), so its log entry must
//! carry everything a replica needs to run it – **the body, never just the SHA-1**: a replica that
//! joined later, restarted, or restored a snapshot has no cache of what other nodes loaded. The
//! cache is therefore a convenience of the front door, per node and not replicated: `EVALSHA sha`
//! looks the body up here and proposes it as if the client had sent `EVAL body`.
//!
//! What clients see is Redis's contract: a node that has not seen a script (it restarted, the
//! client moved to another node, `SCRIPT FLUSH` ran) answers `NOSCRIPT No matching script. Please
//! use EVAL.`, and every client library handles that by loading the script again (redis-py's
//! `Script` object does it on its own). Both `SCRIPT LOAD` and `EVAL` add a script, as in Redis.
//!
//! The cache is bounded (Redis's is not): at most [`ScriptCache::MAX_SCRIPTS`] scripts and
//! [`ScriptCache::MAX_BYTES`] bytes of bodies; past either, the oldest script is forgotten, and
//! its next `EVALSHA` gets `NOSCRIPT` – which a client recovers from as above.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

/// The bodies of the scripts this node has seen, by lowercase hex SHA-1.
#[derive(Debug, Default)]
pub struct ScriptCache {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    bodies: BTreeMap<String, Arc<[u8]>>,
    /// Insertion order, oldest first: who is forgotten when the cache is full.
    order: VecDeque<String>,
    bytes: usize,
}

impl ScriptCache {
    /// Most scripts kept.
    pub const MAX_SCRIPTS: usize = 10_000;
    /// Most bytes of script bodies kept.
    pub const MAX_BYTES: usize = 64 * 1024 * 1024;

    /// Adds `body` (if new) and returns its SHA-1.
    pub fn load(&self, body: &[u8]) -> String {
        let sha = concord_kv::redis::lua::sha1hex(body);
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if !inner.bodies.contains_key(&sha) {
            inner.bytes += body.len();
            inner.bodies.insert(sha.clone(), body.into());
            inner.order.push_back(sha.clone());
            while inner.order.len() > Self::MAX_SCRIPTS || inner.bytes > Self::MAX_BYTES {
                let Some(old) = inner.order.pop_front() else { break };
                if let Some(b) = inner.bodies.remove(&old) {
                    inner.bytes -= b.len();
                }
            }
        }
        sha
    }

    /// The body of the script named `sha` (any case), if this node has it.
    pub fn get(&self, sha: &[u8]) -> Option<Arc<[u8]>> {
        let sha = std::str::from_utf8(sha).ok()?.to_ascii_lowercase();
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).bodies.get(&sha).cloned()
    }

    /// Forgets every script (`SCRIPT FLUSH`).
    pub fn flush(&self) {
        *self.inner.lock().unwrap_or_else(|e| e.into_inner()) = Inner::default();
    }

    /// How many scripts are cached (`INFO memory`'s `number_of_cached_scripts`).
    pub fn len(&self) -> usize {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).bodies.len()
    }

    /// Whether no script is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_names_a_script_by_its_sha1_and_get_finds_it_in_any_case() {
        let cache = ScriptCache::default();
        let sha = cache.load(b"return 1");
        assert_eq!(sha, "e0e1f9fabfc9d4800c877a703b823ac0578ff8db");
        assert_eq!(cache.get(sha.to_uppercase().as_bytes()).as_deref(), Some(&b"return 1"[..]));
        assert_eq!(cache.load(b"return 1"), sha, "loading twice keeps one copy");
        assert_eq!(cache.len(), 1);
        assert!(cache.get(b"ffffffffffffffffffffffffffffffffffffffff").is_none());
        cache.flush();
        assert!(cache.get(sha.as_bytes()).is_none());
        assert!(cache.is_empty());
    }

    #[test]
    fn a_full_cache_forgets_its_oldest_scripts() {
        let cache = ScriptCache::default();
        let first = cache.load(b"return 0");
        for i in 1..=ScriptCache::MAX_SCRIPTS {
            cache.load(format!("return {i}").as_bytes());
        }
        assert_eq!(cache.len(), ScriptCache::MAX_SCRIPTS);
        assert!(cache.get(first.as_bytes()).is_none(), "the oldest went");
        assert!(cache.get(concord_kv::redis::lua::sha1hex(b"return 1").as_bytes()).is_some());
        let big = vec![b' '; ScriptCache::MAX_BYTES / 2 + 1];
        cache.load(&big);
        cache.load(&[&big[..], b"--"].concat());
        assert_eq!(cache.len(), 1, "two halves do not fit: only the newest stays");
    }
}
