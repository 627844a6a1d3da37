//! Sets (OR-sets) and hashes (maps of LWW registers) through the coordinator, on a three-node
//! cluster driven by hand: requests, replication, partitions, read repair and anti-entropy.
//!
//! The network here is a queue of messages delivered in order; a partition drops the messages
//! that cross it. Time stands still except where a test moves it (timestamps of hash writes).
//! With `n = 3` on three nodes every node is a home replica of every key, so a request is
//! coordinated by the node that receives it, and `w = 1` lets each side of a partition
//! acknowledge writes alone.

use concord_core::hash::SplitMix64;
use concord_core::{ClientId, Durable, Effect, Io, NodeId, Process, RequestId, Time};
use concord_dynamo::store::Object;
use concord_dynamo::{DynamoConfig, DynamoNode, DynamoRequest, DynamoResponse, DynamoTimer};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

const IDS: [NodeId; 3] = [NodeId(1), NodeId(2), NodeId(3)];

struct Cluster {
    nodes: BTreeMap<NodeId, DynamoNode>,
    rng: SplitMix64,
    now: Time,
    in_flight: VecDeque<(NodeId, NodeId, concord_dynamo::DynamoMessage)>,
    /// Node pairs that cannot talk (both directions).
    cut: BTreeSet<(NodeId, NodeId)>,
    replies: BTreeMap<u64, DynamoResponse>,
    next_request: u64,
}

impl Cluster {
    fn new() -> Cluster {
        let config = DynamoConfig { n: 3, r: 2, w: 2, ..DynamoConfig::default() };
        let mut cluster = Cluster {
            nodes: BTreeMap::new(),
            rng: SplitMix64(7),
            now: Time::ZERO,
            in_flight: VecDeque::new(),
            cut: BTreeSet::new(),
            replies: BTreeMap::new(),
            next_request: 1,
        };
        for id in IDS {
            let node = DynamoNode::boot(id, &IDS, config.clone(), &Durable::new()).expect("boots");
            cluster.nodes.insert(id, node);
            cluster.step(id, |n, io| n.on_start(io));
        }
        cluster
    }

    /// Run one input on `id` and queue what it sends (timers are ignored: tests fire them).
    fn step(&mut self, id: NodeId, input: impl FnOnce(&mut DynamoNode, &mut Io<'_, DynamoNode>)) {
        let mut effects = Vec::new();
        let node = self.nodes.get_mut(&id).expect("a node of the cluster");
        let mut io = Io::new(id, self.now, false, &mut self.rng, &mut effects);
        input(node, &mut io);
        for effect in effects {
            match effect {
                Effect::Send { to, msg } => self.in_flight.push_back((id, to, msg)),
                Effect::Reply { request, response } => {
                    self.replies.insert(request.seq, response);
                }
                _ => {}
            }
        }
    }

    /// Deliver messages until none is in flight; those across a cut are lost.
    fn settle(&mut self) {
        let mut budget = 100_000;
        while let Some((from, to, msg)) = self.in_flight.pop_front() {
            budget -= 1;
            assert!(budget > 0, "the message loop does not end");
            if self.cut.contains(&(from, to)) {
                continue;
            }
            self.step(to, |n, io| n.on_message(io, from, msg));
        }
    }

    fn partition(&mut self, side: &[NodeId]) {
        for &a in side {
            for b in IDS.iter().copied().filter(|b| !side.contains(b)) {
                self.cut.insert((a, b));
                self.cut.insert((b, a));
            }
        }
    }

    fn heal(&mut self) {
        self.cut.clear();
    }

    /// Send a request to `at`, deliver everything, and return the answer.
    fn request(&mut self, at: NodeId, req: DynamoRequest) -> DynamoResponse {
        let seq = self.next_request;
        self.next_request += 1;
        let request = RequestId { client: ClientId(1), seq };
        self.step(at, |n, io| n.on_request(io, request, req));
        self.settle();
        self.replies.remove(&seq).unwrap_or_else(|| panic!("request {seq} at {at} was not answered"))
    }

    /// Anti-entropy rounds on every node until all hold the same objects (or give up).
    fn anti_entropy(&mut self) {
        for _round in 0..30 {
            for id in IDS {
                self.step(id, |n, io| n.on_timer(io, DynamoTimer::AntiEntropy));
                self.settle();
            }
            if self.converged() {
                return;
            }
        }
        panic!("anti-entropy did not converge: {:#?}", self.objects("s"));
    }

    fn converged(&self) -> bool {
        let first = self.nodes[&IDS[0]].store();
        IDS.iter().all(|id| self.nodes[id].store() == first)
    }

    fn objects(&self, key: &str) -> Vec<Option<Object>> {
        IDS.iter().map(|id| self.nodes[id].store().get(key).cloned()).collect()
    }
}

fn bytes(items: &[&str]) -> Vec<Vec<u8>> {
    items.iter().map(|s| s.as_bytes().to_vec()).collect()
}

fn sadd(key: &str, members: &[&str], w: usize) -> DynamoRequest {
    DynamoRequest::SetAdd { key: key.into(), members: bytes(members), w: Some(w) }
}

fn srem(key: &str, members: &[&str], w: usize) -> DynamoRequest {
    DynamoRequest::SetRemove { key: key.into(), members: bytes(members), w: Some(w) }
}

fn get(key: &str, r: usize) -> DynamoRequest {
    DynamoRequest::Get { key: key.into(), r: Some(r) }
}

fn members(items: &[&str]) -> DynamoResponse {
    let mut m = bytes(items);
    m.sort();
    DynamoResponse::Members(m)
}

#[test]
fn a_set_write_is_acknowledged_with_what_it_changed_and_read_back_by_a_quorum() {
    let mut c = Cluster::new();
    assert_eq!(c.request(IDS[0], sadd("s", &["a", "b"], 2)), DynamoResponse::Updated { changed: 2 });
    assert_eq!(c.request(IDS[1], sadd("s", &["b", "c"], 2)), DynamoResponse::Updated { changed: 1 });
    assert_eq!(c.request(IDS[2], get("s", 2)), members(&["a", "b", "c"]));
    assert_eq!(c.request(IDS[2], srem("s", &["a", "zz"], 3)), DynamoResponse::Updated { changed: 1 });
    assert_eq!(c.request(IDS[0], get("s", 3)), members(&["b", "c"]));
    assert!(c.converged(), "w = 3 and the replication reached every node");
}

#[test]
fn concurrent_adds_on_two_sides_of_a_partition_both_survive_the_merge() {
    let mut c = Cluster::new();
    c.request(IDS[0], sadd("s", &["base"], 3));
    c.partition(&[IDS[0]]);
    // Each side acknowledges its add alone (w = 1); neither sees the other's.
    assert_eq!(c.request(IDS[0], sadd("s", &["left"], 1)), DynamoResponse::Updated { changed: 1 });
    assert_eq!(c.request(IDS[1], sadd("s", &["right"], 1)), DynamoResponse::Updated { changed: 1 });
    assert_eq!(c.request(IDS[0], get("s", 1)), members(&["base", "left"]));
    assert_eq!(c.request(IDS[2], get("s", 1)), members(&["base", "right"]));
    c.heal();
    // A quorum read after the heal merges both sides' copies and answers both adds ...
    assert_eq!(c.request(IDS[1], get("s", 3)), members(&["base", "left", "right"]));
    // ... and its read repair sent the merged set to the replicas that were behind.
    assert!(c.converged(), "read repair brought every replica to the merge: {:?}", c.objects("s"));
}

#[test]
fn a_remove_loses_to_an_add_it_did_not_see_and_wins_over_the_adds_it_saw() {
    let mut c = Cluster::new();
    c.request(IDS[0], sadd("s", &["x", "y"], 3));
    c.partition(&[IDS[0]]);
    // Left removes x and y; right adds x again concurrently (a new dot left never saw).
    assert_eq!(c.request(IDS[0], srem("s", &["x", "y"], 1)), DynamoResponse::Updated { changed: 2 });
    assert_eq!(c.request(IDS[2], sadd("s", &["x"], 1)), DynamoResponse::Updated { changed: 0 });
    c.heal();
    c.anti_entropy();
    // x: the concurrent add wins. y: its only add was seen by the remove, which wins.
    for id in IDS {
        assert_eq!(c.request(id, get("s", 1)), members(&["x"]), "at {id}");
    }
}

#[test]
fn replicas_converge_by_anti_entropy_alone() {
    let mut c = Cluster::new();
    // Every node on its own side: each add reaches only its coordinator.
    c.partition(&[IDS[0]]);
    c.partition(&[IDS[1]]);
    for (i, id) in IDS.iter().enumerate() {
        let member = format!("m{i}");
        assert_eq!(c.request(*id, sadd("s", &[&member], 1)), DynamoResponse::Updated { changed: 1 });
        let field = DynamoRequest::MapSet {
            key: "h".into(),
            fields: vec![(b"f".to_vec(), member.clone().into_bytes()), (member.into_bytes(), b"1".to_vec())],
            w: Some(1),
        };
        c.now = c.now + Duration::from_millis(10); // later writes carry later timestamps
        assert_eq!(c.request(*id, field), DynamoResponse::Updated { changed: 2 });
    }
    assert!(!c.converged());
    c.heal();
    c.anti_entropy();
    let fields = |items: &[(&str, &str)]| {
        DynamoResponse::Fields(
            items.iter().map(|(f, v)| (f.as_bytes().to_vec(), v.as_bytes().to_vec())).collect(),
        )
    };
    for id in IDS {
        assert_eq!(c.request(id, get("s", 1)), members(&["m0", "m1", "m2"]));
        // `f` was written concurrently on all three sides: the latest timestamp (node 3's) wins.
        assert_eq!(c.request(id, get("h", 1)), fields(&[("f", "m2"), ("m0", "1"), ("m1", "1"), ("m2", "1")]));
    }
}

#[test]
fn hash_fields_are_written_removed_and_a_concurrent_write_survives_a_removal() {
    let mut c = Cluster::new();
    let hset = |fields: &[(&str, &str)], w| DynamoRequest::MapSet {
        key: "h".into(),
        fields: fields.iter().map(|(f, v)| (f.as_bytes().to_vec(), v.as_bytes().to_vec())).collect(),
        w: Some(w),
    };
    let hdel =
        |fields: &[&str], w| DynamoRequest::MapRemove { key: "h".into(), fields: bytes(fields), w: Some(w) };
    assert_eq!(c.request(IDS[0], hset(&[("a", "1"), ("b", "2")], 3)), DynamoResponse::Updated { changed: 2 });
    assert_eq!(c.request(IDS[1], hset(&[("a", "10")], 2)), DynamoResponse::Updated { changed: 0 });
    c.partition(&[IDS[0]]);
    assert_eq!(c.request(IDS[0], hdel(&["a", "b", "nope"], 1)), DynamoResponse::Updated { changed: 2 });
    assert_eq!(c.request(IDS[1], hset(&[("a", "11")], 1)), DynamoResponse::Updated { changed: 0 });
    c.heal();
    c.anti_entropy();
    let expected = DynamoResponse::Fields(vec![(b"a".to_vec(), b"11".to_vec())]);
    for id in IDS {
        assert_eq!(c.request(id, get("h", 2)), expected, "at {id}");
    }
}

#[test]
fn a_key_keeps_its_kind_and_a_write_of_another_kind_is_refused() {
    let mut c = Cluster::new();
    c.request(IDS[0], sadd("s", &["a"], 3));
    let put = DynamoRequest::Put { key: "s".into(), value: b"v".to_vec(), context: None, w: None };
    let hset =
        DynamoRequest::MapSet { key: "s".into(), fields: vec![(b"f".to_vec(), b"v".to_vec())], w: None };
    let incr = DynamoRequest::Increment { key: "s".into(), delta: 1, w: None };
    for (req, wanted) in [(put, "register"), (hset, "hash"), (incr, "counter")] {
        match c.request(IDS[1], req) {
            DynamoResponse::Fail(why) => assert_eq!(why, format!("\"s\" holds a set, not a {wanted}")),
            other => panic!("a {wanted} write on a set was answered {other:?}"),
        }
    }
    c.request(IDS[0], DynamoRequest::Put { key: "r".into(), value: b"v".to_vec(), context: None, w: None });
    match c.request(IDS[2], sadd("r", &["a"], 2)) {
        DynamoResponse::Fail(why) => assert_eq!(why, "\"r\" holds a register, not a set"),
        other => panic!("SADD on a register was answered {other:?}"),
    }
    assert_eq!(c.request(IDS[2], get("s", 3)), members(&["a"]), "the set is untouched");
}

#[test]
fn set_and_map_objects_survive_a_restart_from_disk() {
    // The objects are records like registers: a node rebuilt from its disk holds them.
    let mut durable = Durable::new();
    let config = DynamoConfig { n: 1, r: 1, w: 1, ..DynamoConfig::default() };
    let mut node = DynamoNode::boot(NodeId(1), &[NodeId(1)], config.clone(), &durable).unwrap();
    let mut rng = SplitMix64(1);
    let mut run = |node: &mut DynamoNode, durable: &mut Durable, seq, req| {
        let mut effects = Vec::new();
        let mut io = Io::new(NodeId(1), Time::ZERO, false, &mut rng, &mut effects);
        node.on_request(&mut io, RequestId { client: ClientId(1), seq }, req);
        let mut reply = None;
        for e in effects {
            match e {
                Effect::Persist(op) => durable.apply_owned(op),
                Effect::Reply { response, .. } => reply = Some(response),
                _ => {}
            }
        }
        reply
    };
    run(&mut node, &mut durable, 1, sadd("s", &["a", "b"], 1));
    run(&mut node, &mut durable, 2, srem("s", &["a"], 1));
    let mut rebooted = DynamoNode::boot(NodeId(1), &[NodeId(1)], config, &durable).unwrap();
    assert_eq!(rebooted.check_invariants(), Ok(()));
    assert_eq!(run(&mut rebooted, &mut durable, 3, get("s", 1)), Some(members(&["b"])));
    // A new add after the restart gets a dot above the old ones (the durable reservation), so the
    // old remove does not swallow it.
    run(&mut rebooted, &mut durable, 4, sadd("s", &["a"], 1));
    assert_eq!(run(&mut rebooted, &mut durable, 5, get("s", 1)), Some(members(&["a", "b"])));
}
