//! Each fault the simulator can inject does what it says – shown with a tiny probe protocol that
//! records everything that happens to it.

use concord_core::history::{Completion, Op, Service};
use concord_core::{ClientId, Durable, Io, Message, NodeId, Process, RequestId, Time};
use concord_sim::{Scenario, SimProtocol, Simulation};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProbeConfig {}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Ping(u64);

impl Message for Ping {
    fn kind(&self) -> &'static str {
        "ping"
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
enum ProbeRequest {
    /// Send `count` pings numbered from `first` to `to`.
    Send { to: u32, first: u64, count: u64 },
    /// Persist `key`, then sync if asked.
    Write { key: String, sync: bool },
    /// Persist `first`, sync, then persist `then` (without syncing).
    WriteSyncWrite { first: String, then: String },
    /// Record the local clock.
    ReadClock,
    /// Arm a timer.
    Arm { after_ms: u64 },
    /// Cancel it.
    Disarm,
}

/// Records what happened to it.
struct Probe {
    received: Vec<(NodeId, u64)>,
    clock_readings: Vec<Time>,
    timer_fired_at: Vec<Time>,
    booted_with: Durable,
}

impl Process for Probe {
    type Message = Ping;
    type Timer = u8;
    type Request = ProbeRequest;
    type Response = ();

    fn on_start(&mut self, _io: &mut Io<'_, Self>) {}

    fn on_message(&mut self, _io: &mut Io<'_, Self>, from: NodeId, msg: Ping) {
        self.received.push((from, msg.0));
    }

    fn on_timer(&mut self, io: &mut Io<'_, Self>, _timer: u8) {
        self.timer_fired_at.push(io.now());
    }

    fn on_request(&mut self, io: &mut Io<'_, Self>, _request: RequestId, req: ProbeRequest) {
        match req {
            ProbeRequest::Send { to, first, count } => {
                for tag in first..first + count {
                    io.send(NodeId(to), Ping(tag));
                }
            }
            ProbeRequest::Write { key, sync } => {
                io.put(key, vec![1, 2, 3, 4]);
                if sync {
                    io.sync();
                }
            }
            ProbeRequest::WriteSyncWrite { first, then } => {
                io.put(first, vec![1, 2, 3, 4]);
                io.sync();
                io.put(then, vec![1, 2, 3, 4]);
            }
            ProbeRequest::ReadClock => self.clock_readings.push(io.now()),
            ProbeRequest::Arm { after_ms } => io.set_timer(0, Duration::from_millis(after_ms)),
            ProbeRequest::Disarm => io.cancel_timer(0),
        }
    }
}

impl Service for Probe {
    fn request(_client: ClientId, _seq: u64, _op: &Op) -> ProbeRequest {
        ProbeRequest::ReadClock
    }
    fn completion(_op: &Op, _response: &()) -> Completion {
        Completion::Ok(concord_core::Value::Nil)
    }
}

impl SimProtocol for Probe {
    type Config = ProbeConfig;
    fn boot(
        _id: NodeId,
        _cluster: &[NodeId],
        _config: &ProbeConfig,
        durable: &Durable,
    ) -> Result<Self, String> {
        Ok(Probe {
            received: Vec::new(),
            clock_readings: Vec::new(),
            timer_fired_at: Vec::new(),
            booted_with: durable.clone(),
        })
    }
}

/// A simulation of the probe with `extra` TOML, started and run to 1 ms (all nodes booted).
fn sim(extra: &str, seed: u64) -> Simulation<Probe> {
    let text = format!("[run]\nnodes = 3\nduration = \"60s\"\n{extra}\n[protocol.probe]\n");
    let scenario = Scenario::<ProbeConfig>::parse(Path::new("probe.toml"), &text).expect("valid scenario");
    let mut sim = Simulation::new(Arc::new(scenario), concord_sim::RunOptions { seed, ..Default::default() });
    sim.start();
    sim.run_until(Time(1_000_000));
    sim
}

fn ms(n: u64) -> Time {
    Time(n * 1_000_000)
}

fn received(sim: &Simulation<Probe>, node: u32) -> Vec<(NodeId, u64)> {
    sim.node(NodeId(node)).expect("node is up").received.clone()
}

const CONSTANT: &str = "[network]\nlatency = { dist = \"constant\", value = \"10ms\" }\n";

#[test]
fn messages_arrive_after_the_link_latency() {
    let mut s = sim(CONSTANT, 1);
    s.inject(NodeId(1), ProbeRequest::Send { to: 2, first: 0, count: 1 });
    s.run_until(ms(10));
    assert!(received(&s, 2).is_empty(), "not before 10 ms");
    s.run_until(ms(12));
    assert_eq!(received(&s, 2), vec![(NodeId(1), 0)]);
}

#[test]
fn a_partitioned_link_delivers_nothing_until_healed() {
    let mut s = sim(CONSTANT, 1);
    s.partition(&[vec![1], vec![2, 3]]);
    s.inject(NodeId(1), ProbeRequest::Send { to: 2, first: 0, count: 10 });
    s.inject(NodeId(3), ProbeRequest::Send { to: 2, first: 100, count: 1 });
    s.run_until(ms(100));
    assert_eq!(received(&s, 2), vec![(NodeId(3), 100)], "only the link inside the group works");
    s.heal();
    s.inject(NodeId(1), ProbeRequest::Send { to: 2, first: 200, count: 1 });
    s.run_until(ms(200));
    assert_eq!(received(&s, 2).last(), Some(&(NodeId(1), 200)));
}

#[test]
fn a_message_in_flight_when_the_cut_happens_is_lost() {
    let mut s = sim(CONSTANT, 1);
    s.inject(NodeId(1), ProbeRequest::Send { to: 2, first: 0, count: 1 });
    s.run_until(ms(5));
    s.partition(&[vec![1], vec![2, 3]]);
    s.run_until(ms(50));
    assert!(received(&s, 2).is_empty());
}

#[test]
fn a_one_way_partition_cuts_one_direction_only() {
    let extra =
        format!("{CONSTANT}[[nemesis.schedule]]\nat = \"0s\"\naction = \"one-way\"\nfrom = [1]\nto = [2]\n");
    let mut s = sim(&extra, 1);
    s.inject(NodeId(1), ProbeRequest::Send { to: 2, first: 0, count: 5 });
    s.inject(NodeId(2), ProbeRequest::Send { to: 1, first: 10, count: 5 });
    s.run_until(ms(100));
    assert!(received(&s, 2).is_empty(), "1 → 2 is cut");
    assert_eq!(received(&s, 1).len(), 5, "2 → 1 still works");
}

#[test]
fn loss_drops_about_the_configured_fraction() {
    let mut s = sim("[network]\nloss = 0.3\n", 3);
    s.inject(NodeId(1), ProbeRequest::Send { to: 2, first: 0, count: 2000 });
    s.run_until(ms(100));
    let got = received(&s, 2).len() as f64 / 2000.0;
    assert!((0.65..0.75).contains(&got), "delivered fraction {got}");
}

#[test]
fn duplication_delivers_twice() {
    let mut s = sim("[network]\nduplicate = 1.0\n", 1);
    s.inject(NodeId(1), ProbeRequest::Send { to: 2, first: 0, count: 50 });
    s.run_until(ms(100));
    let got = received(&s, 2);
    assert_eq!(got.len(), 100);
    for tag in 0..50 {
        assert_eq!(got.iter().filter(|(_, t)| *t == tag).count(), 2, "ping {tag} twice");
    }
}

#[test]
fn fifo_links_keep_order_and_others_reorder() {
    let in_order = |fifo: bool| {
        let extra = format!(
            "[network]\nlatency = {{ dist = \"uniform\", min = \"1ms\", max = \"20ms\" }}\nfifo = {fifo}\n"
        );
        let mut s = sim(&extra, 5);
        s.inject(NodeId(1), ProbeRequest::Send { to: 2, first: 0, count: 200 });
        s.run_until(ms(100));
        let tags: Vec<u64> = received(&s, 2).into_iter().map(|(_, t)| t).collect();
        assert_eq!(tags.len(), 200);
        tags.windows(2).all(|w| w[0] < w[1])
    };
    assert!(in_order(true), "FIFO delivers in send order");
    assert!(!in_order(false), "without FIFO the latency distribution reorders");
}

#[test]
fn a_crash_keeps_synced_writes_and_loses_unsynced_ones() {
    let mut s = sim("", 1);
    s.inject(NodeId(1), ProbeRequest::Write { key: "synced".into(), sync: true });
    s.inject(NodeId(1), ProbeRequest::Write { key: "unsynced".into(), sync: false });
    s.run_until(ms(10));
    s.crash(NodeId(1));
    assert!(s.node(NodeId(1)).is_none(), "a crashed node is down");
    s.restart(NodeId(1));
    let disk = &s.node(NodeId(1)).unwrap().booted_with;
    assert!(disk.get("synced").is_some());
    assert!(disk.get("unsynced").is_none());
}

#[test]
fn a_sync_still_in_flight_at_the_crash_protects_nothing() {
    let mut s = sim("[disk]\nsync_latency = { dist = \"constant\", value = \"5ms\" }\n", 1);
    s.inject(NodeId(1), ProbeRequest::Write { key: "a".into(), sync: true });
    s.run_until(ms(3));
    s.crash(NodeId(1));
    s.restart(NodeId(1));
    assert!(s.node(NodeId(1)).unwrap().booted_with.get("a").is_none());
    s.inject(NodeId(1), ProbeRequest::Write { key: "b".into(), sync: true });
    s.run_until(ms(20));
    s.crash(NodeId(1));
    s.restart(NodeId(1));
    assert!(s.node(NodeId(1)).unwrap().booted_with.get("b").is_some(), "a completed sync protects");
}

#[test]
fn torn_crashes_cut_an_unsynced_write_short() {
    let torn = (0..50).any(|seed| {
        let mut s = sim("[disk]\non_crash = \"torn\"\n", seed);
        for key in ["a", "b", "c"] {
            s.inject(NodeId(1), ProbeRequest::Write { key: key.into(), sync: false });
        }
        s.run_until(ms(5));
        s.crash(NodeId(1));
        s.restart(NodeId(1));
        let disk = &s.node(NodeId(1)).unwrap().booted_with;
        ["a", "b", "c"].iter().any(|k| disk.get(k).is_some_and(|v| v.len() < 4))
    });
    assert!(torn, "some seed tears a write");
}

#[test]
fn a_crash_forgets_volatile_state_and_timers() {
    let mut s = sim(CONSTANT, 1);
    s.inject(NodeId(2), ProbeRequest::Arm { after_ms: 50 });
    s.inject(NodeId(1), ProbeRequest::Send { to: 2, first: 0, count: 3 });
    s.run_until(ms(20));
    assert_eq!(received(&s, 2).len(), 3);
    s.crash(NodeId(2));
    s.restart(NodeId(2));
    s.run_until(ms(100));
    let n2 = s.node(NodeId(2)).unwrap();
    assert!(n2.received.is_empty(), "received messages were volatile");
    assert!(n2.timer_fired_at.is_empty(), "the timer died with the old process");
}

#[test]
fn a_paused_node_handles_nothing_until_resumed_then_everything() {
    let mut s = sim(CONSTANT, 1);
    s.pause(NodeId(2));
    s.inject(NodeId(1), ProbeRequest::Send { to: 2, first: 0, count: 4 });
    s.run_until(ms(100));
    assert!(received(&s, 2).is_empty());
    s.resume(NodeId(2));
    s.run_until(ms(101));
    assert_eq!(received(&s, 2).len(), 4, "held messages are delivered on resume");
}

/// Re-arming a timer replaces its firing, earlier or later, across cancels and pauses. (The
/// simulator keeps one queue entry per timer and re-queues it when an older one comes up – sim.rs,
/// `Armed` – so this is where a slip in that bookkeeping would show.)
#[test]
fn a_re_armed_timer_fires_once_at_its_last_arming() {
    let fired = |s: &Simulation<Probe>| s.node(NodeId(2)).unwrap().timer_fired_at.clone();
    let mut s = sim(CONSTANT, 1);
    // At 1 ms: 51 ms; at 10 ms, later: 110 ms; at 20 ms, earlier: 30 ms; at 25 ms, later: 85 ms.
    for (at, after_ms) in [(1, 50), (10, 100), (20, 10), (25, 60)] {
        s.run_until(ms(at));
        s.inject(NodeId(2), ProbeRequest::Arm { after_ms });
    }
    s.run_until(ms(200));
    assert_eq!(fired(&s), vec![ms(85)]);

    // Cancelled, then armed again later than the cancelled firing: only the new one fires.
    s.inject(NodeId(2), ProbeRequest::Arm { after_ms: 20 }); // 220 ms
    s.run_until(ms(205));
    s.inject(NodeId(2), ProbeRequest::Disarm);
    s.run_until(ms(230));
    s.inject(NodeId(2), ProbeRequest::Arm { after_ms: 40 }); // 270 ms
    s.run_until(ms(300));
    assert_eq!(fired(&s), vec![ms(85), ms(270)]);

    // Re-armed later before a pause: the older entry comes up during the pause and must not fire
    // at the resume; the firing due during the pause fires at the resume.
    s.inject(NodeId(2), ProbeRequest::Arm { after_ms: 50 }); // 350 ms
    s.run_until(ms(310));
    s.inject(NodeId(2), ProbeRequest::Arm { after_ms: 100 }); // 410 ms
    s.run_until(ms(340));
    s.pause(NodeId(2));
    s.run_until(ms(380));
    s.resume(NodeId(2));
    s.run_until(ms(400));
    assert_eq!(fired(&s), vec![ms(85), ms(270)], "the 350 ms entry stood for a replaced arming");
    s.pause(NodeId(2));
    s.run_until(ms(450));
    s.resume(NodeId(2));
    s.run_until(ms(460));
    assert_eq!(fired(&s), vec![ms(85), ms(270), ms(450)], "due during the pause: fires at the resume");
}

#[test]
fn skew_shifts_a_clock_and_drift_stretches_timers() {
    let extra = "[[nemesis.schedule]]\nat = \"0s\"\naction = \"skew\"\nnode = 2\noffset = \"500ms\"\ndrift_ppm = 100000.0\n";
    let mut s = sim(extra, 1);
    for node in [1, 3, 2] {
        s.inject(NodeId(node), ProbeRequest::ReadClock);
    }
    s.run_until(ms(2));
    let reading = |s: &Simulation<Probe>, n: u32| s.node(NodeId(n)).unwrap().clock_readings[0];
    let (a, b) = (reading(&s, 1), reading(&s, 2));
    assert_eq!(reading(&s, 3), a, "unskewed clocks agree");
    assert!(b.0 >= a.0 + 500_000_000, "node 2 is 500 ms ahead: {a} vs {b}");
    // At +10% drift a 1100 ms local timer fires after 1000 ms of true time.
    s.inject(NodeId(2), ProbeRequest::Arm { after_ms: 1100 });
    let armed_at = s.now();
    s.run_until(armed_at + Duration::from_millis(999));
    assert!(s.node(NodeId(2)).unwrap().timer_fired_at.is_empty());
    s.run_until(armed_at + Duration::from_millis(1001));
    assert_eq!(s.node(NodeId(2)).unwrap().timer_fired_at.len(), 1);
}

/// Regression (seeds 2698 and 6648 of scenarios/raft-faults.toml): the simulator used to hold back only
/// the rest of the *same* step behind a sync, so a later step's writes could reach the disk before
/// an earlier step's post-sync writes, and a torn crash left Raft's log compacted past its newest
/// snapshot. A node's I/O is one ordered pipeline.
#[test]
fn a_later_steps_io_waits_behind_an_earlier_sync() {
    let extra = format!("{CONSTANT}[disk]\nsync_latency = {{ dist = \"constant\", value = \"5ms\" }}\n");
    let mut s = sim(&extra, 1);
    let start = s.now();
    s.inject(NodeId(1), ProbeRequest::Write { key: "a".into(), sync: true });
    s.inject(NodeId(1), ProbeRequest::Send { to: 2, first: 0, count: 1 });
    s.run_until(start + Duration::from_millis(14));
    assert!(received(&s, 2).is_empty(), "the send waits for the sync (5 ms) before its 10 ms flight");
    s.run_until(start + Duration::from_millis(16));
    assert_eq!(received(&s, 2).len(), 1);
}

#[test]
fn writes_reach_the_disk_in_the_order_they_were_issued_across_steps() {
    let extra = "[disk]\nsync_latency = { dist = \"constant\", value = \"5ms\" }\non_crash = \"torn\"\n";
    for seed in 0..40 {
        let mut s = sim(extra, seed);
        s.inject(NodeId(1), ProbeRequest::WriteSyncWrite { first: "a".into(), then: "b".into() });
        s.inject(NodeId(1), ProbeRequest::Write { key: "c".into(), sync: false });
        s.run_until(s.now() + Duration::from_millis(7)); // the sync is done; "b" and "c" are not
        s.crash(NodeId(1));
        s.restart(NodeId(1));
        let disk = &s.node(NodeId(1)).unwrap().booted_with;
        assert!(disk.get("a").is_some(), "synced");
        assert!(
            disk.get("c").is_none() || disk.get("b") == Some(&[1, 2, 3, 4][..]),
            "seed {seed}: c without b"
        );
    }
}
