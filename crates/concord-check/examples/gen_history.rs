//! Write one of the benchmark histories as Concord JSON Lines, for `concord check` or for other
//! checkers (e.g. Porcupine; see `docs/bench/check.md`).
//!
//! `cargo run -p concord-check --example gen_history -- kv > kv.jsonl`
//! `cargo run -p concord-check --example gen_history -- register > register.jsonl`
//! `cargo run -p concord-check --example gen_history -- register-fresh > register-fresh.jsonl`
//! `cargo run -p concord-check --example gen_history -- hard [OPS [INFO_PERCENT]] > hard.jsonl`
//!
//! Append `corrupt` to corrupt one read (a value never written), as the benchmark does.

use concord_check::gen;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let which = args.first().map(String::as_str).unwrap_or("kv");
    let corrupt = args.iter().any(|a| a == "corrupt");
    // The very histories `benches/check.rs` measures.
    let (config, nth) = match which {
        "kv" => gen::bench_kv(),
        "register" => gen::bench_register(5),
        "register-fresh" => gen::bench_register(0),
        "hard" => gen::bench_hard(
            args.get(1).and_then(|n| n.parse().ok()).unwrap_or(6_000),
            args.get(2).and_then(|n| n.parse().ok()).unwrap_or(6),
        ),
        other => {
            eprintln!("unknown history `{other}`: expected kv, register, register-fresh or hard");
            std::process::exit(2);
        }
    };
    let mut history = gen::history(&config);
    if corrupt {
        gen::corrupt_read_never_written(&mut history, nth);
    }
    print!("{}", history.to_jsonl());
}
