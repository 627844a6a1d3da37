//! The multi-Raft host: each group gets its own inputs, timers and keys; sends are batched per
//! destination without crossing a sync; removing a group cancels its timers and deletes its keys;
//! and real Raft groups – fifty of them on three nodes – elect leaders and commit writes through it.

use concord_core::hash::SplitMix64;
use concord_core::{ClientId, Durable, Effect, Io, Message, NodeId, Process, RequestId, StorageOp, Time};
use concord_kv::{Command, KvStore};
use concord_raft::{RaftConfig, RaftNode, RaftRequest, RaftResponse};
use concord_shard::host::{group_durable, groups_on_disk, key_prefix, Quiescent, Tick};
use concord_shard::{Batch, GroupId, GroupRequest, GroupResponse, Host};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

/// A toy group: on start it writes a key, syncs and arms a timer; a request makes it send to
/// nodes 2 and 3, sync, send to node 2 again, and reply.
#[derive(Default)]
struct Toy;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Ping(u32);

impl Message for Ping {
    fn kind(&self) -> &'static str {
        "ping"
    }
}

impl Process for Toy {
    type Message = Ping;
    type Timer = u8;
    type Request = u32;
    type Response = u32;

    fn on_start(&mut self, io: &mut Io<'_, Self>) {
        io.put("state", b"started".to_vec());
        io.sync();
        io.set_timer(7, Duration::from_millis(5));
    }

    fn on_message(&mut self, _io: &mut Io<'_, Self>, _from: NodeId, _msg: Ping) {}

    fn on_timer(&mut self, _io: &mut Io<'_, Self>, _timer: u8) {}

    fn on_request(&mut self, io: &mut Io<'_, Self>, request: RequestId, n: u32) {
        io.send(NodeId(2), Ping(n));
        io.send(NodeId(3), Ping(n));
        io.sync();
        io.send(NodeId(2), Ping(n + 1));
        io.reply(request, n * 10);
    }
}

impl Quiescent for Toy {}

fn run<P: Process>(host: &mut P, f: impl FnOnce(&mut P, &mut Io<'_, P>)) -> Vec<Effect<P>> {
    let mut rng = SplitMix64(1);
    let mut effects = Vec::new();
    let mut io = Io::new(NodeId(1), Time::ZERO, false, &mut rng, &mut effects);
    f(host, &mut io);
    effects
}

fn req(seq: u64) -> RequestId {
    RequestId { client: ClientId(1), seq }
}

#[test]
fn groups_are_kept_apart_and_sends_batched_between_syncs() {
    let mut host = Host::with_groups([(GroupId(1), Toy), (GroupId(2), Toy)]);
    let started = run(&mut host, |h, io| h.on_start(io));
    let puts: Vec<String> = started
        .iter()
        .filter_map(|e| match e {
            Effect::Persist(StorageOp::Put { key, .. }) => Some(key.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(puts, ["g/0000000001/state", "g/0000000002/state"]);
    let armed: Vec<_> = host.deadlines().collect();
    let five_ms = Time::ZERO + Duration::from_millis(10); // 5 ms, rounded up to the 10 ms tick
    assert_eq!(armed, [(GroupId(1), 7, five_ms), (GroupId(2), 7, five_ms)]);
    let host_timers: Vec<_> = started
        .iter()
        .filter_map(|e| match e {
            Effect::SetTimer { timer, after } => Some((*timer, *after)),
            _ => None,
        })
        .collect();
    assert_eq!(host_timers, [(Tick, Duration::from_millis(10))], "one host timer for both groups");

    // One request: node 2 gets one batch before the sync and one after; node 3 one.
    let effects =
        run(&mut host, |h, io| h.on_request(io, req(1), GroupRequest { group: GroupId(2), request: 4 }));
    let shape: Vec<String> = effects
        .iter()
        .map(|e| match e {
            Effect::Send { to, msg } => format!("send {} {:?}", to.0, msg.messages),
            Effect::Sync => "sync".into(),
            Effect::Reply { response, .. } => format!("reply {response:?}"),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        shape,
        [
            "send 2 [(GroupId(2), Ping(4))]",
            "send 3 [(GroupId(2), Ping(4))]",
            "sync",
            "send 2 [(GroupId(2), Ping(5))]",
            "reply Answer { group: GroupId(2), response: 40 }",
        ]
    );
    let missing =
        run(&mut host, |h, io| h.on_request(io, req(2), GroupRequest { group: GroupId(9), request: 1 }));
    assert!(matches!(&missing[..], [Effect::Reply { response: GroupResponse::NoSuchGroup(GroupId(9)), .. }]));
}

#[test]
fn a_removed_group_loses_its_timers_and_its_keys_and_nothing_else() {
    let mut host = Host::with_groups([(GroupId(1), Toy), (GroupId(10), Toy)]);
    let mut disk = Durable::new();
    for e in run(&mut host, |h, io| h.on_start(io)) {
        if let Effect::Persist(op) = e {
            disk.apply_owned(op);
        }
    }
    assert_eq!(groups_on_disk(&disk), [GroupId(1), GroupId(10)]);
    assert_eq!(group_durable(&disk, GroupId(10)).get("state"), Some(&b"started"[..]));
    let effects = run(&mut host, |h, io| assert!(h.remove_group(io, GroupId(1)).is_some()));
    for e in effects {
        if let Effect::Persist(op) = e {
            disk.apply_owned(op);
        }
    }
    let armed: Vec<GroupId> = host.deadlines().map(|(g, _, _)| g).collect();
    assert_eq!(armed, [GroupId(10)], "group 1's timer went with it");
    assert_eq!(
        groups_on_disk(&disk),
        [GroupId(10)],
        "group 1's keys are gone, group 10's (a longer id) stay"
    );
    assert!(host.group(GroupId(1)).is_none() && host.group(GroupId(10)).is_some());
    assert!(key_prefix(GroupId(1)) < key_prefix(GroupId(10)));
}

#[test]
fn rescheduled_timers_move_and_the_host_tick_follows_the_earliest() {
    let mut host = Host::with_groups([(GroupId(1), Toy), (GroupId(2), Toy)]);
    run(&mut host, |h, io| h.on_start(io));
    // Both toys armed timer 7 for 5 ms, rounded up to the 10 ms tick.
    let at = |host: &Host<Toy>, g: u32| host.deadlines().find(|(id, _, _)| *id == GroupId(g)).map(|d| d.2);
    assert_eq!(at(&host, 1), Some(Time::ZERO + Duration::from_millis(10)));
    let ms = |n| Time::ZERO + Duration::from_millis(n);
    let effects = run(&mut host, |h, io| {
        h.reschedule(io, [(GroupId(1), 7, ms(105)), (GroupId(2), 7, ms(40)), (GroupId(2), 8, ms(1))])
    });
    assert_eq!(at(&host, 1), Some(ms(110)), "105 ms, rounded up to the tick");
    assert_eq!(at(&host, 2), Some(ms(40)));
    assert_eq!(host.deadlines().count(), 2, "timer 8 was not armed: nothing happens to it");
    // The host's own tick moves to the earliest deadline left.
    let ticks: Vec<Duration> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::SetTimer { timer: Tick, after } => Some(*after),
            _ => None,
        })
        .collect();
    assert_eq!(ticks, [Duration::from_millis(40)]);
}

type Shard = RaftNode<KvStore>;

/// A tiny deterministic driver for hosts: 1 ms links, timers by virtual time, disks that keep
/// everything (no crashes here: the simulator does faults).
struct Cluster {
    hosts: BTreeMap<NodeId, Host<Shard>>,
    disks: BTreeMap<NodeId, Durable>,
    queue: BTreeMap<(Time, u64), (NodeId, Input)>,
    timers: BTreeMap<NodeId, Time>,
    seq: u64,
    frames: u64,
    messages: u64,
    replies: VecDeque<GroupResponse<RaftResponse<concord_kv::KvResult>>>,
    rng: SplitMix64,
    /// Nodes whose frames are dropped both ways (crashed, or cut off by a partition).
    cut: BTreeSet<NodeId>,
    /// Crashed nodes also stop their timers.
    crashed: BTreeSet<NodeId>,
}

/// A frame on its way: from whom, and the batch.
type Input = (NodeId, Batch<concord_raft::Message<Command>>);

impl Cluster {
    fn new(nodes: u32, groups: u32) -> Cluster {
        Cluster::with_config(nodes, groups, RaftConfig::default())
    }

    fn with_config(nodes: u32, groups: u32, raft: RaftConfig) -> Cluster {
        let voters: Vec<NodeId> = (1..=nodes).map(NodeId).collect();
        let mut c = Cluster {
            hosts: BTreeMap::new(),
            disks: BTreeMap::new(),
            queue: BTreeMap::new(),
            timers: BTreeMap::new(),
            seq: 0,
            frames: 0,
            messages: 0,
            replies: VecDeque::new(),
            rng: SplitMix64(42),
            cut: BTreeSet::new(),
            crashed: BTreeSet::new(),
        };
        for &id in &voters {
            let groups = (1..=groups).map(|g| {
                let config = RaftConfig { voters: voters.clone(), ..raft.clone() };
                let node = RaftNode::boot(id, config, KvStore::default(), &Durable::new()).expect("boot");
                (GroupId(g), node)
            });
            let mut host = Host::with_groups(groups);
            if raft.quiesce {
                host = host.with_liveness(raft.heartbeat_interval, raft.election_timeout_min);
            }
            c.hosts.insert(id, host);
            c.disks.insert(id, Durable::new());
        }
        for id in voters {
            c.step(id, Time::ZERO, |h, io| h.on_start(io));
        }
        c
    }

    fn step(&mut self, node: NodeId, now: Time, f: impl FnOnce(&mut Host<Shard>, &mut Io<'_, Host<Shard>>)) {
        let mut effects = Vec::new();
        let host = self.hosts.get_mut(&node).expect("host");
        let mut io = Io::new(node, now, false, &mut self.rng, &mut effects);
        f(host, &mut io);
        for effect in effects {
            match effect {
                Effect::Send { to, msg } | Effect::SendNow { to, msg } => {
                    self.frames += 1;
                    self.messages += msg.messages.len() as u64;
                    self.seq += 1;
                    self.queue.insert((now + Duration::from_millis(1), self.seq), (to, (node, msg)));
                }
                Effect::SetTimer { timer: Tick, after } => {
                    self.timers.insert(node, now + after);
                }
                Effect::CancelTimer { timer: Tick } => {
                    self.timers.remove(&node);
                }
                Effect::Persist(op) => self.disks.get_mut(&node).expect("disk").apply_owned(op),
                Effect::Reply { response, .. } | Effect::ReplyNow { response, .. } => {
                    self.replies.push_back(response)
                }
                Effect::Sync | Effect::Event(_) => {}
            }
        }
    }

    /// Run until virtual time `until`.
    fn run_until(&mut self, until: Time) {
        loop {
            let next_message = self.queue.keys().next().map(|k| k.0);
            let next_timer = self.timers.iter().map(|(node, t)| (*t, *node)).min();
            let (now, is_timer) = match (next_message, next_timer) {
                (Some(m), Some((t, _))) if t < m => (t, true),
                (Some(m), _) => (m, false),
                (None, Some((t, _))) => (t, true),
                (None, None) => return,
            };
            if now > until {
                return;
            }
            if is_timer {
                let (_, node) = next_timer.expect("timer");
                self.timers.remove(&node);
                if !self.crashed.contains(&node) {
                    self.step(node, now, |h, io| h.on_timer(io, Tick));
                }
            } else {
                let key = *self.queue.keys().next().expect("message");
                let (to, (from, batch)) = self.queue.remove(&key).expect("queued");
                if !self.cut.contains(&to) && !self.cut.contains(&from) {
                    self.step(to, now, |h, io| h.on_message(io, from, batch));
                }
            }
        }
    }

    fn leader_of(&self, group: GroupId) -> Vec<NodeId> {
        self.hosts
            .iter()
            .filter(|(id, _)| !self.crashed.contains(id))
            .filter(|(_, h)| h.group(group).is_some_and(|n| n.role() == Some("leader")))
            .map(|(&id, _)| id)
            .collect()
    }
}

#[test]
fn fifty_raft_groups_on_three_nodes_elect_commit_and_share_frames() {
    let groups = 50;
    let mut cluster = Cluster::new(3, groups);
    cluster.run_until(Time::ZERO + Duration::from_secs(3));
    for g in 1..=groups {
        let leaders = cluster.leader_of(GroupId(g));
        assert_eq!(leaders.len(), 1, "group {g}: leaders {leaders:?}");
    }
    // A write to every group, sent to its leader, commits.
    let now = Time::ZERO + Duration::from_secs(3);
    for g in 1..=groups {
        let leader = cluster.leader_of(GroupId(g))[0];
        let command = Command::put(now, format!("key-{g}"), format!("value-{g}"));
        let request =
            GroupRequest { group: GroupId(g), request: RaftRequest::Propose { session: None, command } };
        cluster.step(leader, now, |h, io| h.on_request(io, req(g as u64), request));
    }
    cluster.run_until(now + Duration::from_secs(1));
    let answered: Vec<GroupId> = cluster
        .replies
        .iter()
        .filter_map(|r| match r {
            GroupResponse::Answer { group, response: RaftResponse::Output(Ok(_)) } => Some(*group),
            _ => None,
        })
        .collect();
    assert_eq!(answered.len(), groups as usize, "replies: {:?}", cluster.replies);
    // Every group's keys are under its prefix on every node's disk, and a group reboots from them.
    for (id, disk) in &cluster.disks {
        assert_eq!(groups_on_disk(disk).len(), groups as usize, "node {}", id.0);
        let mine = group_durable(disk, GroupId(7));
        let config = RaftConfig { voters: vec![NodeId(1), NodeId(2), NodeId(3)], ..RaftConfig::default() };
        let rebooted = RaftNode::boot(*id, config, KvStore::default(), &mine).expect("reboot group 7");
        assert!(rebooted.inspect()["last_log_index"].as_u64().unwrap() >= 2, "group 7's log survived");
    }
    // One connection per node pair carries every group, and coalesced timers make the groups'
    // heartbeats leave together: messages travel several to a frame. (Without the host's tick each
    // group's timer fired alone: 15 954 messages in 15 950 frames. With the 10 ms tick ≈ 3.2 a
    // frame: 50 ms heartbeats fall into five phases, and each node leads a third of the groups.)
    let per_frame = cluster.messages as f64 / cluster.frames as f64;
    assert!(per_frame > 2.5, "{} messages in {} frames", cluster.messages, cluster.frames);
}

fn quiet_cluster(groups: u32) -> Cluster {
    let raft = RaftConfig { quiesce: true, ..RaftConfig::default() };
    let mut cluster = Cluster::with_config(3, groups, raft);
    cluster.run_until(at(3));
    for g in 1..=groups {
        assert_eq!(cluster.leader_of(GroupId(g)).len(), 1, "group {g} has one leader");
    }
    cluster
}

fn at(secs: u64) -> Time {
    Time::ZERO + Duration::from_secs(secs)
}

/// Quiesced groups on the running nodes: every running replica quiesced, as leader or follower.
fn all_quiet(cluster: &Cluster, groups: u32) -> bool {
    cluster.hosts.iter().filter(|(id, _)| !cluster.crashed.contains(id)).all(|(_, h)| {
        let (leaders, followers) = h.quiesced();
        leaders + followers == groups as usize && h.deadlines().next().is_none()
    })
}

#[test]
fn quiet_groups_exchange_only_one_beat_per_node_pair() {
    let groups = 30;
    let mut cluster = quiet_cluster(groups);
    assert!(all_quiet(&cluster, groups), "an idle cluster's groups all quiesce");
    let (frames, messages) = (cluster.frames, cluster.messages);
    cluster.run_until(at(5));
    // Two idle seconds: no group message at all, and beats only – 6 directed node pairs, one beat
    // each per 50 ms heartbeat interval (rounded to the 10 ms tick), so at most 6 × 40 frames.
    assert_eq!(cluster.messages, messages, "a quiet group sends nothing");
    let beats = cluster.frames - frames;
    assert!((200..=260).contains(&beats), "{beats} beats in 2 s");
}

#[test]
fn quiet_groups_whose_leader_node_goes_silent_elect_new_leaders() {
    let groups = 30;
    let mut cluster = quiet_cluster(groups);
    assert!(all_quiet(&cluster, groups));
    let led_by_1: Vec<GroupId> =
        (1..=groups).map(GroupId).filter(|&g| cluster.leader_of(g) == [NodeId(1)]).collect();
    assert!(!led_by_1.is_empty());
    cluster.crashed.insert(NodeId(1));
    cluster.cut.insert(NodeId(1));
    // An election timeout of silence (150 ms) wakes the followers; pre-vote, vote, done well
    // within a second.
    cluster.run_until(at(4));
    for &g in &led_by_1 {
        let leaders = cluster.leader_of(g);
        assert_eq!(leaders.len(), 1, "{g}: leaders {leaders:?} among the survivors");
    }
    // The survivors' groups quiesce again (their new leaders see node 1 as a lagging follower, so
    // groups with node 1 as member stay awake: caught-up followers are required).
    let others: Vec<GroupId> = (1..=groups).map(GroupId).filter(|g| !led_by_1.contains(g)).collect();
    for g in others {
        assert_eq!(cluster.leader_of(g).len(), 1, "{g} kept its leader");
    }
}

#[test]
fn a_partitioned_follower_node_rejoins_without_unseating_live_leaders() {
    let groups = 30;
    let mut cluster = quiet_cluster(groups);
    assert!(all_quiet(&cluster, groups));
    let leaders_before: Vec<Vec<NodeId>> = (1..=groups).map(|g| cluster.leader_of(GroupId(g))).collect();
    let term = |c: &Cluster, g: u32, n: u32| {
        c.hosts[&NodeId(n)].group(GroupId(g)).map(|p| p.current_term()).expect("hosted")
    };
    let terms_before: Vec<u64> = (1..=groups).map(|g| term(&cluster, g, 1)).collect();
    // Node 3 is cut off for two seconds: its followers wake and pre-vote in vain; the groups it led
    // elect new leaders on nodes 1 and 2.
    cluster.cut.insert(NodeId(3));
    cluster.run_until(at(5));
    cluster.cut.clear();
    cluster.run_until(at(8));
    for g in 1..=groups {
        let leaders = cluster.leader_of(GroupId(g));
        assert_eq!(leaders.len(), 1, "group {g}: leaders {leaders:?}");
        let before = &leaders_before[g as usize - 1];
        if before != &[NodeId(3)] {
            assert_eq!(&leaders, before, "group {g}: a live leader was unseated");
            assert_eq!(term(&cluster, g, 1), terms_before[g as usize - 1], "group {g}: no new term");
        }
    }
    assert!(all_quiet(&cluster, groups), "healed, every group quiesces again");
}
