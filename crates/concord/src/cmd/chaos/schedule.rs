//! The nemesis schedule: which fault, on which nodes, from when to when – all drawn from the seed
//! before the run starts, so a seed names one schedule (the one thing decided during the run is
//! *which* node leads, for `partition-leader`).
//!
//! The run alternates quiet and faulty stretches of `interval` seconds each, Jepsen's usual
//! rhythm: quiet from 0 to `interval`, a fault from `interval` to `2·interval`, quiet again, … .
//! No fault is still open during the last `interval` of the run (the cluster gets that long to
//! recover while the clients still run).
//!
//! The *admin* kinds – `member` (a node out of the Raft group and back) and `shard-move` (a slot
//! range to another shard, or a replica to another node) – are operations an operator runs, not
//! faults: they are dealt from a deck of their own and start halfway through each fault window,
//! so an admin action always overlaps the fault of its window (when faults were asked for too)
//! and runs on into the quiet after it, where it ends (`member` adds the node back).
//!
//! The *clock* kinds (`clock-skew`, `clock-jump`, `clock-strobe`) move nodes' clocks, both the
//! wall clock and the monotonic clock Raft's timers and leases run on, through libfaketime: an
//! offset from true time per node, set when the fault starts and reset to zero when it ends. The
//! offsets (and the strobe's period) are drawn here, from the seed.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::fmt;

/// A kind of fault, as `--nemesis` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Nemesis {
    /// SIGKILL one node; started again when the fault ends.
    Kill,
    /// Freeze one node (SIGSTOP / `docker pause`); thawed when the fault ends.
    Pause,
    /// A stalled leader (a long GC pause): freeze the node that leads (asked when the fault
    /// starts) and cut its links while it is frozen; the others elect a new leader and go on. When
    /// the fault ends it is thawed still cut off – it wakes believing it leads, until its
    /// check-quorum timer says otherwise – and its links are healed a second later.
    PauseLeader,
    /// Cut one node off from all the others.
    PartitionOne,
    /// Cut the node that leads (asked when the fault starts) off from all the others.
    PartitionLeader,
    /// Two sides, a majority and a minority, drawn at random.
    MajoritySplit,
    /// Nodes on a ring, each linked only to its two neighbours: every node sees a majority
    /// (itself and two others, of five), no two nodes the same one (Jepsen's majorities-ring).
    Ring,
    /// Two halves joined through one node only (Jepsen's bridge).
    Bridge,
    /// Admin (strong mode): remove one node from the Raft group; add it back (learner, then
    /// voter) when the action ends.
    Member,
    /// Admin (sharded mode): move a slot range to another shard, or one shard's replica to
    /// another node – which one is decided from the map when the action starts.
    ShardMove,
    /// SIGKILL one node and cut the unsynced end of its last WAL segment at a random length (a
    /// power loss); started again when the fault ends.
    DiskLoseUnsynced,
    /// SIGKILL one node and append a torn record to its WAL; started again when the fault ends,
    /// it must cut the torn tail and say so.
    DiskTornTail,
    /// SIGKILL one node and flip a byte of a synced WAL record: it must refuse to start, naming
    /// the file and offset. When the fault ends it is rebuilt: removed from the group, wiped,
    /// added back.
    DiskCorrupt,
    /// Every node's clock off by an offset of its own (±0.5 to 3 s) while the fault lasts: the
    /// nodes disagree about the time. Each clock steps to its offset when the fault starts, and
    /// back when it ends.
    ClockSkew,
    /// One node's clock jumps forward or back by 2 to 10 s, and back to true time at the end
    /// (Jepsen's clock bump, then reset).
    ClockJump,
    /// The leader's clock (the node that leads when the fault starts) jumps forward or back by 2
    /// to 10 s, and back at the end: back, its timers stall – no heartbeat until its clock has
    /// caught up – while its lease, measured on that clock, lasts longer in real time.
    ClockJumpLeader,
    /// One node's clock flips between true time and an offset of ±0.5 to 3 s every 50 to 500 ms
    /// while the fault lasts (Jepsen's clock strobe); true time again at the end.
    ClockStrobe,
}

impl Nemesis {
    pub const ALL: [Nemesis; 17] = [
        Nemesis::Kill,
        Nemesis::Pause,
        Nemesis::PauseLeader,
        Nemesis::PartitionOne,
        Nemesis::PartitionLeader,
        Nemesis::MajoritySplit,
        Nemesis::Ring,
        Nemesis::Bridge,
        Nemesis::Member,
        Nemesis::ShardMove,
        Nemesis::DiskLoseUnsynced,
        Nemesis::DiskTornTail,
        Nemesis::DiskCorrupt,
        Nemesis::ClockSkew,
        Nemesis::ClockJump,
        Nemesis::ClockJumpLeader,
        Nemesis::ClockStrobe,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Nemesis::Kill => "kill",
            Nemesis::Pause => "pause",
            Nemesis::PauseLeader => "pause-leader",
            Nemesis::PartitionOne => "partition-one",
            Nemesis::PartitionLeader => "partition-leader",
            Nemesis::MajoritySplit => "majority-split",
            Nemesis::Ring => "ring",
            Nemesis::Bridge => "bridge",
            Nemesis::Member => "member",
            Nemesis::ShardMove => "shard-move",
            Nemesis::DiskLoseUnsynced => "disk-lose-unsynced",
            Nemesis::DiskTornTail => "disk-torn-tail",
            Nemesis::DiskCorrupt => "disk-corrupt",
            Nemesis::ClockSkew => "clock-skew",
            Nemesis::ClockJump => "clock-jump",
            Nemesis::ClockJumpLeader => "clock-jump-leader",
            Nemesis::ClockStrobe => "clock-strobe",
        }
    }

    /// Whether the fault cuts network links (a backend without network namespaces cannot).
    pub fn is_partition(self) -> bool {
        !matches!(self, Nemesis::Kill | Nemesis::Pause)
            && !self.is_admin()
            && self.disk_fault().is_none()
            && !self.is_clock()
    }

    /// The disk fault a `disk-*` nemesis injects.
    pub fn disk_fault(self) -> Option<super::disk::DiskFault> {
        use super::disk::DiskFault;
        match self {
            Nemesis::DiskLoseUnsynced => Some(DiskFault::LoseUnsynced),
            Nemesis::DiskTornTail => Some(DiskFault::TornTail),
            Nemesis::DiskCorrupt => Some(DiskFault::Corrupt),
            _ => None,
        }
    }

    /// Whether the fault moves clocks (the nodes must run with libfaketime preloaded).
    pub fn is_clock(self) -> bool {
        matches!(
            self,
            Nemesis::ClockSkew | Nemesis::ClockJump | Nemesis::ClockJumpLeader | Nemesis::ClockStrobe
        )
    }

    /// An operator's action rather than a fault (dealt from its own deck, overlapping the faults).
    pub fn is_admin(self) -> bool {
        matches!(self, Nemesis::Member | Nemesis::ShardMove)
    }
}

impl fmt::Display for Nemesis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Nemesis {
    type Err = String;
    fn from_str(s: &str) -> Result<Nemesis, String> {
        Nemesis::ALL.into_iter().find(|n| n.name() == s.trim()).ok_or_else(|| {
            let names: Vec<&str> = Nemesis::ALL.iter().map(|n| n.name()).collect();
            format!("unknown nemesis `{s}`; expected one of {}", names.join(", "))
        })
    }
}

/// What one planned fault does. Nodes are 0-based indices.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "action")]
pub enum Action {
    Kill {
        node: usize,
    },
    Pause {
        node: usize,
    },
    /// Cut every link `(a, b)` (both directions).
    Cut {
        links: Vec<(usize, usize)>,
    },
    /// Cut the leader (found when the fault starts) off from every other node.
    IsolateLeader,
    /// Freeze the leader (found when the fault starts) and cut it off from every other node.
    PauseLeader,
    /// Remove `node` from the Raft group; add it back at the end.
    Member {
        node: usize,
    },
    /// Move slots or a replica; `pick` chooses which, from the map as it is when the move starts.
    ShardMove {
        pick: u64,
    },
    /// Kill `node` and damage its WAL (the nemesis says how); `pick` seeds where.
    Disk {
        node: usize,
        pick: u64,
    },
    /// Set each `(node, milliseconds)` node's clock that far from true time (negative: behind);
    /// reset every one to true time at the end.
    Clock {
        offsets_ms: Vec<(usize, i64)>,
    },
    /// Set the leader's clock (found when the fault starts) `offset_ms` from true time; every
    /// clock true again at the end.
    ClockLeader {
        offset_ms: i64,
    },
    /// Flip `node`'s clock between true time and `offset_ms` every `period_ms`; true time at the
    /// end.
    Strobe {
        node: usize,
        offset_ms: i64,
        period_ms: u64,
    },
}

/// One fault of the schedule: `action` from `start` to `end` (seconds since the clients started).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Planned {
    pub nemesis: Nemesis,
    pub start: f64,
    pub end: f64,
    #[serde(flatten)]
    pub action: Action,
}

/// Every link between a node of `a` and a node of `b`.
pub fn links_between(a: &[usize], b: &[usize]) -> Vec<(usize, usize)> {
    let mut links = Vec::new();
    for &x in a {
        for &y in b {
            links.push((x.min(y), x.max(y)));
        }
    }
    links.sort();
    links
}

/// The links that `nemesis` cuts among `nodes` nodes (for the partitions drawn at plan time).
fn partition_links(nemesis: Nemesis, nodes: usize, rng: &mut ChaCha8Rng) -> Vec<(usize, usize)> {
    let mut order: Vec<usize> = (0..nodes).collect();
    order.shuffle(rng);
    match nemesis {
        Nemesis::PartitionOne => links_between(&order[..1], &order[1..]),
        Nemesis::MajoritySplit => {
            let minority = (nodes - 1) / 2;
            links_between(&order[..minority], &order[minority..])
        }
        Nemesis::Ring => {
            // Node order[i] keeps its links to order[i ± 1] only.
            let mut links = Vec::new();
            for i in 0..nodes {
                for j in i + 1..nodes {
                    let d = j - i;
                    if d != 1 && d != nodes - 1 {
                        let (a, b) = (order[i], order[j]);
                        links.push((a.min(b), a.max(b)));
                    }
                }
            }
            links.sort();
            links
        }
        Nemesis::Bridge => {
            // order[half] is the bridge: it keeps every link; the halves around it do not meet.
            let half = nodes / 2;
            links_between(&order[..half], &order[half + 1..])
        }
        _ => unreachable!("{nemesis} is not a partition drawn at plan time"),
    }
}

/// A clock offset of `min..=max` milliseconds, ahead or behind with equal odds.
fn clock_offset(rng: &mut ChaCha8Rng, min: i64, max: i64) -> i64 {
    let magnitude = rng.gen_range(min..=max);
    if rng.gen() {
        magnitude
    } else {
        -magnitude
    }
}

/// The schedule for a run of `time_limit` seconds on `nodes` nodes: faults drawn from `nemeses`
/// with the seed's generator, each lasting `interval` seconds, after `interval` quiet. The kinds
/// are dealt like cards – every asked-for kind once, in a shuffled order, before any comes again –
/// so a run with room for k faults tries k different kinds (a short CI run asking for a kill, a
/// pause and a partition gets exactly those three). Admin kinds come from a deck of their own,
/// one per window, from halfway through the window's fault to halfway through the quiet after it.
/// The plan is in order of start.
pub fn plan(seed: u64, nemeses: &[Nemesis], interval: f64, time_limit: f64, nodes: usize) -> Vec<Planned> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::new();
    if nemeses.is_empty() || interval <= 0.0 {
        return out;
    }
    let faults: Vec<Nemesis> = nemeses.iter().copied().filter(|n| !n.is_admin()).collect();
    let admins: Vec<Nemesis> = nemeses.iter().copied().filter(|n| n.is_admin()).collect();
    let (mut deck, mut admin_deck): (Vec<Nemesis>, Vec<Nemesis>) = (Vec::new(), Vec::new());
    let mut start = interval;
    while start + 2.0 * interval <= time_limit + 1e-9 {
        if !faults.is_empty() {
            if deck.is_empty() {
                deck = faults.clone();
                deck.shuffle(&mut rng);
            }
            let nemesis = deck.pop().expect("refilled above");
            let action = match nemesis {
                Nemesis::Kill => Action::Kill { node: rng.gen_range(0..nodes) },
                Nemesis::Pause => Action::Pause { node: rng.gen_range(0..nodes) },
                Nemesis::PartitionLeader => Action::IsolateLeader,
                Nemesis::PauseLeader => Action::PauseLeader,
                n if n.disk_fault().is_some() => {
                    Action::Disk { node: rng.gen_range(0..nodes), pick: rng.gen() }
                }
                Nemesis::ClockSkew => Action::Clock {
                    offsets_ms: (0..nodes).map(|i| (i, clock_offset(&mut rng, 500, 3_000))).collect(),
                },
                Nemesis::ClockJump => Action::Clock {
                    offsets_ms: vec![(rng.gen_range(0..nodes), clock_offset(&mut rng, 2_000, 10_000))],
                },
                Nemesis::ClockJumpLeader => {
                    Action::ClockLeader { offset_ms: clock_offset(&mut rng, 2_000, 10_000) }
                }
                Nemesis::ClockStrobe => Action::Strobe {
                    node: rng.gen_range(0..nodes),
                    offset_ms: clock_offset(&mut rng, 500, 3_000),
                    period_ms: rng.gen_range(50..=500),
                },
                other => Action::Cut { links: partition_links(other, nodes, &mut rng) },
            };
            out.push(Planned { nemesis, start, end: start + interval, action });
        }
        if !admins.is_empty() {
            if admin_deck.is_empty() {
                admin_deck = admins.clone();
                admin_deck.shuffle(&mut rng);
            }
            let nemesis = admin_deck.pop().expect("refilled above");
            let action = match nemesis {
                Nemesis::Member => Action::Member { node: rng.gen_range(0..nodes) },
                Nemesis::ShardMove => Action::ShardMove { pick: rng.gen() },
                other => unreachable!("{other} is not an admin kind"),
            };
            let at = start + interval / 2.0;
            out.push(Planned { nemesis, start: at, end: at + interval, action });
        }
        start += 2.0 * interval;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Which nodes each node still reaches after `links` are cut.
    fn reach(nodes: usize, links: &[(usize, usize)]) -> Vec<usize> {
        (0..nodes)
            .map(|a| (0..nodes).filter(|&b| b != a && !links.contains(&(a.min(b), a.max(b)))).count())
            .collect()
    }

    #[test]
    fn pause_leader_picks_its_node_during_the_run_and_needs_cut_links() {
        let p = plan(7, &[Nemesis::PauseLeader], 3.0, 24.0, 5);
        assert_eq!(p.len(), 3);
        assert!(p.iter().all(|f| f.action == Action::PauseLeader), "{p:?}");
        assert!(Nemesis::PauseLeader.is_partition(), "the local backend refuses it");
        assert_eq!("pause-leader".parse::<Nemesis>(), Ok(Nemesis::PauseLeader));
    }

    #[test]
    fn disk_faults_pick_a_node_and_a_seed_and_need_no_cut_links() {
        let disk = [Nemesis::DiskLoseUnsynced, Nemesis::DiskTornTail, Nemesis::DiskCorrupt];
        let p = plan(5, &disk, 2.0, 14.0, 3);
        assert_eq!(p.len(), 3);
        let mut kinds: Vec<Nemesis> = p.iter().map(|f| f.nemesis).collect();
        kinds.sort();
        assert_eq!(kinds, disk.to_vec(), "one of each");
        assert!(p.iter().all(|f| matches!(f.action, Action::Disk { node, .. } if node < 3)), "{p:?}");
        for n in disk {
            assert!(!n.is_partition() && !n.is_admin() && n.disk_fault().is_some());
            assert_eq!(n.name().parse::<Nemesis>(), Ok(n));
        }
        assert_eq!(Nemesis::Kill.disk_fault(), None);
    }

    #[test]
    fn every_asked_for_kind_comes_once_before_any_comes_again() {
        let asked = [Nemesis::Kill, Nemesis::Pause, Nemesis::PartitionLeader];
        for seed in 0..50 {
            // 35 s at 5 s: faults at 5, 15 and 25 – one of each kind, in the seed's order.
            let p = plan(seed, &asked, 5.0, 35.0, 5);
            let mut kinds: Vec<Nemesis> = p.iter().map(|f| f.nemesis).collect();
            kinds.sort();
            assert_eq!(kinds, asked.to_vec(), "seed {seed}");
        }
    }

    #[test]
    fn a_seed_names_one_schedule_of_alternating_faults_that_ends_before_the_run() {
        let all: Vec<Nemesis> = Nemesis::ALL.into_iter().filter(|n| !n.is_admin()).collect();
        let a = plan(7, &all, 5.0, 60.0, 5);
        assert_eq!(a, plan(7, &all, 5.0, 60.0, 5), "same seed, same schedule");
        assert_ne!(a, plan(8, &all, 5.0, 60.0, 5), "another seed, another schedule");
        // Quiet 0–5, fault 5–10, quiet 10–15, … ; none still open in the last 5 s.
        let starts: Vec<f64> = a.iter().map(|p| p.start).collect();
        assert_eq!(starts, vec![5.0, 15.0, 25.0, 35.0, 45.0]);
        assert!(a.iter().all(|p| p.end - p.start == 5.0 && p.end <= 55.0));
        // Many seeds: only the asked-for kinds, and each draws every kind sometime.
        let mut seen = std::collections::BTreeSet::new();
        for seed in 0..200 {
            for p in plan(seed, &[Nemesis::Kill, Nemesis::Ring, Nemesis::Bridge], 2.0, 20.0, 5) {
                assert!(matches!(p.nemesis, Nemesis::Kill | Nemesis::Ring | Nemesis::Bridge));
                seen.insert(p.nemesis);
                if let Action::Kill { node } = p.action {
                    assert!(node < 5);
                }
            }
        }
        assert_eq!(seen.len(), 3);
        assert!(plan(1, &all, 5.0, 14.0, 5).is_empty(), "too short a run for a fault and a recovery");
    }

    #[test]
    fn partitions_have_their_shapes() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for _ in 0..50 {
            // One node reaches nobody, the others reach each other.
            let mut r = reach(5, &partition_links(Nemesis::PartitionOne, 5, &mut rng));
            r.sort();
            assert_eq!(r, vec![0, 3, 3, 3, 3]);
            // 3 | 2.
            let mut r = reach(5, &partition_links(Nemesis::MajoritySplit, 5, &mut rng));
            r.sort();
            assert_eq!(r, vec![1, 1, 2, 2, 2]);
            // Ring: everyone sees exactly two others (a majority with itself).
            assert_eq!(reach(5, &partition_links(Nemesis::Ring, 5, &mut rng)), vec![2; 5]);
            // Bridge: one node sees all four, the others their partner and the bridge.
            let mut r = reach(5, &partition_links(Nemesis::Bridge, 5, &mut rng));
            r.sort();
            assert_eq!(r, vec![2, 2, 2, 2, 4]);
        }
        // Three nodes: the minority of a split is one node.
        let mut r = reach(3, &partition_links(Nemesis::MajoritySplit, 3, &mut rng));
        r.sort();
        assert_eq!(r, vec![0, 1, 1]);
    }

    #[test]
    fn admin_actions_start_inside_a_fault_and_end_in_the_quiet_after_it() {
        let asked = [Nemesis::PartitionOne, Nemesis::Kill, Nemesis::ShardMove, Nemesis::Member];
        for seed in 0..30 {
            let p = plan(seed, &asked, 4.0, 40.0, 5);
            let (faults, admins): (Vec<&Planned>, Vec<&Planned>) =
                p.iter().partition(|f| !f.nemesis.is_admin());
            assert_eq!(faults.len(), 4, "windows at 4, 12, 20, 28");
            assert_eq!(admins.len(), 4, "one admin action per window");
            for (f, a) in faults.iter().zip(&admins) {
                assert!(f.start < a.start && a.start < f.end && f.end < a.end, "{f:?} {a:?}");
                assert!(a.end <= 40.0 - 2.0);
            }
            // Dealt like cards: both kinds in the first two windows.
            let mut first: Vec<Nemesis> = admins[..2].iter().map(|a| a.nemesis).collect();
            first.sort();
            assert_eq!(first, vec![Nemesis::Member, Nemesis::ShardMove]);
            assert!(p.windows(2).all(|w| w[0].start <= w[1].start), "in order of start");
            assert!(admins.iter().all(|a| match a.action {
                Action::Member { node } => node < 5,
                Action::ShardMove { .. } => true,
                _ => false,
            }));
        }
        // Admin kinds alone: one per window, nothing else.
        let p = plan(3, &[Nemesis::Member], 5.0, 35.0, 5);
        assert_eq!(p.iter().map(|f| f.start).collect::<Vec<_>>(), vec![7.5, 17.5, 27.5]);
        assert!(!Nemesis::Member.is_partition() && !Nemesis::ShardMove.is_partition());
    }

    #[test]
    fn clock_faults_move_clocks_both_ways_within_their_bounds() {
        let asked = [Nemesis::ClockSkew, Nemesis::ClockJump, Nemesis::ClockJumpLeader, Nemesis::ClockStrobe];
        let (mut ahead, mut behind) = (0, 0);
        for seed in 0..100 {
            for p in plan(seed, &asked, 3.0, 30.0, 5) {
                assert!(p.nemesis.is_clock() && !p.nemesis.is_partition() && !p.nemesis.is_admin());
                let offsets = match (&p.nemesis, &p.action) {
                    (Nemesis::ClockSkew, Action::Clock { offsets_ms }) => {
                        assert_eq!(offsets_ms.iter().map(|o| o.0).collect::<Vec<_>>(), vec![0, 1, 2, 3, 4]);
                        assert!(offsets_ms.iter().all(|o| (500..=3_000).contains(&o.1.abs())));
                        offsets_ms.iter().map(|o| o.1).collect()
                    }
                    (Nemesis::ClockJump, Action::Clock { offsets_ms }) => {
                        assert!(offsets_ms.len() == 1 && offsets_ms[0].0 < 5);
                        assert!((2_000..=10_000).contains(&offsets_ms[0].1.abs()), "{offsets_ms:?}");
                        vec![offsets_ms[0].1]
                    }
                    (Nemesis::ClockJumpLeader, &Action::ClockLeader { offset_ms }) => {
                        assert!((2_000..=10_000).contains(&offset_ms.abs()));
                        vec![offset_ms]
                    }
                    (Nemesis::ClockStrobe, &Action::Strobe { node, offset_ms, period_ms }) => {
                        assert!(node < 5 && (500..=3_000).contains(&offset_ms.abs()));
                        assert!((50..=500).contains(&period_ms));
                        vec![offset_ms]
                    }
                    other => panic!("{other:?}"),
                };
                ahead += offsets.iter().filter(|&&o| o > 0).count();
                behind += offsets.iter().filter(|&&o| o < 0).count();
            }
        }
        assert!(ahead > 300 && behind > 300, "both directions: {ahead} ahead, {behind} behind");
    }

    #[test]
    fn names_parse_back() {
        for n in Nemesis::ALL {
            assert_eq!(n.name().parse::<Nemesis>(), Ok(n));
        }
        assert!("clock".parse::<Nemesis>().unwrap_err().contains("partition-leader"));
    }
}
