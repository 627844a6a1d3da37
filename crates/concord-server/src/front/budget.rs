//! The file-descriptor budget: how many client connections a node can hold without starving its
//! own files.
//!
//! Every socket is a descriptor, and so is every file the node opens: the WAL's next segment, a
//! checkpoint, the state database, the peer connections, the listeners. A process that runs out
//! gets `EMFILE` ("Too many open files") from whichever call comes next – and when that call is the
//! WAL's segment roll, the node cannot persist and must stop. So clients must never be able to
//! take the last descriptors. This is what Redis does with `maxclients`:
//!
//! 1. at start, raise the soft `RLIMIT_NOFILE` to the hard limit (an unprivileged process may), and
//!    log both ([`raise_open_files_limit`]);
//! 2. keep a [`FdBudget::reserve`] for the node's own files and its peers;
//! 3. give each front door (HTTP, RESP) a connection cap that fits in what is left
//!    ([`FdBudget::caps`]): a configured cap larger than that is lowered, with a warning that says
//!    how to raise the limit (`ulimit -n`, systemd's `LimitNOFILE=`).
//!
//! A door at its cap refuses new connections (RESP: `-ERR max number of clients reached`, as
//! redis-server; HTTP: `503`); an `accept` that fails anyway (`EMFILE`, `ENFILE`) is logged, backed
//! off and retried – the node never exits for it (see [`super::listen`]).
//!
//! The budget is per process: one node per process, as `concord serve` runs it.

/// Descriptors kept for the node itself whatever its cluster: stdio, the runtime's epoll and
/// wake-up descriptors, three listeners, the WAL (lock, current and next segment, checkpoint being
/// written, directory syncs), the state database, the peer file and identity rewrites, backups
/// and snapshot files, the node's own outgoing HTTP requests (forwarding, `concord up`'s
/// supervisor socket). Counted generously: a descriptor too many in reserve costs one client, one
/// too few can stop the node.
pub const RESERVE_BASE: u64 = 64;
/// Per peer: its outgoing and incoming connection, and a replacement of each during a redial.
pub const RESERVE_PER_PEER: u64 = 4;
/// Peer-port connections still in their handshake (see `crate::transport::MAX_PENDING_PEER_CONNECTIONS`).
pub const RESERVE_PEER_HANDSHAKES: u64 = 32;
/// Below this many descriptors for clients, a node refuses to start: it could not serve.
pub const MIN_CLIENT_DESCRIPTORS: u64 = 8;

/// The open-files limit before and after [`raise_open_files_limit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenFilesLimit {
    /// The soft limit the process started with.
    pub before: u64,
    /// The soft limit now (the hard limit, if raising it worked).
    pub soft: u64,
    /// The hard limit: what an unprivileged process may raise its soft limit to.
    pub hard: u64,
}

/// Raise the soft `RLIMIT_NOFILE` to the hard limit and return both (logged). Where the limits
/// cannot be read (not Unix), assumes the common default of 1 024.
pub fn raise_open_files_limit() -> OpenFilesLimit {
    #[cfg(unix)]
    {
        use nix::sys::resource::{getrlimit, setrlimit, Resource};
        let Ok((before, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
            return OpenFilesLimit { before: 1024, soft: 1024, hard: 1024 };
        };
        // RLIM_INFINITY is u64::MAX; no kernel gives a process that many descriptors. Linux
        // refuses soft limits above fs.nr_open (2^20 by default), macOS above OPEN_MAX: fall back
        // to what was there.
        let target = hard.min(1 << 20);
        let soft = if target > before && setrlimit(Resource::RLIMIT_NOFILE, target, hard).is_ok() {
            target
        } else {
            before
        };
        // rlim_t is u64 on Linux and macOS.
        tracing::info!("open-files limit: soft {soft} (was {before}), hard {hard}");
        OpenFilesLimit { before, soft, hard }
    }
    #[cfg(not(unix))]
    {
        OpenFilesLimit { before: 1024, soft: 1024, hard: 1024 }
    }
}

/// How a node's descriptors are shared (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FdBudget {
    /// The soft open-files limit.
    pub limit: u64,
    /// Descriptors kept for the node's own files, peers and peer handshakes.
    pub reserve: u64,
}

/// Each door's connection cap, and whether it was lowered to fit the budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DoorCaps {
    pub http: usize,
    pub resp: usize,
}

impl FdBudget {
    /// The budget of a node with `peers` other members under an open-files `limit`.
    pub fn new(limit: u64, peers: usize) -> FdBudget {
        let reserve = RESERVE_BASE + RESERVE_PER_PEER * peers as u64 + RESERVE_PEER_HANDSHAKES;
        FdBudget { limit, reserve }
    }

    /// Descriptors left for client connections.
    pub fn for_clients(&self) -> u64 {
        self.limit.saturating_sub(self.reserve)
    }

    /// The caps of the enabled doors: each configured cap, lowered if the doors together would
    /// exceed [`FdBudget::for_clients`] (then the doors split it evenly, and a door that wants
    /// less leaves the rest to the other). A disabled door (`None`) gets no share. Every warning
    /// says which cap was lowered, to what, and how to raise the limit.
    pub fn caps(&self, http: Option<usize>, resp: Option<usize>) -> Result<(DoorCaps, Vec<String>), String> {
        let available = self.for_clients();
        if available < MIN_CLIENT_DESCRIPTORS {
            return Err(format!(
                "the open-files limit is {} and the node keeps {} descriptors for its own files and peers: \
                 too few are left for clients; raise it (ulimit -n, or LimitNOFILE= in a systemd unit)",
                self.limit, self.reserve
            ));
        }
        let available = usize::try_from(available).unwrap_or(usize::MAX);
        let wanted_http = http.unwrap_or(0);
        let wanted_resp = resp.unwrap_or(0);
        let (mut cap_http, mut cap_resp) = (wanted_http, wanted_resp);
        if wanted_http.saturating_add(wanted_resp) > available {
            let doors = usize::from(http.is_some()) + usize::from(resp.is_some());
            let share = available / doors.max(1);
            // A door that wants less than its share gives the rest to the other.
            cap_http = wanted_http.min(share.max(available - wanted_resp.min(share)));
            cap_resp = wanted_resp.min(available - cap_http);
        }
        let mut warnings = Vec::new();
        for (name, wanted, cap) in
            [("http_max_connections", wanted_http, cap_http), ("maxclients", wanted_resp, cap_resp)]
        {
            if cap < wanted {
                warnings.push(format!(
                    "{name} {wanted} lowered to {cap}: the open-files limit is {} and the node keeps {} \
                     descriptors for its own files and peers; raise the limit (ulimit -n, or LimitNOFILE= \
                     in a systemd unit) to allow more",
                    self.limit, self.reserve
                ));
            }
        }
        Ok((DoorCaps { http: cap_http.max(1), resp: cap_resp.max(1) }, warnings))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_fit_in_the_descriptors_left_after_the_reserve() {
        // Issue #23: RESP's 10 000 clients exceeded the usual 1 024 descriptors.
        let budget = FdBudget::new(1024, 2);
        assert_eq!(budget.reserve, 64 + 8 + 32);
        let (caps, warnings) = budget.caps(Some(1024), Some(10_000)).unwrap();
        assert!(caps.http + caps.resp <= 1024 - 104, "{caps:?}");
        assert_eq!(caps, DoorCaps { http: 460, resp: 460 });
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[1].starts_with("maxclients 10000 lowered to 460"), "{}", warnings[1]);

        // A door that wants less leaves the rest to the other.
        let (caps, warnings) = budget.caps(Some(100), Some(10_000)).unwrap();
        assert_eq!(caps, DoorCaps { http: 100, resp: 820 });
        assert_eq!(warnings.len(), 1);
        // One door alone takes everything; enough descriptors: nothing is lowered.
        assert_eq!(budget.caps(None, Some(10_000)).unwrap().0.resp, 920);
        let roomy = FdBudget::new(1 << 20, 2);
        assert_eq!(
            roomy.caps(Some(1024), Some(10_000)).unwrap(),
            (DoorCaps { http: 1024, resp: 10_000 }, vec![])
        );
        // Too few to serve anyone: the node says so instead of starting.
        let err = FdBudget::new(100, 0).caps(Some(1), Some(1)).unwrap_err();
        assert!(err.contains("ulimit -n"), "{err}");
    }
}
