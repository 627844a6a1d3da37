//! Simulated clients: which operations they issue, to which node, and what they record.
//!
//! Clients follow Jepsen's process model. In a **closed loop** each client is one process with at most
//! one operation outstanding; when an operation times out (`info`: its fate is unknown) the client
//! continues as a *new* process number, because the old one may still take effect at any later time.
//! In an **open loop** operations arrive by a Poisson process whatever the answers, and each one is
//! its own process.
//!
//! Written values are unique (a counter), so checkers can tell every write apart. A CAS expects the
//! value the workload last saw acknowledged for that key, so CASes succeed often enough to matter.

use crate::scenario::{KeyDistribution, LoopMode, WorkloadConfig};
use concord_core::history::{EventType, History, Op, OpFn, Value};
use concord_core::{ClientId, NodeId, RequestId, Time};
use rand::Rng;
use rand_distr::{Distribution, Zipf};
use std::collections::BTreeMap;

/// One client's state.
#[derive(Debug)]
struct Client {
    /// The node it sends requests to (follows redirects; moves on after timeouts).
    target: NodeId,
    /// Its current Jepsen process number.
    process: u64,
    /// Requests sent so far (the `seq` of the next is this).
    seq: u64,
}

/// An operation invoked and not yet completed.
#[derive(Clone, Debug)]
pub struct Pending {
    pub process: u64,
    pub op: Op,
    /// The client that issued it (closed loop: continues after it completes).
    pub client: u32,
}

pub struct Workload {
    config: WorkloadConfig,
    zipf: Option<Zipf<f64>>,
    clients: Vec<Client>,
    pending: BTreeMap<RequestId, Pending>,
    next_value: i64,
    next_open_process: u64,
    last_seen: BTreeMap<String, Value>,
    n_nodes: u32,
}

impl Workload {
    pub fn new<R: Rng + ?Sized>(config: &WorkloadConfig, n_nodes: u32, rng: &mut R) -> Self {
        let zipf = match config.key_distribution {
            KeyDistribution::Zipfian => Zipf::new(u64::from(config.keys), config.zipf_theta).ok(),
            KeyDistribution::Uniform => None,
        };
        let clients = (0..config.clients)
            .map(|i| Client { target: NodeId(rng.gen_range(1..=n_nodes)), process: u64::from(i), seq: 0 })
            .collect();
        Workload {
            config: config.clone(),
            zipf,
            clients,
            pending: BTreeMap::new(),
            next_value: 1,
            next_open_process: u64::from(config.clients),
            last_seen: BTreeMap::new(),
            n_nodes,
        }
    }

    pub fn clients(&self) -> u32 {
        self.config.clients
    }

    pub fn mode(&self) -> LoopMode {
        self.config.mode
    }

    pub fn config(&self) -> &WorkloadConfig {
        &self.config
    }

    fn key<R: Rng + ?Sized>(&self, rng: &mut R) -> String {
        let index = match &self.zipf {
            // Zipf samples ranks 1..=n; rank 1 is the hottest key.
            Some(zipf) => zipf.sample(rng) as u32 - 1,
            None => rng.gen_range(0..self.config.keys),
        };
        format!("k{index}")
    }

    /// Draw the next operation.
    fn next_op<R: Rng + ?Sized>(&mut self, rng: &mut R) -> Op {
        let key = self.key(rng);
        let mix = self.config.mix;
        // One draw whatever the mix: with `incr = 0` the sum is unchanged (x + 0.0 == x), so
        // scenarios without increments draw exactly what they drew before increments existed.
        let roll = rng.gen::<f64>() * (mix.read + mix.write + mix.cas + mix.incr);
        if roll < mix.read {
            return Op::read(key);
        }
        if mix.incr > 0.0 && roll >= mix.read + mix.write + mix.cas {
            return Op { f: OpFn::Add, key: Some(key), value: Value::Int(1) };
        }
        let value = self.next_value;
        self.next_value += 1;
        if roll < mix.read + mix.write {
            Op::write(key, value)
        } else {
            let expected = self.last_seen.get(&key).cloned().unwrap_or(Value::Nil);
            Op { f: OpFn::Cas, key: Some(key), value: Value::pair(expected, Value::Int(value)) }
        }
    }

    /// Start an operation for `client` (closed loop) or a fresh process (open loop, `client` picks
    /// the target node). Records the invocation and returns where to send it.
    pub fn invoke<R: Rng + ?Sized>(
        &mut self,
        client: u32,
        now: Time,
        history: &mut History,
        rng: &mut R,
    ) -> (NodeId, RequestId, Op) {
        let op = self.next_op(rng);
        // Some reads go to any node (follower reads), without moving the client's target.
        let anywhere = op.f == OpFn::Read
            && self.config.read_anywhere > 0.0
            && rng.gen::<f64>() < self.config.read_anywhere;
        let anywhere = anywhere.then(|| NodeId(rng.gen_range(1..=self.n_nodes)));
        let c = &mut self.clients[client as usize];
        let process = match self.config.mode {
            LoopMode::Closed => c.process,
            LoopMode::Open => {
                self.next_open_process += 1;
                self.next_open_process
            }
        };
        let request = RequestId { client: ClientId(client), seq: c.seq };
        c.seq += 1;
        history.push(process, EventType::Invoke, op.clone(), now);
        self.pending.insert(request, Pending { process, op: op.clone(), client });
        (anywhere.unwrap_or(c.target), request, op)
    }

    /// The outstanding operation of `request`, if it has not completed or timed out.
    pub fn pending(&self, request: &RequestId) -> Option<&Pending> {
        self.pending.get(request)
    }

    /// Complete `request` with `kind` (ok, fail or info) and the op as completed (reads carry the
    /// value read). Returns the finished operation's client.
    pub fn complete(
        &mut self,
        request: RequestId,
        kind: EventType,
        op: Op,
        now: Time,
        witness: Option<u64>,
        history: &mut History,
    ) -> Option<u32> {
        let pending = self.pending.remove(&request)?;
        if kind == EventType::Ok {
            if let Some(key) = &op.key {
                let seen = match op.f {
                    OpFn::Read | OpFn::Write => Some(op.value.clone()),
                    OpFn::Cas => op.value.as_pair().map(|(_, new)| new.clone()),
                    _ => None,
                };
                if let Some(v) = seen {
                    self.last_seen.insert(key.clone(), v);
                }
            }
        }
        history.push_witnessed(pending.process, kind, op, now, witness);
        let client = &mut self.clients[pending.client as usize];
        if kind == EventType::Info && self.config.mode == LoopMode::Closed {
            // The old process may still take effect: continue under a new process number.
            client.process += u64::from(self.config.clients);
        }
        Some(pending.client)
    }

    /// Send `client`'s next requests to `node` (a redirect hint).
    pub fn retarget(&mut self, client: u32, node: NodeId) {
        if (1..=self.n_nodes).contains(&node.0) {
            self.clients[client as usize].target = node;
        }
    }

    /// Send `client`'s next requests to some other node (after a timeout or a redirect without hint).
    pub fn retarget_random<R: Rng + ?Sized>(&mut self, client: u32, rng: &mut R) {
        let c = &mut self.clients[client as usize];
        if self.n_nodes > 1 {
            let other = rng.gen_range(1..self.n_nodes);
            // Skip the current target: ids other than it, uniformly.
            c.target = NodeId(if other >= c.target.0 { other + 1 } else { other });
        }
    }

    /// Operations still outstanding (their fate is unknown at the end of a run).
    pub fn outstanding(&self) -> impl Iterator<Item = (&RequestId, &Pending)> {
        self.pending.iter()
    }
}
