//! A data directory belongs to one cluster, one node and one mode.
//!
//! Without this, a directory made by the eventual mode and started without `--mode eventual` came
//! up empty and took writes, and a node directory copied from another cluster joined a new cluster,
//! became its leader and replicated the old cluster's data to it. Now:
//!
//! * the first start writes `DATA/identity.json` – `{"cluster_id", "node", "mode", "incarnation"}`
//!   – and syncs it before the node does anything else; every later start compares, and refuses a
//!   mismatch with a message that names both sides and the way out;
//! * the incarnation is 128 random bits made with the file: a directory made again – wiped whole
//!   and restarted under the same id – gets a new one, and its peers, which remember the old one,
//!   refuse it ([`crate::incarnation`]). A file from before incarnations gets one at its next start;
//! * the mode is also read from the write-ahead log itself (Raft's keys or Dynamo's), so a
//!   directory made before identity files existed is recognised too – and then adopted.
//!
//! etcd does the same with the cluster id in its WAL's metadata record.
//!
//! ## A directory that lost its log
//! The identity file is claimed only after the write-ahead log was opened (which creates `wal/`
//! and syncs the directory). So an identity file without `wal/` means the log was deleted: the
//! node forgot its term, its vote and the entries it acknowledged, and must not rejoin under its
//! old id (it could vote twice in one term). [`check_log_not_lost`] refuses to start it and says
//! what to do instead. (A segment truncated or deleted inside `wal/` is the WAL's own check; a
//! directory wiped *whole*, identity file included, cannot be seen from the directory at all: its
//! peers see it, by its new incarnation.)

use crate::config::Mode;
use crate::error::Error;
use crate::incarnation::Incarnation;
use concord_core::Durable;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// What a data directory belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub cluster_id: String,
    pub node: u32,
    pub mode: String,
    /// This directory's life (32 hex digits); absent in files from before incarnations, and in
    /// what a node is configured as (the directory makes it, the configuration cannot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incarnation: Option<String>,
    /// Sharded mode: the layout the node was started with. Placement (which node replicates which
    /// shard) is computed from it at every start, so a restart with another layout would boot
    /// groups over the wrong state: refused like another mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<crate::config::ShardSettings>,
}

impl Identity {
    /// Whether `self` and `other` name the same cluster, node, mode and shard layout (the incarnation
    /// aside).
    fn same_owner(&self, other: &Identity) -> bool {
        (&self.cluster_id, self.node, &self.mode, &self.shard)
            == (&other.cluster_id, other.node, &other.mode, &other.shard)
    }
}

const FILE: &str = "identity.json";

/// The mode the write-ahead log's records were written by, if it holds any.
pub fn mode_in_log(durable: &Durable) -> Option<Mode> {
    if durable.scan_prefix("raft/").next().is_some() {
        Some(Mode::Strong)
    } else if durable.scan_prefix("dynamo/").next().is_some() {
        Some(Mode::Eventual)
    } else if durable.scan_prefix("g/").next().is_some() {
        // Every group of a sharded node keeps its state under `g/<group>/` (`concord_shard::host`).
        Some(Mode::Sharded)
    } else {
        None
    }
}

/// Refuse a data directory whose write-ahead log was deleted (see the module docs). Call before
/// opening the WAL, which would create an empty one.
pub fn check_log_not_lost(dir: &Path) -> Result<(), Error> {
    let path = dir.join(FILE);
    if !path.exists() || dir.join(concord_wal::layout::WAL_SUBDIR).exists() {
        return Ok(());
    }
    let whose = std::fs::read(&path)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Identity>(&bytes).ok())
        .map_or_else(String::new, |i| format!(" (node {} of cluster {})", i.node, i.cluster_id));
    Err(Error::Storage(format!(
        "data directory {} has its identity file{whose} but no write-ahead log ({} is gone): this node \
         lost its durable state – its term, its vote and the entries it acknowledged. Refusing to \
         start under the same id; {}",
        dir.display(),
        dir.join(concord_wal::layout::WAL_SUBDIR).display(),
        concord_wal::error::REPAIR_ADVICE
    )))
}

/// Check that `dir` (whose log is `durable`) belongs to `want`, and claim it if it belongs to no one.
/// The directory's incarnation (made now for a new directory, or for a file from before them).
pub fn check_or_claim(dir: &Path, want: &Identity, durable: &Durable) -> Result<Incarnation, Error> {
    let refuse = |have: &str| {
        Error::Config(format!(
            "data directory {} belongs to {have}; this node is configured as node {} of cluster {} in the {} mode. \
             Refusing to start: use another --data, or start it with the settings it was made with",
            dir.display(),
            want.node,
            want.cluster_id,
            want.mode
        ))
    };
    if let Some(mode) = mode_in_log(durable) {
        if mode.name() != want.mode {
            return Err(refuse(&format!("a node of the {} mode (its write-ahead log says so)", mode.name())));
        }
    }
    let path = dir.join(FILE);
    match std::fs::read(&path) {
        Ok(bytes) => {
            let have: Identity = serde_json::from_slice(&bytes).map_err(|e| {
                Error::Storage(format!(
                    "{} is damaged ({e}); it says which cluster the directory belongs to",
                    path.display()
                ))
            })?;
            if !have.same_owner(want) {
                let layout = have.shard.map_or(String::new(), |s| {
                    format!(" with {} shards of {} replicas", s.shards, s.replicas)
                });
                return Err(refuse(&format!(
                    "node {} of cluster {} in the {} mode{layout}",
                    have.node, have.cluster_id, have.mode
                )));
            }
            match have.incarnation.as_deref() {
                Some(text) => Incarnation::from_hex(text).ok_or_else(|| {
                    Error::Storage(format!(
                        "{} is damaged: its incarnation {text:?} is not 32 hex digits",
                        path.display()
                    ))
                }),
                // A file from before incarnations: this directory's life starts being counted now.
                None => claim(dir, &have),
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => claim(dir, want),
        Err(e) => Err(Error::Storage(format!("cannot read {}: {e}", path.display()))),
    }
}

/// Write the identity file durably (a temporary file, synced, renamed, the directory synced), with
/// a new incarnation; return it.
fn claim(dir: &Path, identity: &Identity) -> Result<Incarnation, Error> {
    let incarnation = Incarnation::random();
    let identity = Identity { incarnation: Some(incarnation.to_hex()), ..identity.clone() };
    use std::io::Write;
    let storage =
        |what: &str, e: std::io::Error| Error::Storage(format!("{what} {}: {e}", dir.join(FILE).display()));
    let temporary = dir.join(format!("{FILE}.new"));
    let mut file = std::fs::File::create(&temporary).map_err(|e| storage("cannot write", e))?;
    let text = serde_json::to_vec_pretty(&identity).expect("an identity serialises");
    file.write_all(&text).and_then(|()| file.sync_all()).map_err(|e| storage("cannot write", e))?;
    std::fs::rename(&temporary, dir.join(FILE)).map_err(|e| storage("cannot write", e))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| storage("cannot sync the directory of", e))?;
    Ok(incarnation)
}

#[cfg(test)]
mod tests {
    use super::*;
    use concord_core::StorageOp;

    fn identity(cluster: &str, node: u32, mode: &str) -> Identity {
        Identity { cluster_id: cluster.into(), node, mode: mode.into(), incarnation: None, shard: None }
    }

    #[test]
    fn a_directory_keeps_its_incarnation_and_a_directory_made_again_gets_a_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let me = identity("c", 3, "strong");
        let first = check_or_claim(dir.path(), &me, &Durable::new()).unwrap();
        assert_eq!(check_or_claim(dir.path(), &me, &Durable::new()).unwrap(), first, "kept across starts");
        std::fs::remove_file(dir.path().join(FILE)).unwrap();
        let again = check_or_claim(dir.path(), &me, &Durable::new()).unwrap();
        assert_ne!(again, first, "a directory made again is another incarnation");
        // A file from before incarnations is given one, once.
        std::fs::write(dir.path().join(FILE), br#"{"cluster_id":"c","node":3,"mode":"strong"}"#).unwrap();
        let adopted = check_or_claim(dir.path(), &me, &Durable::new()).unwrap();
        assert_eq!(check_or_claim(dir.path(), &me, &Durable::new()).unwrap(), adopted);
    }

    #[test]
    fn a_directory_is_claimed_once_and_refused_to_anyone_else() {
        let dir = tempfile::tempdir().unwrap();
        let empty = Durable::new();
        let me = identity("concord-a", 1, "strong");
        check_or_claim(dir.path(), &me, &empty).unwrap();
        check_or_claim(dir.path(), &me, &empty).unwrap();
        for (other, says) in [
            (identity("concord-b", 1, "strong"), "cluster concord-b"),
            (identity("concord-a", 2, "strong"), "node 2 of cluster concord-a"),
            (identity("concord-a", 1, "eventual"), "eventual mode"),
        ] {
            let err = check_or_claim(dir.path(), &other, &empty).unwrap_err().to_string();
            assert!(err.contains("belongs to node 1 of cluster concord-a in the strong mode"), "{err}");
            assert!(err.contains(says) && err.contains("Refusing to start"), "{err}");
        }
    }

    #[test]
    fn a_directory_whose_log_was_deleted_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        check_log_not_lost(dir.path()).expect("a new directory is fine");
        std::fs::create_dir(dir.path().join("wal")).unwrap();
        check_or_claim(dir.path(), &identity("c", 3, "strong"), &Durable::new()).unwrap();
        check_log_not_lost(dir.path()).expect("identity and log: fine");
        std::fs::remove_dir(dir.path().join("wal")).unwrap();
        let err = check_log_not_lost(dir.path()).unwrap_err().to_string();
        assert!(err.contains("node 3 of cluster c") && err.contains("lost its durable state"), "{err}");
        assert!(err.contains("concord member rebuild"), "{err}");
    }

    #[test]
    fn the_log_tells_the_mode_of_a_directory_made_before_identity_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut eventual = Durable::new();
        eventual.apply(&StorageOp::Put { key: "dynamo/meta".into(), value: vec![1] });
        let err = check_or_claim(dir.path(), &identity("c", 1, "strong"), &eventual).unwrap_err().to_string();
        assert!(err.contains("a node of the eventual mode (its write-ahead log says so)"), "{err}");
        assert!(!dir.path().join(FILE).exists(), "a refused directory is not claimed");
        check_or_claim(dir.path(), &identity("c", 1, "eventual"), &eventual).unwrap();
        assert!(dir.path().join(FILE).exists(), "an old directory of the right mode is adopted");
    }
}
