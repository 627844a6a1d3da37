//! Redis Cluster's protocol on a sharded Concord: the shape a backend reports ([`Topology`]),
//! and everything the front door answers from it – `CLUSTER SLOTS`, `CLUSTER SHARDS`,
//! `CLUSTER NODES`, `CLUSTER INFO`, `CLUSTER MYID`, `CLUSTER KEYSLOT`, `CLUSTER COUNTKEYSINSLOT`,
//! `CLUSTER GETKEYSINSLOT`, `CLUSTER REPLICAS` (`SLAVES`), `CLUSTER HELP` – and `-CROSSSLOT`, byte for byte as redis-server 7
//! answers them, so that cluster-aware clients (`redis-cli -c`, redis-py's `RedisCluster`, …)
//! route themselves.
//!
//! A backend that is not sharded reports no topology ([`crate::Backend::topology`] is `None`),
//! and `CLUSTER`, `ASKING`, `READONLY` and `READWRITE` are then answered as a redis-server
//! without `cluster-enabled` answers them: `-ERR This instance has cluster support disabled`
//! (after the same arity checks, and `-ERR unknown subcommand` for names Redis does not know).
//!
//! # Words
//! Concord's words map onto Redis Cluster's: a *shard* (one Raft group serving a set of slot
//! ranges) is a Redis Cluster shard; the shard's Raft *leader* is its primary ("master"), its
//! followers are its replicas. Node and shard ids are 40 lowercase hex characters, as Redis's.
//!
//! # One node, many shards: how `CLUSTER NODES` shows it
//! In Redis Cluster a node is either a primary or a replica. A Concord node hosts replicas of many
//! shards and may lead some and follow others, so `CLUSTER NODES` (one line, one role per node)
//! shows a projection: a node that leads at least one shard is a `master` holding the slots of
//! every shard it leads; a node that leads none is a `slave` of the leader of the first shard
//! (in topology order) it follows; a node in no shard is a `master` without slots.
//! `CLUSTER SLOTS` and `CLUSTER SHARDS` follow the same projection: each shard's primary is its
//! leader, and its replicas are listed only if they lead no shard themselves. Clients give each
//! node *one* role, whatever the number of shards it is listed in – redis-py's `RedisCluster`
//! takes the role of a node's last mention in `CLUSTER SLOTS` – so a node that leads one shard and
//! follows another, listed as both, became a "replica" there, and `keys(target_nodes=PRIMARIES)`
//! missed the keys of every shard it leads. The price: when every node leads some shard (the
//! rebalancer spreads leaders, so that is the usual case), no replica is listed, and `READONLY`
//! clients read from the primaries. Every replica of every shard is in `GET /v1/cluster` and
//! `concord shard list`.
//!
//! # What Redis reports that Concord does not know
//! Fields that describe Redis's gossip bus are reported as a quiet Redis would: ping-sent and
//! pong-received `0` in `CLUSTER NODES`, `replication-offset` `0` in `CLUSTER SHARDS`,
//! `cluster_stats_messages_*` `0` in `CLUSTER INFO`. A replica's config epoch is its shard's. A
//! node this one has no connection to is shown `disconnected` (NODES), `failed` (SHARDS) and is
//! left out of `CLUSTER SLOTS` (as Redis leaves out failed replicas); a shard with no known
//! leader is left out of `CLUSTER SLOTS` (its slots have no one to send requests to) and counts
//! in `cluster_slots_fail`.
//!
//! # Moves: `-TRYAGAIN`, not `-ASK`
//! Redis migrates a slot key by key and sends clients for keys already gone to the target with
//! `-ASK` (the client then sends `ASKING` and the command there). Concord moves a slot range with a
//! fence, a copy and a flip committed in Raft logs (the move protocol in `concord_shard`'s crate
//! docs): between the fence and the flip *no* node accepts writes to the range, so there is no
//! node to send an `-ASK` to – the range answers `-TRYAGAIN` (every cluster client retries it)
//! until the flip, then `-MOVED` to its new owner. `ASKING` is accepted (`+OK`, as Redis) so
//! clients that send it are not confused, and changes nothing. `CLUSTER NODES` shows no
//! `[slot->-node]` migration markers for the same reason.
//!
//! # Errors
//! | request                                  | reply                                                      |
//! |------------------------------------------|------------------------------------------------------------|
//! | any of these, no topology                | `-ERR This instance has cluster support disabled`          |
//! | `CLUSTER FOO`                            | `-ERR unknown subcommand 'FOO'. Try CLUSTER HELP.`          |
//! | `CLUSTER KEYSLOT` (wrong arity)          | `-ERR wrong number of arguments for 'cluster\|keyslot' command` |
//! | `CLUSTER COUNTKEYSINSLOT x`              | `-ERR value is not an integer or out of range`             |
//! | `CLUSTER COUNTKEYSINSLOT 16384`          | `-ERR Invalid slot`                                        |
//! | `CLUSTER GETKEYSINSLOT 16384 1` / `0 -1` | `-ERR Invalid slot or number of keys`                      |
//! | `CLUSTER REPLICAS x` (no such node / a replica) | `-ERR Unknown node x` / `-ERR The specified node is not a master` |
//! | `CLUSTER ADDSLOTS …` (Redis's, not Concord's) | `-ERR CLUSTER ADDSLOTS is not supported by Concord: …` |
//! | `MGET a b` (different slots)             | `-CROSSSLOT Keys in request don't hash to the same slot`   |
//!
//! Inside `MULTI`, a command whose own keys span slots is refused when queued (and `EXEC` then
//! answers `EXECABORT`); commands that each stay in one slot but together span several are
//! queued, and `EXEC` answers `-CROSSSLOT` and discards the transaction – both as redis-server.

use crate::command::{ClusterRequest, ReplyError};
use crate::exec::ExecContext;
use crate::frame::Frame;
use concord_shard::slot::{key_slot, SLOTS};

/// The cluster as one node sees it (its latest applied shard map, and the leaders it knows).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Topology {
    /// This node's id (40 hex characters).
    pub myself: String,
    /// The shard map's epoch (Redis: `cluster_current_epoch`).
    pub current_epoch: u64,
    /// Whether every slot has an owner with a known leader (Redis: `cluster_state:ok`).
    pub state_ok: bool,
    /// Every node of the cluster, in a stable order.
    pub nodes: Vec<TopologyNode>,
    /// Every shard, in a stable order.
    pub shards: Vec<TopologyShard>,
}

/// One node of the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct TopologyNode {
    /// 40 hex characters.
    pub id: String,
    /// The address clients reach its RESP door at.
    pub host: String,
    pub port: u16,
    /// Its peer (cluster bus) port.
    pub cluster_port: u16,
    /// Whether this node currently has a connection to it (itself: always).
    pub connected: bool,
}

/// One shard: the slot ranges it serves and the nodes replicating it.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct TopologyShard {
    /// 40 hex characters.
    pub id: String,
    /// Inclusive slot ranges `(first, last)`, ascending.
    pub slots: Vec<(u16, u16)>,
    /// The node id of the shard's leader, if one is known.
    pub primary: Option<String>,
    /// The node ids of its other replicas (followers), in a stable order.
    pub replicas: Vec<String>,
    /// The epoch at which the shard's slots last changed (Redis: the primary's config epoch).
    pub config_epoch: u64,
    /// Slot ranges being moved out of this shard right now (answered `-TRYAGAIN` until the move ends).
    pub moving_out: Vec<(u16, u16)>,
}

/// Redis's reply to cluster commands on a node without cluster support.
pub const CLUSTER_DISABLED: &str = "ERR This instance has cluster support disabled";

/// Redis's reply to a request whose keys are in different slots.
pub const CROSSSLOT: &str = "CROSSSLOT Keys in request don't hash to the same slot";

/// Whether `keys` span more than one slot (what `-CROSSSLOT` refuses on a cluster).
pub fn cross_slot<'a>(keys: impl IntoIterator<Item = &'a [u8]>) -> bool {
    let mut keys = keys.into_iter();
    let Some(first) = keys.next() else { return false };
    let slot = key_slot(first);
    keys.any(|key| key_slot(key) != slot)
}

/// The answer to a `CLUSTER` subcommand that needs no data (everything but COUNTKEYSINSLOT and
/// GETKEYSINSLOT, see [`slot_keys`]), from `topology` (`None`: cluster support disabled).
pub fn answer(request: &ClusterRequest, topology: Option<&Topology>) -> Frame {
    let Some(topology) = topology else { return Frame::error(CLUSTER_DISABLED) };
    match request {
        ClusterRequest::Slots => slots(topology),
        ClusterRequest::Shards => shards(topology),
        ClusterRequest::Nodes => Frame::Verbatim { format: *b"txt", text: nodes(topology).into() },
        ClusterRequest::Info => Frame::Verbatim { format: *b"txt", text: info(topology).into() },
        ClusterRequest::MyId => Frame::bulk(topology.myself.clone()),
        ClusterRequest::KeySlot(key) => Frame::Integer(key_slot(key).get() as i64),
        ClusterRequest::Help => help(),
        ClusterRequest::Replicas(id) => replicas(topology, id),
        ClusterRequest::Unsupported(name) => Frame::error(format!(
            "ERR CLUSTER {} is not supported by Concord: the shard map is changed through its metadata \
             group (concord shard move, concord shard rebalance), never by one node",
            name.to_uppercase()
        )),
        ClusterRequest::CountKeysInSlot(_) | ClusterRequest::GetKeysInSlot { .. } => {
            Frame::error("ERR internal error: CLUSTER COUNTKEYSINSLOT and GETKEYSINSLOT read data")
        }
    }
}

/// A slot argument: an integer (Redis's "not an integer" error otherwise), then in range.
fn slot_argument(arg: &[u8], out_of_range: &str) -> Result<u16, Frame> {
    let slot = crate::command::integer(arg).map_err(ReplyError::into_frame)?;
    u16::try_from(slot).ok().filter(|&s| s < SLOTS).ok_or_else(|| Frame::error(out_of_range))
}

/// `CLUSTER COUNTKEYSINSLOT slot` and `CLUSTER GETKEYSINSLOT slot count`: checked as Redis checks
/// them, then answered by the backend ([`crate::Backend::count_keys_in_slot`],
/// [`crate::Backend::keys_in_slot`]) at the connection's consistency.
pub async fn slot_keys(request: ClusterRequest, ctx: ExecContext) -> Frame {
    if !ctx.backend.is_cluster() {
        return Frame::error(CLUSTER_DISABLED);
    }
    let answer: Result<Frame, Frame> = async {
        match request {
            ClusterRequest::CountKeysInSlot(slot) => {
                let slot = slot_argument(&slot, "ERR Invalid slot")?;
                let count = ctx.backend.count_keys_in_slot(slot, ctx.consistency).await;
                Ok(Frame::Integer(count.map_err(|e| e.to_reply())? as i64))
            }
            ClusterRequest::GetKeysInSlot { slot, count } => {
                let invalid = "ERR Invalid slot or number of keys";
                let slot = crate::command::integer(&slot).map_err(ReplyError::into_frame)?;
                let count = crate::command::integer(&count).map_err(ReplyError::into_frame)?;
                let slot =
                    u16::try_from(slot).ok().filter(|&s| s < SLOTS).ok_or_else(|| Frame::error(invalid))?;
                let count = usize::try_from(count).map_err(|_| Frame::error(invalid))?;
                let keys = ctx.backend.keys_in_slot(slot, count, ctx.consistency).await;
                let keys = keys.map_err(|e| e.to_reply())?;
                Ok(Frame::Array(keys.into_iter().map(Frame::bulk).collect()))
            }
            other => Ok(answer(&other, ctx.backend.topology().as_ref())),
        }
    }
    .await;
    answer.unwrap_or_else(|e| e)
}

/// The shards that `node` leads, and the ones it follows, in topology order.
fn roles<'a>(topology: &'a Topology, node: &str) -> (Vec<&'a TopologyShard>, Vec<&'a TopologyShard>) {
    let leads = topology.shards.iter().filter(|s| s.primary.as_deref() == Some(node)).collect();
    let follows = topology.shards.iter().filter(|s| s.replicas.iter().any(|r| r == node)).collect();
    (leads, follows)
}

fn node<'a>(topology: &'a Topology, id: &str) -> Option<&'a TopologyNode> {
    topology.nodes.iter().find(|n| n.id == id)
}

/// The replicas of `shard` that clients are shown: those that lead no shard (see "One node, many
/// shards" in the module docs).
fn shown_replicas<'a>(topology: &'a Topology, shard: &'a TopologyShard) -> impl Iterator<Item = &'a String> {
    shard.replicas.iter().filter(|id| !topology.shards.iter().any(|s| s.primary.as_ref() == Some(*id)))
}

/// `CLUSTER SLOTS`: one entry per slot range, ascending: `[start, end, primary, replicas…]`, each
/// node as `[ip, port, id, {}]` (the empty map: no hostname metadata); replicas that lead a shard
/// of their own are left out (see the module docs).
pub fn slots(topology: &Topology) -> Frame {
    let describe = |n: &TopologyNode| {
        Frame::Array(vec![
            Frame::bulk(n.host.clone()),
            Frame::Integer(n.port as i64),
            Frame::bulk(n.id.clone()),
            Frame::Map(vec![]),
        ])
    };
    let mut entries: Vec<(u16, Frame)> = Vec::new();
    for shard in &topology.shards {
        let Some(primary) = shard.primary.as_deref().and_then(|id| node(topology, id)) else { continue };
        for &(first, last) in &shard.slots {
            let mut entry =
                vec![Frame::Integer(first as i64), Frame::Integer(last as i64), describe(primary)];
            entry.extend(
                shown_replicas(topology, shard)
                    .filter_map(|id| node(topology, id))
                    .filter(|n| n.connected)
                    .map(describe),
            );
            entries.push((first, Frame::Array(entry)));
        }
    }
    entries.sort_by_key(|(first, _)| *first);
    Frame::Array(entries.into_iter().map(|(_, entry)| entry).collect())
}

/// `CLUSTER SHARDS`: per shard, `{slots: [start, end, …], nodes: [{id, port, ip, endpoint, role,
/// replication-offset, health}, …]}`, its primary first; replicas that lead a shard of their own
/// are left out (see the module docs).
pub fn shards(topology: &Topology) -> Frame {
    let member = |id: &str, role: &str| {
        let n = node(topology, id)
            .cloned()
            .unwrap_or_else(|| TopologyNode { id: id.to_string(), ..Default::default() });
        Frame::map_of([
            ("id", Frame::bulk(n.id.clone())),
            ("port", Frame::Integer(n.port as i64)),
            ("ip", Frame::bulk(n.host.clone())),
            ("endpoint", Frame::bulk(n.host.clone())),
            ("role", Frame::bulk(role.to_string())),
            ("replication-offset", Frame::Integer(0)),
            ("health", Frame::bulk(if n.connected { "online" } else { "failed" })),
        ])
    };
    Frame::Array(
        topology
            .shards
            .iter()
            .map(|shard| {
                let slots = shard
                    .slots
                    .iter()
                    .flat_map(|&(first, last)| [Frame::Integer(first as i64), Frame::Integer(last as i64)])
                    .collect();
                let mut nodes: Vec<Frame> = shard.primary.iter().map(|id| member(id, "master")).collect();
                nodes.extend(shown_replicas(topology, shard).map(|id| member(id, "replica")));
                Frame::map_of([("slots", Frame::Array(slots)), ("nodes", Frame::Array(nodes))])
            })
            .collect(),
    )
}

/// `first-last`, or `first` for a range of one slot (Redis's notation in `CLUSTER NODES`).
fn range_text(first: u16, last: u16) -> String {
    if first == last {
        first.to_string()
    } else {
        format!("{first}-{last}")
    }
}

/// `CLUSTER NODES`: one line per node (see "One node, many shards" in the module docs):
/// `<id> <ip>:<port>@<cport> <flags> <primary|-> <ping-sent> <pong-recv> <config-epoch> <link> <slots…>`.
pub fn nodes(topology: &Topology) -> String {
    topology.nodes.iter().map(|n| node_line(topology, n).0 + "\n").collect()
}

/// `CLUSTER REPLICAS node-id`: the `CLUSTER NODES` lines (without their newline) of the nodes
/// shown as replicas of `id`, or Redis's errors for a node it does not know or that is not a
/// primary.
pub fn replicas(topology: &Topology, id: &[u8]) -> Frame {
    let Some(primary) = topology.nodes.iter().find(|n| n.id.as_bytes() == id) else {
        return Frame::error(format!("ERR Unknown node {}", String::from_utf8_lossy(id)));
    };
    if node_line(topology, primary).1.is_some() {
        return Frame::error("ERR The specified node is not a master");
    }
    Frame::Array(
        topology
            .nodes
            .iter()
            .map(|n| node_line(topology, n))
            .filter(|(_, of)| of.as_deref() == Some(primary.id.as_str()))
            .map(|(line, _)| Frame::bulk(line))
            .collect(),
    )
}

/// One node's `CLUSTER NODES` line (no newline), and the primary it is shown as a replica of.
fn node_line(topology: &Topology, n: &TopologyNode) -> (String, Option<String>) {
    let (leads, follows) = roles(topology, &n.id);
    let (role, primary, epoch, slots) = match (leads.is_empty(), follows.first()) {
        // A primary with no known leader still gets "-": there is no one to point at.
        (true, Some(shard)) => {
            ("slave", shard.primary.clone().unwrap_or_else(|| "-".into()), shard.config_epoch, vec![])
        }
        _ => {
            let mut ranges: Vec<(u16, u16)> = leads.iter().flat_map(|s| s.slots.iter().copied()).collect();
            ranges.sort();
            let epoch = leads.iter().map(|s| s.config_epoch).max().unwrap_or(0);
            ("master", "-".to_string(), epoch, ranges)
        }
    };
    let myself = n.id == topology.myself;
    let flags = if myself { format!("myself,{role}") } else { role.to_string() };
    let link = if myself || n.connected { "connected" } else { "disconnected" };
    let mut line =
        format!("{} {}:{}@{} {flags} {primary} 0 0 {epoch} {link}", n.id, n.host, n.port, n.cluster_port);
    for (first, last) in slots {
        line.push(' ');
        line.push_str(&range_text(first, last));
    }
    (line, (role == "slave").then_some(primary))
}

/// `CLUSTER INFO`: Redis 7's fields, `\r\n` after each.
pub fn info(topology: &Topology) -> String {
    let span = |ranges: &[(u16, u16)]| {
        ranges.iter().map(|&(a, b)| (b as u64).saturating_sub(a as u64) + 1).sum::<u64>()
    };
    let (mut assigned, mut ok, mut pfail, mut fail) = (0, 0, 0, 0);
    for shard in &topology.shards {
        let n = span(&shard.slots);
        assigned += n;
        match shard.primary.as_deref().and_then(|id| node(topology, id)) {
            Some(p) if p.connected || p.id == topology.myself => ok += n,
            Some(_) => pfail += n,
            None => fail += n,
        }
    }
    let size = topology.shards.iter().filter(|s| s.primary.is_some() && !s.slots.is_empty()).count();
    let (leads, follows) = roles(topology, &topology.myself);
    let my_epoch = match (leads.iter().map(|s| s.config_epoch).max(), follows.first()) {
        (Some(epoch), _) => epoch,
        (None, Some(shard)) => shard.config_epoch,
        (None, None) => 0,
    };
    let fields: [(&str, String); 12] = [
        ("cluster_state", if topology.state_ok { "ok" } else { "fail" }.to_string()),
        ("cluster_slots_assigned", assigned.to_string()),
        ("cluster_slots_ok", ok.to_string()),
        ("cluster_slots_pfail", pfail.to_string()),
        ("cluster_slots_fail", fail.to_string()),
        ("cluster_known_nodes", topology.nodes.len().to_string()),
        ("cluster_size", size.to_string()),
        ("cluster_current_epoch", topology.current_epoch.to_string()),
        ("cluster_my_epoch", my_epoch.to_string()),
        ("cluster_stats_messages_sent", "0".to_string()),
        ("cluster_stats_messages_received", "0".to_string()),
        ("total_cluster_links_buffer_limit_exceeded", "0".to_string()),
    ];
    fields.iter().map(|(k, v)| format!("{k}:{v}\r\n")).collect()
}

/// `CLUSTER HELP`: Redis's text for the subcommands Concord answers, in Redis's order.
pub fn help() -> Frame {
    const LINES: &[&str] = &[
        "CLUSTER <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "COUNTKEYSINSLOT <slot>",
        "    Return the number of keys in <slot>.",
        "GETKEYSINSLOT <slot> <count>",
        "    Return key names stored by current node in a slot.",
        "INFO",
        "    Return information about the cluster.",
        "KEYSLOT <key>",
        "    Return the hash slot for <key>.",
        "MYID",
        "    Return the node id.",
        "NODES",
        "    Return cluster configuration seen by node. Output format:",
        "    <id> <ip:port> <flags> <master> <pings> <pongs> <epoch> <link> <slot> ...",
        "REPLICAS <node-id>",
        "    Return <node-id> replicas.",
        "SLOTS",
        "    Return information about slots range mappings. Each range is made of:",
        "    start, end, master and replicas IP addresses, ports and ids",
        "SHARDS",
        "    Return information about slot range mappings and the nodes associated with them.",
        "HELP",
        "    Prints this help.",
    ];
    Frame::Array(LINES.iter().map(|line| Frame::simple(*line)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::encode;
    use crate::frame::Protocol;

    fn id(n: usize) -> String {
        format!("{n:040x}")
    }

    fn node(n: usize, connected: bool) -> TopologyNode {
        TopologyNode { id: id(n), host: format!("10.0.0.{n}"), port: 6379, cluster_port: 16379, connected }
    }

    fn shard(
        n: usize,
        slots: Vec<(u16, u16)>,
        primary: usize,
        replicas: [usize; 2],
        epoch: u64,
    ) -> TopologyShard {
        TopologyShard {
            id: format!("{:040x}", 0x5000 + n),
            slots,
            primary: Some(id(primary)),
            replicas: replicas.iter().map(|&r| id(r)).collect(),
            config_epoch: epoch,
            moving_out: vec![],
        }
    }

    /// Redis Cluster's usual layout: 3 shards of 3 replicas on 9 nodes, one primary each; node 9
    /// is unreachable.
    fn nine_nodes() -> Topology {
        Topology {
            myself: id(1),
            current_epoch: 3,
            state_ok: true,
            nodes: (1..=9).map(|n| node(n, n != 9)).collect(),
            shards: vec![
                shard(1, vec![(0, 5460)], 1, [4, 7], 1),
                shard(2, vec![(5461, 10922)], 2, [5, 8], 2),
                shard(3, vec![(10923, 16383)], 3, [6, 9], 3),
            ],
        }
    }

    fn resp2(frame: &Frame) -> String {
        let mut out = bytes::BytesMut::new();
        encode(frame, Protocol::Resp2, &mut out);
        String::from_utf8(out.to_vec()).unwrap()
    }

    #[test]
    fn nodes_follow_redis_format_for_three_shards_of_three() {
        // The format of Redis's cluster specification ("CLUSTER NODES"): id, ip:port@cport,
        // flags, primary or -, ping-sent, pong-recv, config-epoch, link-state, slots.
        let expected = [
            format!("{} 10.0.0.1:6379@16379 myself,master - 0 0 1 connected 0-5460", id(1)),
            format!("{} 10.0.0.2:6379@16379 master - 0 0 2 connected 5461-10922", id(2)),
            format!("{} 10.0.0.3:6379@16379 master - 0 0 3 connected 10923-16383", id(3)),
            format!("{} 10.0.0.4:6379@16379 slave {} 0 0 1 connected", id(4), id(1)),
            format!("{} 10.0.0.5:6379@16379 slave {} 0 0 2 connected", id(5), id(2)),
            format!("{} 10.0.0.6:6379@16379 slave {} 0 0 3 connected", id(6), id(3)),
            format!("{} 10.0.0.7:6379@16379 slave {} 0 0 1 connected", id(7), id(1)),
            format!("{} 10.0.0.8:6379@16379 slave {} 0 0 2 connected", id(8), id(2)),
            format!("{} 10.0.0.9:6379@16379 slave {} 0 0 3 disconnected", id(9), id(3)),
        ];
        let expected: String = expected.iter().map(|line| format!("{line}\n")).collect();
        assert_eq!(nodes(&nine_nodes()), expected);
    }

    #[test]
    fn replicas_are_the_nodes_lines_of_a_primarys_replicas() {
        let topology = nine_nodes();
        let line = |n: usize, of: usize, link: &str| {
            Frame::bulk(format!("{} 10.0.0.{n}:6379@16379 slave {} 0 0 3 {link}", id(n), id(of)))
        };
        assert_eq!(
            replicas(&topology, id(3).as_bytes()),
            Frame::Array(vec![line(6, 3, "connected"), line(9, 3, "disconnected")])
        );
        assert_eq!(
            replicas(&topology, id(6).as_bytes()),
            Frame::error("ERR The specified node is not a master")
        );
        assert_eq!(replicas(&topology, b"nope"), Frame::error("ERR Unknown node nope"));
    }

    #[test]
    fn slots_list_each_range_with_its_primary_then_its_reachable_replicas() {
        let n = |n: usize| format!("*4\r\n$8\r\n10.0.0.{n}\r\n:6379\r\n$40\r\n{}\r\n*0\r\n", id(n));
        let expected = format!(
            "*3\r\n*5\r\n:0\r\n:5460\r\n{}{}{}*5\r\n:5461\r\n:10922\r\n{}{}{}*4\r\n:10923\r\n:16383\r\n{}{}",
            n(1),
            n(4),
            n(7),
            n(2),
            n(5),
            n(8),
            n(3),
            n(6)
        );
        assert_eq!(resp2(&slots(&nine_nodes())), expected);
        // RESP3: the metadata is an empty map, as Redis sends it.
        let mut out = bytes::BytesMut::new();
        encode(&slots(&nine_nodes()), Protocol::Resp3, &mut out);
        assert!(String::from_utf8_lossy(&out).contains(&format!("{}\r\n%0\r\n", id(1))));
    }

    #[test]
    fn shards_list_slots_and_members_with_roles_and_health() {
        let member = |n: usize, role: &str, health: &str| {
            format!(
                "*14\r\n$2\r\nid\r\n$40\r\n{}\r\n$4\r\nport\r\n:6379\r\n$2\r\nip\r\n$8\r\n10.0.0.{n}\r\n\
                 $8\r\nendpoint\r\n$8\r\n10.0.0.{n}\r\n$4\r\nrole\r\n${}\r\n{role}\r\n\
                 $18\r\nreplication-offset\r\n:0\r\n$6\r\nhealth\r\n${}\r\n{health}\r\n",
                id(n),
                role.len(),
                health.len()
            )
        };
        let shard = |first: u16, last: u16, members: [String; 3]| {
            format!(
                "*4\r\n$5\r\nslots\r\n*2\r\n:{first}\r\n:{last}\r\n$5\r\nnodes\r\n*3\r\n{}",
                members.concat()
            )
        };
        let expected = format!(
            "*3\r\n{}{}{}",
            shard(
                0,
                5460,
                [
                    member(1, "master", "online"),
                    member(4, "replica", "online"),
                    member(7, "replica", "online")
                ]
            ),
            shard(
                5461,
                10922,
                [
                    member(2, "master", "online"),
                    member(5, "replica", "online"),
                    member(8, "replica", "online")
                ]
            ),
            shard(
                10923,
                16383,
                [
                    member(3, "master", "online"),
                    member(6, "replica", "online"),
                    member(9, "replica", "failed")
                ]
            ),
        );
        assert_eq!(resp2(&shards(&nine_nodes())), expected);
    }

    #[test]
    fn info_counts_slots_nodes_and_epochs() {
        let mut topology = nine_nodes();
        topology.myself = id(5);
        // Shard 3's leader is unreachable from here; shard 2 has none (an election).
        topology.nodes[2].connected = false;
        topology.shards[1].primary = None;
        topology.state_ok = false;
        assert_eq!(
            info(&topology),
            "cluster_state:fail\r\ncluster_slots_assigned:16384\r\ncluster_slots_ok:5461\r\n\
             cluster_slots_pfail:5461\r\ncluster_slots_fail:5462\r\ncluster_known_nodes:9\r\ncluster_size:2\r\n\
             cluster_current_epoch:3\r\ncluster_my_epoch:2\r\ncluster_stats_messages_sent:0\r\n\
             cluster_stats_messages_received:0\r\ntotal_cluster_links_buffer_limit_exceeded:0\r\n"
        );
        // No leader for shard 2: its range has no one to route to in CLUSTER SLOTS.
        let Frame::Array(entries) = slots(&topology) else { panic!() };
        assert_eq!(entries.len(), 2);
    }

    #[test]
    fn a_node_leading_and_following_shards_shows_as_the_primary_of_what_it_leads() {
        // Concord's layout: 3 nodes each hosting a replica of every shard.
        let topology = Topology {
            myself: id(3),
            current_epoch: 7,
            state_ok: true,
            nodes: (1..=3).map(|n| node(n, true)).collect(),
            shards: vec![
                shard(1, vec![(0, 0), (2, 5460)], 1, [2, 3], 5),
                shard(2, vec![(1, 1), (5461, 10922)], 2, [3, 1], 6),
                shard(3, vec![(10923, 16383)], 1, [2, 3], 7),
            ],
        };
        assert_eq!(
            nodes(&topology),
            format!(
                "{} 10.0.0.1:6379@16379 master - 0 0 7 connected 0 2-5460 10923-16383\n\
                 {} 10.0.0.2:6379@16379 master - 0 0 6 connected 1 5461-10922\n\
                 {} 10.0.0.3:6379@16379 myself,slave {} 0 0 5 connected\n",
                id(1),
                id(2),
                id(3),
                id(1)
            )
        );
        // SLOTS: every range, ascending, with its shard's primary; of its replicas only node 3,
        // which leads nothing – nodes 1 and 2 are never listed as replicas, so a client gives them
        // the one role they have in NODES.
        let Frame::Array(entries) = slots(&topology) else { panic!() };
        let members = |entry: &Frame| -> (Frame, Vec<Frame>) {
            let Frame::Array(items) = entry else { panic!() };
            let ids = items[2..]
                .iter()
                .map(|n| match n {
                    Frame::Array(fields) => fields[2].clone(),
                    _ => panic!(),
                })
                .collect();
            (items[0].clone(), ids)
        };
        let listed: Vec<(Frame, Vec<Frame>)> = entries.iter().map(members).collect();
        let ids = |ns: &[usize]| ns.iter().map(|&n| Frame::bulk(id(n))).collect::<Vec<_>>();
        assert_eq!(
            listed,
            vec![
                (Frame::Integer(0), ids(&[1, 3])),
                (Frame::Integer(1), ids(&[2, 3])),
                (Frame::Integer(2), ids(&[1, 3])),
                (Frame::Integer(5461), ids(&[2, 3])),
                (Frame::Integer(10923), ids(&[1, 3])),
            ]
        );
        // SHARDS: the same members, with the same roles.
        let text = resp2(&shards(&topology));
        assert_eq!(text.matches("$6\r\nmaster\r\n").count(), 3, "{text}");
        assert_eq!(text.matches("$7\r\nreplica\r\n").count(), 3, "{text}");
        assert_eq!(
            text.matches(&format!(
                "$40\r\n{}\r\n$4\r\nport\r\n:6379\r\n$2\r\nip\r\n$8\r\n10.0.0.3\r\n",
                id(3)
            ))
            .count(),
            3
        );
        assert!(info(&topology).contains("cluster_my_epoch:5\r\n"));
    }

    #[test]
    fn crossslot_uses_hash_tags() {
        assert!(!cross_slot([&b"a"[..], b"{a}b", b"{a}"]));
        assert!(cross_slot([&b"a"[..], b"b"]));
        assert!(!cross_slot(Vec::<&[u8]>::new()));
        // An empty tag `{}` hashes the whole key.
        assert!(cross_slot([&b"{}a"[..], b"{}b"]));
    }
}
