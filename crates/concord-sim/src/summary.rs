//! The numbers a run leaves behind: messages by kind, drops by reason, operations by outcome,
//! faults, disk traffic, the latency of successful operations, and how fast the simulation ran.

use crate::disk::DiskStats;
use concord_core::history::{EventType, History, OpFn};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MessageStats {
    pub sent: u64,
    pub delivered: u64,
    pub dropped: u64,
    pub duplicated: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct OpStats {
    pub invoked: u64,
    pub ok: u64,
    pub fail: u64,
    pub info: u64,
    pub ok_after_heal: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DiskTotals {
    pub writes: u64,
    pub bytes_written: u64,
    pub syncs: u64,
    pub writes_lost: u64,
    pub synced_writes_lost: u64,
}

impl DiskTotals {
    pub fn add(&mut self, s: &DiskStats) {
        self.writes += s.writes;
        self.bytes_written += s.bytes_written;
        self.syncs += s.syncs;
        self.writes_lost += s.writes_lost;
        self.synced_writes_lost += s.synced_writes_lost;
    }
}

/// Latency of the operations that succeeded, from invocation to answer as the client saw it
/// (milliseconds of virtual time): reads apart from updates (writes, CAS, increments, …).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct OpLatency {
    pub reads: u64,
    pub read_p50_ms: f64,
    pub read_p99_ms: f64,
    pub updates: u64,
    pub update_p50_ms: f64,
    pub update_p99_ms: f64,
}

impl OpLatency {
    /// Pair each `ok` with its invocation (by process: a client has one operation open at a time).
    pub fn of(history: &History) -> Self {
        let mut open = BTreeMap::new();
        let (mut reads, mut updates) = (Vec::new(), Vec::new());
        for e in &history.events {
            match e.kind {
                EventType::Invoke => {
                    open.insert(e.process, e.time.0);
                }
                EventType::Ok => {
                    if let Some(t0) = open.remove(&e.process) {
                        let ms = e.time.0.saturating_sub(t0) as f64 / 1e6;
                        if e.op.f == OpFn::Read {
                            reads.push(ms)
                        } else {
                            updates.push(ms)
                        }
                    }
                }
                EventType::Fail | EventType::Info => {
                    open.remove(&e.process);
                }
            }
        }
        let (read_p50_ms, read_p99_ms) = (percentile(&mut reads, 0.5), percentile(&mut reads, 0.99));
        let (update_p50_ms, update_p99_ms) = (percentile(&mut updates, 0.5), percentile(&mut updates, 0.99));
        OpLatency {
            reads: reads.len() as u64,
            read_p50_ms,
            read_p99_ms,
            updates: updates.len() as u64,
            update_p50_ms,
            update_p99_ms,
        }
    }
}

/// The nearest-rank `q`-quantile (0 for no values).
fn percentile(values: &mut [f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    values[((q * values.len() as f64).ceil() as usize).clamp(1, values.len()) - 1]
}

/// Message counters by kind. A short vector rather than a map: a protocol has a handful of kinds,
/// and this is on the simulator's hottest path (every send and delivery).
#[derive(Clone, Debug, Default)]
pub struct MessageCounters(Vec<(&'static str, MessageStats)>);

impl MessageCounters {
    pub fn get_mut(&mut self, kind: &'static str) -> &mut MessageStats {
        // Kinds are `&'static str` literals, so pointer equality almost always decides at once.
        let found = self.0.iter().position(|(k, _)| std::ptr::eq(*k, kind) || *k == kind);
        let i = found.unwrap_or_else(|| {
            self.0.push((kind, MessageStats::default()));
            self.0.len() - 1
        });
        &mut self.0[i].1
    }

    /// Counters in kind order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &MessageStats)> {
        let sorted: BTreeMap<&'static str, &MessageStats> = self.0.iter().map(|(k, m)| (*k, m)).collect();
        sorted.into_iter()
    }
}

impl Serialize for MessageCounters {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    pub events: u64,
    pub messages: MessageCounters,
    pub drops: BTreeMap<&'static str, u64>,
    pub ops: OpStats,
    /// How long successful operations took (filled at the end of the run).
    pub latency: OpLatency,
    pub crashes: u64,
    pub restarts: u64,
    /// Boots refused because the node's disk lost synced writes (`truncate-log`, `wipe`).
    pub boots_refused: u64,
    pub pauses: u64,
    pub partitions: u64,
    pub disk: DiskTotals,
    pub protocol_events: BTreeMap<&'static str, u64>,
    pub trace_lines: u64,
    #[serde(serialize_with = "secs")]
    pub virtual_time: Duration,
    /// How long the run took on this machine (not part of the trace: it is not deterministic).
    #[serde(serialize_with = "secs")]
    pub wall_time: Duration,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl Summary {
    pub fn message(&mut self, kind: &'static str) -> &mut MessageStats {
        self.messages.get_mut(kind)
    }

    pub fn messages_sent(&self) -> u64 {
        self.messages.iter().map(|(_, m)| m.sent).sum()
    }

    /// Simulated events per wall-clock second.
    pub fn events_per_second(&self) -> f64 {
        self.events as f64 / self.wall_time.as_secs_f64().max(1e-9)
    }

    /// How many times faster than real time the run went.
    pub fn speedup(&self) -> f64 {
        self.virtual_time.as_secs_f64() / self.wall_time.as_secs_f64().max(1e-9)
    }
}

impl Summary {
    /// One line: how many events, and how fast.
    pub fn speed(&self) -> String {
        format!(
            "events: {} in {:.3}s virtual, {:.3}s wall ({:.0} events/s, {:.1}x real time)",
            self.events,
            self.virtual_time.as_secs_f64(),
            self.wall_time.as_secs_f64(),
            self.events_per_second(),
            self.speedup()
        )
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.speed())?;
        writeln!(f, "messages:       sent  delivered  dropped  duplicated")?;
        for (kind, m) in self.messages.iter() {
            writeln!(
                f,
                "  {kind:<12} {:>6} {:>10} {:>8} {:>11}",
                m.sent, m.delivered, m.dropped, m.duplicated
            )?;
        }
        if !self.drops.is_empty() {
            let drops: Vec<String> = self.drops.iter().map(|(why, n)| format!("{why} {n}")).collect();
            writeln!(f, "drops by reason: {}", drops.join(", "))?;
        }
        let o = &self.ops;
        writeln!(f, "client ops: {} invoked, {} ok, {} fail, {} info", o.invoked, o.ok, o.fail, o.info)?;
        let l = &self.latency;
        if l.reads + l.updates > 0 {
            writeln!(
                f,
                "ok latency: reads p50 {:.1} ms, p99 {:.1} ms ({}); updates p50 {:.1} ms, p99 {:.1} ms ({})",
                l.read_p50_ms, l.read_p99_ms, l.reads, l.update_p50_ms, l.update_p99_ms, l.updates
            )?;
        }
        writeln!(
            f,
            "faults: {} crashes, {} restarts, {} pauses, {} partitions",
            self.crashes, self.restarts, self.pauses, self.partitions
        )?;
        let d = &self.disk;
        write!(
            f,
            "disk: {} writes ({} bytes), {} syncs, {} writes lost in crashes",
            d.writes, d.bytes_written, d.syncs, d.writes_lost
        )?;
        if !self.protocol_events.is_empty() {
            let events: Vec<String> = self.protocol_events.iter().map(|(k, n)| format!("{k} {n}")).collect();
            write!(f, "\nprotocol events: {}", events.join(", "))?;
        }
        Ok(())
    }
}
