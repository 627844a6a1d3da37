//! Admin actions during faults: what an operator does to a cluster that is already in trouble.
//!
//! * `member` (strong mode): `POST /v1/members {"op": "remove", "id"}` takes a node out of the
//!   Raft group (it keeps running, never campaigns, and answers clients as a non-member); when the
//!   action ends, `add_learner` and then `promote` – retried until the leader says the learner
//!   has caught up – bring it back. The five-container deployment has no spare node, so the same
//!   node comes back, on its own data (its log is a prefix of the leader's, so it catches up by
//!   entries or a snapshot).
//! * `shard-move` (sharded mode): decided from the map (`GET /v1/cluster`) when it starts, by the
//!   plan's `pick`: either a **slot move** – the slots from the one holding a key the clients are
//!   using to at most 31 after it (within its range) go to another shard
//!   (`POST /v1/cluster/moves`) – or a **replica move** – one voter of a shard hands its place to
//!   a node without a replica of it (`POST /v1/cluster/replicas`). Either answers once the map
//!   has committed the move; the map leader's mover carries it out while the faults go on.
//!
//! Every call carries a proof of the cluster secret (`Authorization: Concord-HMAC`, as `concord
//! member` sends) and goes to the first node that answers 200, the victim last. A refusal (no
//! leader during a partition, a move already under way) fails the action: the timeline records
//! it, and the run goes on – only a cluster left broken after healing fails the run (a removed
//! node that never comes back is retried once more after the heal: [`Admin::restore`]).

use anyhow::{anyhow, bail};
use concord_server::membership::MemberTarget;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// One call may take this long before the next node is tried.
const CALL_TIMEOUT: Duration = Duration::from_secs(4);

pub struct Admin {
    secret_file: PathBuf,
    /// The register workload's keys at a time (to find a key in use: `r{window · keys}`).
    keys: u64,
    ops_per_key: u64,
    /// Nodes out of the Raft group (0-based) that have not been added back yet.
    removed: BTreeSet<usize>,
    /// What succeeded, in words, for results.json.
    done: Vec<String>,
}

impl Admin {
    pub fn new(secret_file: PathBuf, keys: u64, ops_per_key: u64) -> Admin {
        Admin { secret_file, keys, ops_per_key, removed: BTreeSet::new(), done: Vec::new() }
    }

    pub fn done(&self) -> &[String] {
        &self.done
    }

    /// `method path` with `body` through the first node that takes it (`avoid` last).
    async fn call(
        &self,
        nodes: &[SocketAddr],
        avoid: Option<usize>,
        method: &str,
        path: &str,
        body: Value,
    ) -> anyhow::Result<Value> {
        let target = MemberTarget {
            http: nodes[0],
            secret_file: Some(self.secret_file.clone()),
            secret: None,
            tls_ca: None,
        };
        // Nodes that answer `/healthz` at once first (a paused or killed node would hold the call
        // for its whole timeout, and the schedule with it), the victim last.
        let probes: Vec<_> = nodes
            .iter()
            .map(|&addr| {
                tokio::spawn(async move {
                    concord_server::client::http(addr, "GET", "/healthz", b"", Duration::from_millis(500))
                        .await
                        .is_ok()
                })
            })
            .collect();
        let mut alive = Vec::new();
        for p in probes {
            alive.push(p.await.unwrap_or(false));
        }
        let mut order: Vec<usize> = (0..nodes.len()).filter(|&i| Some(i) != avoid).collect();
        order.sort_by_key(|&i| !alive[i]);
        order.extend(avoid);
        let mut errors = Vec::new();
        for i in order {
            match tokio::time::timeout(CALL_TIMEOUT, target.call(nodes[i], method, path, &body)).await {
                Ok(Ok(answer)) => return Ok(answer),
                Ok(Err(e)) => errors.push(format!("node {}: {e:#}", i + 1)),
                Err(_) => errors.push(format!("node {}: no answer within {CALL_TIMEOUT:?}", i + 1)),
            }
        }
        Err(anyhow!("{method} {path} {body} refused everywhere: {}", errors.join("; ")))
    }

    /// Take `node` out of the Raft group.
    pub async fn remove(&mut self, nodes: &[SocketAddr], node: usize) -> anyhow::Result<String> {
        let id = node + 1;
        let answer =
            self.call(nodes, Some(node), "POST", "/v1/members", json!({"op": "remove", "id": id})).await?;
        self.removed.insert(node);
        let what = format!("member: node {id} removed from the Raft group (voters now {})", answer["voters"]);
        self.done.push(what.clone());
        Ok(what)
    }

    /// Bring a removed node back: a learner, then a voter once it has caught up (retried for up
    /// to 20 s: the leader refuses to promote a learner that is behind).
    pub async fn add_back(&mut self, nodes: &[SocketAddr], node: usize) -> anyhow::Result<()> {
        let id = node + 1;
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut learner_error = None;
        // A learner already (an earlier attempt got that far): `add_learner` refuses, promote.
        if let Err(e) =
            self.call(nodes, Some(node), "POST", "/v1/members", json!({"op": "add_learner", "id": id})).await
        {
            learner_error = Some(e);
        }
        loop {
            match self
                .call(nodes, Some(node), "POST", "/v1/members", json!({"op": "promote", "id": id}))
                .await
            {
                Ok(answer) => {
                    self.removed.remove(&node);
                    self.done.push(format!("member: node {id} added back (voters {})", answer["voters"]));
                    return Ok(());
                }
                Err(e) if Instant::now() >= deadline => {
                    return Err(match learner_error {
                        Some(l) => anyhow!("node {id} not added back: add_learner: {l:#}; promote: {e:#}"),
                        None => anyhow!("node {id} not promoted back: {e:#}"),
                    });
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
    }

    /// After the heal: add back every node still out of the group. The errors, if any.
    pub async fn restore(&mut self, nodes: &[SocketAddr]) -> Vec<String> {
        let mut errors = Vec::new();
        for node in self.removed.clone() {
            if let Err(e) = self.add_back(nodes, node).await {
                errors.push(format!("{e:#}"));
            }
        }
        errors
    }

    /// A slot move or a replica move, chosen by `pick` from the map as it is now.
    pub async fn shard_move(
        &mut self,
        nodes: &[SocketAddr],
        pick: u64,
        ops_issued: u64,
    ) -> anyhow::Result<String> {
        let map = self.call(nodes, None, "GET", "/v1/cluster", Value::Null).await?;
        let mut rng = ChaCha8Rng::seed_from_u64(pick);
        let what = if pick.is_multiple_of(2) {
            let key = live_key(ops_issued, self.keys, self.ops_per_key);
            let (slots, to) = slot_move(&map, &key, &mut rng)?;
            let answer = self
                .call(nodes, None, "POST", "/v1/cluster/moves", json!({"slots": slots, "to": to}))
                .await?;
            format!(
                "shard-move: slots {slots} (key {key}'s) from shard {} to shard {to} (move {})",
                answer["from"], answer["move"]
            )
        } else {
            let (shard, from, to) = replica_move(&map, &mut rng)?;
            self.call(
                nodes,
                None,
                "POST",
                "/v1/cluster/replicas",
                json!({"shard": shard, "from": from, "to": to}),
            )
            .await?;
            format!("shard-move: shard {shard}'s replica from node {from} to node {to}")
        };
        self.done.push(what.clone());
        Ok(what)
    }
}

/// The first key of the register workload's current window.
pub fn live_key(ops_issued: u64, keys: u64, ops_per_key: u64) -> String {
    let window = ops_issued / (keys * ops_per_key).max(1);
    format!("r{}", window * keys)
}

/// From the map (`GET /v1/cluster`): the slots to move – from `key`'s slot to at most 31 after it,
/// within the range that holds it – and another shard to move them to.
pub fn slot_move(map: &Value, key: &str, rng: &mut ChaCha8Rng) -> anyhow::Result<(String, u64)> {
    let slot = concord_shard::slot::key_slot(key.as_bytes()).get() as u64;
    let ranges = map["ranges"].as_array().ok_or_else(|| anyhow!("the map has no ranges: {map}"))?;
    let range = ranges
        .iter()
        .find(|r| r["start"].as_u64() <= Some(slot) && Some(slot) <= r["end"].as_u64())
        .ok_or_else(|| anyhow!("no range holds slot {slot}"))?;
    let (end, from) = (range["end"].as_u64().unwrap_or(slot), range["shard"].as_u64());
    let last = end.min(slot + 31);
    let others: Vec<u64> = shards(map).into_iter().map(|s| s.0).filter(|&s| Some(s) != from).collect();
    let to = *others.choose(rng).ok_or_else(|| anyhow!("only one shard: nowhere to move slots"))?;
    let slots = if last == slot { slot.to_string() } else { format!("{slot}-{last}") };
    Ok((slots, to))
}

/// From the map: a shard, one of its voters, and a node of the placement holding no replica of it.
pub fn replica_move(map: &Value, rng: &mut ChaCha8Rng) -> anyhow::Result<(u64, u64, u64)> {
    let nodes: Vec<u64> =
        map["nodes"].as_array().map(|a| a.iter().filter_map(Value::as_u64).collect()).unwrap_or_default();
    let mut candidates = Vec::new();
    for (shard, voters, others) in shards(map) {
        let free: Vec<u64> =
            nodes.iter().copied().filter(|n| !voters.contains(n) && !others.contains(n)).collect();
        for &from in &voters {
            for &to in &free {
                candidates.push((shard, from, to));
            }
        }
    }
    if candidates.is_empty() {
        bail!("every node holds a replica of every shard: no replica can move");
    }
    Ok(*candidates.choose(rng).expect("not empty"))
}

/// Each shard of the map: (id, voters, learners and leaving replicas).
fn shards(map: &Value) -> Vec<(u64, Vec<u64>, Vec<u64>)> {
    let ids = |v: &Value| -> Vec<u64> {
        v.as_array().map(|a| a.iter().filter_map(Value::as_u64).collect()).unwrap_or_default()
    };
    map["shards"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| {
                    let mut busy = ids(&s["learners"]);
                    busy.extend(ids(&s["leaving"]));
                    Some((s["shard"].as_u64()?, ids(&s["replicas"]), busy))
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> Value {
        json!({
            "ranges": [
                {"slots": "0-8191", "start": 0, "end": 8191, "shard": 1},
                {"slots": "8192-16383", "start": 8192, "end": 16383, "shard": 2},
            ],
            "shards": [
                {"shard": 1, "replicas": [1, 2, 3], "learners": [], "leaving": []},
                {"shard": 2, "replicas": [3, 4, 5], "learners": [1], "leaving": []},
            ],
            "nodes": [1, 2, 3, 4, 5],
        })
    }

    #[test]
    fn a_slot_move_takes_a_live_keys_slot_to_another_shard() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for key in ["r0", "r4", "r1200"] {
            let (slots, to) = slot_move(&map(), key, &mut rng).unwrap();
            let slot = concord_shard::slot::key_slot(key.as_bytes()).get() as u64;
            let first: u64 = slots.split('-').next().unwrap().parse().unwrap();
            assert_eq!(first, slot, "{slots}");
            assert_eq!(to, if slot <= 8191 { 2 } else { 1 }, "the other shard");
            if let Some(last) = slots.split('-').nth(1) {
                let last: u64 = last.parse().unwrap();
                assert!(last <= slot + 31 && (slot > 8191 || last <= 8191), "{slots} stays in its range");
            }
        }
        assert_eq!(live_key(0, 4, 150), "r0");
        assert_eq!(live_key(1300, 4, 150), "r8");
    }

    #[test]
    fn a_replica_moves_to_a_node_without_one_of_that_shard() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        for _ in 0..50 {
            let (shard, from, to) = replica_move(&map(), &mut rng).unwrap();
            match shard {
                1 => assert!([1, 2, 3].contains(&from) && [4, 5].contains(&to)),
                2 => assert!([3, 4, 5].contains(&from) && to == 2, "node 1 is already shard 2's learner"),
                _ => panic!("shard {shard}"),
            }
        }
        let full = json!({"shards": [{"shard": 1, "replicas": [1, 2], "learners": [], "leaving": []}], "nodes": [1, 2]});
        assert!(replica_move(&full, &mut rng).unwrap_err().to_string().contains("no replica can move"));
    }
}
