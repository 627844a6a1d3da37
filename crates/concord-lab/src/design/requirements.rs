//! The requirements file of `concord design` (TOML): what the system must hold, serve and survive.
//!
//! ```toml
//! name = "social app, three regions"
//!
//! [data]
//! size_gb = 2000            # logical data today (one copy)
//! growth_per_year = 0.5     # +50 % a year, compounded
//! years = 2                 # plan for the size in this many years
//! value_bytes = 1000        # mean value size
//! key_bytes = 32            # mean key size (default 32)
//!
//! [load]
//! reads_per_s = 200000      # at peak
//! writes_per_s = 20000
//! zipf_s = 0.99             # key popularity: P(rank r) ∝ 1/r^s (0 = uniform)
//!
//! [[region]]                # one table per region, in the order of the RTT matrix
//! name = "eu"
//! zones = 3                 # independent failure zones in the region
//! clients = 0.5             # share of the requests that come from here (default: equal)
//!
//! [network]
//! rtt_ms = [[0, 80, 150], [80, 0, 100], [150, 100, 0]]   # between regions (omit for one region)
//! zone_rtt_ms = 1.0         # between zones of one region (default 1)
//! local_rtt_ms = 0.3        # within a zone, and client to its nearest node (default 0.3)
//!
//! [availability]
//! target = 0.9999           # fraction of requests served (four nines)
//! survive = "region"        # the largest failure to ride through: "node", "zone" or "region"
//!
//! [durability]
//! copies = 3                # at least this many copies of every acknowledged write
//! regions_lost = 1          # acknowledged writes survive losing this many whole regions
//!
//! [latency]
//! read_p99_ms = 50
//! write_p99_ms = 200
//!
//! [[kind]]                  # one table per kind of data
//! name = "posts"
//! data = 0.7                # its share of the data, the reads and the writes
//! reads = 0.6
//! writes = 0.5
//! consistency = "eventual"  # "linearizable", "read-your-writes" or "eventual"
//! staleness_ms = 500        # eventual: a read misses a write acknowledged this long ago …
//! staleness_p = 0.999       # … with probability at most 1 − this (default 0.999)
//! # read_p99_ms / write_p99_ms: this kind's own objectives (default: [latency])
//!
//! [failures]                # optional: independent failure probabilities (defaults below)
//! [hardware]                # optional: what one node / one shard can take (defaults below)
//! [force]                   # optional: override the designer's choices (to see what breaks)
//! ```
//!
//! Every table is checked: unknown keys and impossible values are errors with the reason.

use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Requirements {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub data: Data,
    pub load: Load,
    #[serde(rename = "region")]
    pub regions: Vec<Region>,
    #[serde(default)]
    pub network: Network,
    pub availability: Availability,
    #[serde(default)]
    pub durability: Durability,
    pub latency: LatencyTargets,
    #[serde(rename = "kind")]
    pub kinds: Vec<Kind>,
    #[serde(default)]
    pub failures: Failures,
    #[serde(default)]
    pub hardware: Hardware,
    #[serde(default)]
    pub force: Force,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Data {
    pub size_gb: f64,
    #[serde(default)]
    pub growth_per_year: f64,
    #[serde(default = "one")]
    pub years: f64,
    pub value_bytes: f64,
    #[serde(default = "default_key_bytes")]
    pub key_bytes: f64,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Load {
    pub reads_per_s: f64,
    pub writes_per_s: f64,
    #[serde(default)]
    pub zipf_s: f64,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Region {
    pub name: String,
    #[serde(default = "one_u32")]
    pub zones: u32,
    /// Share of the requests from this region (normalised over all regions; default equal).
    pub clients: Option<f64>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Network {
    pub rtt_ms: Vec<Vec<f64>>,
    pub zone_rtt_ms: f64,
    pub local_rtt_ms: f64,
}

impl Default for Network {
    fn default() -> Self {
        Network { rtt_ms: Vec::new(), zone_rtt_ms: 1.0, local_rtt_ms: 0.3 }
    }
}

/// A failure domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Domain {
    Node,
    Zone,
    Region,
}

impl Domain {
    pub fn name(self) -> &'static str {
        match self {
            Domain::Node => "node",
            Domain::Zone => "zone",
            Domain::Region => "region",
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Availability {
    pub target: f64,
    pub survive: Domain,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Durability {
    pub copies: u32,
    pub regions_lost: u32,
}

impl Default for Durability {
    fn default() -> Self {
        Durability { copies: 3, regions_lost: 0 }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LatencyTargets {
    pub read_p99_ms: f64,
    pub write_p99_ms: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Consistency {
    Linearizable,
    ReadYourWrites,
    Eventual,
}

impl Consistency {
    pub fn name(self) -> &'static str {
        match self {
            Consistency::Linearizable => "linearizable",
            Consistency::ReadYourWrites => "read-your-writes",
            Consistency::Eventual => "eventual",
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Kind {
    pub name: String,
    /// Shares of the data, the reads and the writes.
    pub data: f64,
    pub reads: f64,
    pub writes: f64,
    pub consistency: Consistency,
    pub staleness_ms: Option<f64>,
    #[serde(default = "default_staleness_p")]
    pub staleness_p: f64,
    pub read_p99_ms: Option<f64>,
    pub write_p99_ms: Option<f64>,
}

/// Independent failures: the fraction of time each unit is down, and how often a node fails.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Failures {
    /// A node is down this fraction of the time (0.001 ≈ 8.8 hours a year).
    pub node_down: f64,
    /// A zone (power, network of one building) is down this fraction of the time.
    pub zone_down: f64,
    /// A whole region is down this fraction of the time.
    pub region_down: f64,
    /// Node failures per node per year: each costs a failover for the groups it led.
    pub node_failures_per_year: f64,
}

impl Default for Failures {
    fn default() -> Self {
        Failures { node_down: 0.001, zone_down: 0.0002, region_down: 0.00005, node_failures_per_year: 4.0 }
    }
}

/// What one machine and one shard can take (defaults: a commodity server with an SSD).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Hardware {
    /// Disk per node.
    pub node_disk_gb: f64,
    /// Fill disks to at most this fraction (room for compaction, snapshots, moves).
    pub disk_fill: f64,
    /// Replica operations per second one node serves (reads and replicated writes together).
    pub node_ops_per_s: f64,
    /// The largest shard: a shard is the unit a move copies, so it should copy in minutes.
    pub shard_max_gb: f64,
    /// Writes per second one replication group (one Raft leader's log) commits.
    pub shard_writes_per_s: f64,
    /// One disk sync (a write is acknowledged after it).
    pub disk_sync_ms: f64,
    /// Memory per cache node.
    pub cache_node_gb: f64,
    /// Requests per second one cache node serves.
    pub cache_node_ops_per_s: f64,
}

impl Default for Hardware {
    fn default() -> Self {
        Hardware {
            node_disk_gb: 2000.0,
            disk_fill: 0.7,
            node_ops_per_s: 20_000.0,
            shard_max_gb: 64.0,
            shard_writes_per_s: 5_000.0,
            disk_sync_ms: 0.5,
            cache_node_gb: 64.0,
            cache_node_ops_per_s: 100_000.0,
        }
    }
}

/// Overrides of the designer's choices: what a deliberately different design does.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Force {
    /// Replicas per shard (every kind).
    pub replicas: Option<u32>,
    /// Put every replica in this one region (index into `[[region]]`).
    pub one_region: Option<usize>,
    /// Dynamo quorums `[r, w]` for the eventual and read-your-writes kinds.
    pub quorum: Option<[u32; 2]>,
    /// Cache size in GB (0: no cache).
    pub cache_gb: Option<f64>,
    /// Nodes in the cluster.
    pub nodes: Option<u32>,
}

fn one() -> f64 {
    1.0
}
fn one_u32() -> u32 {
    1
}
fn default_key_bytes() -> f64 {
    32.0
}
fn default_staleness_p() -> f64 {
    0.999
}

impl Requirements {
    /// Parse and check a requirements file.
    pub fn parse(path: &Path, text: &str) -> anyhow::Result<Requirements> {
        let req: Requirements =
            toml::from_str(text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        req.validate().map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Ok(req)
    }

    pub fn load(path: &Path) -> anyhow::Result<Requirements> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        Self::parse(path, &text)
    }

    /// The round-trip time between regions `a` and `b` (ms); within a region, between zones.
    pub fn region_rtt_ms(&self, a: usize, b: usize) -> f64 {
        if a == b {
            self.network.zone_rtt_ms
        } else {
            self.network.rtt_ms[a][b]
        }
    }

    /// Each region's share of the requests (sums to 1).
    pub fn client_shares(&self) -> Vec<f64> {
        let raw: Vec<f64> = self.regions.iter().map(|r| r.clients.unwrap_or(1.0)).collect();
        let total: f64 = raw.iter().sum();
        raw.iter().map(|x| x / total).collect()
    }

    fn validate(&self) -> Result<(), String> {
        let positive = |what: &str, x: f64| {
            if x.is_finite() && x > 0.0 {
                Ok(())
            } else {
                Err(format!("{what} must be a positive number, not {x}"))
            }
        };
        let fraction = |what: &str, x: f64| {
            if (0.0..=1.0).contains(&x) {
                Ok(())
            } else {
                Err(format!("{what} must be between 0 and 1, not {x}"))
            }
        };
        positive("[data] size_gb", self.data.size_gb)?;
        positive("[data] value_bytes", self.data.value_bytes)?;
        positive("[data] key_bytes", self.data.key_bytes)?;
        positive("[data] years", self.data.years)?;
        if !(self.data.growth_per_year.is_finite() && self.data.growth_per_year >= 0.0) {
            return Err("[data] growth_per_year must be 0 or more".into());
        }
        positive("[load] reads_per_s", self.load.reads_per_s)?;
        positive("[load] writes_per_s", self.load.writes_per_s)?;
        if !(self.load.zipf_s.is_finite() && (0.0..=3.0).contains(&self.load.zipf_s)) {
            return Err("[load] zipf_s must be between 0 (uniform) and 3".into());
        }
        if self.regions.is_empty() || self.regions.len() > 6 {
            return Err("between 1 and 6 [[region]] tables are needed".into());
        }
        for r in &self.regions {
            if !(1..=5).contains(&r.zones) {
                return Err(format!("region {:?}: zones must be between 1 and 5", r.name));
            }
            if let Some(c) = r.clients {
                if !(c.is_finite() && c >= 0.0) {
                    return Err(format!("region {:?}: clients must be a share >= 0", r.name));
                }
            }
        }
        if self.client_shares().iter().any(|x| !x.is_finite()) {
            return Err("the regions' client shares sum to 0".into());
        }
        let n = self.regions.len();
        if n > 1 {
            if self.network.rtt_ms.len() != n || self.network.rtt_ms.iter().any(|row| row.len() != n) {
                return Err(format!("[network] rtt_ms must be a {n}×{n} matrix (one row per [[region]])"));
            }
            for a in 0..n {
                for b in 0..n {
                    let x = self.network.rtt_ms[a][b];
                    if a != b && !(x.is_finite() && x > 0.0) {
                        return Err(format!("[network] rtt_ms[{a}][{b}] must be positive"));
                    }
                    if (x - self.network.rtt_ms[b][a]).abs() > 1e-9 {
                        return Err(format!("[network] rtt_ms must be symmetric ([{a}][{b}] ≠ [{b}][{a}])"));
                    }
                }
            }
        }
        positive("[network] zone_rtt_ms", self.network.zone_rtt_ms)?;
        positive("[network] local_rtt_ms", self.network.local_rtt_ms)?;
        if !(self.availability.target > 0.0 && self.availability.target < 1.0) {
            return Err("[availability] target must be a fraction below 1, e.g. 0.9999".into());
        }
        if !(1..=7).contains(&self.durability.copies) {
            return Err("[durability] copies must be between 1 and 7".into());
        }
        if self.durability.regions_lost as usize >= n.max(1) && self.durability.regions_lost > 0 {
            return Err(format!(
                "[durability] regions_lost = {} but there are only {n} regions: no copy would be left",
                self.durability.regions_lost
            ));
        }
        positive("[latency] read_p99_ms", self.latency.read_p99_ms)?;
        positive("[latency] write_p99_ms", self.latency.write_p99_ms)?;
        if self.kinds.is_empty() {
            return Err("at least one [[kind]] of data is needed".into());
        }
        for k in &self.kinds {
            let what = |f: &str| format!("kind {:?}: {f}", k.name);
            fraction(&what("data"), k.data)?;
            fraction(&what("reads"), k.reads)?;
            fraction(&what("writes"), k.writes)?;
            fraction(&what("staleness_p"), k.staleness_p)?;
            if k.consistency == Consistency::Eventual {
                match k.staleness_ms {
                    Some(ms) => positive(&what("staleness_ms"), ms)?,
                    None => return Err(what("eventual data needs staleness_ms (its staleness bound)")),
                }
            }
            for x in [k.read_p99_ms, k.write_p99_ms].into_iter().flatten() {
                positive(&what("latency objective"), x)?;
            }
        }
        for (what, sum) in [
            ("data", self.kinds.iter().map(|k| k.data).sum::<f64>()),
            ("reads", self.kinds.iter().map(|k| k.reads).sum()),
            ("writes", self.kinds.iter().map(|k| k.writes).sum()),
        ] {
            if (sum - 1.0).abs() > 0.01 {
                return Err(format!("the kinds' {what} shares sum to {sum:.3}, not 1"));
            }
        }
        let f = &self.failures;
        fraction("[failures] node_down", f.node_down)?;
        fraction("[failures] zone_down", f.zone_down)?;
        fraction("[failures] region_down", f.region_down)?;
        if !(f.node_failures_per_year.is_finite() && f.node_failures_per_year >= 0.0) {
            return Err("[failures] node_failures_per_year must be 0 or more".into());
        }
        let h = &self.hardware;
        for (what, x) in [
            ("node_disk_gb", h.node_disk_gb),
            ("node_ops_per_s", h.node_ops_per_s),
            ("shard_max_gb", h.shard_max_gb),
            ("shard_writes_per_s", h.shard_writes_per_s),
            ("cache_node_gb", h.cache_node_gb),
            ("cache_node_ops_per_s", h.cache_node_ops_per_s),
        ] {
            positive(&format!("[hardware] {what}"), x)?;
        }
        fraction("[hardware] disk_fill", h.disk_fill)?;
        if !(h.disk_sync_ms.is_finite() && h.disk_sync_ms >= 0.0) {
            return Err("[hardware] disk_sync_ms must be 0 or more".into());
        }
        if let Some(r) = self.force.replicas {
            if !(1..=7).contains(&r) {
                return Err("[force] replicas must be between 1 and 7".into());
            }
        }
        if let Some(r) = self.force.one_region {
            if r >= n {
                return Err(format!("[force] one_region = {r}: regions are 0..{n}"));
            }
        }
        if let Some([r, w]) = self.force.quorum {
            if r == 0 || w == 0 {
                return Err("[force] quorum = [r, w]: both at least 1".into());
            }
        }
        Ok(())
    }
}
