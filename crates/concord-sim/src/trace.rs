//! Traces: every event of a run as JSON Lines, and a hash of them.
//!
//! One line per event, with true virtual time `t` in nanoseconds:
//!
//! ```json
//! {"t":1503000,"ev":"send","from":1,"to":3,"kind":"push","id":17,"msg":{...}}
//! {"t":1503000,"ev":"drop","from":1,"to":3,"kind":"push","id":17,"why":"loss"}
//! {"t":4210000,"ev":"deliver","from":1,"to":3,"kind":"push","id":17}
//! {"t":5000000,"ev":"timer","node":2,"timer":"Gossip"}
//! {"t":6000000,"ev":"crash","node":2}
//! {"t":6000000,"ev":"protocol","node":1,"name":"learned","detail":{...}}
//! {"t":6000000,"ev":"timer-set","node":2,"timer":"Election","at":6210000}
//! {"t":6000000,"ev":"state","node":2,"state":{...}}
//! ```
//!
//! `timer-set` gives a timer's deadline in true time (so a viewer can draw its progress); `state`
//! is the node's `Process::inspect()` right after it boots, i.e. what it recovered from its disk.
//!
//! Nothing in a trace depends on the wall clock or the machine, so the same scenario and seed give
//! byte-identical traces; the FNV-1a hash of the bytes makes that cheap to compare.

use std::io::Write;

pub use concord_core::hash::Fnv64;

/// Where trace lines go: an optional writer, and the running hash.
pub struct Trace {
    out: Option<Box<dyn Write + Send>>,
    hash: Fnv64,
    pub lines: u64,
    line: Vec<u8>,
    error: Option<std::io::Error>,
}

impl Trace {
    /// A trace that is hashed and, if `out` is given, written.
    pub fn new(out: Option<Box<dyn Write + Send>>) -> Self {
        Trace { out, hash: Fnv64::default(), lines: 0, line: Vec::with_capacity(256), error: None }
    }

    /// Record one event.
    pub fn record(&mut self, event: &serde_json::Value) {
        self.line.clear();
        serde_json::to_writer(&mut self.line, event).expect("JSON values serialise");
        self.line.push(b'\n');
        self.hash.update(&self.line);
        self.lines += 1;
        if let Some(out) = &mut self.out {
            if let Err(e) = out.write_all(&self.line) {
                self.error.get_or_insert(e);
                self.out = None;
            }
        }
    }

    pub fn hash(&self) -> u64 {
        self.hash.finish()
    }

    /// Flush the writer; report the first write error, if any.
    pub fn finish(&mut self) -> std::io::Result<()> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        match &mut self.out {
            Some(out) => out.flush(),
            None => Ok(()),
        }
    }
}
