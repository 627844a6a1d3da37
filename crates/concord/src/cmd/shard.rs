//! `concord shard`: a sharded cluster's map, moving slot ranges and replicas by hand, the
//! rebalancer's switch and decommissioning a node. Here the flags are parsed and the answers
//! printed; the calls are the nodes' HTTP API (`GET /v1/cluster`, `POST /v1/cluster/moves`,
//! `POST /v1/cluster/replicas`, `POST /v1/cluster/rebalance`, `POST /v1/cluster/decommission`),
//! made the way `concord member` makes its own.

use super::member::MemberTarget;
use std::process::ExitCode;

pub fn run(args: &ShardArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    match &args.command {
        ShardCommand::List { target, json } => {
            let target = target.to_target();
            let map =
                runtime.block_on(target.call(target.http, "GET", "/v1/cluster", &serde_json::Value::Null))?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&map)?);
            } else {
                print!("{}", map_table(&map));
            }
        }
        ShardCommand::Move { target, slots, to } => {
            let target = target.to_target();
            let body = serde_json::json!({ "slots": slots, "to": to });
            let answer = runtime.block_on(target.call(target.http, "POST", "/v1/cluster/moves", &body))?;
            println!(
                "move {} started: slots {} from shard {} to shard {} (map epoch {}); `concord shard list` follows it",
                answer["move"], slots, answer["from"], answer["to"], answer["epoch"]
            );
        }
        ShardCommand::MoveReplica { target, shard, from, to, wait } => {
            let target = target.to_target();
            let body = serde_json::json!({ "shard": shard, "from": from, "to": to });
            let answer = runtime.block_on(target.call(target.http, "POST", "/v1/cluster/replicas", &body))?;
            println!(
                "replica move started: shard {shard} from node {from} to node {to} (map epoch {})",
                answer["epoch"]
            );
            if let Some(within) = wait.within() {
                let done = |map: &serde_json::Value| {
                    let Some(s) =
                        map["shards"].as_array().into_iter().flatten().find(|s| s["shard"] == *shard)
                    else {
                        return false;
                    };
                    let has = |key: &str, node: u32| {
                        s[key].as_array().into_iter().flatten().any(|n| n.as_u64() == Some(u64::from(node)))
                    };
                    has("replicas", *to) && !has("replicas", *from) && !has("leaving", *from)
                };
                let map = runtime.block_on(wait_for(&target, within, "the replica move", done))?;
                println!("shard {shard}'s replica moved from node {from} to node {to}");
                print!("{}", map_table(&map));
            }
        }
        ShardCommand::Rebalance { target, off, wait } => {
            let target = target.to_target();
            let body = serde_json::json!({ "on": !off });
            let answer =
                runtime.block_on(target.call(target.http, "POST", "/v1/cluster/rebalance", &body))?;
            if *off {
                println!(
                    "rebalancer off (map epoch {}): replicas, slots and leaders stay where they are",
                    answer["epoch"]
                );
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "rebalancer on (map epoch {}): the metadata leader evens out replicas, slots and leaders one step at a time",
                answer["epoch"]
            );
            if let Some(within) = wait.within() {
                let map = runtime.block_on(wait_for(&target, within, "balance", |map| {
                    map["rebalance"]["balanced"] == true
                }))?;
                println!(
                    "balanced at map epoch {} (the rebalancer stays on; `--off` stops it)",
                    map["epoch"]
                );
                print!("{}", map_table(&map));
            }
        }
        ShardCommand::Decommission { target, node, wait } => {
            let target = target.to_target();
            runtime.block_on(decommission(&target, *node, wait.within()))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `concord shard decommission`: call `POST /v1/cluster/decommission` until it answers `removed`
/// (each call does the next step and says where the drain stands), printing progress as it
/// changes. A refusal (4xx) ends it at once; a passing failure (no leader, a node restarting) is
/// tried again until `within` runs out.
async fn decommission(
    target: &concord_server::membership::MemberTarget,
    node: u32,
    within: Option<std::time::Duration>,
) -> anyhow::Result<()> {
    let body = serde_json::json!({ "node": node });
    let deadline = std::time::Instant::now() + within.unwrap_or_default();
    let mut said = String::new();
    loop {
        match target.call(target.http, "POST", "/v1/cluster/decommission", &body).await {
            Ok(answer) => {
                let line = format!(
                    "{}: {} (map epoch {}, replicas left on shards {}, metadata voters {})",
                    answer["state"].as_str().unwrap_or("?"),
                    answer["note"].as_str().unwrap_or_default(),
                    answer["epoch"],
                    answer["shards"],
                    answer["metadata_voters"],
                );
                if line != said {
                    println!("{line}");
                    said = line;
                }
                if answer["state"] == "removed" {
                    println!("node {node} is decommissioned: it may be stopped");
                    return Ok(());
                }
                if within.is_none() {
                    println!("the drain goes on; run the same command again to follow it");
                    return Ok(());
                }
            }
            Err(e) if http_status(&e).is_some_and(|s| (400..500).contains(&s)) => return Err(e),
            Err(e) => {
                let line = format!("  not now, trying again: {e}");
                if line != said {
                    println!("{line}");
                    said = line;
                }
            }
        }
        if std::time::Instant::now() >= deadline {
            anyhow::bail!(
                "decommissioning node {node}: not done in {within:?} (nothing is undone; run the command again \
                 to go on, `concord shard list` shows where it stands)"
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

/// The HTTP status of a failed call (`METHOD PATH on ADDR: STATUS error`), if it got an answer.
fn http_status(e: &anyhow::Error) -> Option<u16> {
    let text = e.to_string();
    let (_, rest) = text.split_once(" on ")?;
    let (_, rest) = rest.split_once(": ")?;
    rest.split_whitespace().next()?.parse().ok()
}

/// Poll `GET /v1/cluster` until `done` holds, printing the rebalancer's next step as it changes;
/// the map that satisfied it, or an error after `within`.
async fn wait_for(
    target: &concord_server::membership::MemberTarget,
    within: std::time::Duration,
    what: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> anyhow::Result<serde_json::Value> {
    let deadline = std::time::Instant::now() + within;
    let mut said = serde_json::Value::Null;
    loop {
        // A node busy with the change may miss one poll: only the deadline ends the wait.
        let map = target.call(target.http, "GET", "/v1/cluster", &serde_json::Value::Null).await;
        if let Ok(map) = map {
            if done(&map) {
                return Ok(map);
            }
            let next = &map["rebalance"]["next"];
            if !next.is_null() && *next != said {
                println!("  epoch {}: next step: {}", map["epoch"], next.as_str().unwrap_or_default());
                said = next.clone();
            }
        }
        if std::time::Instant::now() >= deadline {
            anyhow::bail!(
                "waiting for {what}: not reached in {within:?} (nothing is undone; `concord shard list` shows where it stands)"
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

/// How long a command waits for what it started to finish.
#[derive(clap::Args, Debug)]
pub struct Wait {
    /// Return once the change is committed in the map, without waiting for it to be carried out.
    #[arg(long)]
    pub no_wait: bool,
    /// Give up waiting after this many seconds (the change goes on regardless).
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
}

impl Wait {
    fn within(&self) -> Option<std::time::Duration> {
        (!self.no_wait).then(|| std::time::Duration::from_secs(self.timeout))
    }
}

/// `concord shard`: the shard map of a sharded cluster.
#[derive(clap::Args, Debug)]
pub struct ShardArgs {
    #[command(subcommand)]
    pub command: ShardCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum ShardCommand {
    /// Show the shard map: slot ranges, each shard's replicas and leader, moves in progress (a
    /// table; --json for the API's answer).
    List {
        #[command(flatten)]
        target: MemberTarget,
        /// Print `GET /v1/cluster`'s JSON as it is.
        #[arg(long)]
        json: bool,
    },
    /// Move a slot range (`0-99`, or one slot) to another shard, while clients keep writing.
    Move {
        #[command(flatten)]
        target: MemberTarget,
        /// The slots: `FIRST-LAST` (inclusive) or one slot, 0 to 16383; all owned by one shard.
        slots: String,
        /// The shard that receives them.
        #[arg(long)]
        to: u32,
    },
    /// Move one of a shard's replicas to another node: the new node joins the shard's group as a
    /// learner, catches up, is promoted – and the old one leaves in that same map change – then
    /// the old node drops the group. Waits until it is done (unless --no-wait).
    MoveReplica {
        #[command(flatten)]
        target: MemberTarget,
        /// The shard whose replica moves.
        shard: u32,
        /// The node that gives up its replica (a voter of the shard).
        #[arg(long)]
        from: u32,
        /// The node that receives it (in the placement, not yet a replica of the shard).
        #[arg(long)]
        to: u32,
        #[command(flatten)]
        wait: Wait,
    },
    /// Turn the rebalancer on (or --off): the metadata leader evens out replicas over nodes,
    /// slots over shards and leaders over nodes, one committed step at a time, until balanced and
    /// whenever nodes join or leave. Waits until the map is balanced (unless --no-wait).
    Rebalance {
        #[command(flatten)]
        target: MemberTarget,
        /// Turn the rebalancer off.
        #[arg(long)]
        off: bool,
        #[command(flatten)]
        wait: Wait,
    },
    /// Decommission a node: it leaves the placement, its replicas (and the leadership of their
    /// groups) move to the other nodes while clients keep writing – with the rebalancer's steps if
    /// it is on, else with drain steps only – and, once it holds none, it leaves the metadata
    /// group (handing over the group's leadership first). Then it may be stopped. Ask any other
    /// node. Waits until it is done, showing progress (unless --no-wait); running it again
    /// reports where it stands.
    Decommission {
        #[command(flatten)]
        target: MemberTarget,
        /// The node to take out.
        node: u32,
        #[command(flatten)]
        wait: Wait,
    },
}

/// `GET /v1/cluster` of a sharded node as a person reads it.
pub fn map_table(map: &serde_json::Value) -> String {
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::Null => "-".to_string(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if map["mode"] != "sharded" {
        return format!(
            "node {} runs the {} mode: it has no shard map\n",
            text(&map["node"]),
            text(&map["mode"])
        );
    }
    let mut out = format!(
        "node {} answered: shard map epoch {}, map leader {}\n",
        text(&map["node"]),
        text(&map["epoch"]),
        text(&map["map_leader"])
    );
    let mut rows = vec![["SHARD", "SLOTS", "RANGES", "REPLICAS", "LEADER"].map(String::from).to_vec()];
    for shard in map["shards"].as_array().into_iter().flatten() {
        let id = &shard["shard"];
        let ranges: Vec<String> = map["ranges"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| &r["shard"] == id)
            .map(|r| text(&r["slots"]))
            .collect();
        let list = |key: &str, mark: &str| {
            shard[key]
                .as_array()
                .into_iter()
                .flatten()
                .map(|n| format!("{}{mark}", text(n)))
                .collect::<Vec<_>>()
        };
        // Voters, then learners (`+`, catching up) and leaving replicas (`-`).
        let replicas: Vec<String> =
            [list("replicas", ""), list("learners", "+"), list("leaving", "-")].concat();
        rows.push(vec![
            text(id),
            text(&shard["slots"]),
            if ranges.is_empty() { "-".into() } else { ranges.join(",") },
            replicas.join(","),
            text(&shard["leader"]),
        ]);
    }
    out.push_str(&super::aligned(&rows));
    let list = |v: &serde_json::Value| {
        let ids: Vec<String> = v.as_array().into_iter().flatten().map(text).collect();
        if ids.is_empty() {
            "-".to_string()
        } else {
            ids.join(",")
        }
    };
    if map["nodes"].is_array() {
        out.push_str(&format!("nodes {}", list(&map["nodes"])));
        if map["leaving_nodes"].as_array().is_some_and(|l| !l.is_empty()) {
            out.push_str(&format!(
                ", leaving (decommissioned, replicas moving off) {}",
                list(&map["leaving_nodes"])
            ));
        }
        if map["metadata"]["voters"].is_array() {
            out.push_str(&format!("; metadata voters {}", list(&map["metadata"]["voters"])));
        }
        out.push('\n');
    }
    let rebalance = &map["rebalance"];
    if rebalance.is_object() {
        let state = if rebalance["on"] == true { "on" } else { "off" };
        let plan = match rebalance["next"].as_str() {
            _ if rebalance["balanced"] == true => "balanced".to_string(),
            Some(next) => format!("next step: {next}"),
            None => "a move is under way".to_string(),
        };
        out.push_str(&format!("rebalancer {state}: {plan}\n"));
    }
    for m in map["moves"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "move {}: slots {} from shard {} to shard {} ({})\n",
            text(&m["move"]),
            text(&m["slots"]),
            text(&m["from"]),
            text(&m["to"]),
            text(&m["phase"])
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::map_table;

    #[test]
    fn a_failed_call_names_its_http_status() {
        let e = anyhow::anyhow!("POST /v1/cluster/decommission on 127.0.0.1:8080: 400 unknown node 9");
        assert_eq!(super::http_status(&e), Some(400));
        assert_eq!(super::http_status(&anyhow::anyhow!("connect 127.0.0.1:8080: refused")), None);
    }

    #[test]
    fn the_shard_map_is_a_table() {
        let map = serde_json::json!({
            "mode": "sharded", "node": 1, "epoch": 4, "map_leader": 2,
            "ranges": [{"slots": "0-99", "shard": 2}, {"slots": "100-8191", "shard": 1}, {"slots": "8192-16383", "shard": 2}],
            "shards": [{"shard": 1, "slots": 8092, "replicas": [1, 2], "leader": 1},
                       {"shard": 2, "slots": 8292, "replicas": [2, 3], "leader": null}],
            "moves": [{"move": 3, "slots": "100-199", "from": 1, "to": 2, "phase": "fenced"}],
        });
        let table = map_table(&map);
        assert!(table.contains("shard map epoch 4, map leader 2"), "{table}");
        assert!(table.contains("2      8292   0-99,8192-16383  2,3       -"), "{table}");
        assert!(table.contains("move 3: slots 100-199 from shard 1 to shard 2 (fenced)"), "{table}");
        assert!(!table.contains("rebalancer"), "a map without the rebalancer's state: {table}");
    }

    /// A replica move shows its learner (`+`) and leaving replica (`-`); the rebalancer its state.
    #[test]
    fn replica_moves_and_the_rebalancer_show_in_the_table() {
        let map = serde_json::json!({
            "mode": "sharded", "node": 1, "epoch": 9, "map_leader": 1,
            "ranges": [{"slots": "0-16383", "shard": 1}],
            "shards": [{"shard": 1, "slots": 16384, "replicas": [2, 3], "learners": [4], "leaving": [1], "leader": 2}],
            "moves": [],
            "rebalance": {"on": true, "balanced": false, "next": "remove shard 1's replica on node 3"},
        });
        let table = map_table(&map);
        assert!(table.contains("2,3,4+,1-"), "{table}");
        let mut leaving = map.clone();
        leaving["nodes"] = serde_json::json!([2, 3, 4]);
        leaving["leaving_nodes"] = serde_json::json!([1]);
        leaving["metadata"] = serde_json::json!({ "voters": [1, 2, 3, 4], "learners": [] });
        let table = map_table(&leaving);
        assert!(
            table.contains(
                "nodes 2,3,4, leaving (decommissioned, replicas moving off) 1; metadata voters 1,2,3,4"
            ),
            "{table}"
        );
        assert!(table.contains("rebalancer on: next step: remove shard 1's replica on node 3"), "{table}");
        let balanced = serde_json::json!({
            "mode": "sharded", "node": 1, "epoch": 9, "map_leader": 1, "ranges": [], "shards": [], "moves": [],
            "rebalance": {"on": false, "balanced": true, "next": null},
        });
        assert!(map_table(&balanced).contains("rebalancer off: balanced"), "{}", map_table(&balanced));
    }
}
