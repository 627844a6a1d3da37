//! Write one of the benchmark histories as Concord JSON Lines, for `concord check` or for other
//! checkers (the Porcupine comparison in `porcupine/`).
//!
//! `cargo run -p concord-check --example gen_history -- kv > kv.jsonl`
//! `cargo run -p concord-check --example gen_history -- register > register.jsonl`
//! `cargo run -p concord-check --example gen_history -- register-fresh > register-fresh.jsonl`
//!
//! Append `corrupt` to corrupt one read (a value never written), as the benchmark does.

use concord_check::gen::{self, GenConfig, Workload};

/// The same seed and shapes as `benches/check.rs`.
const SEED: u64 = 20_240_601;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let which = args.first().map(String::as_str).unwrap_or("kv");
    let corrupt = args.iter().any(|a| a == "corrupt");
    let (config, nth) = match which {
        "kv" => (
            GenConfig {
                seed: SEED,
                workload: Workload::Register { keys: 100 },
                clients: 5,
                ops: 10_000,
                values: 10,
                info_percent: 1,
                cas_percent: 20,
            },
            4_321,
        ),
        "register" | "register-fresh" => (
            GenConfig {
                seed: SEED,
                workload: Workload::Register { keys: 0 },
                clients: 5,
                ops: 1_000,
                values: if which == "register" { 5 } else { 0 },
                info_percent: 2,
                cas_percent: 20,
            },
            321,
        ),
        other => {
            eprintln!("unknown history `{other}`: expected kv, register or register-fresh");
            std::process::exit(2);
        }
    };
    let mut history = gen::history(&config);
    if corrupt {
        gen::corrupt_read_never_written(&mut history, nth);
    }
    print!("{}", history.to_jsonl());
}
