//! `snapshot`: every way a whole state arrives from elsewhere.
//!
//! The first input byte picks the reader:
//! * **kv** – `KvStore::restore`, what a Raft follower does with an installed snapshot (in-memory
//!   engine);
//! * **redb** – `import_chunk` + `import_finish` of the durable engine (`RedbEngine`), what a
//!   follower does with a snapshot streamed from its leader;
//! * **backup** – `backup::decode`, what `concord restore FILE` reads.
//!
//! Checksums would stop almost every mutation at the door, so with the top bit of the mode byte set
//! the harness recomputes them (CRC-32 of a snapshot, SHA-256 of a backup) after mutating: the
//! decoding behind the checksum gets fuzzed too.
//!
//! Properties, beyond no panic and no oversized allocation:
//! * a refused snapshot changes nothing (the store's own snapshot is the same before and after);
//! * an accepted one is a fixed point: its state re-encodes to bytes that restore to the same state;
//! * the two engines agree: the durable engine accepts exactly what the in-memory one accepts, and
//!   ends in the same state;
//! * a backup that decodes re-encodes to a backup that decodes to the same keys and values.

use super::label;
use crate::driver::Target;
use concord_core::StateMachine;
use concord_kv::{KeyValue, KvLimits, KvStore};
use concord_server::backup;
use concord_server::redb_engine::RedbEngine;
use sha2::{Digest, Sha256};

pub const TARGET: Target = Target {
    name: "snapshot",
    about: "snapshot install (KvStore::restore, RedbEngine import) and backup restore",
    seeds,
    dictionary: &[
        b"concord-export\x01",
        b"\"key\"",
        b"\"value_base64\"",
        b"\"sha256\"",
        b"concord-backup/1",
        &[0, 0, 0, 0],
    ],
    max_len: 4096,
    max_alloc_bytes: 16 << 20,
    run,
};

const KV: u8 = 0;
const REDB: u8 = 1;
const BACKUP: u8 = 2;
const FIX: u8 = 0x80;

/// A small real state, as the in-memory engine snapshots it.
fn sample_snapshot() -> Vec<u8> {
    use concord_core::time::Time;
    use concord_kv::{Command, Put, Write};
    let mut store = KvStore::new(KvLimits::default());
    for (i, key) in ["a", "b", "ttl"].iter().enumerate() {
        let mut put = Put::new(key.as_bytes(), vec![b'x'; i * 3]);
        if *key == "ttl" {
            put = put.with_ttl_ms(5_000);
        }
        store
            .apply(i as u64 + 1, &Command::new(Time(i as u64 * 1_000_000), Write::Put(put)))
            .expect("a valid put");
    }
    store.snapshot()
}

fn seeds() -> Vec<Vec<u8>> {
    let snapshot = sample_snapshot();
    let mut seeds = Vec::new();
    for mode in [KV, KV | FIX] {
        seeds.push([&[mode][..], &snapshot].concat());
    }
    for mode in [REDB, REDB | FIX] {
        let mut export = vec![mode];
        export.extend_from_slice(b"concord-export\x01");
        export.extend_from_slice(&3u64.to_le_bytes());
        export.extend_from_slice(b"car");
        export.extend_from_slice(&snapshot);
        seeds.push(export);
    }
    let kvs: Vec<KeyValue> = [("a", &b"hello"[..]), ("b/c?d", &[0xff, 0])]
        .iter()
        .map(|(k, v)| KeyValue {
            key: k.as_bytes().to_vec(),
            value: v.to_vec(),
            create_revision: 1,
            mod_revision: 2,
            version: 1,
            expires_at: None,
        })
        .collect();
    for mode in [BACKUP, BACKUP | FIX] {
        seeds.push([&[mode][..], &backup::encode("fuzz", &kvs)].concat());
    }
    seeds
}

fn run(input: &[u8]) -> String {
    let Some((&mode, rest)) = input.split_first() else { return "empty".into() };
    let fix = mode & FIX != 0;
    match mode & 0x7f {
        REDB => redb(rest, fix),
        BACKUP => backup(rest, fix),
        _ => {
            let bytes = if fix { with_crc(rest) } else { rest.to_vec() };
            kv(&bytes)
        }
    }
}

/// `bytes` with its last four bytes replaced by the CRC-32 of the rest (the snapshot trailer).
fn with_crc(bytes: &[u8]) -> Vec<u8> {
    let body = &bytes[..bytes.len().saturating_sub(4)];
    let mut out = body.to_vec();
    out.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
    out
}

/// Restore into the in-memory store; `Some(state)` (the store's own snapshot) if accepted.
fn restore_mem(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let mut store = KvStore::new(KvLimits::default());
    let before = store.snapshot();
    match store.restore(bytes) {
        Ok(()) => {
            let state = store.snapshot();
            let mut again = KvStore::new(KvLimits::default());
            again
                .restore(&state)
                .unwrap_or_else(|e| panic!("a restored state's own snapshot is refused: {e}"));
            assert_eq!(again.snapshot(), state, "restore → snapshot is not a fixed point");
            Ok(state)
        }
        Err(e) => {
            assert_eq!(store.snapshot(), before, "a refused snapshot changed the store");
            Err(e.to_string())
        }
    }
}

fn kv(bytes: &[u8]) -> String {
    match restore_mem(bytes) {
        Ok(_) => "kv: restored".into(),
        Err(e) => label("kv: refused", &e),
    }
}

fn redb(rest: &[u8], fix: bool) -> String {
    // With `fix`, the input's export header is kept and the kv snapshot after it gets its CRC.
    let mut export = rest.to_vec();
    let header = 15 + 8;
    let snapshot_at = if export.len() >= header {
        let sidecar = u64::from_le_bytes(export[15..23].try_into().expect("8 bytes"));
        (header as u64).saturating_add(sidecar).min(export.len() as u64) as usize
    } else {
        export.len()
    };
    if fix && snapshot_at < export.len() {
        let fixed = with_crc(&export[snapshot_at..]);
        export.truncate(snapshot_at);
        export.extend(fixed);
    }
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let engine = RedbEngine::open(tmp.path(), 1 << 20).expect("open a fresh redb engine");
    let mut store = KvStore::with_engine(KvLimits::default(), engine);
    let before = store.snapshot();
    // In two pieces, as a follower receives it.
    let cut = export.len() / 2;
    let imported = store
        .import_chunk(0, &export[..cut])
        .and_then(|()| store.import_chunk(cut as u64, &export[cut..]))
        .and_then(|()| store.import_finish());
    let mem = if export.len() >= snapshot_at
        && snapshot_at >= header
        && export.starts_with(b"concord-export\x01")
    {
        Some(restore_mem(&export[snapshot_at..]))
    } else {
        None
    };
    match imported {
        Ok(()) => {
            let state = store.snapshot();
            let mem = mem.expect("an import without the export header was accepted");
            assert_eq!(
                mem.as_ref(),
                Ok(&state),
                "the durable engine accepted what the in-memory one did not, or differs"
            );
            "redb: imported".into()
        }
        Err(e) => {
            assert_eq!(store.snapshot(), before, "a refused import changed the store");
            if let Some(Ok(_)) = mem {
                // The sidecar (Raft's metadata) is opaque here: only the header and the state matter.
                panic!("the durable engine refused ({e}) a state the in-memory engine restores");
            }
            label("redb: refused", &e.to_string().replace(tmp.path().to_str().unwrap_or("-"), ""))
        }
    }
}

fn backup(rest: &[u8], fix: bool) -> String {
    let mut bytes = rest.to_vec();
    if fix {
        // Recompute the trailer: the SHA-256 of everything before the last line.
        let text = String::from_utf8_lossy(rest).into_owned();
        if let Some(end) = text.trim_end_matches('\n').rfind('\n').map(|i| i + 1) {
            let body = &text[..end];
            let digest: String = Sha256::digest(body.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
            bytes = format!("{body}{{\"sha256\":\"{digest}\"}}\n").into_bytes();
        }
    }
    match backup::decode(&bytes) {
        Ok(decoded) => {
            let kvs: Vec<KeyValue> = decoded
                .entries
                .iter()
                .map(|(k, v)| KeyValue {
                    key: k.as_bytes().to_vec(),
                    value: v.clone(),
                    create_revision: 1,
                    mod_revision: 1,
                    version: 1,
                    expires_at: None,
                })
                .collect();
            let cluster = decoded.header["cluster_id"].as_str().unwrap_or("fuzz");
            let again = backup::decode(&backup::encode(cluster, &kvs)).expect("a re-encoded backup decodes");
            assert_eq!(
                again.entries, decoded.entries,
                "a backup's entries changed through encode and decode"
            );
            format!("backup: {} entries", decoded.entries.len().min(3))
        }
        Err(e) => label("backup: refused", &format!("{e:#}")),
    }
}
