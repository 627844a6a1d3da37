//! A real crash: a child process appends and syncs in a loop, reporting each sync on stdout, and is
//! killed with SIGKILL at a random moment – possibly mid-write, mid-roll or mid-checkpoint. The
//! reopened WAL must hold every batch the child reported synced.
//!
//! The child is this very test executable, re-run with `--exact crash_child_writer` and the data
//! directory in an environment variable. (SIGKILL kills the process, not the machine: the OS page
//! cache survives, so this checks the WAL's own crash consistency, not the disk's flush ordering –
//! that part is covered by the truncation and bit-flip tests.)

mod common;

use common::put;
use concord_core::StorageOp;
use concord_wal::{SyncMode, Wal, WalOptions};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CHILD_DIR_ENV: &str = "CONCORD_WAL_CRASH_CHILD_DIR";
/// The child keeps the last this many batches (older ones are deleted with a DeleteRange, as Raft
/// compacts its log), so the state stays small and checkpoints stay cheap.
const KEPT_BATCHES: u64 = 40;

fn opts() -> WalOptions {
    WalOptions { segment_bytes: 4096, checkpoint_bytes: 16 * 1024, sync: SyncMode::Fsync }
}

fn batch_key(i: u64) -> String {
    format!("batch/{i:020}")
}

fn batch_value(i: u64) -> Vec<u8> {
    format!("value of batch {i} ").repeat(1 + (i % 5) as usize).into_bytes()
}

/// Not a test on its own: the body of the child process. Without the environment variable it
/// returns at once.
#[test]
fn crash_child_writer() {
    let Ok(dir) = std::env::var(CHILD_DIR_ENV) else { return };
    let (mut wal, durable, _) = Wal::open(dir.as_ref(), opts()).expect("child: open");
    let mut next: u64 = durable.get("next").map_or(0, |v| String::from_utf8_lossy(v).parse().expect("next"));
    let mut stdout = std::io::stdout().lock();
    // Bounded: the parent kills the child long before this.
    for _ in 0..1_000_000 {
        // Group commit: 1 to 3 batches per sync.
        for _ in 0..=(next % 3) {
            let mut ops = vec![put(batch_key(next), batch_value(next)), put("next", (next + 1).to_string())];
            if next >= KEPT_BATCHES {
                ops.push(StorageOp::DeleteRange {
                    start: batch_key(0),
                    end: batch_key(next - KEPT_BATCHES + 1),
                });
            }
            wal.append(&ops).expect("child: append");
            next += 1;
        }
        wal.sync().expect("child: sync");
        writeln!(stdout, "synced {}", next - 1).and_then(|()| stdout.flush()).expect("child: report");
    }
}

#[test]
fn sigkill_never_loses_a_synced_batch() {
    if std::env::var(CHILD_DIR_ENV).is_ok() {
        return; // we are the child of another run
    }
    let tmp = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut last_reported: Option<u64> = None;
    let mut checkpoints_seen = 0;
    // Kill after different numbers of syncs, so the kill lands at different points of the cycle.
    for (round, kill_after_syncs) in [40u64, 97, 13, 151, 66].into_iter().enumerate() {
        let mut child = Command::new(&exe)
            .args(["--exact", "crash_child_writer", "--nocapture", "--test-threads=1"])
            .env(CHILD_DIR_ENV, tmp.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let reader = BufReader::new(child.stdout.take().unwrap());
        let started = Instant::now();
        let mut syncs = 0;
        for line in reader.lines() {
            let line = line.unwrap();
            let Some(n) = line.strip_prefix("synced ") else { continue };
            last_reported = Some(n.parse().unwrap());
            syncs += 1;
            if syncs == kill_after_syncs {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(60), "round {round}: the child is too slow");
        }
        assert_eq!(syncs, kill_after_syncs, "round {round}: the child stopped early");
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();

        let (wal, durable, recovery) = Wal::open(tmp.path(), opts()).unwrap();
        eprintln!("round {round}: killed after {syncs} syncs; {recovery}");
        checkpoints_seen += usize::from(recovery.checkpoint.is_some());
        let last = last_reported.unwrap();
        let next: u64 = String::from_utf8_lossy(durable.get("next").expect("next")).parse().unwrap();
        assert!(next > last, "round {round}: batch {last} was reported synced but the WAL ends at {next}");
        // Every kept batch up to `next` is there, intact; nothing beyond it; older ones compacted.
        let keys: Vec<&str> = durable.scan_prefix("batch/").map(|(k, _)| k).collect();
        let first = next.saturating_sub(KEPT_BATCHES);
        let expected: Vec<String> = (first..next).map(batch_key).collect();
        assert_eq!(keys, expected, "round {round}: {recovery}");
        for i in first..next {
            assert_eq!(durable.get(&batch_key(i)), Some(&batch_value(i)[..]), "round {round}, batch {i}");
        }
        drop(wal);
    }
    assert!(checkpoints_seen > 0, "the kills should have been recovered from checkpoints too");
}
