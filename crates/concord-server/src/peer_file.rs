//! `DATA/peers.json`: the peer addresses a node learned at run time, kept across restarts.
//!
//! Raft keeps the *membership* (which ids vote, which learn) in its log and snapshots, so it
//! survives a restart by itself. It does not keep *addresses*: a node learns where its peers are
//! from its `--peer` flags (or `[[peers]]` table) and, for a node added later, from
//! `POST /v1/members/addresses` ([`crate::strong::NodeHandle::learn_peer`], which `concord member
//! add` calls on every member). Without this file a restarted node would know node 4 is a voter
//! but not where to find it: it could neither replicate to it nor count its votes.
//!
//! ```text
//!   POST /v1/members/addresses ─> transport learns the address ─> peers.json rewritten (synced)
//!   Node::start:  configured peers  +  peers.json  ─> the peers the transport dials
//! ```
//!
//! Rules, chosen to be obvious rather than clever:
//! * **Only learned peers are written.** Configured peers come from the configuration at every
//!   start; the file never shadows it.
//! * **Configured peers win.** If the file and the configuration disagree about a peer's address,
//!   the configuration is the operator's newer word (a moved node, restarted with new flags): the
//!   configured address is used, a warning is logged, and the stale entry is dropped from the file
//!   at its next rewrite.
//! * **Removed members are not pruned.** A learned peer stays in the file after it leaves the
//!   cluster. That is harmless – the transport keeps dialing it with backoff and Raft sends it
//!   nothing – and keeps the rule simple: an address learned just before `add_learner` must not be
//!   forgotten because it is not yet a member. Delete the file (with the node stopped) to forget
//!   every learned peer.
//!
//! The file is small (one line per peer) and written whole, atomically: a temporary file is
//! written and synced, renamed over `peers.json`, and the directory is synced, so a crash leaves
//! either the old list or the new one – never half of one. The admin call that taught the address
//! answers only after that, so a successful `concord member add` is durable on every member told.

use crate::config::PeerConfig;
use crate::Error;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The file's name inside the data directory.
pub const FILE_NAME: &str = "peers.json";

/// What is on disk.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct OnDisk {
    /// Peers learned through `POST /v1/members/addresses`, ordered by id.
    learned: Vec<PeerConfig>,
}

/// The learned peers of one node and the file that keeps them.
pub struct PeerFile {
    path: PathBuf,
    /// The learned peers by id; the lock also serialises rewrites of the file.
    learned: Mutex<BTreeMap<u32, PeerConfig>>,
}

impl PeerFile {
    /// Read `data_dir/peers.json`; a missing file means nothing was learned yet.
    pub fn open(data_dir: &Path) -> Result<PeerFile, Error> {
        let path = data_dir.join(FILE_NAME);
        let learned = match std::fs::read(&path) {
            Ok(bytes) => {
                let on_disk: OnDisk = serde_json::from_slice(&bytes).map_err(|e| {
                    Error::Storage(format!(
                        "{} (peer addresses learned at run time) is not valid: {e}; fix it, or delete it \
                         (with the node stopped) to forget those peers",
                        path.display()
                    ))
                })?;
                on_disk.learned.into_iter().map(|p| (p.id, p)).collect()
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(Error::Storage(format!("cannot read {}: {e}", path.display()))),
        };
        Ok(PeerFile { path, learned: Mutex::new(learned) })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The peers to dial: `configured` (this node `me` left out) plus every learned peer the
    /// configuration does not name; ordered by id. A learned address that contradicts the
    /// configuration is dropped (logged, and gone from the file at its next rewrite).
    pub fn merge(&self, me: u32, configured: &[PeerConfig]) -> Vec<PeerConfig> {
        let mut peers: BTreeMap<u32, PeerConfig> =
            configured.iter().filter(|p| p.id != me).map(|p| (p.id, p.clone())).collect();
        let mut learned = self.learned.lock().expect("peer file lock");
        learned.retain(|id, p| {
            if *id == me {
                return false;
            }
            match peers.get(id) {
                Some(c) if c.addr != p.addr => {
                    tracing::warn!(
                        "{}: node {id} was learned at {} but is configured at {}; using the configured address",
                        self.path.display(),
                        p.addr,
                        c.addr
                    );
                    false
                }
                Some(_) => true,
                None => {
                    tracing::info!("node {id} at {} (learned at run time, from {})", p.addr, self.path.display());
                    peers.insert(*id, p.clone());
                    true
                }
            }
        });
        peers.into_values().collect()
    }

    /// Remember a learned peer: the file is rewritten (and synced) before this returns, unless
    /// it already holds exactly this entry.
    pub fn remember(&self, peer: &PeerConfig) -> Result<(), Error> {
        let mut learned = self.learned.lock().expect("peer file lock");
        if learned.get(&peer.id) == Some(peer) {
            return Ok(());
        }
        let mut next = learned.clone();
        next.insert(peer.id, peer.clone());
        write_atomically(&self.path, &OnDisk { learned: next.values().cloned().collect() })
            .map_err(Error::Storage)?;
        *learned = next;
        Ok(())
    }
}

/// Write `value` as JSON to `path` so that a crash leaves the old file or the new one.
fn write_atomically(path: &Path, value: &OnDisk) -> Result<(), String> {
    let fail = |what: &str, e: std::io::Error| format!("cannot {what} {}: {e}", path.display());
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = path.with_extension("json.tmp");
    let mut text = serde_json::to_vec_pretty(value).map_err(|e| format!("cannot encode peers: {e}"))?;
    text.push(b'\n');
    let mut f = std::fs::File::create(&tmp).map_err(|e| fail("create a temporary file for", e))?;
    f.write_all(&text).map_err(|e| fail("write", e))?;
    // The data must be on disk before the rename makes it visible under the real name.
    f.sync_all().map_err(|e| fail("sync", e))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| fail("rename the temporary file over", e))?;
    // And the rename itself must reach the disk (it lives in the directory).
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| fail("sync the directory of", e))
}

/// Learn the addresses of a node about to join (`POST /v1/members/addresses`, which `concord join`
/// calls on every member), for both the strong and the sharded mode: the transport connects to it
/// and accepts its connections, `peers` (the addresses redirects and views give) gets it, and it is
/// written to `file` before this returns, so a restarted node still knows it. (A blocking write and
/// sync on the caller's thread: admin calls are rare and the file small.)
pub fn learn_peer(
    transport: Option<&crate::transport::Transport>,
    peers: &std::sync::RwLock<BTreeMap<u32, PeerConfig>>,
    file: Option<&PeerFile>,
    peer: PeerConfig,
) -> Result<(), crate::front::ClientError> {
    use crate::front::ClientError;
    let transport = transport.ok_or_else(|| {
        ClientError::Rejected("this node runs without a cluster secret, so it cannot take peers".into())
    })?;
    transport
        .add_peer(concord_core::NodeId(peer.id), peer.addr)
        .map_err(|e| ClientError::Rejected(e.to_string()))?;
    peers.write().expect("peers lock").entry(peer.id).or_insert(peer.clone());
    let Some(file) = file else { return Ok(()) };
    file.remember(&peer).map_err(|e| {
        ClientError::Unavailable(format!(
            "node {} is known until this node restarts, but its address could not be kept: {e}",
            peer.id
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(id: u32, port: u16) -> PeerConfig {
        PeerConfig { id, addr: ([127, 0, 0, 1], port).into(), http_addr: None, redis_addr: None }
    }

    #[test]
    fn learned_peers_survive_a_reopen_and_configured_ones_win() {
        let dir = tempfile::tempdir().unwrap();
        let file = PeerFile::open(dir.path()).unwrap();
        assert_eq!(file.merge(1, &[peer(1, 7001), peer(2, 7002)]), vec![peer(2, 7002)]);
        file.remember(&peer(4, 7004)).unwrap();
        file.remember(&peer(5, 7005)).unwrap();
        assert!(!dir.path().join("peers.json.tmp").exists(), "the temporary file was renamed");

        // A restart: the configuration moved node 5 and names node 2; node 4 comes from the file.
        let file = PeerFile::open(dir.path()).unwrap();
        let merged = file.merge(1, &[peer(2, 7002), peer(5, 7555)]);
        assert_eq!(merged, vec![peer(2, 7002), peer(4, 7004), peer(5, 7555)]);
        // The next rewrite drops the contradicted entry.
        file.remember(&peer(6, 7006)).unwrap();
        let text = std::fs::read_to_string(dir.path().join(FILE_NAME)).unwrap();
        assert!(text.contains("7004") && text.contains("7006") && !text.contains("7005"), "{text}");
    }

    #[test]
    fn a_damaged_file_stops_the_node_with_its_name() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), "{ half").unwrap();
        let Some(Error::Storage(err)) = PeerFile::open(dir.path()).err() else {
            panic!("not a storage error")
        };
        assert!(err.contains("peers.json") && err.contains("is not valid"), "{err}");
    }
}
