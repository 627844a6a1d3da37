//! The live cluster dashboard, served by every node on its HTTP port.
//!
//! ```text
//!   browser ── GET /  (or /dashboard) ──> the page: web/dashboard/*, compiled into the binary
//!           <── GET /v1/events (SSE) ───  one "snapshot" event every 500 ms, and at once when this
//!                                         node's role, term or leader changes
//!                     this node ── GET /v1/cluster ──> each peer it knows (400 ms deadline)
//! ```
//!
//! **Where the data comes from.** The page talks only to the node that served it. That node builds
//! each snapshot: its own status, the `GET /v1/cluster` answer of every peer it knows the HTTP
//! address of (fetched by the node – a server-side proxy – so the page needs no CORS and no second
//! origin), the leader changes it has seen since it started ([`LeaderHistory`]), and its request
//! rates and latencies over the last [`RATE_WINDOW`] ([`RequestWindow`]). A peer that does not answer
//! in time is listed as unreachable with the reason; the snapshot still goes out. Replication lag
//! per follower is the leader's view (`members[].lag` in the leader's `/v1/cluster`).
//!
//! **Endpoints.**
//!
//! | path | answer |
//! |---|---|
//! | `GET /`, `GET /dashboard` | the page (HTML; its script and style under `/dashboard/`) |
//! | `GET /v1/overview` | one snapshot (the document each SSE event carries), as JSON |
//! | `GET /v1/events` | `text/event-stream` of snapshots (event name `snapshot`) |
//! | `GET /v1/stats` | this node's request counts and latency buckets since it started |
//!
//! **Bounds.** At most [`MAX_SUBSCRIBERS`] event streams per node (each polls the peers: more would
//! turn dashboards into load); one more is refused with 503. The leader history keeps the last
//! [`LEADER_HISTORY_MAX`] changes. The page keeps its own bounded history (see `dashboard.js`).
//!
//! **Not here.** Sharding: the strong mode runs one Raft group holding the whole key space, so the
//! page says "no sharding in this mode"; the sharded mode serves its own page
//! (`web/dashboard/sharded.html`, see `crate::sharded::http`). Latency percentiles are read from the
//! histogram's buckets (powers of two from 100 µs), so they are upper bounds, not exact values.

use crate::client::{http_with_headers, https_with_headers, HttpAnswer};
use crate::metrics::{latency_bucket_bounds_s, RequestTotals};
use crate::strong::handle::NodeHandle;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, watch, Semaphore};

/// The page and its assets, compiled in from the repository's `web/dashboard/`.
const INDEX_HTML: &str = include_str!("../../../web/dashboard/index.html");
const DASHBOARD_JS: &str = include_str!("../../../web/dashboard/dashboard.js");
const DASHBOARD_CSS: &str = include_str!("../../../web/dashboard/dashboard.css");
const FAVICON_SVG: &str = include_str!("../../../web/dashboard/favicon.svg");

/// How often a snapshot is sent (and the peers polled).
pub const SNAPSHOT_INTERVAL: Duration = Duration::from_millis(500);
/// How long a peer's `/v1/cluster` may take before it is shown as unreachable.
pub const PEER_TIMEOUT: Duration = Duration::from_millis(400);
/// Request rates and latencies are measured over this window.
pub const RATE_WINDOW: Duration = Duration::from_secs(5);
/// Event streams open at once on one node.
pub const MAX_SUBSCRIBERS: usize = 16;
/// Leader changes remembered by one node.
pub const LEADER_HISTORY_MAX: usize = 128;

/// How a node calls its peers' HTTP APIs (the dashboard's `/v1/cluster` fetches, forwarded faults
/// requests): plain HTTP, or HTTPS trusting the cluster's CA when the node runs with TLS (then every
/// node's HTTP port is HTTPS). Every call carries a proof of the cluster secret
/// ([`crate::auth::proof`]) – never the secret itself – so peers that require authentication
/// answer it.
#[derive(Clone)]
pub struct PeerHttp {
    tls: Option<Arc<rustls::ClientConfig>>,
    secret: Option<Arc<Vec<u8>>>,
}

impl PeerHttp {
    pub fn new(config: &crate::NodeConfig) -> Result<PeerHttp, crate::Error> {
        let tls = config.tls.as_ref().map(|t| crate::tls::client_config(&t.ca)).transpose()?;
        Ok(PeerHttp { tls, secret: config.secret()?.map(Arc::new) })
    }

    /// Whether calls carry a proof (the node has a cluster secret).
    pub fn signs(&self) -> bool {
        self.secret.is_some()
    }

    /// `http` or `https`: what the page's links to other members' dashboards use.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    pub async fn call(
        &self,
        addr: SocketAddr,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<HttpAnswer, String> {
        let proof = self.secret.as_ref().map(|s| crate::auth::proof(s, method, path, b""));
        let mut headers = headers.to_vec();
        headers.extend(proof.as_deref().map(|p| ("authorization", p)));
        let headers = &headers[..];
        match &self.tls {
            None => http_with_headers(addr, method, path, headers, b"", timeout).await,
            Some(tls) => https_with_headers(addr, tls.clone(), method, path, headers, b"", timeout).await,
        }
    }
}

/// What the dashboard endpoints share.
pub struct Dashboard {
    handle: NodeHandle,
    peer_http: PeerHttp,
    fault_injection: bool,
    /// A supervisor can start stopped members again (the Restart button).
    restart: bool,
    history: Arc<LeaderHistory>,
    subscribers: Arc<Semaphore>,
    shutdown: watch::Receiver<bool>,
}

impl Dashboard {
    /// The dashboard of a node; spawns the task that records leader changes (until `shutdown`).
    pub fn start(
        handle: NodeHandle,
        peer_http: PeerHttp,
        fault_injection: bool,
        restart: bool,
        shutdown: watch::Receiver<bool>,
    ) -> Arc<Dashboard> {
        let history = Arc::new(LeaderHistory::default());
        tokio::spawn(history.clone().record(handle.watch_status(), shutdown.clone()));
        Arc::new(Dashboard {
            handle,
            peer_http,
            fault_injection,
            restart,
            history,
            subscribers: Arc::new(Semaphore::new(MAX_SUBSCRIBERS)),
            shutdown,
        })
    }

    /// Every member's status as this node can see it: its own directly, the others' over HTTP.
    async fn members(&self) -> Vec<Value> {
        let me = self.handle.id().0;
        let status = self.handle.status();
        let mut ids: Vec<u32> = status.voters.iter().chain(&status.learners).copied().collect();
        ids.extend(self.handle.peers().iter().map(|p| p.id));
        ids.sort_unstable();
        ids.dedup();
        let fetches = ids.into_iter().map(|id| async move {
            let peer = self.handle.peer(id);
            let http_addr = peer.as_ref().and_then(|p| p.http_addr);
            let mut m = json!({
                "id": id,
                "http_addr": http_addr.map(|a| a.to_string()),
                "serving": id == me,
            });
            if id == me {
                m["reachable"] = json!(true);
                m["status"] = crate::strong::http::cluster_json(&self.handle);
                return m;
            }
            let Some(addr) = http_addr else {
                m["reachable"] = Value::Null;
                m["error"] = json!("this node does not know its HTTP address");
                return m;
            };
            let started = Instant::now();
            match self.peer_http.call(addr, "GET", "/v1/cluster", &[], PEER_TIMEOUT).await {
                Ok(answer) if answer.status == 200 => match answer.json() {
                    Ok(status) => {
                        m["reachable"] = json!(true);
                        m["status"] = status;
                        m["rtt_ms"] = json!(started.elapsed().as_secs_f64() * 1000.0);
                    }
                    Err(e) => {
                        m["reachable"] = json!(false);
                        m["error"] = json!(e);
                    }
                },
                Ok(answer) => {
                    m["reachable"] = json!(false);
                    m["error"] = json!(format!("answered {}: {}", answer.status, answer.text()));
                }
                Err(e) => {
                    m["reachable"] = json!(false);
                    m["error"] = json!(e);
                }
            }
            m
        });
        futures::future::join_all(fetches).await
    }

    fn snapshot(&self, members: &[Value], window: &RequestWindow) -> Value {
        json!({
            "served_by": self.handle.id().0,
            "scheme": self.peer_http.scheme(),
            "at_ms": unix_ms(),
            "fault_injection": self.fault_injection,
            "restart": self.restart,
            "members": members,
            "leader_history": self.history.entries(),
            "requests": window.rates(),
        })
    }

    /// Send snapshots to `tx` until the page goes away or the node stops.
    async fn stream_to(&self, tx: mpsc::Sender<Event>) {
        let mut status = self.handle.watch_status();
        let mut shutdown = self.shutdown.clone();
        let mut window = RequestWindow::new(RATE_WINDOW);
        let mut members = Vec::new();
        let mut tick = tokio::time::interval(SNAPSHOT_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut seen = role_key(&status.borrow_and_update());
        loop {
            let poll_peers = tokio::select! {
                _ = tick.tick() => true,
                changed = status.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let key = role_key(&status.borrow_and_update());
                    if key == seen {
                        continue; // only the indexes moved: the next tick shows them
                    }
                    seen = key;
                    false // a role change: send at once, with the peers as last polled
                }
                _ = tx.closed() => return,
                _ = shutdown.changed() => return,
            };
            if poll_peers {
                members = self.members().await;
                window.push(Instant::now(), self.handle.metrics().request_totals());
            } else if let Some(me) =
                members.iter_mut().find(|m| m["id"].as_u64() == Some(u64::from(self.handle.id().0)))
            {
                me["status"] = crate::strong::http::cluster_json(&self.handle);
            }
            let event = match Event::default().event("snapshot").json_data(self.snapshot(&members, &window)) {
                Ok(e) => e,
                Err(e) => {
                    tracing::error!("cannot encode a dashboard snapshot: {e}");
                    return;
                }
            };
            if tx.send(event).await.is_err() {
                return;
            }
        }
    }
}

/// The part of a status whose change deserves an immediate snapshot.
fn role_key(s: &crate::driver::Status) -> (&'static str, u64, Option<u32>) {
    (s.role, s.term, s.leader)
}

fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64
}

/// The dashboard's routes.
pub fn routes(dashboard: Arc<Dashboard>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/dashboard", get(index))
        .route("/dashboard/", get(index))
        .route("/dashboard/dashboard.js", get(|| asset("text/javascript; charset=utf-8", DASHBOARD_JS)))
        .route("/dashboard/dashboard.css", get(|| asset("text/css; charset=utf-8", DASHBOARD_CSS)))
        .route("/dashboard/favicon.svg", get(|| asset("image/svg+xml", FAVICON_SVG)))
        .route("/v1/overview", get(overview))
        .route("/v1/events", get(events))
        .route("/v1/stats", get(stats))
        .with_state(dashboard)
}

async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML).await
}

async fn asset(content_type: &'static str, body: &'static str) -> Response {
    // `no-cache`: after an upgrade the browser revalidates instead of mixing old and new files.
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], body).into_response()
}

async fn overview(State(d): State<Arc<Dashboard>>) -> Json<Value> {
    let mut window = RequestWindow::new(RATE_WINDOW);
    window.push(Instant::now(), d.handle.metrics().request_totals());
    Json(d.snapshot(&d.members().await, &window))
}

async fn events(State(d): State<Arc<Dashboard>>) -> Response {
    let Ok(permit) = d.subscribers.clone().try_acquire_owned() else {
        let message = format!(
            "too many dashboards are open on node {} (at most {MAX_SUBSCRIBERS}); close one or use another node",
            d.handle.id()
        );
        return crate::front::http::ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message).into_response();
    };
    // Two events of slack: a slow page makes the producer wait rather than queue without bound.
    let (tx, rx) = mpsc::channel::<Event>(2);
    tokio::spawn(async move {
        let _permit = permit;
        d.stream_to(tx).await;
    });
    let stream =
        futures::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|e| (Ok::<_, Infallible>(e), rx)) },
        );
    Sse::new(stream).keep_alive(KeepAlive::default()).into_response()
}

async fn stats(State(d): State<Arc<Dashboard>>) -> Json<Value> {
    let bounds = latency_bucket_bounds_s();
    let totals = d.handle.metrics().request_totals();
    let kinds: Vec<Value> = totals
        .iter()
        .map(|(kind, t)| {
            json!({
                "kind": kind,
                "count": t.count(),
                "failed": t.failed(),
                "by_result": t.by_result,
                "mean_ms": if t.count() == 0 { 0.0 } else { t.sum_seconds * 1000.0 / t.count() as f64 },
                "p50_ms_at_most": quantile_bound_ms(&t.buckets, &bounds, 0.5),
                "p99_ms_at_most": quantile_bound_ms(&t.buckets, &bounds, 0.99),
                "buckets": t.buckets,
            })
        })
        .collect();
    Json(json!({
        "node": d.handle.id().0,
        "since": "node start",
        "bucket_bounds_ms": bounds.iter().map(|b| b * 1000.0).collect::<Vec<_>>(),
        "kinds": kinds,
    }))
}

/// The smallest bucket bound (ms) at or below which a fraction `q` of the requests fall; `None` if
/// there are none, or if the quantile is in the +Inf bucket.
pub fn quantile_bound_ms(buckets: &[u64], bounds_s: &[f64], q: f64) -> Option<f64> {
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return None;
    }
    let wanted = (q * total as f64).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (i, n) in buckets.iter().enumerate() {
        seen += n;
        if seen >= wanted {
            return bounds_s.get(i).map(|b| b * 1000.0);
        }
    }
    None
}

/// Request rates and latencies over a sliding window, from cumulative totals sampled over time.
pub struct RequestWindow {
    span: Duration,
    samples: VecDeque<(Instant, BTreeMap<&'static str, RequestTotals>)>,
    bounds_s: Vec<f64>,
}

impl RequestWindow {
    pub fn new(span: Duration) -> RequestWindow {
        RequestWindow { span, samples: VecDeque::new(), bounds_s: latency_bucket_bounds_s() }
    }

    /// Add a sample; forget those no longer needed (the oldest kept one is at least `span` old, so
    /// the window is full once the stream has run that long).
    pub fn push(&mut self, at: Instant, totals: BTreeMap<&'static str, RequestTotals>) {
        self.samples.push_back((at, totals));
        while self.samples.len() > 2 && at.duration_since(self.samples[1].0) >= self.span {
            self.samples.pop_front();
        }
    }

    /// Per request kind: requests and failures per second, and latency quantile bounds, between the
    /// oldest and newest samples. With one sample there is no interval yet: rates are `null`.
    pub fn rates(&self) -> Value {
        let (Some((t0, first)), Some((t1, last))) = (self.samples.front(), self.samples.back()) else {
            return json!({ "window_s": 0.0, "kinds": [] });
        };
        let seconds = t1.duration_since(*t0).as_secs_f64();
        let empty = RequestTotals::default();
        let mut kinds = Vec::new();
        let mut total_rate = 0.0;
        for (kind, now) in last {
            let before = first.get(kind).unwrap_or(&empty);
            // Totals only grow; saturating keeps a restarted counter from underflowing.
            let count = now.count().saturating_sub(before.count());
            let failed = now.failed().saturating_sub(before.failed());
            let buckets: Vec<u64> = now
                .buckets
                .iter()
                .enumerate()
                .map(|(i, n)| n.saturating_sub(before.buckets.get(i).copied().unwrap_or(0)))
                .collect();
            let per_s = |n: u64| (seconds > 0.0).then(|| n as f64 / seconds);
            total_rate += per_s(count).unwrap_or(0.0);
            kinds.push(json!({
                "kind": kind,
                "count": count,
                "rate_per_s": per_s(count),
                "errors_per_s": per_s(failed),
                "p50_ms_at_most": quantile_bound_ms(&buckets, &self.bounds_s, 0.5),
                "p99_ms_at_most": quantile_bound_ms(&buckets, &self.bounds_s, 0.99),
            }));
        }
        json!({
            "window_s": seconds,
            "rate_per_s": (seconds > 0.0).then_some(total_rate),
            "kinds": kinds,
        })
    }
}

/// One change of leader, term or role, as one node saw it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct LeaderChange {
    pub at_ms: u64,
    pub term: u64,
    pub leader: Option<u32>,
    /// The observing node's own role after the change.
    pub role: &'static str,
}

/// The last [`LEADER_HISTORY_MAX`] leader changes this node saw, since it started.
#[derive(Default)]
pub struct LeaderHistory {
    entries: Mutex<VecDeque<LeaderChange>>,
}

impl LeaderHistory {
    pub fn entries(&self) -> Vec<LeaderChange> {
        self.entries.lock().expect("history lock").iter().cloned().collect()
    }

    /// Note the status if its leader, term or role differ from the last entry.
    pub fn observe(&self, at_ms: u64, term: u64, leader: Option<u32>, role: &'static str) {
        let mut entries = self.entries.lock().expect("history lock");
        let same = entries.back().is_some_and(|e| e.term == term && e.leader == leader && e.role == role);
        if !same {
            if entries.len() == LEADER_HISTORY_MAX {
                entries.pop_front();
            }
            entries.push_back(LeaderChange { at_ms, term, leader, role });
        }
    }

    async fn record(
        self: Arc<Self>,
        mut status: watch::Receiver<crate::driver::Status>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        loop {
            {
                let s = status.borrow_and_update();
                self.observe(unix_ms(), s.term, s.leader, s.role);
            }
            tokio::select! {
                changed = status.changed() => if changed.is_err() { return },
                _ = shutdown.changed() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totals(ok: u64, failed: u64, bucket: usize) -> RequestTotals {
        let mut t = RequestTotals::default();
        t.by_result.insert("ok", ok);
        if failed > 0 {
            t.by_result.insert("timeout", failed);
        }
        t.buckets = vec![0; latency_bucket_bounds_s().len() + 1];
        t.buckets[bucket] = ok + failed;
        t
    }

    #[test]
    fn quantiles_are_the_bounds_of_the_buckets_they_fall_in() {
        let bounds = [0.001, 0.002, 0.004];
        assert_eq!(quantile_bound_ms(&[0, 0, 0, 0], &bounds, 0.5), None);
        // 98 fast requests and 2 slow ones: the median is in the first bucket, p99 in the third.
        assert_eq!(quantile_bound_ms(&[98, 0, 2, 0], &bounds, 0.5), Some(1.0));
        assert_eq!(quantile_bound_ms(&[98, 0, 2, 0], &bounds, 0.99), Some(4.0));
        // Beyond the last finite bound: unknown, not a made-up number.
        assert_eq!(quantile_bound_ms(&[0, 0, 0, 5], &bounds, 0.5), None);
    }

    #[test]
    fn rates_are_differences_over_the_window() {
        let mut w = RequestWindow::new(Duration::from_secs(5));
        let t0 = Instant::now();
        w.push(t0, BTreeMap::from([("put", totals(10, 0, 0))]));
        assert_eq!(w.rates()["kinds"][0]["rate_per_s"], Value::Null, "one sample: no rate yet");
        w.push(
            t0 + Duration::from_secs(2),
            BTreeMap::from([("put", totals(30, 4, 3)), ("get", totals(6, 0, 1))]),
        );
        let r = w.rates();
        let kinds = r["kinds"].as_array().unwrap();
        let get = kinds.iter().find(|k| k["kind"] == "get").unwrap();
        let put = kinds.iter().find(|k| k["kind"] == "put").unwrap();
        assert_eq!(get["rate_per_s"], json!(3.0));
        assert_eq!(put["count"], json!(24));
        assert_eq!(put["rate_per_s"], json!(12.0));
        assert_eq!(put["errors_per_s"], json!(2.0));
        assert_eq!(r["rate_per_s"], json!(15.0));
        // Samples older than the window are dropped once a newer one covers the span.
        for s in 3..20 {
            w.push(t0 + Duration::from_secs(s), BTreeMap::from([("put", totals(30 + s, 4, 3))]));
        }
        assert!(w.samples.len() <= 7, "{} samples kept", w.samples.len());
        let r = w.rates();
        assert!((r["window_s"].as_f64().unwrap() - 5.0).abs() < 1.01, "{r}");
        assert_eq!(r["kinds"][0]["rate_per_s"], json!(1.0));
    }

    #[test]
    fn leader_history_keeps_changes_only_and_is_bounded() {
        let h = LeaderHistory::default();
        h.observe(1, 1, None, "follower");
        h.observe(2, 1, None, "follower");
        h.observe(3, 2, Some(3), "follower");
        assert_eq!(h.entries().len(), 2);
        for i in 0..1000 {
            h.observe(10 + i, 3 + i, Some(1), "leader");
        }
        assert_eq!(h.entries().len(), LEADER_HISTORY_MAX);
        assert_eq!(h.entries().last().unwrap().term, 1002);
    }
}
