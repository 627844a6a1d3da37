//! Part 1 – propagation: which version of a key every replica holds, moment by moment.
//!
//! The scenario `scenarios/eventual-propagation.toml` is stepped event by event; after every event that
//! changed a node's data (its `changes()` counter moved), the node's copy of each watched key – as a
//! home replica, and as hints held for others – is compared with what it held before. Each run of an
//! unchanged copy becomes a span of the timeline. From the spans follow the moment every replica
//! first held every value, when the home replicas disagreed (divergence), and when they last came
//! to agree (convergence).

use concord_core::history::{EventType, OpFn};
use concord_core::{NodeId, Time};
use concord_dynamo::store::Object;
use concord_dynamo::{int_value, DynamoNode};
use concord_sim::{RunOptions, Scenario, Simulation};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// The scenario, compiled in so the lab runs from any directory; its path is what the replay
/// command names.
pub const SCENARIO_PATH: &str = "scenarios/eventual-propagation.toml";
const SCENARIO: &str = include_str!("../../../../scenarios/eventual-propagation.toml");

/// What one node held for a key during `[from_ms, to_ms)`.
#[derive(Clone, Debug, Serialize)]
pub struct Holding {
    pub node: u32,
    pub from_ms: f64,
    pub to_ms: f64,
    /// The values held, sorted (several: siblings); empty: nothing.
    pub values: Vec<String>,
    /// Held as a hint for another (unreachable) home replica, not as a home copy.
    pub hint: bool,
}

/// A key's whole story.
#[derive(Clone, Debug, Serialize)]
pub struct KeyTimeline {
    pub key: String,
    pub homes: Vec<u32>,
    pub holdings: Vec<Holding>,
    /// Acknowledged writes: (ack time ms, value).
    pub writes_acked: Vec<(f64, String)>,
    /// value → node → first moment (ms) the node held it (home copy or hint).
    pub first_seen_ms: BTreeMap<String, BTreeMap<u32, f64>>,
    /// Total time the home replicas held different versions.
    pub divergent_ms: f64,
    /// When the home replicas last came to agree (ms), if they did.
    pub converged_at_ms: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Propagation {
    pub seed: u64,
    pub scenario: String,
    pub replay: String,
    pub partition_ms: (f64, f64),
    pub end_ms: f64,
    pub keys: Vec<KeyTimeline>,
    /// Violations the simulator's own checks found (none expected).
    pub violations: Vec<String>,
}

fn ms(t: Time) -> f64 {
    t.0 as f64 / 1e6
}

/// (values, hint) a node holds for `key`.
fn holding(node: &DynamoNode, key: &str) -> (Vec<String>, bool) {
    let show = |o: &Object| -> Vec<String> {
        match o {
            Object::Register(v) => {
                let mut vs: Vec<String> = v.values().into_iter().map(|b| int_value(b).to_string()).collect();
                vs.sort();
                vs
            }
            Object::Counter(c) => vec![format!("counter {}", c.value())],
            Object::Set(s) => vec![format!("set of {}", s.len())],
            Object::Map(m) => vec![format!("hash of {}", m.len())],
        }
    };
    if let Some(o) = node.store().get(key) {
        return (show(o), false);
    }
    let hinted: Vec<String> =
        node.hints().iter().filter(|((_, k), _)| k == key).flat_map(|(_, o)| show(o)).collect();
    let hint = !hinted.is_empty();
    (hinted, hint)
}

pub fn run(seed: u64) -> anyhow::Result<Propagation> {
    let scenario: Scenario<concord_dynamo::DynamoConfig> =
        Scenario::parse(Path::new(SCENARIO_PATH), SCENARIO).map_err(|e| anyhow::anyhow!("{e}"))?;
    let partition = scenario
        .nemesis
        .schedule
        .first()
        .map(|f| f.at())
        .ok_or_else(|| anyhow::anyhow!("{SCENARIO_PATH}: expected a scheduled partition"))?;
    let heal = scenario.run.heal_at.ok_or_else(|| anyhow::anyhow!("{SCENARIO_PATH}: expected heal_at"))?;
    let keys: Vec<String> = (0..scenario.workload.keys).map(|i| format!("k{i}")).collect();
    let scenario = Arc::new(scenario);
    let mut sim =
        Simulation::<DynamoNode>::new(Arc::clone(&scenario), RunOptions { seed, ..Default::default() });
    let ids: Vec<NodeId> = (1..=scenario.run.nodes.0).map(NodeId).collect();
    // Per node: last seen change counter; per (key, node): the open span.
    let mut changes: BTreeMap<NodeId, Option<u64>> = ids.iter().map(|&id| (id, None)).collect();
    let mut open: BTreeMap<(usize, u32), (f64, Vec<String>, bool)> = BTreeMap::new();
    let mut holdings: Vec<Vec<Holding>> = vec![Vec::new(); keys.len()];
    sim.start();
    loop {
        let more = sim.step();
        let now = ms(sim.now());
        for &id in &ids {
            let node = sim.node(id);
            let counter = node.map(|n| n.changes());
            if changes[&id] == counter && counter.is_some() {
                continue;
            }
            changes.insert(id, counter);
            for (k, key) in keys.iter().enumerate() {
                // A crashed node holds nothing we can see (the scenario has no crashes).
                let (values, hint) = node.map(|n| holding(n, key)).unwrap_or_default();
                let slot = (k, id.0);
                if open.get(&slot).is_some_and(|(_, v, h)| *v == values && *h == hint) {
                    continue;
                }
                if let Some((from, v, h)) = open.remove(&slot) {
                    if !v.is_empty() && now > from {
                        holdings[k].push(Holding {
                            node: id.0,
                            from_ms: from,
                            to_ms: now,
                            values: v,
                            hint: h,
                        });
                    }
                }
                open.insert(slot, (now, values, hint));
            }
        }
        if !more {
            break;
        }
    }
    let end = ms(Time::from_duration(scenario.run.duration));
    for ((k, node), (from, values, hint)) in open {
        if !values.is_empty() {
            holdings[k].push(Holding { node, from_ms: from, to_ms: end, values, hint });
        }
    }
    // Acknowledged writes, from the history.
    let history = sim.history();
    let mut invoked: BTreeMap<u64, usize> = BTreeMap::new();
    let mut acked: BTreeMap<String, Vec<(f64, String)>> = BTreeMap::new();
    for (i, e) in history.events.iter().enumerate() {
        match e.kind {
            EventType::Invoke => {
                invoked.insert(e.process, i);
            }
            EventType::Ok if e.op.f == OpFn::Write => {
                if let (Some(_), Some(key)) = (invoked.get(&e.process), e.op.key.clone()) {
                    acked.entry(key).or_default().push((ms(e.time), e.op.value.to_string()));
                }
            }
            _ => {}
        }
    }
    let ring_node = sim.node(NodeId(1)).ok_or_else(|| anyhow::anyhow!("node 1 is down at the end"))?;
    let mut timelines = Vec::new();
    for (k, key) in keys.iter().enumerate() {
        let homes: Vec<u32> =
            ring_node.ring().preference_list(key, ring_node.config().n).iter().map(|n| n.0).collect();
        let mut hs = std::mem::take(&mut holdings[k]);
        hs.sort_by(|a, b| a.node.cmp(&b.node).then(a.from_ms.total_cmp(&b.from_ms)));
        let mut first_seen: BTreeMap<String, BTreeMap<u32, f64>> = BTreeMap::new();
        for h in &hs {
            for v in &h.values {
                let slot = first_seen.entry(v.clone()).or_default().entry(h.node).or_insert(h.from_ms);
                *slot = slot.min(h.from_ms);
            }
        }
        let (divergent_ms, converged_at_ms) = divergence(&hs, &homes, end);
        timelines.push(KeyTimeline {
            key: key.clone(),
            homes,
            holdings: hs,
            writes_acked: acked.remove(key).unwrap_or_default(),
            first_seen_ms: first_seen,
            divergent_ms,
            converged_at_ms,
        });
    }
    Ok(Propagation {
        seed,
        scenario: SCENARIO_PATH.into(),
        replay: format!(
            "concord sim {SCENARIO_PATH} --seed {seed} --trace run.jsonl && concord view run.jsonl"
        ),
        partition_ms: (partition.as_secs_f64() * 1e3, heal.as_secs_f64() * 1e3),
        end_ms: end,
        keys: timelines,
        violations: sim.violations().to_vec(),
    })
}

/// Total time the home replicas' copies differed, and the moment they last came to agree.
fn divergence(holdings: &[Holding], homes: &[u32], end: f64) -> (f64, Option<f64>) {
    let mut moments: Vec<f64> = holdings.iter().flat_map(|h| [h.from_ms, h.to_ms]).collect();
    moments.push(end);
    moments.sort_by(f64::total_cmp);
    moments.dedup();
    let copy_at = |node: u32, t: f64| -> Option<&Vec<String>> {
        holdings
            .iter()
            .find(|h| h.node == node && !h.hint && h.from_ms <= t && t < h.to_ms)
            .map(|h| &h.values)
    };
    let (mut divergent, mut last_agree, mut agreeing) = (0.0, None, true);
    let mut seen_any = false;
    for w in moments.windows(2) {
        let t = w[0];
        let copies: Vec<Option<&Vec<String>>> = homes.iter().map(|&n| copy_at(n, t)).collect();
        seen_any |= copies.iter().any(Option::is_some);
        let agree = copies.windows(2).all(|c| c[0] == c[1]);
        if !agree {
            divergent += w[1] - w[0];
        } else if !agreeing {
            last_agree = Some(t);
        }
        agreeing = agree;
    }
    if !agreeing || !seen_any {
        return (divergent, None);
    }
    (divergent, last_agree.or(Some(0.0)))
}
