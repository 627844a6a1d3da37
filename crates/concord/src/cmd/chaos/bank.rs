//! The `bank` workload (Jepsen's bank): `accounts` accounts hold a fixed total; clients transfer
//! money between two of them and read every balance in one transaction. Whatever the faults, every
//! read must sum to the total and show no negative balance ([`check`]).
//!
//! Over the Redis door:
//!
//! * a **transfer** is one `EVAL` of [`TRANSFER`]: the script reads the source balance, refuses
//!   (answers 0) if it is too small, and otherwise moves the amount with `DECRBY`/`INCRBY`. In the
//!   strong mode a script runs inside the replicated state machine – one log entry, one step – so
//!   the read and both writes are atomic: no other command runs between them on any replica
//!   (docs/redis.md, "Scripts"). A `MULTI … EXEC` could not do this: its commands are queued
//!   before any of them runs, so it cannot read a balance and decide on it (it would need `WATCH`
//!   and a retry loop). 1 is `ok`, 0 `fail` (nothing changed);
//! * a **read** is `MULTI`, a `GET` of every account, `EXEC`: one `Write::Redis` entry of the log
//!   (docs/redis.md, "Transactions"), so all balances are read at one point of the log.
//!
//! The accounts share the hash tag `{bank}`, so they live in one slot (and one shard in the
//! sharded mode, where a script may only touch its shard's keys).

use super::events::Log;
use super::resp::{cmd, multi, Answer, Conn};
use concord_core::history::EventType;
use concord_server::testkit::Reply;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The money in the bank.
pub const TOTAL: i64 = 100;
/// The largest transfer.
pub const MAX_TRANSFER: i64 = 5;

/// Move ARGV[1] from KEYS[1] to KEYS[2] if KEYS[1] holds that much: 1 if moved, 0 if not.
pub const TRANSFER: &str = "local b = tonumber(redis.call('GET', KEYS[1]) or '0') \
local amount = tonumber(ARGV[1]) \
if b < amount then return 0 end \
redis.call('DECRBY', KEYS[1], amount) \
redis.call('INCRBY', KEYS[2], amount) \
return 1";

pub fn account(i: usize) -> String {
    format!("{{bank}}a{i}")
}

/// The starting balances: the total spread evenly, the remainder on account 0.
pub fn initial(accounts: usize) -> Vec<i64> {
    let each = TOTAL / accounts as i64;
    let mut b = vec![each; accounts];
    b[0] += TOTAL - each * accounts as i64;
    b
}

/// Set every account to its starting balance (through `addr`, retried until it is acknowledged
/// or `within` passes). Runs before any client: a retried `MSET` sets the same values again.
pub async fn setup(addr: SocketAddr, accounts: usize, within: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    let mut mset = vec!["MSET".to_string()];
    for (i, b) in initial(accounts).into_iter().enumerate() {
        mset.push(account(i));
        mset.push(b.to_string());
    }
    let mut conn = Conn::new(addr, Duration::from_secs(5));
    loop {
        match conn.run(&[mset.clone()], true).await {
            Answer::Reply(Reply::Text(t)) if t == "OK" => return Ok(()),
            other if Instant::now() >= deadline => {
                anyhow::bail!("the bank's accounts could not be set: {other:?}")
            }
            _ => tokio::time::sleep(Duration::from_millis(300)).await,
        }
    }
}

/// Read every balance in one transaction: `Some(balances)` (`null` for an account that held
/// nothing or no integer), `None` if the read did not complete.
async fn read(conn: &mut Conn, accounts: usize) -> Option<Vec<Option<i64>>> {
    let gets = (0..accounts).map(|i| cmd(&["GET", &account(i)])).collect();
    match conn.run(&multi(gets), false).await {
        Answer::Reply(Reply::Array(items)) if items.len() == accounts => Some(
            items
                .iter()
                .map(|item| match item {
                    Reply::Text(t) => t.parse::<i64>().ok(),
                    Reply::Array(_) => None,
                })
                .collect(),
        ),
        _ => None,
    }
}

/// One client, bound to node `c mod nodes`: transfers, and a read every fifth op, until `stop`.
#[allow(clippy::too_many_arguments)]
pub async fn client(
    c: usize,
    nodes: Vec<SocketAddr>,
    accounts: usize,
    timeout: Duration,
    seed: u64,
    log: Arc<Log>,
    stop: Arc<AtomicBool>,
) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_mul(1_000_003).wrapping_add(c as u64));
    let mut process = log.process();
    let mut conn = Conn::new(nodes[c % nodes.len()], timeout);
    while !stop.load(Ordering::SeqCst) {
        log.next_op();
        if rng.gen_range(0..5) == 0 {
            log.record(process, EventType::Invoke, "read", json!(null));
            match read(&mut conn, accounts).await {
                Some(balances) => log.record(process, EventType::Ok, "read", json!(balances)),
                None => {
                    log.record(process, EventType::Fail, "read", json!(null));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            continue;
        }
        let from = rng.gen_range(0..accounts);
        let to = (from + rng.gen_range(1..accounts)) % accounts;
        let amount = rng.gen_range(1..=MAX_TRANSFER);
        let value = json!({"from": from, "to": to, "amount": amount});
        log.record(process, EventType::Invoke, "transfer", value.clone());
        let eval = cmd(&["EVAL", TRANSFER, "2", &account(from), &account(to), &amount.to_string()]);
        match conn.run(&[eval], true).await {
            Answer::Reply(Reply::Text(t)) if t == "1" => {
                log.record(process, EventType::Ok, "transfer", value)
            }
            // Too little money: the script changed nothing.
            Answer::Reply(Reply::Text(t)) if t == "0" => {
                log.record(process, EventType::Fail, "transfer", value)
            }
            Answer::Refused(_) => {
                log.record(process, EventType::Fail, "transfer", value);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            _ => {
                log.record(process, EventType::Info, "transfer", value);
                process = log.process();
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// After the faults: read every balance through every node (retried until `within` passes),
/// recording the reads. Returns the nodes that never answered.
pub async fn final_reads(nodes: &[SocketAddr], accounts: usize, log: &Log, within: Duration) -> Vec<String> {
    let deadline = Instant::now() + within;
    let mut missing = Vec::new();
    for (i, &addr) in nodes.iter().enumerate() {
        let process = log.process();
        let mut conn = Conn::new(addr, Duration::from_secs(5));
        loop {
            log.record(process, EventType::Invoke, "read", json!(null));
            if let Some(balances) = read(&mut conn, accounts).await {
                log.record(process, EventType::Ok, "read", json!(balances));
                break;
            }
            log.record(process, EventType::Fail, "read", json!(null));
            if Instant::now() >= deadline {
                missing.push(format!("node {}: the balances", i + 1));
                break;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    missing
}

/// What the bank checker found.
#[derive(Clone, Debug, Default, serde::Serialize, PartialEq)]
pub struct BankResult {
    pub reads: usize,
    pub transfers_ok: usize,
    pub transfers_failed: usize,
    pub transfers_indeterminate: usize,
    /// Each read whose balances do not sum to the total, show a negative or missing balance, or
    /// name the wrong number of accounts – with its time, process and balances.
    pub bad_reads: Vec<String>,
}

impl BankResult {
    pub fn valid(&self) -> bool {
        self.bad_reads.is_empty()
    }

    pub fn summary(&self) -> String {
        let mut s = format!(
            "{} reads, {} bad; transfers: {} ok, {} failed, {} indeterminate",
            self.reads,
            self.bad_reads.len(),
            self.transfers_ok,
            self.transfers_failed,
            self.transfers_indeterminate
        );
        for b in self.bad_reads.iter().take(10) {
            s.push_str(&format!("\n{b}"));
        }
        if self.bad_reads.len() > 10 {
            s.push_str(&format!("\n… and {} more", self.bad_reads.len() - 10));
        }
        s
    }
}

/// Jepsen's bank checker: every completed read names `accounts` balances, none missing or
/// negative, summing to [`TOTAL`].
pub fn check(events: &[super::events::Event], accounts: usize) -> BankResult {
    let mut r = BankResult::default();
    for e in events {
        match (e.f, e.kind) {
            ("transfer", EventType::Ok) => r.transfers_ok += 1,
            ("transfer", EventType::Fail) => r.transfers_failed += 1,
            ("transfer", EventType::Info) => r.transfers_indeterminate += 1,
            ("read", EventType::Ok) => {
                r.reads += 1;
                let balances: Vec<Option<i64>> = serde_json::from_value(e.value.clone()).unwrap_or_default();
                let mut wrong = Vec::new();
                if balances.len() != accounts {
                    wrong.push(format!("{} accounts, not {accounts}", balances.len()));
                }
                if balances.iter().any(Option::is_none) {
                    wrong.push("a missing balance".to_string());
                }
                if balances.iter().flatten().any(|&b| b < 0) {
                    wrong.push("a negative balance".to_string());
                }
                let sum: i64 = balances.iter().flatten().sum();
                if sum != TOTAL {
                    wrong.push(format!("total {sum}, not {TOTAL}"));
                }
                if !wrong.is_empty() {
                    r.bad_reads.push(format!(
                        "read at {:.3} s by process {}: {} – {}",
                        e.time as f64 / 1e9,
                        e.process,
                        e.value,
                        wrong.join(", ")
                    ));
                }
            }
            _ => {}
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::super::events::Event;
    use super::*;

    fn ev(process: u64, kind: EventType, f: &'static str, value: serde_json::Value, time: u64) -> Event {
        Event { process, kind, f, value, time }
    }

    #[test]
    fn the_initial_balances_hold_the_total() {
        for n in 1..10 {
            assert_eq!(initial(n).iter().sum::<i64>(), TOTAL);
        }
    }

    #[test]
    fn reads_that_sum_to_the_total_are_valid_and_others_are_named() {
        let transfer = json!({"from": 0, "to": 1, "amount": 3});
        let mut events = vec![
            ev(0, EventType::Invoke, "transfer", transfer.clone(), 1),
            ev(0, EventType::Ok, "transfer", transfer, 2),
            ev(1, EventType::Invoke, "read", json!(null), 3),
            ev(1, EventType::Ok, "read", json!([22, 28, 25, 25]), 4),
        ];
        let r = check(&events, 4);
        assert!(r.valid(), "{}", r.summary());
        assert_eq!((r.reads, r.transfers_ok), (1, 1));

        // A read whose total is off (a transfer half applied), one with a negative balance, one
        // missing an account.
        events.push(ev(1, EventType::Invoke, "read", json!(null), 5));
        events.push(ev(1, EventType::Ok, "read", json!([22, 31, 25, 25]), 6_000_000_000));
        events.push(ev(2, EventType::Invoke, "read", json!(null), 7));
        events.push(ev(2, EventType::Ok, "read", json!([-3, 53, 25, 25]), 8));
        events.push(ev(3, EventType::Invoke, "read", json!(null), 9));
        events.push(ev(3, EventType::Ok, "read", json!([50, null, 25, 25]), 10));
        let r = check(&events, 4);
        assert!(!r.valid());
        assert_eq!(r.bad_reads.len(), 3, "{:?}", r.bad_reads);
        assert!(
            r.bad_reads[0].contains("at 6.000 s") && r.bad_reads[0].contains("total 103, not 100"),
            "{:?}",
            r.bad_reads
        );
        assert!(r.bad_reads[1].contains("a negative balance"), "{:?}", r.bad_reads);
        assert!(r.bad_reads[2].contains("a missing balance"), "{:?}", r.bad_reads);
    }
}
