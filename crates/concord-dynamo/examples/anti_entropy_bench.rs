//! # Benchmark: Merkle anti-entropy vs a full sync (issue #6)
//!
//! Two replicas of the same 1 000 000 keys, of which a fraction differs: half of the divergent keys
//! were overwritten on replica B (a newer version that supersedes A's), a quarter are missing on B
//! and a quarter missing on A. Replica A's anti-entropy timer fires once, and the exchange runs
//! through the protocol's real code path: both [`DynamoNode`]s are driven through the
//! [`Process`] interface (`on_timer`, `on_message`), and a tiny in-memory loop delivers every
//! `Send` effect to the other node, round by round, until no message is left.
//!
//! It reports the crate's own byte accounting ([`DynamoNode::anti_entropy_stats`]: 12 bytes per
//! hash, key + binary (postcard) object per repaired object) against what a full sync of the ranges
//! would have sent, the postcard-encoded size of the messages actually exchanged (the server's peer
//! wire encoding) as a cross-check, the keys
//! repaired (asserted equal to the divergence), rounds, messages and wall time. It then asserts
//! that both replicas hold identical stores.
//!
//! ```text
//! cargo run --release -p concord-dynamo --example anti_entropy_bench -- \
//!     [--keys 1000000] [--divergence 0.001,0.01,0.1] [--depth 16] [--vnodes 8] [--value-bytes 32]
//! ```
//!
//! Each node builds a range's tree once per exchange and caches it (see `anti_entropy.rs`); the
//! wall time is dominated by those builds (a scan of the whole store per range) and by the scans
//! that pick a range's objects for the `ae-objects` messages.

use concord_core::{Durable, Effect, Io, NodeId, Process, StorageOp, Time};
use concord_dynamo::anti_entropy::AntiEntropyStats;
use concord_dynamo::ring::mix64;
use concord_dynamo::store::{self, Object};
use concord_dynamo::version::{Dot, Resolution, Sibling, VersionVector, Versions};
use concord_dynamo::{DynamoConfig, DynamoMessage, DynamoNode, DynamoTimer};
use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

const A: NodeId = NodeId(1);
const B: NodeId = NodeId(2);

/// The driver's deterministic randomness (the protocol only uses it to pick a peer).
use concord_core::hash::SplitMix64 as SplitMix;

struct Params {
    keys: usize,
    divergences: Vec<f64>,
    depth: u32,
    vnodes: u32,
    value_bytes: usize,
}

fn parse_args() -> Result<Params, String> {
    let mut p = Params {
        keys: 1_000_000,
        divergences: vec![0.001, 0.01, 0.1],
        depth: 16,
        vnodes: 8,
        value_bytes: 32,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{flag} {value}: {e}");
        match flag.as_str() {
            "--keys" => p.keys = value.parse().map_err(|e| bad(&e))?,
            "--depth" => p.depth = value.parse().map_err(|e| bad(&e))?,
            "--vnodes" => p.vnodes = value.parse().map_err(|e| bad(&e))?,
            "--value-bytes" => p.value_bytes = value.parse().map_err(|e| bad(&e))?,
            "--divergence" => {
                p.divergences = value
                    .split(',')
                    .map(|d| d.parse::<f64>().map_err(|e| bad(&e)))
                    .collect::<Result<_, _>>()?;
                if let Some(d) = p.divergences.iter().find(|d| !(0.0..=1.0).contains(*d)) {
                    return Err(format!("--divergence {d} is not a fraction in [0, 1]"));
                }
            }
            _ => return Err(format!("unknown flag {flag} (see the example's doc comment)")),
        }
    }
    Ok(p)
}

fn key(i: usize) -> String {
    format!("key{i:08}")
}

/// A deterministic value of `len` bytes for key `i`, version `v`.
fn value(i: usize, v: u64, len: usize) -> Vec<u8> {
    (0..len).map(|j| b'a' + (mix64((i as u64) << 8 ^ v ^ (j as u64) << 40) % 26) as u8).collect()
}

/// Version 1 of key `i`, written by A.
fn original(i: usize, len: usize) -> Versions {
    let mut v = Versions::default();
    let dot = Dot { node: A, counter: i as u64 + 1 };
    v.write(
        Resolution::Dvv,
        &VersionVector::default(),
        Sibling { dot, timestamp: 1, value: Some(value(i, 1, len)) },
    );
    v
}

/// What each replica holds, and how many keys differ.
struct Divergence {
    a: Durable,
    b: Durable,
    divergent: usize,
    updated: usize,
    missing_on_a: usize,
    missing_on_b: usize,
}

fn build_stores(p: &Params, fraction: f64) -> Divergence {
    let divergent = (p.keys as f64 * fraction).round() as usize;
    // The `divergent` keys with the smallest hash of their index: a fixed, well-spread choice.
    let mut order: Vec<(u64, usize)> = (0..p.keys).map(|i| (mix64(i as u64 ^ 0xabcdef), i)).collect();
    if divergent < p.keys {
        order.select_nth_unstable(divergent);
    }
    // 0: same, 1: updated on B, 2: missing on B, 3: missing on A.
    let mut kind = vec![0u8; p.keys];
    for (n, &(_, i)) in order[..divergent].iter().enumerate() {
        kind[i] = match n % 4 {
            0 | 1 => 1,
            2 => 2,
            _ => 3,
        };
    }
    drop(order);
    let (mut a, mut b) = (Durable::new(), Durable::new());
    let (mut updated, mut missing_on_a, mut missing_on_b) = (0, 0, 0);
    for (i, &k) in kind.iter().enumerate() {
        let disk_key = store::data_key(&key(i));
        let v1 = original(i, p.value_bytes);
        let record = store::encode(&Object::Register(v1.clone()));
        match k {
            0 => {
                a.apply(&StorageOp::Put { key: disk_key.clone(), value: record.clone() });
                b.apply(&StorageOp::Put { key: disk_key, value: record });
            }
            1 => {
                // B overwrote A's version (it had seen it): B's object supersedes A's.
                let mut v2 = v1.clone();
                let dot = Dot { node: B, counter: i as u64 + 1 };
                let new = Sibling { dot, timestamp: 2, value: Some(value(i, 2, p.value_bytes)) };
                v2.write(Resolution::Dvv, &v1.context, new);
                a.apply(&StorageOp::Put { key: disk_key.clone(), value: record });
                b.apply(&StorageOp::Put { key: disk_key, value: store::encode(&Object::Register(v2)) });
                updated += 1;
            }
            2 => {
                a.apply(&StorageOp::Put { key: disk_key, value: record });
                missing_on_b += 1;
            }
            _ => {
                b.apply(&StorageOp::Put { key: disk_key, value: record });
                missing_on_a += 1;
            }
        }
    }
    Divergence { a, b, divergent, updated, missing_on_a, missing_on_b }
}

/// What the message loop observed.
#[derive(Default)]
struct Exchange {
    rounds: u64,
    messages: BTreeMap<&'static str, u64>,
    wire_bytes: u64,
    /// Objects a replica persisted because the merge changed its copy (absorb writes only then).
    repaired: BTreeMap<u32, u64>,
}

/// Run one input on `node` and hand back its effects.
fn step(
    node: &mut DynamoNode,
    rng: &mut SplitMix,
    input: impl FnOnce(&mut DynamoNode, &mut Io<'_, DynamoNode>),
) -> Vec<Effect<DynamoNode>> {
    let mut effects = Vec::new();
    let mut io = Io::new(node.id(), Time::ZERO, false, rng, &mut effects);
    input(node, &mut io);
    effects
}

fn run_exchange(a: &mut DynamoNode, b: &mut DynamoNode) -> Exchange {
    let mut rng = SplitMix(42);
    let mut out = Exchange::default();
    let mut in_flight: VecDeque<(NodeId, NodeId, DynamoMessage)> = VecDeque::new();
    let collect = |from: NodeId,
                   effects: Vec<Effect<DynamoNode>>,
                   next: &mut VecDeque<(NodeId, NodeId, DynamoMessage)>,
                   out: &mut Exchange| {
        for effect in effects {
            match effect {
                Effect::Send { to, msg } => {
                    use concord_core::Message;
                    *out.messages.entry(msg.kind()).or_default() += 1;
                    out.wire_bytes += postcard::to_allocvec(&msg).expect("messages serialise").len() as u64;
                    next.push_back((from, to, msg));
                }
                Effect::Persist(StorageOp::Put { key, .. }) if key.starts_with(store::DATA_PREFIX) => {
                    *out.repaired.entry(from.0).or_default() += 1;
                }
                _ => {}
            }
        }
    };
    // A's anti-entropy timer fires once (B's never: one exchange, initiated by A).
    let effects = step(a, &mut rng, |n, io| n.on_timer(io, DynamoTimer::AntiEntropy));
    collect(A, effects, &mut in_flight, &mut out);
    while !in_flight.is_empty() {
        out.rounds += 1;
        let mut next = VecDeque::new();
        for (from, to, msg) in in_flight.drain(..) {
            let node = if to == A { &mut *a } else { &mut *b };
            let effects = step(node, &mut rng, |n, io| n.on_message(io, from, msg));
            collect(to, effects, &mut next, &mut out);
        }
        in_flight = next;
    }
    out
}

fn mib(bytes: u64) -> String {
    format!("{:.2} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn main() {
    let p = match parse_args() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("anti_entropy_bench: {e}");
            std::process::exit(2);
        }
    };
    let config = DynamoConfig {
        n: 2,
        r: 1,
        w: 1,
        vnodes: p.vnodes,
        merkle_depth: p.depth,
        hinted_handoff: false,
        ..DynamoConfig::default()
    };
    if let Err(e) = config.validate() {
        eprintln!("anti_entropy_bench: {e}");
        std::process::exit(2);
    }
    println!(
        "keys {} · value {} B · 2 replicas (n = 2) · {} ranges · Merkle depth {} ({} leaves per range)",
        p.keys,
        p.value_bytes,
        2 * p.vnodes,
        p.depth,
        1u64 << p.depth
    );
    for &fraction in &p.divergences {
        let setup = Instant::now();
        let d = build_stores(&p, fraction);
        let mut a = DynamoNode::boot(A, &[A, B], config.clone(), &d.a).expect("replica A boots");
        let mut b = DynamoNode::boot(B, &[A, B], config.clone(), &d.b).expect("replica B boots");
        drop(d.a);
        drop(d.b);
        let setup = setup.elapsed();

        let started = Instant::now();
        let ex = run_exchange(&mut a, &mut b);
        let wall = started.elapsed();

        let (sa, sb): (AntiEntropyStats, AntiEntropyStats) = (a.anti_entropy_stats(), b.anti_entropy_stats());
        let merkle = sa.bytes_sent + sb.bytes_sent;
        let full = sa.full_sync_bytes + sb.full_sync_bytes;
        let repaired: u64 = ex.repaired.values().sum();
        assert_eq!(a.store(), b.store(), "replicas differ after the exchange");
        assert_eq!(a.store().len(), p.keys, "a key is missing on both replicas");
        assert_eq!(repaired as usize, d.divergent, "keys repaired != divergent keys");
        // A full sync in the same encoding as the messages: every (key, object) of both sides.
        let full_wire: u64 = [&a, &b]
            .iter()
            .flat_map(|n| n.store().iter())
            .map(|(k, o)| postcard::to_allocvec(&(k, o)).expect("objects serialise").len() as u64)
            .sum();

        println!("\n## divergence {:.1} % ({} keys)", fraction * 100.0, d.divergent);
        println!(
            "  divergent: {} updated on B, {} missing on B, {} missing on A",
            d.updated, d.missing_on_b, d.missing_on_a
        );
        println!(
            "  Merkle exchange (crate accounting): {merkle} B ({}) – A sent {}, B sent {}",
            mib(merkle),
            sa.bytes_sent,
            sb.bytes_sent
        );
        println!("  full sync      (crate accounting): {full} B ({})", mib(full));
        println!(
            "  ratio Merkle / full: {:.4} ({:.1}x less)",
            merkle as f64 / full as f64,
            full as f64 / merkle as f64
        );
        println!(
            "  postcard-encoded messages: {} B ({}) vs full sync as postcard {} B ({}), ratio {:.4}",
            ex.wire_bytes,
            mib(ex.wire_bytes),
            full_wire,
            mib(full_wire),
            ex.wire_bytes as f64 / full_wire as f64
        );
        println!(
            "  objects sent: {} (A {}, B {}); keys repaired: {} (A {}, B {}) = divergence {} ✓",
            sa.objects_sent + sb.objects_sent,
            sa.objects_sent,
            sb.objects_sent,
            repaired,
            ex.repaired.get(&A.0).copied().unwrap_or(0),
            ex.repaired.get(&B.0).copied().unwrap_or(0),
            d.divergent
        );
        println!(
            "  exchanges {} (ranges in sync {}), rounds {}, messages {} {:?}",
            sa.exchanges,
            sb.in_sync,
            ex.rounds,
            ex.messages.values().sum::<u64>(),
            ex.messages
        );
        println!(
            "  wall: exchange {:.2} s (setup {:.2} s); replicas identical ✓",
            wall.as_secs_f64(),
            setup.as_secs_f64()
        );
    }
}
