//! What a clock fault did to a node, as the node itself says it: the evidence in `timeline.json`
//! that libfaketime was loaded and the clock moved, rather than a file written into a container.
//!
//! Both of a node's clocks are read through its Redis door:
//!
//! * the wall clock: `TIME` (the node's `SystemTime::now()`, to the microsecond), set against the
//!   host's clock around the call – the difference is the node's offset, give or take half the
//!   round trip;
//! * the monotonic clock: `INFO server`'s `uptime_in_seconds` (an `Instant` taken when the Redis
//!   door started, `elapsed()`, whole seconds) – the clock tokio's timers and Raft run on. The
//!   nodes of a run start within a second or so of each other, so a node whose monotonic clock
//!   was moved by *d* reports an uptime about *d* off its peers'.
//!
//! And its term and role (`/healthz`): what Raft made of it.

use concord_server::testkit::{http, Reply, Resp};
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The node's clock minus the host's, in seconds: of three `TIME` calls on one connection, the
/// one with the shortest round trip (a node whose clock was just set back may be slow to answer;
/// the node read its clock somewhere within the round trip). None: no answer within two seconds –
/// the observation must not stretch the fault it observes much.
async fn offset(redis: SocketAddr) -> Option<f64> {
    let host = || SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64();
    let call = async {
        let mut c = Resp::connect(redis).await.ok()?;
        let mut best: Option<(f64, f64)> = None; // (round trip, offset)
        for _ in 0..3 {
            let before = host();
            let reply = c.request(&["TIME"]).await.ok()?;
            let after = host();
            let Reply::Array(parts) = reply else { return None };
            let words: Vec<f64> = parts
                .iter()
                .filter_map(|p| match p {
                    Reply::Text(t) => t.parse().ok(),
                    Reply::Array(_) => None,
                })
                .collect();
            let [secs, micros] = words[..] else { return None };
            let reading = (after - before, secs + micros / 1e6 - (before + after) / 2.0);
            if best.is_none_or(|b| reading.0 < b.0) {
                best = Some(reading);
            }
        }
        best.map(|b| b.1)
    };
    tokio::time::timeout(Duration::from_secs(2), call).await.ok().flatten()
}

/// How long a node's clock may be sampled (a strobe's several reads): the observation must not
/// stretch the fault it observes much.
const SAMPLING: Duration = Duration::from_secs(2);

/// The node's `uptime_in_seconds` (None: no answer).
async fn uptime(redis: SocketAddr) -> Option<u64> {
    let call = async {
        let mut c = Resp::connect(redis).await.ok()?;
        let text = c.call(&["INFO", "server"]).await.ok()?;
        text.lines().find_map(|l| l.trim().strip_prefix("uptime_in_seconds:")?.parse().ok())
    };
    tokio::time::timeout(Duration::from_secs(2), call).await.ok().flatten()
}

/// One line per node of `nodes` (0-based): the clock offsets its `TIME` shows over up to
/// `samples` reads `gap`, 1.5 `gap`, 2 `gap`, … apart – no new read after [`SAMPLING`] (a node
/// whose clock is behind can take seconds a read) – its uptime, term and role; and the highest
/// term any node reports.
pub async fn observe(
    redis: &[SocketAddr],
    http_addrs: &[SocketAddr],
    nodes: &[usize],
    samples: usize,
    gap: Duration,
) -> Vec<String> {
    let mut lines = Vec::new();
    for &i in nodes {
        let mut seen = Vec::new();
        let began = std::time::Instant::now();
        for k in 0..samples {
            if k > 0 && began.elapsed() >= SAMPLING {
                break;
            }
            if k > 0 {
                // Growing gaps: a read takes its own time, and fixed gaps could keep meeting a
                // strobe in the same phase.
                tokio::time::sleep(gap * (k as u32 + 1) / 2).await;
            }
            if let Some(o) = offset(redis[i]).await {
                seen.push(o);
            }
        }
        let clock = match (seen.iter().copied().reduce(f64::min), seen.iter().copied().reduce(f64::max)) {
            (Some(lo), Some(hi)) if hi - lo < 0.05 => format!("clock {hi:+.3} s"),
            (Some(lo), Some(hi)) => format!("clock {lo:+.3} s to {hi:+.3} s over {} reads", seen.len()),
            _ => "clock unread (no TIME answer)".to_string(),
        };
        let up = uptime(redis[i]).await.map_or("?".into(), |u| u.to_string());
        let (term, role) = health(http_addrs[i]).await;
        lines.push(format!("node {}: {clock}, uptime {up} s, term {term}, {role}", i + 1));
    }
    let mut terms = Vec::new();
    for &addr in http_addrs {
        let (term, _) = health(addr).await;
        terms.extend(term.parse::<u64>().ok());
    }
    if let Some(max) = terms.iter().max() {
        lines.push(format!("highest term {max}"));
    }
    lines
}

/// A node's term and role from `/healthz` ("?" when it does not answer).
async fn health(addr: SocketAddr) -> (String, String) {
    let answer = http(addr, "GET", "/healthz", b"", Duration::from_secs(1)).await;
    match answer.ok().and_then(|a| a.json().ok()) {
        Some(v) => (
            v["term"].as_u64().map_or("?".into(), |t| t.to_string()),
            v["role"].as_str().unwrap_or("?").to_string(),
        ),
        None => ("?".into(), "?".into()),
    }
}
