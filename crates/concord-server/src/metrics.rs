//! Prometheus metrics, served as text at `GET /metrics`.
//!
//! | metric | type | labels | what |
//! |---|---|---|---|
//! | `concord_requests_total` | counter | kind, result | client requests by kind (`get`, `put`, …) and outcome (`ok`, `not_leader`, `timeout`, …) |
//! | `concord_request_seconds` | histogram | kind | client request latency, forwarding and retries included |
//! | `concord_raft_term` / `_commit_index` / `_applied_index` / `_last_log_index` | gauge | | the node's Raft state after its last batch |
//! | `concord_raft_role` | gauge | role | 1 for the role the node plays, 0 for the others |
//! | `concord_dynamo_keys` / `_hints` / `_members_alive` / `_anti_entropy_bytes` | gauge | | eventual mode: keys held, hints waiting for handoff, members SWIM believes alive (this one included), anti-entropy bytes sent |
//! | `concord_wal_sync_seconds` | histogram | | duration of each group-commit `fdatasync` |
//! | `concord_wal_batch_inputs` | histogram | | inputs (messages, requests, timers) run through Raft per sync |
//! | `concord_peer_frames_sent_total` / `_dropped_total` | counter | peer | frames to each peer; dropped when its bounded queue was full or it was unreachable |
//! | `concord_peer_handshake_failures_total` | counter | | refused or failed peer handshakes, both directions |
//! | `concord_peer_handshake_rejected_total` | counter | reason | inbound peer connections this node refused, by reason (`malformed`, `closed`, `timeout`, `tls`, `version`, `cluster_id`, `node_id`, `unknown_peer`, `secret`) |
//! | `concord_disk_free_bytes` | gauge | | space left on the data disk at the last check (see [`crate::disk_space`]) |
//! | `concord_disk_writes_refused` | gauge | | 1 while writes are refused because the data disk is (nearly) full |
//! | `concord_inbound_dropped_total` | counter | | inputs dropped because the node's input queue was full |
//! | `concord_client_connections` / `_max` | gauge | door | open client connections of each front door (`http`, `resp`), and its cap (see `crate::front::budget`) |
//! | `concord_rejected_connections_total` | counter | door, reason | connections refused at accept: `max_connections` (`http`, `resp`: the door is at its cap), `max_handshakes` (`peer`: too many unauthenticated connections) |
//! | `concord_accept_errors_total` | counter | door | `accept` failures other than a client giving up (`EMFILE`, `ENFILE`…): logged, backed off, retried |
//! | `concord_client_disconnects_total` | counter | door, reason | connections the node closed: `idle_timeout`, `query_buffer`, `output_buffer` |
//! | `concord_open_files_limit` | gauge | | the soft open-files limit after the node raised it |
//!
//! The same request counts and latencies are also kept as plain numbers ([`RequestTotals`]) for the
//! dashboard's `GET /v1/stats` and live request rates (see [`crate::dashboard`]): prometheus-client
//! does not let its histograms be read back.
//!
//! Every family has a bounded label set (request kinds and results, roles and peer ids are fixed
//! lists), so the registry cannot grow without bound.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub kind: &'static str,
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PeerLabels {
    pub peer: u32,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DoorLabels {
    pub door: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DoorReasonLabels {
    pub door: &'static str,
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RoleLabels {
    pub role: &'static str,
}

/// Upper bounds of the latency buckets: 100 µs doubling to ~6.5 s (then +Inf).
const LATENCY_BUCKET_START_S: f64 = 0.0001;
const LATENCY_BUCKETS: u16 = 17;

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(LATENCY_BUCKET_START_S, 2.0, LATENCY_BUCKETS))
}

/// The finite upper bounds (seconds) of the latency buckets, shared by the Prometheus histogram and
/// [`RequestTotals::buckets`].
pub fn latency_bucket_bounds_s() -> Vec<f64> {
    exponential_buckets(LATENCY_BUCKET_START_S, 2.0, LATENCY_BUCKETS).collect()
}

/// Cumulative counts of one request kind since the node started.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RequestTotals {
    /// Requests by result label (`ok`, `not_leader`, `timeout`, …).
    pub by_result: BTreeMap<&'static str, u64>,
    /// Requests per latency bucket (not cumulative): `buckets[i]` took at most
    /// `latency_bucket_bounds_s()[i]` and more than the bound before; the last one is +Inf.
    pub buckets: Vec<u64>,
    pub sum_seconds: f64,
}

impl RequestTotals {
    pub fn count(&self) -> u64 {
        self.by_result.values().sum()
    }

    pub fn failed(&self) -> u64 {
        self.by_result.iter().filter(|(r, _)| **r != "ok").map(|(_, n)| n).sum()
    }
}

/// All of a node's metrics, and the registry that renders them.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_seconds: Family<KindLabels, Histogram, fn() -> Histogram>,
    pub raft_term: Gauge,
    pub raft_commit_index: Gauge,
    pub raft_applied_index: Gauge,
    pub raft_last_log_index: Gauge,
    pub raft_follower_log_regressions: Gauge,
    raft_role: Family<RoleLabels, Gauge>,
    pub dynamo_keys: Gauge,
    pub dynamo_hints: Gauge,
    pub dynamo_members_alive: Gauge,
    pub dynamo_anti_entropy_bytes: Gauge,
    wal_sync_seconds: Histogram,
    wal_batch_inputs: Histogram,
    peer_frames_sent: Family<PeerLabels, Counter>,
    peer_frames_dropped: Family<PeerLabels, Counter>,
    pub peer_handshake_failures: Counter,
    peer_handshake_rejected: Family<ReasonLabels, Counter>,
    pub inbound_dropped: Counter,
    client_connections: Family<DoorLabels, Gauge>,
    client_connections_max: Family<DoorLabels, Gauge>,
    rejected_connections: Family<DoorReasonLabels, Counter>,
    accept_errors: Family<DoorLabels, Counter>,
    client_disconnects: Family<DoorReasonLabels, Counter>,
    pub open_files_limit: Gauge,
    pub disk_free_bytes: Gauge,
    pub disk_writes_refused: Gauge,
    /// The dashboard's copy of the request counts (a few kinds: bounded).
    request_totals: Mutex<BTreeMap<&'static str, RequestTotals>>,
    bucket_bounds_s: Vec<f64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("concord");
        let m = Metrics {
            requests: Family::default(),
            request_seconds: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            raft_term: Gauge::default(),
            raft_commit_index: Gauge::default(),
            raft_applied_index: Gauge::default(),
            raft_last_log_index: Gauge::default(),
            raft_follower_log_regressions: Gauge::default(),
            raft_role: Family::default(),
            dynamo_keys: Gauge::default(),
            dynamo_hints: Gauge::default(),
            dynamo_members_alive: Gauge::default(),
            dynamo_anti_entropy_bytes: Gauge::default(),
            wal_sync_seconds: latency_histogram(),
            wal_batch_inputs: Histogram::new(exponential_buckets(1.0, 2.0, 12)),
            peer_frames_sent: Family::default(),
            peer_frames_dropped: Family::default(),
            peer_handshake_failures: Counter::default(),
            peer_handshake_rejected: Family::default(),
            inbound_dropped: Counter::default(),
            client_connections: Family::default(),
            client_connections_max: Family::default(),
            rejected_connections: Family::default(),
            accept_errors: Family::default(),
            client_disconnects: Family::default(),
            open_files_limit: Gauge::default(),
            disk_free_bytes: Gauge::default(),
            disk_writes_refused: Gauge::default(),
            request_totals: Mutex::default(),
            bucket_bounds_s: latency_bucket_bounds_s(),
            registry: Registry::default(),
        };
        registry.register("requests", "Client requests by kind and result", m.requests.clone());
        registry.register("request_seconds", "Client request latency", m.request_seconds.clone());
        registry.register("raft_term", "Current Raft term", m.raft_term.clone());
        registry.register("raft_commit_index", "Raft commit index", m.raft_commit_index.clone());
        registry.register("raft_applied_index", "Raft applied index", m.raft_applied_index.clone());
        registry.register("raft_last_log_index", "Last Raft log index", m.raft_last_log_index.clone());
        registry.register(
            "raft_follower_log_regressions",
            "Times this node, as leader, found a follower whose log went backwards (wiped or truncated) and reset its progress",
            m.raft_follower_log_regressions.clone(),
        );
        registry.register("raft_role", "1 for the node's current Raft role", m.raft_role.clone());
        registry.register("dynamo_keys", "Eventual mode: keys held as a replica", m.dynamo_keys.clone());
        registry.register("dynamo_hints", "Eventual mode: hints waiting for handoff", m.dynamo_hints.clone());
        registry.register(
            "dynamo_members_alive",
            "Eventual mode: members believed alive, this node included",
            m.dynamo_members_alive.clone(),
        );
        registry.register(
            "dynamo_anti_entropy_bytes",
            "Eventual mode: bytes sent for anti-entropy since start",
            m.dynamo_anti_entropy_bytes.clone(),
        );
        registry.register(
            "wal_sync_seconds",
            "Duration of WAL group-commit syncs",
            m.wal_sync_seconds.clone(),
        );
        registry.register("wal_batch_inputs", "Raft inputs per WAL sync", m.wal_batch_inputs.clone());
        registry.register("peer_frames_sent", "Frames sent to each peer", m.peer_frames_sent.clone());
        registry.register(
            "peer_frames_dropped",
            "Frames to each peer dropped (queue full or peer unreachable)",
            m.peer_frames_dropped.clone(),
        );
        registry.register(
            "peer_handshake_failures",
            "Refused or failed peer handshakes",
            m.peer_handshake_failures.clone(),
        );
        registry.register(
            "peer_handshake_rejected",
            "Inbound peer connections refused, by reason",
            m.peer_handshake_rejected.clone(),
        );
        registry.register(
            "inbound_dropped",
            "Inputs dropped because the node's input queue was full",
            m.inbound_dropped.clone(),
        );
        registry.register(
            "client_connections",
            "Open client connections per door",
            m.client_connections.clone(),
        );
        registry.register(
            "client_connections_max",
            "Connection cap of each door (within the open-files budget)",
            m.client_connections_max.clone(),
        );
        registry.register(
            "rejected_connections",
            "Client connections refused at accept, by door and reason",
            m.rejected_connections.clone(),
        );
        registry.register(
            "accept_errors",
            "accept() failures (e.g. out of file descriptors), by door",
            m.accept_errors.clone(),
        );
        registry.register(
            "client_disconnects",
            "Client connections closed by the node, by door and reason",
            m.client_disconnects.clone(),
        );
        registry.register(
            "open_files_limit",
            "Soft open-files limit of the process",
            m.open_files_limit.clone(),
        );
        registry.register("disk_free_bytes", "Space left on the data disk", m.disk_free_bytes.clone());
        registry.register(
            "disk_writes_refused",
            "1 while writes are refused because the data disk is (nearly) full",
            m.disk_writes_refused.clone(),
        );
        Metrics { registry, ..m }
    }

    /// A client connection of `door` opened (`+1`) or closed (`-1`).
    pub fn client_connection(&self, door: &'static str, delta: i64) {
        self.client_connections.get_or_create(&DoorLabels { door }).inc_by(delta);
    }

    /// The connection cap of `door`.
    pub fn set_client_connections_max(&self, door: &'static str, max: usize) {
        self.client_connections_max.get_or_create(&DoorLabels { door }).set(max as i64);
    }

    /// A connection to `door` refused at accept, for `reason` (`max_connections`).
    pub fn rejected_connection(&self, door: &'static str, reason: &'static str) {
        self.rejected_connections.get_or_create(&DoorReasonLabels { door, reason }).inc();
    }

    /// Connections to `door` refused so far for `reason` (tests).
    pub fn rejected_connections(&self, door: &'static str, reason: &'static str) -> u64 {
        self.rejected_connections.get_or_create(&DoorReasonLabels { door, reason }).get()
    }

    /// An `accept` on `door` failed (not a client that gave up: the node's own limits).
    pub fn accept_error(&self, door: &'static str) {
        self.accept_errors.get_or_create(&DoorLabels { door }).inc();
    }

    /// The node closed a client connection of `door` for `reason` (`idle_timeout`, `query_buffer`,
    /// `output_buffer`).
    pub fn client_disconnect(&self, door: &'static str, reason: &'static str) {
        self.client_disconnects.get_or_create(&DoorReasonLabels { door, reason }).inc();
    }

    pub fn request(&self, kind: &'static str, result: &'static str, took: Duration) {
        self.requests.get_or_create(&RequestLabels { kind, result }).inc();
        self.request_seconds.get_or_create(&KindLabels { kind }).observe(took.as_secs_f64());
        let seconds = took.as_secs_f64();
        let bucket =
            self.bucket_bounds_s.iter().position(|b| seconds <= *b).unwrap_or(self.bucket_bounds_s.len());
        let mut totals = self.request_totals.lock().expect("request totals lock");
        let t = totals.entry(kind).or_default();
        *t.by_result.entry(result).or_default() += 1;
        t.buckets.resize(self.bucket_bounds_s.len() + 1, 0);
        t.buckets[bucket] += 1;
        t.sum_seconds += seconds;
    }

    /// A batch of requests of one `kind` (a pipeline's reads or writes) that took `took`
    /// together, each with its result label: counted as [`Metrics::request`] counts them one by
    /// one, with one lookup per distinct label and one lock for the whole batch.
    pub fn requests(&self, kind: &'static str, results: &[&'static str], took: Duration) {
        if results.is_empty() {
            return;
        }
        let seconds = took.as_secs_f64();
        let mut i = 0;
        while i < results.len() {
            let result = results[i];
            let same = results[i..].iter().take_while(|r| **r == result).count();
            self.requests.get_or_create(&RequestLabels { kind, result }).inc_by(same as u64);
            i += same;
        }
        {
            let histogram = self.request_seconds.get_or_create(&KindLabels { kind });
            for _ in results {
                histogram.observe(seconds);
            }
        }
        let bucket =
            self.bucket_bounds_s.iter().position(|b| seconds <= *b).unwrap_or(self.bucket_bounds_s.len());
        let mut totals = self.request_totals.lock().expect("request totals lock");
        let t = totals.entry(kind).or_default();
        for result in results {
            *t.by_result.entry(*result).or_default() += 1;
        }
        t.buckets.resize(self.bucket_bounds_s.len() + 1, 0);
        t.buckets[bucket] += results.len() as u64;
        t.sum_seconds += seconds * results.len() as f64;
    }

    /// Every request kind's counts so far.
    pub fn request_totals(&self) -> BTreeMap<&'static str, RequestTotals> {
        self.request_totals.lock().expect("request totals lock").clone()
    }

    pub fn set_role(&self, role: &'static str) {
        for r in ["leader", "follower", "candidate", "pre-candidate", "learner"] {
            self.raft_role.get_or_create(&RoleLabels { role: r }).set(i64::from(r == role));
        }
    }

    pub fn wal_sync(&self, took: Duration, inputs: usize) {
        self.wal_sync_seconds.observe(took.as_secs_f64());
        self.wal_batch_inputs.observe(inputs as f64);
    }

    pub fn frame_sent(&self, peer: u32) {
        self.peer_frames_sent.get_or_create(&PeerLabels { peer }).inc();
    }

    pub fn frames_dropped(&self, peer: u32, n: u64) {
        self.peer_frames_dropped.get_or_create(&PeerLabels { peer }).inc_by(n);
    }

    /// An inbound peer connection was refused (`reason`: one of
    /// [`crate::transport::REJECTION_REASONS`], a bounded label set).
    pub fn handshake_rejected(&self, reason: &'static str) {
        self.peer_handshake_rejected.get_or_create(&ReasonLabels { reason }).inc();
    }

    /// Inbound peer connections refused for `reason` so far (tests).
    pub fn handshake_rejections(&self, reason: &'static str) -> u64 {
        self.peer_handshake_rejected.get_or_create(&ReasonLabels { reason }).get()
    }

    /// Dropped frames to `peer` so far (tests, `/v1/cluster`).
    pub fn dropped_to(&self, peer: u32) -> u64 {
        self.peer_frames_dropped.get_or_create(&PeerLabels { peer }).get()
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String");
        out
    }
}
