//! The history of the `bank` and `list-append` workloads: Jepsen-style events whose values are
//! JSON (a transfer, a list of micro-ops) – shapes the register history's [`Op`] has no words for.
//!
//! Written to `history.jsonl` one event a line, `{"process", "type", "f", "value", "time"}` with
//! `time` in nanoseconds since the clients started. For list-append that is the transactional form
//! `concord check --model list-append` reads (`"f": "txn"`, micro-ops `["append", k, v]` and
//! `["r", k, [..]]`).
//!
//! [`Op`]: concord_core::history::Op

use concord_core::history::EventType;
use concord_core::Time;
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Event {
    pub process: u64,
    #[serde(rename = "type")]
    pub kind: EventType,
    pub f: &'static str,
    pub value: serde_json::Value,
    pub time: u64,
}

/// What the clients share: the clock, the events, the process and op counters.
pub struct Log {
    pub start: Instant,
    events: Mutex<Vec<Event>>,
    next_process: AtomicU64,
    next_op: AtomicU64,
}

impl Log {
    pub fn new(start: Instant) -> Log {
        Log {
            start,
            events: Mutex::new(Vec::new()),
            next_process: AtomicU64::new(0),
            next_op: AtomicU64::new(0),
        }
    }

    /// A fresh process id (a new client, or one whose last operation is in doubt).
    pub fn process(&self) -> u64 {
        self.next_process.fetch_add(1, Ordering::SeqCst)
    }

    /// Number the next operation.
    pub fn next_op(&self) -> u64 {
        self.next_op.fetch_add(1, Ordering::SeqCst)
    }

    pub fn ops_issued(&self) -> u64 {
        self.next_op.load(Ordering::SeqCst)
    }

    pub fn record(&self, process: u64, kind: EventType, f: &'static str, value: serde_json::Value) {
        // The timestamp is taken under the lock: the events' order is their real-time order.
        let mut events = self.events.lock().unwrap();
        let time = self.start.elapsed().as_nanos() as u64;
        events.push(Event { process, kind, f, value, time });
    }

    pub fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }
}

pub fn to_jsonl(events: &[Event]) -> String {
    let mut out = String::new();
    for e in events {
        out.push_str(&serde_json::to_string(e).expect("events serialise"));
        out.push('\n');
    }
    out
}

/// `(process, kind, time)` of each event, for the throughput and latency plot.
pub fn timings(events: &[Event]) -> Vec<(u64, EventType, Time)> {
    events.iter().map(|e| (e.process, e.kind, Time(e.time))).collect()
}
