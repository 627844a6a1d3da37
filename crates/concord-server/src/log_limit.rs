//! Rate-limited warnings: one line per (source, reason), then a summary every interval.
//!
//! Anything a stranger can trigger at will – a refused peer handshake, a failed TLS handshake on a
//! front door, an `accept` error while descriptors run short – must not write one log line per
//! occurrence: a single client looping on the peer port wrote ~5 MB/s of WARN lines, on the same
//! disk as the data under `concord up`. A [`LogLimiter`] decides which occurrences are logged:
//!
//! ```text
//!   t=0.0s  first from 10.0.0.9, "cluster_id"   -> logged
//!   t=0.1s  … 4 000 more within the interval    -> counted, not logged
//!   t=10.2s next one                            -> logged, "(4000 more like it suppressed)"
//! ```
//!
//! The key is the source *IP* (not the port: every connection has a new one), the door (`peer`,
//! `RESP`, `HTTP`) and a short static reason (`secret`, `tls_plaintext`, …), so a new kind of
//! failure is always logged once even while another one from the same address is being held back. The map is bounded ([`MAX_KEYS`]): when it is full, entries idle for a whole interval are
//! dropped, and if that frees nothing the new source shares one "many sources" entry, so a client
//! cycling through addresses cannot grow memory either. Counting for `/metrics` is the caller's
//! (every occurrence, logged or not).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often a repeated warning is logged again, by default.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
/// Distinct (source, reason) pairs remembered at once.
pub const MAX_KEYS: usize = 4096;

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
struct Key {
    /// `None`: the shared entry of sources that did not fit.
    source: Option<IpAddr>,
    door: &'static str,
    reason: &'static str,
}

#[derive(Debug)]
struct Entry {
    last_logged: Instant,
    suppressed: u64,
}

/// See the module docs.
#[derive(Debug)]
pub struct LogLimiter {
    interval: Duration,
    max_keys: usize,
    entries: Mutex<HashMap<Key, Entry>>,
}

impl Default for LogLimiter {
    fn default() -> Self {
        LogLimiter::new(DEFAULT_INTERVAL, MAX_KEYS)
    }
}

impl LogLimiter {
    pub fn new(interval: Duration, max_keys: usize) -> LogLimiter {
        LogLimiter { interval, max_keys: max_keys.max(1), entries: Mutex::default() }
    }

    /// One occurrence of `reason` from `source` at `now`. `Some(k)`: log it, noting the `k` earlier
    /// ones that were not logged; `None`: stay quiet.
    pub fn check_at(
        &self,
        source: IpAddr,
        door: &'static str,
        reason: &'static str,
        now: Instant,
    ) -> Option<u64> {
        let mut entries = self.entries.lock().expect("log limiter lock");
        let mut key = Key { source: Some(source), door, reason };
        if !entries.contains_key(&key) && entries.len() >= self.max_keys {
            let interval = self.interval;
            entries.retain(|_, e| now.saturating_duration_since(e.last_logged) < interval);
            if entries.len() >= self.max_keys {
                key.source = None;
            }
        }
        match entries.get_mut(&key) {
            None => {
                entries.insert(key, Entry { last_logged: now, suppressed: 0 });
                Some(0)
            }
            Some(e) if now.saturating_duration_since(e.last_logged) >= self.interval => {
                e.last_logged = now;
                Some(std::mem::take(&mut e.suppressed))
            }
            Some(e) => {
                e.suppressed += 1;
                None
            }
        }
    }

    /// [`LogLimiter::check_at`] now.
    pub fn check(&self, source: IpAddr, door: &'static str, reason: &'static str) -> Option<u64> {
        self.check_at(source, door, reason, Instant::now())
    }

    /// Log `message` at WARN if the limiter lets this occurrence through, with the count of those
    /// it held back since the last line.
    pub fn warn(
        &self,
        source: IpAddr,
        door: &'static str,
        reason: &'static str,
        message: impl std::fmt::Display,
    ) {
        if let Some(suppressed) = self.check(source, door, reason) {
            tracing::warn!("{message}{}", suffix(suppressed, self.interval));
        }
    }
}

/// What a logged line says about the lines it stands for.
pub fn suffix(suppressed: u64, interval: Duration) -> String {
    if suppressed == 0 {
        String::new()
    } else {
        format!(
            " ({suppressed} more like it suppressed; this warning is logged at most once per {interval:?})"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn the_first_occurrence_is_logged_then_one_summary_per_interval() {
        let l = LogLimiter::new(Duration::from_secs(10), 16);
        let t0 = Instant::now();
        assert_eq!(l.check_at(ip(1), "peer", "secret", t0), Some(0));
        for i in 1..1000 {
            assert_eq!(l.check_at(ip(1), "peer", "secret", t0 + Duration::from_millis(i)), None);
        }
        // Another reason, door or source is its own line.
        assert_eq!(l.check_at(ip(1), "RESP", "secret", t0), Some(0));
        assert_eq!(l.check_at(ip(1), "peer", "cluster_id", t0), Some(0));
        assert_eq!(l.check_at(ip(2), "peer", "secret", t0), Some(0));
        assert_eq!(l.check_at(ip(1), "peer", "secret", t0 + Duration::from_secs(10)), Some(999));
        assert_eq!(l.check_at(ip(1), "peer", "secret", t0 + Duration::from_secs(11)), None);
        assert_eq!(l.check_at(ip(1), "peer", "secret", t0 + Duration::from_secs(20)), Some(1));
    }

    #[test]
    fn many_sources_cannot_grow_the_map_or_the_log() {
        let l = LogLimiter::new(Duration::from_secs(10), 4);
        let t0 = Instant::now();
        let logged = (0..=255u8).filter(|i| l.check_at(ip(*i), "peer", "secret", t0).is_some()).count();
        // Four sources fit; the rest share one entry, logged once.
        assert_eq!(logged, 5);
        assert!(l.entries.lock().unwrap().len() <= 5);
        // Once the old entries are idle for an interval they make room again.
        assert_eq!(l.check_at(ip(200), "peer", "secret", t0 + Duration::from_secs(10)), Some(0));
        assert!(l.entries.lock().unwrap().len() <= 5);
    }
}
