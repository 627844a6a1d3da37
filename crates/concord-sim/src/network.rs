//! The simulated network: per-link latency, loss, duplication, ordering, and partitions.
//!
//! Links are directed: `a → b` and `b → a` are configured and cut separately, so one-way
//! partitions (a node that can send but not receive) are as easy to express as symmetric ones. A
//! partition drops messages both when they are sent and when they would arrive, so a message in
//! flight when the cut happens is lost too – as on a real network.
//!
//! Each link's latency comes from the scenario's `[topology]` (within a zone, across zones, across
//! regions – see [`crate::topology`]) or, without one, from `[network] latency`; `[[network.link]]`
//! overrides apply on top. The node × node table of links is built once, at the start of a run, so
//! sending a message costs an index, whatever the topology.

use crate::latency::Latency;
use crate::scenario::NetworkConfig;
use crate::topology::Topology;
use concord_core::{NodeId, Time};
use rand::Rng;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone, Debug)]
struct Link {
    /// Shared between the links that have the same distribution (an empirical CDF is not copied
    /// n² times).
    latency: Arc<Latency>,
    /// Every delay is multiplied by a factor uniform in `[1 − jitter, 1 + jitter]` (topology).
    jitter: f64,
    loss: f64,
    duplicate: f64,
    fifo: bool,
    /// Base loss from the scenario; `loss` may be changed by the nemesis and is restored at heal.
    base_loss: f64,
    /// With FIFO, no message may arrive before the previous one on this link.
    last_arrival: Time,
}

/// The fate of one message handed to the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Dropped, with the reason (for traces and summaries).
    Dropped(&'static str),
    /// Arrives at the first time, and (if duplicated) a second copy at the second.
    Arrives(Time, Option<Time>),
}

pub struct Network {
    n: usize,
    /// Latency by message kind, overriding the link's (`[network.kind_latency]`).
    kind_latency: BTreeMap<String, Latency>,
    links: Vec<Link>,
    /// `blocked[from * n + to]`: the link is cut.
    blocked: Vec<bool>,
}

impl Network {
    pub fn new(config: &NetworkConfig, topology: Option<&Topology>, n: u32) -> Self {
        let n = n as usize;
        let mut links = Vec::with_capacity(n * n);
        let shared = |l: &Latency| Arc::new(l.clone());
        let default = shared(&config.latency);
        // One shared copy per distinct distribution of the topology, found by address.
        let mut by_address: Vec<(*const Latency, Arc<Latency>)> = Vec::new();
        let mut topology_latency = |from: u32, to: u32| -> Arc<Latency> {
            let Some(l) = topology.and_then(|t| t.latency(from, to)) else { return Arc::clone(&default) };
            if let Some((_, a)) = by_address.iter().find(|(p, _)| std::ptr::eq(*p, l)) {
                return Arc::clone(a);
            }
            let a = shared(l);
            by_address.push((l, Arc::clone(&a)));
            a
        };
        let jitter = topology.map_or(0.0, |t| t.jitter);
        let overrides: Vec<Option<Arc<Latency>>> =
            config.links.iter().map(|o| o.latency.as_ref().map(shared)).collect();
        for from in 1..=n as u32 {
            for to in 1..=n as u32 {
                let mut link = Link {
                    latency: topology_latency(from, to),
                    jitter,
                    loss: config.loss.0,
                    duplicate: config.duplicate.0,
                    fifo: config.fifo,
                    base_loss: config.loss.0,
                    last_arrival: Time::ZERO,
                };
                // Later overrides win, so scenarios can go from general to specific.
                for (o, latency) in config.links.iter().zip(&overrides) {
                    let matches = |f: Option<u32>, t: Option<u32>| {
                        f.is_none_or(|f| f == from) && t.is_none_or(|t| t == to)
                    };
                    if matches(o.from, o.to) || (o.both_ways && matches(o.to, o.from)) {
                        if let Some(l) = latency {
                            link.latency = Arc::clone(l);
                        }
                        if let Some(p) = o.loss {
                            link.loss = p.0;
                            link.base_loss = p.0;
                        }
                        if let Some(p) = o.duplicate {
                            link.duplicate = p.0;
                        }
                        if let Some(f) = o.fifo {
                            link.fifo = f;
                        }
                    }
                }
                links.push(link);
            }
        }
        Network { n, kind_latency: config.kind_latency.clone(), links, blocked: vec![false; n * n] }
    }

    fn index(&self, from: NodeId, to: NodeId) -> Option<usize> {
        let (f, t) = (from.0 as usize, to.0 as usize);
        (1..=self.n).contains(&f).then_some(())?;
        (1..=self.n).contains(&t).then_some((f - 1) * self.n + (t - 1))
    }

    /// Whether `from → to` is cut right now.
    pub fn is_blocked(&self, from: NodeId, to: NodeId) -> bool {
        self.index(from, to).is_none_or(|i| self.blocked[i])
    }

    /// Decide what happens to a message sent now.
    pub fn send<R: Rng + ?Sized>(
        &mut self,
        from: NodeId,
        to: NodeId,
        kind: &str,
        now: Time,
        rng: &mut R,
    ) -> Fate {
        let Some(i) = self.index(from, to) else { return Fate::Dropped("no-such-node") };
        if self.blocked[i] {
            return Fate::Dropped("partition");
        }
        let link = &mut self.links[i];
        if link.loss > 0.0 && rng.gen::<f64>() < link.loss {
            return Fate::Dropped("loss");
        }
        let latency: &Latency = self.kind_latency.get(kind).unwrap_or(&link.latency);
        let jitter = link.jitter;
        let delay = |rng: &mut R| {
            let d = latency.sample(rng);
            // No draw without jitter: scenarios without a topology keep their traces.
            if jitter > 0.0 {
                d.mul_f64(rng.gen_range(1.0 - jitter..=1.0 + jitter))
            } else {
                d
            }
        };
        let mut arrival = now + delay(rng);
        if link.fifo {
            arrival = arrival.max(link.last_arrival);
            link.last_arrival = arrival;
        }
        let copy = (link.duplicate > 0.0 && rng.gen::<f64>() < link.duplicate)
            .then(|| (now + delay(rng)).max(arrival));
        Fate::Arrives(arrival, copy)
    }

    /// The latency distribution of `from → to` (after the topology and the overrides).
    pub fn latency(&self, from: NodeId, to: NodeId) -> Option<&Latency> {
        self.index(from, to).map(|i| &*self.links[i].latency)
    }

    /// Cut the network into `groups`; nodes in no group are each cut off alone.
    pub fn partition(&mut self, groups: &[Vec<u32>]) {
        let group_of = |id: u32| groups.iter().position(|g| g.contains(&id));
        for from in 1..=self.n as u32 {
            for to in 1..=self.n as u32 {
                let same =
                    from == to || matches!((group_of(from), group_of(to)), (Some(a), Some(b)) if a == b);
                self.blocked[(from as usize - 1) * self.n + to as usize - 1] = !same;
            }
        }
    }

    /// Cut `node` off from every other node (adds to existing cuts).
    pub fn isolate(&mut self, node: NodeId) {
        for other in 1..=self.n as u32 {
            if other != node.0 {
                self.cut(node, NodeId(other));
                self.cut(NodeId(other), node);
            }
        }
    }

    /// Cut `from → to` only (adds to existing cuts).
    pub fn cut(&mut self, from: NodeId, to: NodeId) {
        if let Some(i) = self.index(from, to) {
            self.blocked[i] = true;
        }
    }

    /// Reconnect `from → to` (the other direction keeps its state).
    pub fn uncut(&mut self, from: NodeId, to: NodeId) {
        if let Some(i) = self.index(from, to) {
            self.blocked[i] = false;
        }
    }

    /// Remove every cut, and restore every link's loss to the scenario's.
    pub fn heal(&mut self) {
        self.blocked.iter_mut().for_each(|b| *b = false);
    }

    pub fn restore_loss(&mut self) {
        for link in &mut self.links {
            link.loss = link.base_loss;
        }
    }

    pub fn set_loss(&mut self, loss: f64) {
        for link in &mut self.links {
            link.loss = loss;
        }
    }

    /// Whether any link is cut.
    pub fn is_partitioned(&self) -> bool {
        self.blocked.iter().any(|b| *b)
    }
}

/// Latency between a client and a node.
pub fn client_latency<R: Rng + ?Sized>(config: &NetworkConfig, rng: &mut R) -> Duration {
    config.client_latency.as_ref().unwrap_or(&config.latency).sample(rng)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn kind_latency_overrides_the_link_for_that_kind_only() {
        let mut config = NetworkConfig {
            latency: Latency::Constant { value: Duration::from_millis(1) },
            ..NetworkConfig::default()
        };
        config
            .kind_latency
            .insert("replicate".into(), Latency::Constant { value: Duration::from_millis(40) });
        let mut net = Network::new(&config, None, 2);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let at = |fate| match fate {
            Fate::Arrives(t, None) => t,
            other => panic!("{other:?}"),
        };
        assert_eq!(at(net.send(NodeId(1), NodeId(2), "read", Time::ZERO, &mut rng)), Time(1_000_000));
        assert_eq!(at(net.send(NodeId(1), NodeId(2), "replicate", Time::ZERO, &mut rng)), Time(40_000_000));
    }
}
