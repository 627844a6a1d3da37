//! Zones and regions: where each node stands, and what that does to its links.
//!
//! A cloud deployment is a tree: regions (continents apart: tens to hundreds of milliseconds) hold
//! zones (separate buildings, power and network: about a millisecond apart), which hold nodes (a
//! fraction of a millisecond apart). The `[topology]` table of a scenario describes that tree, and
//! the network derives every node-to-node link from it:
//!
//! ```toml
//! [topology]
//! nodes_per_zone = 1        # compact placement: nodes 1, 2, … fill the zones in order (or `nodes` below)
//! zone_latency = { dist = "uniform", min = "100us", max = "200us" }      # one way, within a zone
//! cross_zone_latency = { dist = "uniform", min = "400us", max = "600us" } # one way, zones of a region
//! jitter = 0.1              # every delay × a factor uniform in [0.9, 1.1] (default 0)
//!
//! [[topology.region]]
//! name = "eu"
//! zones = 2                 # named eu-1, eu-2 – or a list of names: ["eu-west-1a", "eu-west-1b"]
//! # nodes = [[1, 4], [2]]   # explicit placement instead of nodes_per_zone: one list per zone
//!
//! [[topology.region]]
//! name = "us"
//! zones = 1
//!
//! [topology.region_latency]  # one way, once per pair of regions (it applies both ways)
//! eu.us = { dist = "lognormal", median = "40ms", sigma = 0.1 }
//! ```
//!
//! The region latencies are the upper triangle of a symmetric matrix: each pair is given once, and
//! a pair given twice (`eu.us` and `us.eu`) or not at all is an error, as is a region, zone or node
//! that does not exist, a node placed twice or nowhere. `[[network.link]]` overrides still apply on
//! top of the topology, and `[network] fifo` (or a link's `fifo`) keeps each link in send order as
//! TCP does – which a WAN with jitter needs: without it a Raft append overtakes the one sent just
//! before it and is rejected.
//!
//! The lookup is precomputed: [`crate::network::Network`] builds its node × node table of links
//! once, when the run starts, so a message costs one index whatever the topology.
//!
//! Faults follow the tree (`crash-zone`, `crash-region`, `restart-zone`, `restart-region`,
//! `partition-zone`, `partition-region` in `[[nemesis.schedule]]`, and `crash-zone`,
//! `crash-region`, `partition-region` in `[nemesis.random]`): see [`crate::scenario::ScheduledFault`].

use crate::latency::Latency;
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

/// `[topology]`, as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topology {
    #[serde(rename = "region")]
    pub regions: Vec<RegionConfig>,
    /// Compact placement: this many nodes in every zone, filled in order – the zones of the first
    /// region, then of the next.
    #[serde(default)]
    pub nodes_per_zone: Option<u32>,
    /// One-way latency between two nodes of one zone.
    #[serde(default)]
    pub zone_latency: Option<Latency>,
    /// One-way latency between nodes in different zones of one region.
    #[serde(default)]
    pub cross_zone_latency: Option<Latency>,
    /// One-way latency between regions: `a.b = { dist = … }`, once per pair.
    #[serde(default)]
    pub region_latency: BTreeMap<String, BTreeMap<String, Latency>>,
    /// Each node-to-node delay is multiplied by a factor drawn uniformly from
    /// `[1 − jitter, 1 + jitter]` (0: none).
    #[serde(default)]
    pub jitter: f64,
    /// Filled by [`Topology::resolve`] when the scenario loads.
    #[serde(skip)]
    pub placement: Placement,
}

/// One `[[topology.region]]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionConfig {
    pub name: String,
    pub zones: Zones,
    /// Explicit placement: the node ids of each zone, in the order of `zones`.
    #[serde(default)]
    pub nodes: Option<Vec<Vec<u32>>>,
}

/// A region's zones: a count (named `REGION-1`, `REGION-2`, …) or a list of names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Zones {
    Count(u32),
    Names(Vec<String>),
}

impl<'de> Deserialize<'de> for Zones {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ZonesVisitor;
        impl<'de> Visitor<'de> for ZonesVisitor {
            type Value = Zones;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number of zones (1 to 100) or a list of zone names")
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Zones, E> {
                match u32::try_from(n) {
                    Ok(n) if (1..=100).contains(&n) => Ok(Zones::Count(n)),
                    _ => Err(E::custom(format!("zones must be between 1 and 100, not {n}"))),
                }
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Zones, E> {
                self.visit_i64(i64::try_from(n).unwrap_or(i64::MAX))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Zones, A::Error> {
                let mut names = Vec::new();
                while let Some(name) = seq.next_element::<String>()? {
                    names.push(name);
                }
                if names.is_empty() {
                    return Err(de::Error::custom("a region needs at least one zone"));
                }
                Ok(Zones::Names(names))
            }
        }
        d.deserialize_any(ZonesVisitor)
    }
}

/// Where every node stands, resolved from the topology.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Placement {
    /// Region names, in the order written.
    pub regions: Vec<String>,
    /// Every zone: its name and its region (index into `regions`), regions in order.
    pub zones: Vec<(String, usize)>,
    /// The zone (index into `zones`) of node `i + 1`.
    pub zone_of: Vec<usize>,
}

impl Placement {
    /// The zone index of `node` (1-based id).
    pub fn zone(&self, node: u32) -> usize {
        self.zone_of[node as usize - 1]
    }

    /// The region index of `node` (1-based id).
    pub fn region(&self, node: u32) -> usize {
        self.zones[self.zone(node)].1
    }

    /// The nodes of zone `z`, in id order.
    pub fn zone_nodes(&self, z: usize) -> Vec<u32> {
        (1..=self.zone_of.len() as u32).filter(|&id| self.zone(id) == z).collect()
    }

    /// The nodes of region `r`, in id order.
    pub fn region_nodes(&self, r: usize) -> Vec<u32> {
        (1..=self.zone_of.len() as u32).filter(|&id| self.region(id) == r).collect()
    }

    pub fn zone_index(&self, name: &str) -> Option<usize> {
        self.zones.iter().position(|(z, _)| z == name)
    }

    pub fn region_index(&self, name: &str) -> Option<usize> {
        self.regions.iter().position(|r| r == name)
    }
}

/// A zone or region a fault aims at: by name, or the one holding the current leader.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Place {
    Named(String),
    /// The zone / region of the node that reports the role `leader` (none: the fault is skipped).
    Leader,
}

impl<'de> Deserialize<'de> for Place {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Ok(if name == "leader" { Place::Leader } else { Place::Named(name) })
    }
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::Named(name) => write!(f, "{name:?}"),
            Place::Leader => f.write_str("\"leader\""),
        }
    }
}

impl Topology {
    /// Check the topology against `nodes` nodes and work out the placement; every error names
    /// what is wrong and where.
    pub fn resolve(&mut self, nodes: u32) -> Result<(), String> {
        if self.regions.is_empty() {
            return Err("[topology] needs at least one [[topology.region]]".into());
        }
        let mut placement = Placement::default();
        let mut explicit: Vec<Option<&Vec<Vec<u32>>>> = Vec::new();
        for (r, region) in self.regions.iter().enumerate() {
            if region.name.is_empty() || region.name == "leader" {
                return Err(format!(
                    "[[topology.region]] number {}: name must be a non-empty name other than \"leader\"",
                    r + 1
                ));
            }
            if placement.regions.contains(&region.name) {
                return Err(format!("[[topology.region]] {:?} is defined twice", region.name));
            }
            placement.regions.push(region.name.clone());
            let names: Vec<String> = match &region.zones {
                Zones::Count(n) => (1..=*n).map(|i| format!("{}-{i}", region.name)).collect(),
                Zones::Names(names) => names.clone(),
            };
            for zone in names {
                if zone.is_empty() || zone == "leader" {
                    return Err(format!(
                        "region {:?}: zone names must be non-empty and not \"leader\"",
                        region.name
                    ));
                }
                if let Some((_, other)) = placement.zones.iter().find(|(z, _)| *z == zone) {
                    return Err(format!(
                        "zone {zone:?} is in two regions ({:?} and {:?}): zone names must be unique",
                        placement.regions[*other], region.name
                    ));
                }
                placement.zones.push((zone, r));
            }
            explicit.push(region.nodes.as_ref());
        }
        let zone_count = placement.zones.len();
        let mut zone_of: Vec<Option<usize>> = vec![None; nodes as usize];
        match (self.nodes_per_zone, explicit.iter().any(Option::is_some)) {
            (Some(_), true) => {
                return Err("[topology]: give either nodes_per_zone or each region's nodes, not both".into())
            }
            (None, false) => {
                return Err("[topology]: place the nodes – nodes_per_zone = N, or nodes = [[…], …] in every [[topology.region]]".into())
            }
            (Some(per), false) => {
                let placed = u64::from(per) * zone_count as u64;
                if per == 0 || placed != u64::from(nodes) {
                    return Err(format!(
                        "[topology] nodes_per_zone = {per} over {zone_count} zones places {placed} nodes, but [run] nodes = {nodes}"
                    ));
                }
                for (i, slot) in zone_of.iter_mut().enumerate() {
                    *slot = Some(i / per as usize);
                }
            }
            (None, true) => {
                let mut first_zone = 0;
                for (r, region) in self.regions.iter().enumerate() {
                    let zones_here = placement.zones.iter().filter(|(_, zr)| *zr == r).count();
                    let Some(lists) = explicit[r] else {
                        return Err(format!(
                            "region {:?} places no nodes: give it nodes = [[…], …] (one list per zone), as the other regions do",
                            region.name
                        ));
                    };
                    if lists.len() != zones_here {
                        return Err(format!(
                            "region {:?} has {zones_here} zones but {} lists of nodes (one list per zone)",
                            region.name,
                            lists.len()
                        ));
                    }
                    for (k, list) in lists.iter().enumerate() {
                        let z = first_zone + k;
                        for &id in list {
                            if !(1..=nodes).contains(&id) {
                                return Err(format!(
                                    "zone {:?}: node {id} does not exist (nodes are 1..={nodes})",
                                    placement.zones[z].0
                                ));
                            }
                            let slot = &mut zone_of[id as usize - 1];
                            if let Some(other) = *slot {
                                return Err(format!(
                                    "node {id} is placed twice: in zone {:?} and in zone {:?}",
                                    placement.zones[other].0, placement.zones[z].0
                                ));
                            }
                            *slot = Some(z);
                        }
                    }
                    first_zone += zones_here;
                }
            }
        }
        if let Some(i) = zone_of.iter().position(Option::is_none) {
            return Err(format!("node {} is placed in no zone of the [topology]", i + 1));
        }
        placement.zone_of = zone_of.into_iter().map(|z| z.expect("checked above")).collect();
        self.check_latencies(&placement)?;
        self.placement = placement;
        Ok(())
    }

    /// Every latency the placement needs is given, once, between regions that exist.
    fn check_latencies(&self, p: &Placement) -> Result<(), String> {
        if !(self.jitter.is_finite() && (0.0..1.0).contains(&self.jitter)) {
            return Err(format!("[topology] jitter must be a fraction in [0, 1), not {}", self.jitter));
        }
        let nodes_in = |z: usize| p.zone_of.iter().filter(|&&x| x == z).count();
        let shared_zone = (0..p.zones.len()).find(|&z| nodes_in(z) >= 2);
        if let (Some(z), None) = (shared_zone, &self.zone_latency) {
            return Err(format!(
                "[topology] zone_latency is missing: zone {:?} holds several nodes",
                p.zones[z].0
            ));
        }
        for (r, name) in p.regions.iter().enumerate() {
            let used = (0..p.zones.len()).filter(|&z| p.zones[z].1 == r && nodes_in(z) > 0).count();
            if used >= 2 && self.cross_zone_latency.is_none() {
                return Err(format!(
                    "[topology] cross_zone_latency is missing: region {name:?} has nodes in several zones"
                ));
            }
        }
        for (a, row) in &self.region_latency {
            for (b, latency) in row {
                let what = format!("[topology.region_latency] {a}.{b}");
                for name in [a, b] {
                    if p.region_index(name).is_none() {
                        return Err(format!("{what}: no region {name:?} in the [topology]"));
                    }
                }
                if a == b {
                    return Err(format!(
                        "{what}: a region's own latencies are zone_latency and cross_zone_latency"
                    ));
                }
                if self.region_latency.get(b).is_some_and(|back| back.contains_key(a)) && a < b {
                    return Err(format!(
                        "{what} and {b}.{a} are both given: give each pair once (it applies both ways)"
                    ));
                }
                latency.validate().map_err(|e| format!("{what}: {e}"))?;
            }
        }
        for a in 0..p.regions.len() {
            for b in a + 1..p.regions.len() {
                if self.between_regions(p, a, b).is_none() {
                    let (x, y) = (&p.regions[a], &p.regions[b]);
                    return Err(format!(
                        "no latency between regions {x:?} and {y:?}: add {x}.{y} = {{ dist = … }} to [topology.region_latency]"
                    ));
                }
            }
        }
        if let Some(l) = &self.zone_latency {
            l.validate().map_err(|e| format!("[topology] zone_latency: {e}"))?;
        }
        if let Some(l) = &self.cross_zone_latency {
            l.validate().map_err(|e| format!("[topology] cross_zone_latency: {e}"))?;
        }
        Ok(())
    }

    fn between_regions<'a>(&'a self, p: &Placement, a: usize, b: usize) -> Option<&'a Latency> {
        let (x, y) = (&p.regions[a], &p.regions[b]);
        self.region_latency
            .get(x)
            .and_then(|row| row.get(y))
            .or_else(|| self.region_latency.get(y).and_then(|row| row.get(x)))
    }

    /// The one-way latency distribution from node `from` to node `to` (1-based ids, placed).
    /// `None` only for a node's link to itself when its zone holds no other node (no
    /// `zone_latency` was needed): the network then uses `[network] latency`.
    pub fn latency(&self, from: u32, to: u32) -> Option<&Latency> {
        let p = &self.placement;
        let (za, zb) = (p.zone(from), p.zone(to));
        let (ra, rb) = (p.zones[za].1, p.zones[zb].1);
        let found = if ra != rb {
            self.between_regions(p, ra, rb)
        } else if za != zb {
            self.cross_zone_latency.as_ref()
        } else {
            self.zone_latency.as_ref()
        };
        debug_assert!(found.is_some() || from == to, "resolve checked that every needed latency is given");
        found
    }

    /// Read the files of empirical distributions.
    pub fn load(&mut self, base: &Path) -> Result<(), String> {
        for l in [&mut self.zone_latency, &mut self.cross_zone_latency].into_iter().flatten() {
            l.load(base)?;
        }
        for row in self.region_latency.values_mut() {
            for l in row.values_mut() {
                l.load(base)?;
            }
        }
        Ok(())
    }

    /// Each node's region and zone, for the trace's `topology` line (a viewer labels nodes by it).
    pub fn describe(&self) -> serde_json::Value {
        let p = &self.placement;
        let nodes: serde_json::Map<String, serde_json::Value> = (1..=p.zone_of.len() as u32)
            .map(|id| {
                let (zone, region) = &p.zones[p.zone(id)];
                (id.to_string(), serde_json::json!({"region": p.regions[*region], "zone": zone}))
            })
            .collect();
        serde_json::Value::Object(nodes)
    }
}
