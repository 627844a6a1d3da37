//! The designer: requirements in, a design out – every number with the arithmetic behind it and
//! the alternatives it beat. Pure and deterministic (the only randomness, the PBS Monte Carlo,
//! is seeded).
//!
//! For each kind of data, in this order:
//! 1. **protocol** – linearizable data on Raft; read-your-writes on Dynamo with strict quorums
//!    (R + W > N); eventual data on Dynamo with the cheapest (R, W) that meets the staleness bound
//!    by the PBS model (`eventual::wars`, the lab's own estimator);
//! 2. **replicas and placement** – the fewest replicas (3, then 5) whose spread over regions and
//!    zones keeps a quorum after losing the failure domain to survive, and keeps a copy of every
//!    acknowledged write after losing `regions_lost` regions;
//! 3. **latency** – p99 from the RTT matrix: the client's hop to the node it talks to, the quorum's
//!    round trip (the k-th nearest replica), the disk sync; a weighted quantile over the regions'
//!    client shares;
//! 4. **cache** – for eventual data only: Che's approximation of LRU on the Zipf popularity;
//! 5. **shards** – by size (the largest shard a move can copy) and by the hottest shard's writes;
//! 6. **availability** – exact over independent region, zone and node failures;
//!
//! then for the cluster: nodes by disk and by operations, with room to lose the failure domain,
//! and Little's law for the requests in flight.

use super::requirements::{Consistency, Domain, Kind, Requirements};
use super::zipf::ZipfGroups;
use crate::eventual::wars::{self, LatencyModel, Mixture, Quorum};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

/// Where one replica lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Slot {
    pub region: usize,
    pub zone: u32,
}

/// How a kind of data is replicated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "protocol", rename_all = "kebab-case")]
pub enum Protocol {
    /// One Raft group per shard; reads by ReadIndex at the leader.
    Raft { leader: usize },
    /// Dynamo with N = the replicas, R and W.
    Dynamo { r: u32, w: u32 },
}

/// One choice, with its arithmetic and the alternatives it rejected.
#[derive(Clone, Debug, Serialize)]
pub struct Decision {
    pub topic: String,
    pub choice: String,
    pub arithmetic: Vec<String>,
    /// (alternative, why not).
    pub rejected: Vec<(String, String)>,
}

impl Decision {
    fn new(topic: &str, choice: String) -> Self {
        Decision { topic: topic.into(), choice, arithmetic: Vec::new(), rejected: Vec::new() }
    }
    fn line(&mut self, s: String) {
        self.arithmetic.push(s);
    }
    fn reject(&mut self, alt: String, why: String) {
        self.rejected.push((alt, why));
    }
}

/// A failure the design is judged against.
#[derive(Clone, Debug, Serialize)]
pub struct Survival {
    /// "node", "zone", "region", "partition".
    pub failure: String,
    /// Which instance is the worst (e.g. "region eu").
    pub worst: String,
    pub replicas_lost: usize,
    pub survives: bool,
    pub required: bool,
}

/// The cache of one kind.
#[derive(Clone, Debug, Serialize)]
pub struct CachePlan {
    /// Fraction of the kind's keys cached.
    pub fraction: f64,
    pub memory_gb: f64,
    pub nodes: u32,
    pub hit_ratio: f64,
    pub policy: String,
    /// Hit ratio (Che, LRU) at each candidate fraction: (fraction, hit ratio).
    pub curve: Vec<(f64, f64)>,
}

/// The design of one kind of data.
#[derive(Clone, Debug, Serialize)]
pub struct KindDesign {
    pub name: String,
    pub consistency: Consistency,
    pub protocol: Protocol,
    pub placement: Vec<Slot>,
    pub shards: u64,
    pub data_gb: f64,
    pub keys: f64,
    pub reads_per_s: f64,
    pub writes_per_s: f64,
    /// Reads that reach the database (after the cache).
    pub db_reads_per_s: f64,
    pub cache: Option<CachePlan>,
    pub read_p99_ms: f64,
    pub write_p99_ms: f64,
    /// Targets (the kind's own or the global ones).
    pub read_target_ms: f64,
    pub write_target_ms: f64,
    /// The client's hop to the node it talks to, p99 (part of the two estimates above): to the
    /// leader for Raft writes, to the nearest replica otherwise.
    pub client_hop_p99_ms: f64,
    /// The client's hop to the nearest replica, p99.
    pub near_hop_p99_ms: f64,
    pub availability: f64,
    pub survival: Vec<Survival>,
    /// Eventual data: PBS P(consistent) at the staleness bound, and the time to 99.9 %.
    pub pbs_p_at_bound: Option<f64>,
    pub pbs_t999_ms: Option<f64>,
    /// Acknowledged writes survive losing `regions_lost` regions.
    pub durable: bool,
    pub decisions: Vec<Decision>,
    /// Raft timing chosen for this placement: (heartbeat, election timeout min, max) in ms.
    pub raft_timing_ms: (f64, f64, f64),
    /// Estimated time to replace a failed leader (ms).
    pub failover_ms: f64,
    /// P(enough replicas reachable), before failovers.
    pub p_quorum: f64,
}

impl KindDesign {
    pub fn replicas(&self) -> usize {
        self.placement.len()
    }
}

/// The whole design.
#[derive(Clone, Debug, Serialize)]
pub struct Design {
    pub kinds: Vec<KindDesign>,
    pub nodes: u32,
    pub cache_nodes: u32,
    pub future_data_gb: f64,
    pub in_flight: f64,
    /// Nodes needed for the operations with room to lose the failure domain.
    pub nodes_needed: u32,
    pub decisions: Vec<Decision>,
}

const SECONDS_PER_YEAR: f64 = 365.25 * 86_400.0;

pub fn fmt_num(x: f64) -> String {
    if !x.is_finite() {
        return format!("{x}");
    }
    let a = x.abs();
    if a >= 1e6 {
        format!("{:.3}e{}", x / 10f64.powi(a.log10().floor() as i32), a.log10().floor() as i32)
    } else if a >= 100.0 || x.fract() == 0.0 {
        format!("{x:.0}")
    } else if a >= 1.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.4}")
    }
}

/// `0.9999` → "99.99 % (4.0 nines, 52.6 min/year down)".
pub fn fmt_availability(a: f64) -> String {
    let nines = -(1.0 - a).max(1e-15).log10();
    let minutes = (1.0 - a) * SECONDS_PER_YEAR / 60.0;
    let down = if minutes >= 120.0 {
        format!("{:.1} h/year", minutes / 60.0)
    } else {
        format!("{minutes:.1} min/year")
    };
    format!("{:.5} % ({nines:.1} nines, {down} down)", 100.0 * a)
}

/// The RTT between two replica slots.
pub fn slot_rtt_ms(req: &Requirements, a: Slot, b: Slot) -> f64 {
    if a.region != b.region {
        req.region_rtt_ms(a.region, b.region)
    } else if a.zone != b.zone {
        req.network.zone_rtt_ms
    } else {
        req.network.local_rtt_ms
    }
}

/// A client of region `c` to the node in `slot` (round trip).
pub fn client_rtt_ms(req: &Requirements, c: usize, slot: Slot) -> f64 {
    if slot.region == c {
        req.network.local_rtt_ms
    } else {
        req.region_rtt_ms(c, slot.region)
    }
}

/// The `q`-quantile of values weighted by shares.
fn weighted_quantile(mut points: Vec<(f64, f64)>, q: f64) -> f64 {
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total: f64 = points.iter().map(|p| p.1).sum();
    let mut acc = 0.0;
    for &(v, w) in &points {
        acc += w / total;
        if acc >= q - 1e-12 {
            return v;
        }
    }
    points.last().map_or(0.0, |p| p.0)
}

/// The latency jitter the estimates allow for: the simulator draws each link's one-way delay
/// uniformly within ±10 % of its nominal value, so a p99 sits at most 10 % above the nominal sum.
pub const JITTER: f64 = 1.10;

/// Syncs a read may queue behind in its tail (one at the node it reaches first, one at a
/// replica): each node has one I/O pipeline, and what follows a sync waits for it.
pub const QUEUED_SYNCS: f64 = 2.0;

/// Spread `n` replicas: over the regions in `order` (round robin), then over each region's zones.
pub fn spread(req: &Requirements, n: usize, order: &[usize]) -> Vec<Slot> {
    let mut used = vec![0u32; req.regions.len()];
    (0..n)
        .map(|i| {
            let region = order[i % order.len()];
            let zone = used[region] % req.regions[region].zones;
            used[region] += 1;
            Slot { region, zone }
        })
        .collect()
}

/// The `k` nearest among `others` (RTTs), 0-based: `k = 0` is the nearest.
fn kth(mut rtts: Vec<f64>, k: usize) -> f64 {
    rtts.sort_by(f64::total_cmp);
    rtts.get(k).copied().unwrap_or(f64::INFINITY)
}

/// Latency estimates (nominal, before jitter) for clients of region `c`.
#[derive(Clone, Copy, Debug)]
pub struct PathLatency {
    pub hop: f64,
    pub read: f64,
    pub write: f64,
}

/// Raft with the leader at `placement[leader]`: a write is the client's hop to the leader, the
/// leader's sync, and the round trip to the (majority − 1)-th nearest follower (who syncs too);
/// a read is served by the nearest replica with a read index from the leader (see the body).
pub fn raft_latency(req: &Requirements, placement: &[Slot], leader: usize, c: usize) -> PathLatency {
    let m = placement.len() / 2 + 1;
    let l = placement[leader];
    let followers: Vec<f64> = placement
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != leader)
        .map(|(_, &s)| slot_rtt_ms(req, l, s))
        .collect();
    let quorum = if m <= 1 { 0.0 } else { kth(followers, m - 2) };
    let hop = client_rtt_ms(req, c, l);
    let sync = req.hardware.disk_sync_ms;
    // Reads go to the nearest replica; a follower asks the leader for a read index (a round trip
    // to it). The leader confirms with a heartbeat round started after the read arrived: with
    // reads arriving faster than one per round trip a round is always in flight, so a read waits
    // for the rest of it and one more – up to two quorum round trips (concord-raft's batched
    // ReadIndex, `read.rs`). A read can also wait behind a write's sync ([`QUEUED_SYNCS`]).
    let (near, near_hop) = placement
        .iter()
        .map(|&s| (s, client_rtt_ms(req, c, s)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .expect("a replica");
    let to_leader = if near == l { 0.0 } else { slot_rtt_ms(req, near, l) };
    PathLatency {
        hop,
        read: near_hop + to_leader + 2.0 * quorum + QUEUED_SYNCS * sync,
        write: hop + sync + quorum + if m > 1 { sync } else { 0.0 },
    }
}

/// Dynamo: the client's request goes to the nearest replica, which coordinates: a write waits for
/// the W fastest acknowledgements (its own first, after its sync), a read for the R fastest
/// answers (plus the syncs it may queue behind, [`QUEUED_SYNCS`]).
pub fn dynamo_latency(req: &Requirements, placement: &[Slot], r: u32, w: u32, c: usize) -> PathLatency {
    let (k, hop) = placement
        .iter()
        .enumerate()
        .map(|(i, &s)| (i, client_rtt_ms(req, c, s)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .expect("at least one replica");
    let coord = placement[k];
    let rtts: Vec<f64> = placement
        .iter()
        .enumerate()
        .map(|(i, &s)| if i == k { 0.0 } else { slot_rtt_ms(req, coord, s) })
        .collect();
    let sync = req.hardware.disk_sync_ms;
    // The coordinator syncs its own copy before its messages leave (one I/O pipeline per node),
    // then each remote replica syncs before it acknowledges.
    let remote = kth(rtts.clone(), w as usize - 1);
    PathLatency {
        hop,
        read: hop + kth(rtts, r as usize - 1) + QUEUED_SYNCS * sync,
        write: hop + sync + if w > 1 { remote + sync } else { 0.0 },
    }
}

/// p99 over the clients of every region (weighted by their shares), with [`JITTER`].
fn p99_over_clients(req: &Requirements, f: impl Fn(usize) -> PathLatency) -> (f64, f64, f64) {
    let shares = req.client_shares();
    let per: Vec<PathLatency> = (0..req.regions.len()).map(&f).collect();
    let q = |g: fn(&PathLatency) -> f64| {
        JITTER * weighted_quantile(per.iter().zip(&shares).map(|(p, &s)| (g(p), s)).collect(), 0.99)
    };
    (q(|p| p.read), q(|p| p.write), q(|p| p.hop))
}

/// The instances of a failure domain among the replicas: (description, replicas lost).
fn instances(req: &Requirements, placement: &[Slot], domain: Domain) -> Vec<(String, usize)> {
    match domain {
        Domain::Node => vec![("one node".to_string(), 1)],
        Domain::Zone => {
            let mut zones: Vec<(usize, u32)> = placement.iter().map(|s| (s.region, s.zone)).collect();
            zones.sort();
            zones.dedup();
            zones
                .iter()
                .map(|&(r, z)| {
                    let lost = placement.iter().filter(|s| s.region == r && s.zone == z).count();
                    (format!("zone {}-{}", req.regions[r].name, z + 1), lost)
                })
                .collect()
        }
        Domain::Region => (0..req.regions.len())
            .map(|r| {
                (
                    format!("region {}", req.regions[r].name),
                    placement.iter().filter(|s| s.region == r).count(),
                )
            })
            .collect(),
    }
}

/// The worst instance of `domain` (most replicas lost; the first such in (region, zone) order).
pub fn worst(req: &Requirements, placement: &[Slot], domain: Domain) -> (String, usize) {
    // The first of the worst, in (region, zone) order – the one the validation's fault hits.
    instances(req, placement, domain)
        .into_iter()
        .fold(None, |best: Option<(String, usize)>, x| match best {
            Some(b) if b.1 >= x.1 => Some(b),
            _ => Some(x),
        })
        .unwrap_or_default()
}

/// The replicas that must be up for requests to be served: a majority (Raft) or max(R, W).
fn needed(protocol: Protocol, n: usize) -> usize {
    match protocol {
        Protocol::Raft { .. } => n / 2 + 1,
        Protocol::Dynamo { r, w } => r.max(w) as usize,
    }
}

/// Which failures the placement survives.
fn survival(req: &Requirements, placement: &[Slot], protocol: Protocol) -> Vec<Survival> {
    let need = needed(protocol, placement.len());
    let regions = req.regions.len();
    let mut out = Vec::new();
    for domain in [Domain::Node, Domain::Zone, Domain::Region] {
        if domain == Domain::Region && regions == 1 {
            continue;
        }
        if domain == Domain::Zone && req.regions.iter().all(|r| r.zones == 1) {
            continue;
        }
        let (what, lost) = worst(req, placement, domain);
        out.push(Survival {
            failure: domain.name().into(),
            worst: what,
            replicas_lost: lost,
            survives: placement.len() - lost >= need,
            required: domain <= req.availability.survive,
        });
    }
    if regions > 1 {
        // A partition cuts one region off: the rest keeps a quorum if the region held few enough.
        let (what, lost) = worst(req, placement, Domain::Region);
        out.push(Survival {
            failure: "partition".into(),
            worst: format!("{what} cut off from the others"),
            replicas_lost: lost,
            survives: placement.len() - lost >= need,
            required: req.availability.survive == Domain::Region,
        });
    }
    out
}

/// P(at least `need` replicas up) with independent region, zone and node failures: exact, by
/// enumerating the states of the regions and zones in use, then binomially over the nodes.
pub fn availability(req: &Requirements, placement: &[Slot], need: usize) -> f64 {
    let f = &req.failures;
    let mut regions: Vec<usize> = placement.iter().map(|s| s.region).collect();
    regions.sort();
    regions.dedup();
    let mut zones: Vec<(usize, u32)> = placement.iter().map(|s| (s.region, s.zone)).collect();
    zones.sort();
    zones.dedup();
    let (nr, nz) = (regions.len(), zones.len());
    let mut total = 0.0;
    for rmask in 0u32..(1 << nr) {
        let p_r: f64 = (0..nr)
            .map(|i| if rmask & (1 << i) != 0 { 1.0 - f.region_down } else { f.region_down })
            .product();
        for zmask in 0u32..(1 << nz) {
            let p_z: f64 = (0..nz)
                .map(|i| if zmask & (1 << i) != 0 { 1.0 - f.zone_down } else { f.zone_down })
                .product();
            let alive = placement
                .iter()
                .filter(|s| {
                    let ri = regions.iter().position(|&r| r == s.region).expect("listed");
                    let zi = zones.iter().position(|&z| z == (s.region, s.zone)).expect("listed");
                    rmask & (1 << ri) != 0 && zmask & (1 << zi) != 0
                })
                .count();
            total += p_r * p_z * p_at_least(alive, need, 1.0 - f.node_down);
        }
    }
    total
}

/// Dynamo: a read needs R replicas, a write W; the fraction of requests served.
pub fn dynamo_availability(req: &Requirements, placement: &[Slot], r: u32, w: u32, read_share: f64) -> f64 {
    read_share * availability(req, placement, r as usize)
        + (1.0 - read_share) * availability(req, placement, w as usize)
}

/// P(at least `k` of `n` independent nodes up), each up with probability `p`.
pub fn p_at_least(n: usize, k: usize, p: f64) -> f64 {
    if k > n {
        return 0.0;
    }
    (k..=n).map(|i| binomial(n, i) * p.powi(i as i32) * (1.0 - p).powi((n - i) as i32)).sum()
}

fn binomial(n: usize, k: usize) -> f64 {
    (0..k).fold(1.0, |acc, i| acc * (n - i) as f64 / (i + 1) as f64)
}

/// Raft timing for a placement: heartbeats at least every 50 ms and no faster than the longest
/// round trip; elections from 3 heartbeats (so a slow round is not taken for a dead leader) to 6.
pub fn raft_timing_ms(req: &Requirements, placement: &[Slot]) -> (f64, f64, f64) {
    let max_rtt = placement
        .iter()
        .flat_map(|&a| placement.iter().map(move |&b| (a, b)))
        .map(|(a, b)| slot_rtt_ms(req, a, b))
        .fold(0.0, f64::max);
    let heartbeat = max_rtt.max(50.0).ceil();
    (heartbeat, 3.0 * heartbeat, 6.0 * heartbeat)
}

/// The PBS model for a placement: A, R, S exponential with the mean one-way delay between
/// replicas of one region, W the same (a write is visible when it arrives), and – across regions
/// – every message to or from a remote replica delayed by the *largest* one-way delay between the
/// replicas' regions (the paper's WAN environment, conservatively).
pub fn pbs_model(req: &Requirements, placement: &[Slot]) -> LatencyModel {
    let mut regions: Vec<usize> = placement.iter().map(|s| s.region).collect();
    regions.sort();
    regions.dedup();
    let local_one_way = req.network.zone_rtt_ms / 2.0;
    let remote = regions
        .iter()
        .flat_map(|&a| regions.iter().map(move |&b| (a, b)))
        .filter(|(a, b)| a != b)
        .map(|(a, b)| req.region_rtt_ms(a, b) / 2.0)
        .fold(0.0, f64::max);
    let ars = Mixture::exponential(local_one_way.max(0.01));
    LatencyModel {
        name: "design",
        what: "the design's network: exponential local delays, + the largest one-way delay between regions",
        w: ars,
        ars,
        remote_extra_ms: remote,
    }
}

/// PBS: (P(consistent) at `t_ms` after the write's acknowledgement, time to 99.9 %).
pub fn pbs(
    req: &Requirements,
    placement: &[Slot],
    r: u32,
    w: u32,
    t_ms: f64,
    trials: usize,
    seed: u64,
) -> (f64, f64) {
    let model = pbs_model(req, placement);
    let q = Quorum::new(placement.len(), r as usize, w as usize);
    if q.is_strict() {
        return (1.0, 0.0);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let th = wars::Thresholds::run(&model, q, trials, &mut rng);
    (th.p_consistent(t_ms), th.time_to(0.999))
}

/// Region order for spreading: most clients first.
fn region_order(req: &Requirements) -> Vec<usize> {
    let shares = req.client_shares();
    let mut order: Vec<usize> = (0..req.regions.len()).collect();
    order.sort_by(|&a, &b| shares[b].total_cmp(&shares[a]).then(a.cmp(&b)));
    order
}

/// The acked-write test: writes are acknowledged by `acked` replicas, the worst case being the
/// `acked` that sit in the fewest regions; they survive losing `k` regions if more replicas
/// acknowledge than the `k` fullest regions hold.
fn durable(req: &Requirements, placement: &[Slot], acked: usize) -> bool {
    let k = req.durability.regions_lost as usize;
    if k == 0 {
        return placement.len() >= req.durability.copies as usize;
    }
    let mut per: Vec<usize> =
        (0..req.regions.len()).map(|r| placement.iter().filter(|s| s.region == r).count()).collect();
    per.sort_by(|a, b| b.cmp(a));
    let lost: usize = per.iter().take(k).sum();
    acked > lost && placement.len() >= req.durability.copies as usize
}

/// One (R, W) the designer weighed.
struct QuorumTry {
    r: u32,
    w: u32,
    r99: f64,
    w99: f64,
    p: f64,
    t999: f64,
    consistent: bool,
    dur: bool,
    fast: bool,
    score: f64,
    avail: f64,
}

/// Seeds and trials for the PBS Monte Carlo.
#[derive(Clone, Copy, Debug)]
pub struct PlanOptions {
    pub pbs_trials: usize,
    pub seed: u64,
}

/// Design everything.
pub fn design(req: &Requirements, options: PlanOptions) -> Design {
    let d = &req.data;
    let future = d.size_gb * (1.0 + d.growth_per_year).powf(d.years);
    let mut decisions = Vec::new();
    let mut size = Decision::new("data to plan for", format!("{} GB (one copy)", fmt_num(future)));
    size.line(format!(
        "{} GB × (1 + {})^{} years = {} GB",
        fmt_num(d.size_gb),
        d.growth_per_year,
        d.years,
        fmt_num(future)
    ));
    size.line(format!(
        "keys: {} GB / ({} B value + {} B key) = {} keys",
        fmt_num(future),
        d.value_bytes,
        d.key_bytes,
        fmt_num(future * 1e9 / (d.value_bytes + d.key_bytes))
    ));
    decisions.push(size);

    let kinds: Vec<KindDesign> =
        req.kinds.iter().enumerate().map(|(i, k)| design_kind(req, k, future, options, i)).collect();

    // Nodes: by disk and by operations, with room to lose the failure domain.
    let h = &req.hardware;
    let stored: f64 = kinds.iter().map(|k| k.data_gb * k.replicas() as f64).sum();
    let by_disk = (stored / (h.node_disk_gb * h.disk_fill)).ceil();
    let replica_ops: f64 = kinds
        .iter()
        .map(|k| {
            let per_read = match k.protocol {
                Protocol::Raft { .. } => 1.0,
                Protocol::Dynamo { r, .. } => r as f64,
            };
            k.db_reads_per_s * per_read + k.writes_per_s * k.replicas() as f64
        })
        .sum();
    let by_ops = (replica_ops / h.node_ops_per_s).ceil();
    let zones_used: usize = {
        let mut z: Vec<(usize, u32)> =
            kinds.iter().flat_map(|k| k.placement.iter().map(|s| (s.region, s.zone))).collect();
        z.sort();
        z.dedup();
        z.len().max(1)
    };
    let survive = req.availability.survive;
    let zones_lost = match survive {
        Domain::Node => 0,
        Domain::Zone => 1,
        Domain::Region => {
            // The most zones one region contributes.
            let mut z: Vec<(usize, u32)> =
                kinds.iter().flat_map(|k| k.placement.iter().map(|s| (s.region, s.zone))).collect();
            z.sort();
            z.dedup();
            (0..req.regions.len()).map(|r| z.iter().filter(|(zr, _)| *zr == r).count()).max().unwrap_or(0)
        }
    };
    let headroom =
        if zones_lost >= zones_used { 1.0 } else { zones_used as f64 / (zones_used - zones_lost) as f64 };
    let max_rf = kinds.iter().map(|k| k.replicas()).max().unwrap_or(1) as f64;
    let raw = by_disk.max((by_ops * headroom).ceil()).max(max_rf);
    let mut nodes = ((raw / zones_used as f64).ceil() * zones_used as f64) as u32;
    let mut nd = Decision::new("nodes", String::new());
    nd.line(format!(
        "disk: Σ data × replicas = {} GB stored; / ({} GB × {} fill) = {} nodes",
        fmt_num(stored),
        fmt_num(h.node_disk_gb),
        h.disk_fill,
        by_disk
    ));
    nd.line(format!(
        "operations: Σ (database reads × replicas read + writes × replicas) = {} replica ops/s; / {} per node = {} nodes",
        fmt_num(replica_ops),
        fmt_num(h.node_ops_per_s),
        by_ops
    ));
    if survive != Domain::Node {
        nd.line(format!(
            "room to lose a {}: {} of {} zones in use may go, so the survivors carry × {:.2}: {} × {:.2} = {} nodes",
            survive.name(),
            zones_lost,
            zones_used,
            headroom,
            by_ops,
            headroom,
            (by_ops * headroom).ceil()
        ));
    }
    nd.line(format!(
        "max(disk, operations with room, replicas {}) = {}, rounded up to a multiple of the {} zones in use = {}",
        max_rf, raw, zones_used, nodes
    ));
    if let Some(forced) = req.force.nodes {
        nd.line(format!("[force] nodes = {forced} (the designer's {nodes} overridden)"));
        nodes = forced;
    }
    nd.choice = format!("{nodes} nodes, {} per zone in use", fmt_num(nodes as f64 / zones_used as f64));
    nd.reject(
        format!("{} nodes (no room)", by_disk.max(by_ops).max(max_rf)),
        format!("losing the worst {} would overload the survivors", survive.name()),
    );
    // Little's law: requests in flight = arrival rate × time in the system.
    let mut lit = Decision::new("requests in flight (Little's law)", String::new());
    let mut in_flight = 0.0;
    for k in &kinds {
        // The nominal latencies (p99 / jitter) stand in for the means, weighted by the mix.
        let rate = k.reads_per_s + k.writes_per_s;
        let mean_ms = (k.reads_per_s * k.read_p99_ms + k.writes_per_s * k.write_p99_ms) / rate / JITTER;
        let l = rate * mean_ms / 1e3;
        in_flight += l;
        lit.line(format!(
            "{}: L = λ·W = {} req/s × {:.1} ms = {} requests in flight",
            k.name,
            fmt_num(rate),
            mean_ms,
            fmt_num(l)
        ));
    }
    lit.line(format!(
        "per node: {} / {} = {} concurrent requests (size connection pools and request queues for this, ×2 for bursts)",
        fmt_num(in_flight),
        nodes,
        fmt_num(in_flight / nodes.max(1) as f64)
    ));
    lit.choice =
        format!("{} in flight, {} per node", fmt_num(in_flight), fmt_num(in_flight / nodes.max(1) as f64));
    let overloaded = by_ops * headroom > nodes as f64;
    if overloaded {
        nd.line(format!(
            "UNDER-PROVISIONED: {} nodes cannot carry {} replica ops/s with room to lose a {}",
            nodes,
            fmt_num(replica_ops),
            survive.name()
        ));
    }
    decisions.push(nd);
    decisions.push(lit);
    let cache_nodes = kinds.iter().filter_map(|k| k.cache.as_ref()).map(|c| c.nodes).sum();
    Design {
        kinds,
        nodes,
        cache_nodes,
        future_data_gb: future,
        in_flight,
        nodes_needed: (by_ops * headroom).ceil().max(max_rf) as u32,
        decisions,
    }
}

fn design_kind(req: &Requirements, k: &Kind, future: f64, options: PlanOptions, index: usize) -> KindDesign {
    let h = &req.hardware;
    let data_gb = future * k.data;
    let keys = (data_gb * 1e9 / (req.data.value_bytes + req.data.key_bytes)).max(1.0);
    let reads = req.load.reads_per_s * k.reads;
    let writes = req.load.writes_per_s * k.writes;
    let read_share = reads / (reads + writes).max(1e-12);
    let read_target = k.read_p99_ms.unwrap_or(req.latency.read_p99_ms);
    let write_target = k.write_p99_ms.unwrap_or(req.latency.write_p99_ms);
    let mut decisions = Vec::new();
    let order = region_order(req);
    let survive = req.availability.survive;

    // --- replicas and placement -------------------------------------------------------------
    let spread_over: Vec<usize> = match req.force.one_region {
        Some(r) => vec![r],
        None => order.clone(),
    };
    let mut place = Decision::new("replicas and placement", String::new());
    let min_copies = req.durability.copies as usize;
    let candidates: Vec<usize> = match req.force.replicas {
        Some(n) => vec![n as usize],
        None => [3usize, 5, 7].into_iter().filter(|&n| n >= min_copies).collect(),
    };
    let quorum_ok = |p: &[Slot], need: usize| -> bool {
        let (_, lost) = worst(req, p, survive);
        p.len() - lost >= need
    };
    let mut chosen: Option<Vec<Slot>> = None;
    for &n in &candidates {
        let p = spread(req, n, &spread_over);
        let need = n / 2 + 1;
        let (what, lost) = worst(req, &p, survive);
        let desc = describe_placement(req, &p);
        let ok = quorum_ok(&p, need) && durable(req, &p, need);
        place.line(format!(
            "{n} replicas [{desc}]: losing the worst {} ({what}) leaves {} of {n}, a majority needs {need} → {}",
            survive.name(),
            n - lost,
            if quorum_ok(&p, need) { "survives" } else { "no quorum" }
        ));
        if ok && chosen.is_none() {
            chosen = Some(p);
        } else if chosen.is_some() {
            place.reject(
                format!("{n} replicas"),
                format!("{n} copies cost more and {} already survives", candidates[0]),
            );
        } else {
            place.reject(
                format!("{n} replicas [{desc}]"),
                format!(
                    "a {} loss ({what}) takes {lost} of {n}: below a majority or below the durability target",
                    survive.name()
                ),
            );
        }
    }
    let placement =
        chosen.clone().unwrap_or_else(|| spread(req, *candidates.last().expect("a candidate"), &spread_over));
    if chosen.is_none() {
        place.line(format!(
            "NO placement of {} replicas over these {} region(s) survives losing a {}: {}",
            candidates.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(" or "),
            spread_over.len(),
            survive.name(),
            if survive == Domain::Region && spread_over.len() < 3 {
                "a majority must outlive any one region, so replicas need at least 3 regions (add a third region, even a small tie-breaker one)"
            } else if survive == Domain::Zone {
                "a majority must outlive any one zone: spread over at least 3 zones"
            } else {
                "add replicas"
            }
        ));
    }
    place.choice = format!("{} replicas: {}", placement.len(), describe_placement(req, &placement));
    decisions.push(place);

    // --- protocol and quorums ----------------------------------------------------------------
    let n = placement.len() as u32;
    let mut proto = Decision::new("replication protocol", String::new());
    let mut pbs_at = None;
    let mut pbs_t999 = None;
    let protocol = match k.consistency {
        Consistency::Linearizable => {
            // The leader where the clients' p99 write is lowest.
            let (leader, (r99, w99, _)) = (0..placement.len())
                .map(|l| (l, p99_over_clients(req, |c| raft_latency(req, &placement, l, c))))
                .min_by(|a, b| a.1 .1.total_cmp(&b.1 .1))
                .expect("a replica");
            proto.choice = format!(
                "Raft (one group per shard), leader preferred in {} (zone {}), reads by ReadIndex",
                req.regions[placement[leader].region].name,
                placement[leader].zone + 1
            );
            proto.line(format!(
                "linearizable reads and writes need one order of operations: a consensus log; write = client hop to the leader + sync + round trip to the {}th-nearest follower + its sync; read at the nearest replica = local hop + its round trip to the leader + up to two batched ReadIndex heartbeat rounds to a majority",
                n / 2
            ));
            for l in 0..placement.len() {
                let (lr, lw, _) = p99_over_clients(req, |c| raft_latency(req, &placement, l, c));
                proto.line(format!(
                    "leader in {} zone {}: p99 read {lr:.1} ms, write {lw:.1} ms (× {JITTER} jitter){}",
                    req.regions[placement[l].region].name,
                    placement[l].zone + 1,
                    if l == leader { " ← preferred (pin it: leadership transfer)" } else { "" }
                ));
            }
            let _ = (r99, w99);
            proto.reject(
                format!("Dynamo with strict quorums R = W = {}", n / 2 + 1),
                "R + W > N is not linearizable: last-write-wins and sloppy quorums reorder concurrent writes, and a read that sees a write in flight can be followed by one that does not".into(),
            );
            Protocol::Raft { leader }
        }
        Consistency::ReadYourWrites | Consistency::Eventual => {
            let forced = req.force.quorum;
            let mut tried = Vec::new();
            let bound = k.staleness_ms.unwrap_or(0.0);
            for r in 1..=n {
                for w in 1..=n {
                    if let Some([fr, fw]) = forced {
                        if (r, w) != (fr.min(n), fw.min(n)) {
                            continue;
                        }
                    }
                    let (r99, w99, _) = p99_over_clients(req, |c| dynamo_latency(req, &placement, r, w, c));
                    let strict = r + w > n;
                    let (p, t999) = if k.consistency == Consistency::Eventual {
                        let seed = options.seed ^ (index as u64 * 977 + u64::from(r * 31 + w));
                        pbs(req, &placement, r, w, bound, options.pbs_trials, seed)
                    } else {
                        (if strict { 1.0 } else { 0.0 }, 0.0)
                    };
                    let consistent = match k.consistency {
                        Consistency::ReadYourWrites => strict,
                        _ => p >= k.staleness_p,
                    };
                    // Durable, and available: the requests served (by their read/write mix) meet
                    // the target, and max(R, W) replicas outlive the failure domain to survive.
                    let avail = dynamo_availability(req, &placement, r, w, read_share);
                    let (_, lost) = worst(req, &placement, survive);
                    let dur = durable(req, &placement, w as usize)
                        && avail >= req.availability.target
                        && placement.len() - lost >= r.max(w) as usize;
                    let fast = r99 <= read_target && w99 <= write_target;
                    let score = (r99 / read_target).max(w99 / write_target);
                    tried.push(QuorumTry { r, w, r99, w99, p, t999, consistent, dur, fast, score, avail });
                }
            }
            // Everything met, fastest first; else consistent and durable/available; else
            // consistent (the kind's consistency is never traded away); else fastest.
            let rank =
                |t: &QuorumTry| (!(t.consistent && t.dur && t.fast), !(t.consistent && t.dur), !t.consistent);
            // Among quorums that miss durability or availability, the most available first.
            let best = tried
                .iter()
                .min_by(|a, b| {
                    rank(a).cmp(&rank(b)).then(if a.consistent && a.dur {
                        a.score.total_cmp(&b.score)
                    } else {
                        b.avail.total_cmp(&a.avail).then(a.score.total_cmp(&b.score))
                    })
                })
                .expect("some quorum was tried");
            let (r, w, p, t999) = (best.r, best.w, best.p, best.t999);
            if k.consistency == Consistency::Eventual {
                pbs_at = Some(p);
                pbs_t999 = Some(t999);
            }
            proto.choice = format!("Dynamo, N = {n}, R = {r}, W = {w}");
            match k.consistency {
                Consistency::ReadYourWrites => proto.line(format!(
                    "read-your-writes: a read quorum must meet the write quorum of the session's write: R + W > N ({r} + {w} > {n}); the cheapest such pair by p99"
                )),
                _ => proto.line(format!(
                    "eventual with P(a read misses a write acknowledged {bound} ms before) ≤ {:.3}: the PBS model (WARS, the eventual lab's estimator) gives P(consistent at {bound} ms) = {:.5} for R = {r}, W = {w} (99.9 % reached {:.1} ms after the acknowledgement)",
                    1.0 - k.staleness_p,
                    p,
                    t999
                )),
            }
            if req.durability.regions_lost > 0 {
                proto.line(format!(
                    "durability: an acknowledged write must outlive losing {} region(s): W = {w} acknowledgements must not all sit in the lost region(s)",
                    req.durability.regions_lost
                ));
            }
            for &QuorumTry { r: tr, w: tw, r99, w99, p: tp, consistent, dur, fast, avail, .. } in &tried {
                if (tr, tw) == (r, w) {
                    proto.line(format!("R = {tr}, W = {tw}: read p99 {r99:.1} ms, write p99 {w99:.1} ms"));
                    continue;
                }
                let mut why = Vec::new();
                if !consistent {
                    why.push(match k.consistency {
                        Consistency::ReadYourWrites => {
                            "R + W ≤ N: a read may miss the session's own write".to_string()
                        }
                        _ => format!("P(consistent at {bound} ms) = {tp:.5} < {}", k.staleness_p),
                    });
                }
                if !dur {
                    if !durable(req, &placement, tw as usize) {
                        why.push(format!(
                            "W = {tw} acknowledgements can all be lost with {} region(s)",
                            req.durability.regions_lost
                        ));
                    }
                    if avail < req.availability.target {
                        why.push(format!("availability {}", fmt_availability(avail)));
                    }
                    let (what, lost) = worst(req, &placement, survive);
                    if placement.len() - lost < tr.max(tw) as usize {
                        why.push(format!(
                            "losing {what} leaves {} < max(R, W) replicas",
                            placement.len() - lost
                        ));
                    }
                }
                if !fast {
                    why.push(format!(
                        "p99 read {r99:.1} / write {w99:.1} ms vs targets {read_target} / {write_target} ms"
                    ));
                }
                if why.is_empty() {
                    why.push(format!("slower: read {r99:.1} / write {w99:.1} ms"));
                }
                proto.reject(format!("R = {tr}, W = {tw}"), why.join("; "));
            }
            proto.reject(
                "Raft".into(),
                format!(
                    "linearizable is more than {} needs: every request goes through one leader (a client hop to it, a majority round trip per read)",
                    k.consistency.name()
                ),
            );
            Protocol::Dynamo { r, w }
        }
    };
    decisions.push(proto);

    // --- latency -------------------------------------------------------------------------------
    let (read99, write99, hop99) = match protocol {
        Protocol::Raft { leader } => p99_over_clients(req, |c| raft_latency(req, &placement, leader, c)),
        Protocol::Dynamo { r, w } => p99_over_clients(req, |c| dynamo_latency(req, &placement, r, w, c)),
    };
    let mut lat = Decision::new(
        "latency (p99 over the clients of every region)",
        format!("read {read99:.1} ms (target {read_target}), write {write99:.1} ms (target {write_target})"),
    );
    let shares = req.client_shares();
    for (c, region) in req.regions.iter().enumerate() {
        let p = match protocol {
            Protocol::Raft { leader } => raft_latency(req, &placement, leader, c),
            Protocol::Dynamo { r, w } => dynamo_latency(req, &placement, r, w, c),
        };
        lat.line(format!(
            "clients in {} ({:.0} % of requests): hop {:.1} ms, read {:.1} ms, write {:.1} ms (nominal)",
            region.name,
            100.0 * shares[c],
            p.hop,
            p.read,
            p.write
        ));
    }
    if read99 > read_target || write99 > write_target {
        lat.line(format!(
            "MISSES the latency objective: {}",
            latency_fix(req, k, protocol, &placement, read99 > read_target, write99 > write_target)
        ));
    }
    decisions.push(lat);

    // --- cache ---------------------------------------------------------------------------------
    let zipf = ZipfGroups::new(keys.round().max(1.0) as u64, req.load.zipf_s);
    let mut cache = None;
    let mut db_reads = reads;
    let mut cd = Decision::new("cache", String::new());
    let fractions = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2];
    let curve: Vec<(f64, f64)> = fractions.iter().map(|&f| (f, zipf.che_lru_hit_ratio(f * keys))).collect();
    let entry_overhead = 1.0 + 64.0 / (req.data.value_bytes + req.data.key_bytes);
    if k.consistency != Consistency::Eventual {
        cd.choice = "none".into();
        cd.reject(
            "a look-aside cache".into(),
            format!(
                "{} reads cannot come from a copy that an invalidation may not have reached yet",
                k.consistency.name()
            ),
        );
    } else {
        // The knee: the smallest size after which doubling adds less than 3 points.
        let mut pick = curve.len() - 1;
        for i in 0..curve.len() - 1 {
            if curve[i + 1].1 - curve[i].1 < 0.03 {
                pick = i;
                break;
            }
        }
        let (mut f, mut hit) = curve[pick];
        if let Some(gb) = req.force.cache_gb {
            f = (gb / (data_gb * entry_overhead)).min(1.0);
            hit = if gb > 0.0 { zipf.che_lru_hit_ratio(f * keys) } else { 0.0 };
            cd.line(format!("[force] cache_gb = {gb}"));
        }
        for &(cf, ch) in &curve {
            cd.line(format!(
                "cache {:.1} % of the keys: LRU hit ratio {:.3} (Che's approximation, Zipf s = {})",
                100.0 * cf,
                ch,
                req.load.zipf_s
            ));
        }
        let memory = f * data_gb * entry_overhead;
        if hit < 0.05 || memory <= 0.0 {
            cd.choice = "none".into();
            cd.line(format!("a cache of {:.1} % hits only {:.3}: not worth its memory", 100.0 * f, hit));
        } else {
            let by_mem = (memory / h.cache_node_gb).ceil();
            let by_ops = (reads / h.cache_node_ops_per_s).ceil();
            let cnodes = by_mem.max(by_ops).max(1.0) as u32;
            db_reads = reads * (1.0 - hit);
            let why_size = if pick + 1 < curve.len() {
                "the next doubling adds < 3 points"
            } else {
                "every doubling up to here still adds ≥ 3 points: the largest size considered"
            };
            cd.line(format!(
                "chosen {:.1} %: {why_size}; memory {:.1} % × {} GB × {:.3} (64 B per entry) = {} GB → max({} by memory, {} by {} reads/s) = {} cache nodes",
                100.0 * f,
                100.0 * f,
                fmt_num(data_gb),
                entry_overhead,
                fmt_num(memory),
                by_mem,
                by_ops,
                fmt_num(reads),
                cnodes
            ));
            cd.line(format!(
                "database reads: {} × (1 − {:.3}) = {} reads/s",
                fmt_num(reads),
                hit,
                fmt_num(db_reads)
            ));
            cd.choice = format!(
                "{:.1} % of the keys ({} GB) on {cnodes} cache node(s), S3-FIFO, hit ratio ≥ {:.3}",
                100.0 * f,
                fmt_num(memory),
                hit
            );
            cd.reject(
                "LRU".into(),
                "the cache lab measured S3-FIFO ≥ LRU at every size and skew (most at small caches); Che's LRU figure is a floor for it".into(),
            );
            if pick + 1 < curve.len() {
                let (f2, h2) = curve[pick + 1];
                cd.reject(
                    format!("{:.1} % of the keys", 100.0 * f2),
                    format!("{:.3} hit ratio: +{:.3} for twice the memory", h2, h2 - hit),
                );
            }
            cd.reject(
                "no cache".into(),
                format!("{} database reads/s instead of {}", fmt_num(reads), fmt_num(db_reads)),
            );
            cache = Some(CachePlan {
                fraction: f,
                memory_gb: memory,
                nodes: cnodes,
                hit_ratio: hit,
                policy: "S3-FIFO".into(),
                curve: curve.clone(),
            });
        }
    }
    decisions.push(cd);

    // --- shards --------------------------------------------------------------------------------
    let p1 = zipf.hottest();
    let by_size = (data_gb / h.shard_max_gb).ceil().max(1.0);
    // The hottest shard takes the hottest key plus its share of the rest: w·(p1 + (1 − p1)/S).
    let by_writes = if writes * p1 >= h.shard_writes_per_s {
        f64::INFINITY
    } else {
        (writes * (1.0 - p1) / (h.shard_writes_per_s - writes * p1)).ceil().max(1.0)
    };
    let mut sd = Decision::new("shards", String::new());
    sd.line(format!(
        "size: {} GB / {} GB per shard (a move copies one shard) = {}",
        fmt_num(data_gb),
        fmt_num(h.shard_max_gb),
        by_size
    ));
    sd.line(format!(
        "hottest key (Zipf s = {}, {} keys): p₁ = 1/H = {:.2e} of the requests",
        req.load.zipf_s,
        fmt_num(keys),
        p1
    ));
    let shards = if by_writes.is_finite() {
        sd.line(format!(
            "writes: the hottest shard takes w·(p₁ + (1 − p₁)/S) ≤ {} writes/s → S ≥ w(1 − p₁)/({} − w·p₁) = {} (w = {} writes/s)",
            fmt_num(h.shard_writes_per_s),
            fmt_num(h.shard_writes_per_s),
            by_writes,
            fmt_num(writes)
        ));
        by_size.max(by_writes) as u64
    } else {
        sd.line(format!(
            "writes: the hottest key alone takes {} writes/s > {} one shard commits: NO number of shards helps (split the key, or batch its writes)",
            fmt_num(writes * p1),
            fmt_num(h.shard_writes_per_s)
        ));
        by_size as u64
    };
    sd.choice = format!("{shards} shards of ≤ {} GB", fmt_num(data_gb / shards as f64));
    sd.reject(
        format!("{} shards", (shards / 2).max(1)),
        "bigger shards: slower moves, or the hottest shard over its write budget".into(),
    );
    if matches!(protocol, Protocol::Raft { .. }) {
        let hot_reads = db_reads * p1;
        sd.line(format!(
            "reads go to the leader: the hottest key's {} reads/s sit on one node ({} of its {} ops/s)",
            fmt_num(hot_reads),
            fmt_num(hot_reads),
            fmt_num(h.node_ops_per_s)
        ));
    }
    decisions.push(sd);

    // --- availability ------------------------------------------------------------------------
    let need = needed(protocol, placement.len());
    let p_quorum = match protocol {
        Protocol::Raft { .. } => availability(req, &placement, need),
        Protocol::Dynamo { r, w } => dynamo_availability(req, &placement, r, w, read_share),
    };
    let timing = raft_timing_ms(req, &placement);
    let failover_ms = timing.2 + timing.0; // detection (≤ max election timeout) + one election round
    let failover_unavail = match protocol {
        Protocol::Raft { .. } => req.failures.node_failures_per_year * failover_ms / 1e3 / SECONDS_PER_YEAR,
        Protocol::Dynamo { .. } => 0.0,
    };
    let avail = p_quorum - failover_unavail;
    let mut ad = Decision::new("availability", fmt_availability(avail));
    ad.line(format!(
        "independent failures: a node down {} of the time, a zone {}, a region {}",
        req.failures.node_down, req.failures.zone_down, req.failures.region_down
    ));
    match protocol {
        Protocol::Raft { .. } => ad.line(format!(
            "P(at least {need} of {} replicas reachable) = {} (exact over region, zone and node states)",
            placement.len(),
            fmt_availability(p_quorum)
        )),
        Protocol::Dynamo { r, w } => ad.line(format!(
            "{:.3} of requests are reads (need R = {r} of {n}), {:.3} writes (need W = {w}): {:.3} × {:.8} + {:.3} × {:.8} = {} (each P exact over region, zone and node states)",
            read_share,
            1.0 - read_share,
            read_share,
            availability(req, &placement, r as usize),
            1.0 - read_share,
            availability(req, &placement, w as usize),
            fmt_availability(p_quorum)
        )),
    }
    if let Protocol::Raft { .. } = protocol {
        ad.line(format!(
            "failovers: {} leader failures a year × {:.0} ms (election timeout ≤ {:.0} ms + a round) = {:.2e} of the year",
            req.failures.node_failures_per_year, failover_ms, timing.2, failover_unavail
        ));
    }
    ad.line(format!(
        "target {} → {}",
        fmt_availability(req.availability.target),
        if avail >= req.availability.target { "met" } else { "MISSED" }
    ));
    decisions.push(ad);

    let survival = survival(req, &placement, protocol);
    let acked = match protocol {
        Protocol::Raft { .. } => placement.len() / 2 + 1,
        Protocol::Dynamo { w, .. } => w as usize,
    };
    KindDesign {
        name: k.name.clone(),
        consistency: k.consistency,
        protocol,
        placement: placement.clone(),
        shards,
        data_gb,
        keys,
        reads_per_s: reads,
        writes_per_s: writes,
        db_reads_per_s: db_reads,
        cache,
        read_p99_ms: read99,
        write_p99_ms: write99,
        read_target_ms: read_target,
        write_target_ms: write_target,
        client_hop_p99_ms: hop99,
        near_hop_p99_ms: {
            let shares = req.client_shares();
            let near: Vec<(f64, f64)> = (0..req.regions.len())
                .map(|c| {
                    (
                        placement.iter().map(|&s| client_rtt_ms(req, c, s)).fold(f64::INFINITY, f64::min),
                        shares[c],
                    )
                })
                .collect();
            JITTER * weighted_quantile(near, 0.99)
        },
        availability: avail,
        survival,
        pbs_p_at_bound: pbs_at,
        pbs_t999_ms: pbs_t999,
        durable: durable(req, &placement, acked),
        decisions,
        raft_timing_ms: timing,
        failover_ms,
        p_quorum,
    }
}

/// What would fix a latency miss.
pub fn latency_fix(
    req: &Requirements,
    k: &Kind,
    protocol: Protocol,
    placement: &[Slot],
    read: bool,
    write: bool,
) -> String {
    let regions: std::collections::BTreeSet<usize> = placement.iter().map(|s| s.region).collect();
    let shares = req.client_shares();
    let bare: Vec<&str> = (0..req.regions.len())
        .filter(|r| !regions.contains(r) && shares[*r] >= 0.01)
        .map(|r| req.regions[r].name.as_str())
        .collect();
    if !bare.is_empty() {
        return format!(
            "clients in {} have no replica in their region and pay a WAN round trip on every request: place one there (e.g. `[force] replicas = {}` spreads one into each region), or serve them from a cache there",
            bare.join(", "),
            req.regions.len().max(placement.len() + bare.len()) | 1
        );
    }
    match protocol {
        Protocol::Raft { .. } if regions.len() > 1 => format!(
            "a majority round trip crosses regions on every {}; either relax {} to read-your-writes or eventual (local quorums), or keep a majority in one region (survives a zone, not a {})",
            if write && read { "read and write" } else if write { "write" } else { "read" },
            k.name,
            req.availability.survive.name()
        ),
        Protocol::Raft { .. } => "clients far from the leader pay the hop to it: move the leader, or relax the consistency".into(),
        Protocol::Dynamo { .. } => {
            "lower R or W (if the staleness bound and durability allow), or replicas nearer to the clients".into()
        }
    }
}

/// "eu: 2 (zones 1, 2) · us: 1".
pub fn describe_placement(req: &Requirements, placement: &[Slot]) -> String {
    let mut parts = Vec::new();
    for (r, region) in req.regions.iter().enumerate() {
        let zones: Vec<String> =
            placement.iter().filter(|s| s.region == r).map(|s| (s.zone + 1).to_string()).collect();
        if !zones.is_empty() {
            parts.push(format!("{}: {} (zone {})", region.name, zones.len(), zones.join(", ")));
        }
    }
    parts.join(" · ")
}
