//! The `list-append` workload (Elle's): each transaction is one to four micro-ops, `append k v`
//! or `r k` (read the whole list), run atomically as `MULTI`, `RPUSH k v` / `LRANGE k 0 -1`, …,
//! `EXEC` over the Redis door – one `Write::Redis` entry of the log, one step of the state
//! machine (docs/redis.md, "Transactions"). The history goes to `concord_check::elle`, which
//! infers the order of every list from the reads and looks for G0, G1a, G1b, G1c, G-single and
//! G2, with real-time and process edges (strict serializability: what the strong mode promises).
//!
//! Every value appended is unique in the run (the op counter), as Elle requires. Keys are used a
//! few at a time and retired (`keys` at a time, each for about `ops_per_key` transactions), so
//! lists stay short and reads cheap. Keys share the hash tag `{la}`: one slot, so a transaction
//! over several keys is legal in the sharded mode too.
//!
//! Outcomes: `EXEC`'s array is `ok` with the reads filled in; a refusal (`-TRYAGAIN`, …, a
//! connection never opened) is `fail`; a timeout, `-TIMEOUT`/`-UNKNOWN`, or an `EXEC` array with
//! an error inside (Redis runs the other commands of a transaction anyway) is `info`. A
//! transaction of reads only that did not complete changed nothing: `fail`.

use super::events::{Event, Log};
use super::resp::{cmd, multi, Answer, Conn};
use concord_check::elle::{
    self,
    history::{Mop, TxnEvent, TxnHistory, Workload},
};
use concord_core::history::EventType;
use concord_server::testkit::Reply;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value as J};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The workload's shape.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    pub keys: u64,
    pub ops_per_key: u64,
    pub timeout: Duration,
}

impl Shape {
    fn key(&self, n: u64, pick: u64) -> String {
        let window = n / (self.keys * self.ops_per_key).max(1);
        format!("{{la}}{}", window * self.keys + pick % self.keys)
    }
}

/// A micro-op as the history writes it: `["append", k, v]` or `["r", k, list-or-null]`.
fn mop_json(mop: &Mop) -> J {
    match mop {
        Mop::Append { key, value } => json!(["append", key, value]),
        Mop::ReadList { key, value } => json!(["r", key, value]),
        other => unreachable!("list-append issues no {other:?}"),
    }
}

fn txn_json(mops: &[Mop]) -> J {
    J::Array(mops.iter().map(mop_json).collect())
}

/// Fill the reads of `mops` from `EXEC`'s array; `None` if the array does not answer them (an
/// error inside, or a shape that does not fit).
fn completed(mops: &[Mop], replies: &[Reply]) -> Option<Vec<Mop>> {
    if replies.len() != mops.len() {
        return None;
    }
    mops.iter()
        .zip(replies)
        .map(|(mop, reply)| match (mop, reply) {
            (Mop::Append { .. }, Reply::Text(t)) if t.parse::<u64>().is_ok() => Some(mop.clone()),
            (Mop::ReadList { key, .. }, Reply::Array(_)) => {
                let list =
                    reply.texts().ok()?.iter().map(|t| t.parse::<i64>().ok()).collect::<Option<Vec<_>>>()?;
                Some(Mop::ReadList { key: key.clone(), value: Some(list) })
            }
            _ => None,
        })
        .collect()
}

/// One client, bound to node `c mod nodes`: random transactions until `stop`.
pub async fn client(
    c: usize,
    nodes: Vec<SocketAddr>,
    shape: Shape,
    seed: u64,
    log: Arc<Log>,
    stop: Arc<AtomicBool>,
) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_mul(1_000_003).wrapping_add(c as u64));
    let mut process = log.process();
    let mut conn = Conn::new(nodes[c % nodes.len()], shape.timeout);
    while !stop.load(Ordering::SeqCst) {
        let n = log.next_op();
        let mops: Vec<Mop> = (0..rng.gen_range(1..=4))
            .map(|i| {
                let key = shape.key(n, rng.gen());
                if rng.gen_bool(0.5) {
                    // Unique in the run: the op number and the micro-op's place.
                    Mop::Append { key, value: (n * 4 + i) as i64 }
                } else {
                    Mop::ReadList { key, value: None }
                }
            })
            .collect();
        let writes = mops.iter().any(|m| matches!(m, Mop::Append { .. }));
        log.record(process, EventType::Invoke, "txn", txn_json(&mops));
        let commands = mops
            .iter()
            .map(|m| match m {
                Mop::Append { key, value } => cmd(&["RPUSH", key, &value.to_string()]),
                Mop::ReadList { key, .. } => cmd(&["LRANGE", key, "0", "-1"]),
                _ => unreachable!(),
            })
            .collect();
        let answer = conn.run(&multi(commands), writes).await;
        let done = match &answer {
            Answer::Reply(Reply::Array(replies)) => completed(&mops, replies),
            _ => None,
        };
        match (done, answer) {
            (Some(read), _) => log.record(process, EventType::Ok, "txn", txn_json(&read)),
            (None, Answer::Refused(_)) => {
                log.record(process, EventType::Fail, "txn", txn_json(&mops));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            (None, _) if !writes => {
                log.record(process, EventType::Fail, "txn", txn_json(&mops));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            (None, _) => {
                log.record(process, EventType::Info, "txn", txn_json(&mops));
                process = log.process();
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// The events as Elle's transactions.
pub fn txn_events(events: &[Event]) -> Result<Vec<TxnEvent>, String> {
    events
        .iter()
        .map(|e| {
            let items = e.value.as_array().ok_or_else(|| format!("event {e:?} holds no micro-ops"))?;
            let mops = items
                .iter()
                .map(|m| {
                    let (f, key, v) = (m[0].as_str(), m[1].as_str().unwrap_or_default().to_string(), &m[2]);
                    match f {
                        Some("append") => v
                            .as_i64()
                            .map(|value| Mop::Append { key, value })
                            .ok_or_else(|| format!("append of {v}")),
                        Some("r") if v.is_null() => Ok(Mop::ReadList { key, value: None }),
                        Some("r") => serde_json::from_value::<Vec<i64>>(v.clone())
                            .map(|l| Mop::ReadList { key, value: Some(l) })
                            .map_err(|e| e.to_string()),
                        _ => Err(format!("micro-op {m}")),
                    }
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(TxnEvent { process: e.process, kind: e.kind, mops, time: e.time })
        })
        .collect()
}

/// Check the history with Elle for strict serializability: the report (text) and its HTML page.
pub fn check(events: &[Event]) -> Result<elle::Report, String> {
    let txns = txn_events(events)?;
    let history = TxnHistory::from_events(Workload::ListAppend, &txns)
        .map_err(|errors| format!("malformed history: {errors:?}"))?;
    elle::check(&history, &elle::Options::strict_serializable()).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(process: u64, kind: EventType, value: J, time: u64) -> Event {
        Event { process, kind, f: "txn", value, time }
    }

    #[test]
    fn exec_replies_fill_the_reads() {
        let mops =
            vec![Mop::Append { key: "k".into(), value: 3 }, Mop::ReadList { key: "k".into(), value: None }];
        let replies = vec![
            Reply::Text("2".into()),
            Reply::Array(vec![Reply::Text("1".into()), Reply::Text("3".into())]),
        ];
        let done = completed(&mops, &replies).unwrap();
        assert_eq!(done[1], Mop::ReadList { key: "k".into(), value: Some(vec![1, 3]) });
        // An error inside EXEC's array: not a completed transaction.
        let replies = vec![Reply::Text("-WRONGTYPE x".into()), Reply::Array(vec![])];
        assert_eq!(completed(&mops, &replies), None);
    }

    /// Write skew recorded by chaos clients is found by Elle (G2), and a serial history passes.
    #[test]
    fn a_g2_history_is_invalid() {
        let events = vec![
            ev(0, EventType::Invoke, json!([["r", "x", null], ["append", "y", 1]]), 0),
            ev(1, EventType::Invoke, json!([["r", "y", null], ["append", "x", 2]]), 1),
            ev(0, EventType::Ok, json!([["r", "x", []], ["append", "y", 1]]), 2),
            ev(1, EventType::Ok, json!([["r", "y", []], ["append", "x", 2]]), 3),
            ev(2, EventType::Invoke, json!([["r", "x", null], ["r", "y", null]]), 4),
            ev(2, EventType::Ok, json!([["r", "x", [2]], ["r", "y", [1]]]), 5),
        ];
        let report = check(&events).unwrap();
        assert!(!report.is_valid());
        assert_eq!(report.anomaly_names(), vec!["G2"]);
        let serial = vec![
            ev(0, EventType::Invoke, json!([["r", "x", null], ["append", "y", 1]]), 0),
            ev(0, EventType::Ok, json!([["r", "x", []], ["append", "y", 1]]), 1),
            ev(1, EventType::Invoke, json!([["r", "y", null], ["append", "x", 2]]), 2),
            ev(1, EventType::Ok, json!([["r", "y", [1]], ["append", "x", 2]]), 3),
        ];
        assert!(check(&serial).unwrap().is_valid());
    }
}
