//! Backups: a checksummed copy of a cluster's keys, and its restore.
//!
//! **Taking one.** `GET /v1/backup` (an admin route: the cluster secret, or `--allow-admin`)
//! answers every key as JSON lines. In the strong mode it reads them in **one** linearizable read
//! ([`concord_kv::Query::Export`]) – one point in the log, so the copy is consistent even while
//! clients write. In the sharded mode it walks the keys of every shard page by page, as
//! `GET /v1/kv` does (`crate::sharded::scan`): each page of each shard is read linearizably, but
//! shards and pages are read at different moments, so the copy is **not one snapshot** of the
//! cluster – a write made during the backup may be in it or not, and writes to keys of two shards
//! may be seen one without the other. Take it while writes are stopped for a point-in-time copy.
//! The header's `read` says which:
//!
//! ```text
//! {"format": "concord-backup/1", "cluster_id": "concord-1a2b", "keys": 2, "max_mod_revision": 17, "read": "one linearizable read"}
//! {"key": "a", "value": "hello"}
//! {"key": "b", "value_base64": "/wA="}
//! {"sha256": "<hex of every byte above, newlines included>"}
//! ```
//!
//! `concord backup --to FILE` checks that answer's checksum and writes it (to a temporary file,
//! renamed into place).
//!
//! **Restoring.** `concord restore FILE` checks the checksum and the format, refuses a cluster that
//! already holds keys (a restore must not merge into live data), and writes every key through the
//! API (`PUT /v1/kv/{key}`, the key percent-encoded): start a new cluster first (`concord up
//! --data NEW`). Either mode's backup restores into either mode's cluster. Revisions are not
//! carried over (`max_mod_revision` only records the source's; a sharded cluster's are per shard).
//!
//! Limits, said plainly: the read is held in memory while it is sent (fine for the data sizes this
//! project runs; streaming the state database's checkpoint would lift that), and TTLs are not
//! carried over (a restored key does not expire).

use crate::membership::MemberTarget;
use anyhow::{anyhow, bail, Context};
use base64::Engine;
use concord_kv::KeyValue;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::path::Path;

/// The first line's `format`.
pub const FORMAT: &str = "concord-backup/1";

/// The header's `read` of a strong-mode backup: every key at one point of the log.
pub const ONE_READ: &str = "one linearizable read";
/// The header's `read` of a sharded cluster's backup: each page of each shard read linearizably,
/// shards and pages at different moments (see the module docs).
pub const PER_SHARD_PAGE: &str = "linearizable per shard and page, not one snapshot across shards";

/// The backup document for `kvs`, read at one point of `cluster_id`'s log.
pub fn encode(cluster_id: &str, kvs: &[KeyValue]) -> Vec<u8> {
    encode_read(cluster_id, kvs, ONE_READ)
}

/// The backup document for `kvs` of `cluster_id`, read as `read` says ([`ONE_READ`] or
/// [`PER_SHARD_PAGE`]).
pub fn encode_read(cluster_id: &str, kvs: &[KeyValue], read: &str) -> Vec<u8> {
    let max_mod_revision = kvs.iter().map(|kv| kv.mod_revision).max().unwrap_or(0);
    let mut out = Vec::new();
    let header = json!({ "format": FORMAT, "cluster_id": cluster_id, "keys": kvs.len(), "max_mod_revision": max_mod_revision, "read": read });
    out.extend(header.to_string().as_bytes());
    out.push(b'\n');
    for kv in kvs {
        let key = String::from_utf8_lossy(&kv.key);
        let line = match std::str::from_utf8(&kv.value) {
            Ok(value) => json!({ "key": key, "value": value }),
            Err(_) => {
                json!({ "key": key, "value_base64": base64::engine::general_purpose::STANDARD.encode(&kv.value) })
            }
        };
        out.extend(line.to_string().as_bytes());
        out.push(b'\n');
    }
    let digest = hex(&Sha256::digest(&out));
    out.extend(json!({ "sha256": digest }).to_string().as_bytes());
    out.push(b'\n');
    out
}

/// A backup read back: its header, and its keys with their values.
pub struct Backup {
    pub header: Value,
    pub entries: Vec<(String, Vec<u8>)>,
}

/// Check a backup's checksum and format, and read its entries. Any damage is an error that says
/// where; nothing is half-read.
pub fn decode(bytes: &[u8]) -> anyhow::Result<Backup> {
    let text = std::str::from_utf8(bytes).context("a backup is UTF-8 text")?;
    let body_end = text
        .trim_end_matches('\n')
        .rfind('\n')
        .map(|i| i + 1)
        .ok_or_else(|| anyhow!("too short to be a backup"))?;
    let (body, last) = text.split_at(body_end);
    let trailer: Value = serde_json::from_str(last.trim()).context("the last line (the checksum)")?;
    let want = trailer["sha256"].as_str().ok_or_else(|| anyhow!("the last line has no sha256"))?;
    let got = hex(&Sha256::digest(body.as_bytes()));
    if got != want {
        bail!("the checksum does not match (the file says {want}, its contents hash to {got}): the backup is damaged");
    }
    let mut lines = body.lines();
    let header: Value =
        serde_json::from_str(lines.next().unwrap_or_default()).context("the first line (the header)")?;
    if header["format"] != FORMAT {
        bail!("not a {FORMAT} file (format {})", header["format"]);
    }
    let mut entries = Vec::new();
    for (n, line) in lines.enumerate() {
        let line_no = n + 2;
        let entry: Value = serde_json::from_str(line).with_context(|| format!("line {line_no}"))?;
        let key = entry["key"].as_str().ok_or_else(|| anyhow!("line {line_no}: no key"))?.to_string();
        let value = match (&entry["value"], &entry["value_base64"]) {
            (Value::String(v), _) => v.as_bytes().to_vec(),
            (_, Value::String(b)) => base64::engine::general_purpose::STANDARD
                .decode(b)
                .with_context(|| format!("line {line_no}: value_base64"))?,
            _ => bail!("line {line_no}: no value"),
        };
        entries.push((key, value));
    }
    if header["keys"].as_u64() != Some(entries.len() as u64) {
        bail!("the header counts {} keys, the file holds {}", header["keys"], entries.len());
    }
    Ok(Backup { header, entries })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `concord backup`: fetch a backup from the cluster at `target` and write it to `to`, checked.
/// Returns how many keys it holds, and how they were read (its header's `read`).
pub async fn take(target: &MemberTarget, to: &Path) -> anyhow::Result<(usize, String)> {
    let bytes = target.get_raw(target.http, "/v1/backup").await?;
    let backup = decode(&bytes).context("the backup the cluster sent")?;
    let temporary = to.with_extension("partial");
    std::fs::write(&temporary, &bytes).with_context(|| format!("cannot write {}", temporary.display()))?;
    std::fs::rename(&temporary, to).with_context(|| format!("cannot write {}", to.display()))?;
    let read = backup.header["read"].as_str().unwrap_or(ONE_READ).to_string();
    Ok((backup.entries.len(), read))
}

/// `concord restore`: write every key of the backup `from` into the empty cluster at `target`.
/// Returns how many keys it wrote.
pub async fn restore(target: &MemberTarget, from: &Path) -> anyhow::Result<usize> {
    let bytes = std::fs::read(from).with_context(|| format!("cannot read {}", from.display()))?;
    let backup = decode(&bytes).with_context(|| format!("{} is not a usable backup", from.display()))?;
    let existing = target.get_raw(target.http, "/v1/kv?limit=1").await?;
    let existing: Value = serde_json::from_slice(&existing).context("the cluster's key listing")?;
    if existing["kvs"].as_array().is_some_and(|kvs| !kvs.is_empty()) {
        bail!(
            "the cluster at {} already holds keys: restore into a new cluster (concord up --data NEW)",
            target.http
        );
    }
    for (key, value) in &backup.entries {
        target
            .put_raw(target.http, &format!("/v1/kv/{}", crate::client::path_segment(key)), value)
            .await
            .with_context(|| format!("writing {key}"))?;
    }
    Ok(backup.entries.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &str, value: &[u8], rev: u64) -> KeyValue {
        KeyValue {
            key: key.as_bytes().to_vec(),
            value: value.to_vec(),
            create_revision: rev,
            mod_revision: rev,
            version: 1,
            expires_at: None,
        }
    }

    #[test]
    fn a_backup_round_trips_and_any_damage_is_refused() {
        let bytes = encode("c1", &[kv("a", b"hello", 3), kv("b", &[0xff, 0], 5)]);
        let backup = decode(&bytes).unwrap();
        assert_eq!(backup.header["max_mod_revision"], 5);
        assert_eq!(
            backup.entries,
            vec![("a".to_string(), b"hello".to_vec()), ("b".to_string(), vec![0xff, 0])]
        );
        let mut flipped = bytes.clone();
        let i = flipped.iter().position(|&b| b == b'h').unwrap();
        flipped[i] = b'j';
        assert!(decode(&flipped).err().unwrap().to_string().contains("the checksum does not match"));
        assert!(decode(&bytes[..bytes.len() - 20]).is_err(), "a truncated backup is refused");
    }
}
