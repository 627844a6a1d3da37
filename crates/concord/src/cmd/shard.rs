//! `concord shard`: a sharded cluster's map, and moving slot ranges by hand. Here the flags are
//! parsed and the answers printed; the calls are the nodes' HTTP API (`GET /v1/cluster`,
//! `POST /v1/cluster/moves`), made the way `concord member` makes its own.

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
    }
    Ok(ExitCode::SUCCESS)
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
        let replicas: Vec<String> = shard["replicas"].as_array().into_iter().flatten().map(text).collect();
        rows.push(vec![
            text(id),
            text(&shard["slots"]),
            if ranges.is_empty() { "-".into() } else { ranges.join(",") },
            replicas.join(","),
            text(&shard["leader"]),
        ]);
    }
    out.push_str(&super::aligned(&rows));
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
    }
}
