//! Membership of a running cluster, seen from outside: `concord member` (list, add, remove through
//! a member's HTTP API), `concord join` (start a node and have the cluster add it) and
//! `concord member rebuild` (rebuild a node that lost its data from its peers, under its old id).
//!
//! Everything here is a client of the nodes' admin endpoints (`GET /v1/cluster`,
//! `POST /v1/members/addresses`, `POST /v1/members`), called through [`crate::client`] over HTTP or
//! HTTPS. Adding a node tells every member its addresses first, then asks the leader to add it as
//! a learner and to promote it once it has caught up. In the sharded mode the membership is the
//! metadata group's (every node replicates the shard map), and the node then enters the map's
//! placement (`POST /v1/cluster/nodes`): shard replicas reach it through the rebalancer or
//! `concord shard move-replica`, each move committed in the map first.

use crate::config::{NodeConfig, PeerConfig};
use crate::node::Node;
use crate::serve::{init_logging, run_until_stopped, serve_runtime};
use anyhow::{anyhow, bail, Context};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Start `config` as a node joining the cluster that `via` (a member's HTTP address) belongs to,
/// and have the cluster add it – every member learns its addresses, the leader adds it as a
/// learner and promotes it once it has caught up. The running node, and the cluster's answer.
pub async fn join_cluster(
    mut config: NodeConfig,
    via: SocketAddr,
    learner_only: bool,
) -> anyhow::Result<(Node, serde_json::Value)> {
    config.join = true;
    // Learn what the cluster requires before anything changes: its id, and the secret its peers
    // authenticate each other with. A node that would fail the handshake must not be added.
    if config.secret().map_err(|e| anyhow!(e))?.is_none() {
        bail!(
            "a joining node needs the cluster secret (--cluster-secret-file; `concord up` keeps it in \
             DATA/cluster.secret): the members authenticate every peer with it"
        );
    }
    let probe = MemberTarget {
        http: via,
        secret_file: None,
        secret: None,
        tls_ca: config.tls.as_ref().map(|t| t.ca.clone()),
    };
    let view = probe
        .call(via, "GET", "/v1/cluster", &serde_json::Value::Null)
        .await
        .with_context(|| format!("asking the cluster at {via} who it is"))?;
    match view["cluster_id"].as_str() {
        Some(id) if id == config.cluster_id => {}
        Some(id) if config.cluster_id == crate::config::default_cluster_id() => {
            tracing::info!("joining cluster {id} (learned through {via})");
            config.cluster_id = id.to_string();
        }
        Some(id) => bail!(
            "this node is configured for cluster {} but the cluster at {via} is {id}: nothing was changed",
            config.cluster_id
        ),
        None => bail!("the node at {via} did not say which cluster it belongs to (an eventual-mode node, or an older version?)"),
    }
    let sharded = config.mode == crate::config::Mode::Sharded;
    if sharded != (view["mode"] == "sharded") {
        bail!(
            "this node is configured for the {} mode but the cluster at {via} runs the {} mode: nothing was changed",
            config.mode.name(),
            view["mode"].as_str().unwrap_or("strong")
        );
    }
    if let (true, Some(mine)) = (sharded, config.shard) {
        let theirs = &view["layout"];
        if theirs["shards"].as_u64() != Some(u64::from(mine.shards))
            || theirs["replicas"].as_u64() != Some(mine.replicas as u64)
        {
            bail!(
                "this node is configured with {} shards of {} replicas but the cluster at {via} was started with \
                 {theirs}: give the joining node the cluster's --shards and --replicas; nothing was changed",
                mine.shards,
                mine.replicas
            );
        }
    }
    let target = MemberTarget {
        http: via,
        secret_file: None,
        secret: config.secret().map_err(|e| anyhow!(e))?.map(|s| String::from_utf8_lossy(&s).into_owned()),
        tls_ca: config.tls.as_ref().map(|t| t.ca.clone()),
    };
    let peer = PeerConfig {
        id: config.id,
        addr: config.peer_addr,
        http_addr: config.http_addr,
        redis_addr: config.redis_addr,
    };
    let node = Node::start(config).await.map_err(|e| anyhow!(e))?;
    let id = peer.id;
    let added = match member_add(&target, peer, learner_only || sharded).await {
        // A sharded node replicates the metadata group – promoted to a voter of it once caught
        // up – and then enters the map's placement, where the rebalancer can fill it.
        Ok(added) if sharded => join_placement(&target, id, learner_only)
            .await
            .map(|placed| serde_json::json!({ "metadata": added, "placement": placed })),
        other => other,
    };
    match added {
        Ok(answer) => Ok((node, answer)),
        Err(e) => {
            let _ = node.shutdown().await;
            Err(e.context(format!("the cluster at {via} did not add this node")))
        }
    }
}

/// The sharded mode's half of a join, once node `id` is a learner of the metadata group: promote
/// it when caught up (unless `learner_only`), then commit `AddNode` in the map – replicas may be
/// placed on it from then on (by the rebalancer, when on, or `concord shard move-replica`).
async fn join_placement(
    target: &MemberTarget,
    id: u32,
    learner_only: bool,
) -> anyhow::Result<serde_json::Value> {
    if !learner_only {
        let promote = serde_json::json!({ "op": "promote", "id": id });
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match target.call(target.http, "POST", "/v1/members", &promote).await {
                Ok(_) => break,
                Err(e) if Instant::now() < deadline && e.to_string().contains("not caught up") => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
    let body = serde_json::json!({ "node": id });
    target.call(target.http, "POST", "/v1/cluster/nodes", &body).await
}

/// `concord join`: start `config` as a joining node, have the cluster at `via` add it (as a
/// learner only, if asked), then run it as [`crate::serve::run`] does.
pub fn join(config: NodeConfig, via: SocketAddr, learner_only: bool) -> anyhow::Result<()> {
    init_logging(&config.log);
    let runtime = serve_runtime().context("starting the async runtime")?;
    runtime.block_on(async move {
        let (node, answer) = join_cluster(config, via, learner_only).await?;
        tracing::info!("joined: {answer}");
        run_until_stopped(node).await
    })
}

/// `concord member rebuild`: rebuild node `config.id` from its peers, under its old id – for a node
/// whose data directory was lost, wiped, or is corrupt (its peers refuse it: "another
/// incarnation"), as etcd does it, by removing the member and adding it again:
///
/// 1. check that the node is stopped (its data directory is not locked) and that the cluster at
///    `via` is the node's cluster, has other voters, and is not the node itself;
/// 2. remove the node from the membership through the leader (skipped if it is no member: a
///    previous run got that far);
/// 3. move its data directory aside to `<dir>.broken-<unix time>` (never deleted);
/// 4. start it on a fresh directory (a new incarnation) as a learner: every member learns its
///    addresses, the leader adds it and sends it what it lacks (snapshot and log);
/// 5. promote it to voter once the leader says it has caught up.
///
/// `say` is told each step as it starts and ends. Each failure says what was done and that running
/// the command again resumes: every step is skipped or redone safely. The running node and the
/// cluster's answer to the promotion.
pub async fn rebuild_node(
    mut config: NodeConfig,
    via: SocketAddr,
    say: &mut (dyn FnMut(String) + Send),
) -> anyhow::Result<(Node, serde_json::Value)> {
    let id = config.id;
    let again = "nothing was changed by this step; run the command again once that is fixed";
    config.validate().map_err(|e| anyhow!(e))?;
    if config.mode != crate::config::Mode::Strong {
        bail!("rebuild is for the strong mode: an eventual-mode node catches up by anti-entropy after a plain restart");
    }
    let Some(secret) = config.secret().map_err(|e| anyhow!(e))? else {
        bail!(
            "rebuilding node {id} needs the cluster secret (--cluster-secret-file; `concord up` keeps it in              DATA/cluster.secret): the members authenticate every peer with it, and admin calls prove it"
        );
    };
    let target = MemberTarget {
        http: via,
        secret_file: None,
        secret: Some(String::from_utf8_lossy(&secret).into_owned()),
        tls_ca: config.tls.as_ref().map(|t| t.ca.clone()),
    };
    let dir = config.data_dir.clone();

    say(format!("step 1/5: checking that node {id} is stopped and that the cluster at {via} can rebuild it"));
    if let Some(holder) = locked_by(&dir)? {
        bail!(
            "node {id} is still running on {} ({holder}): stop it first, then run the command again; {again}",
            dir.display()
        );
    }
    let view = target
        .call(via, "GET", "/v1/cluster", &serde_json::Value::Null)
        .await
        .with_context(|| format!("asking the cluster at {via} who it is; {again}"))?;
    match view["cluster_id"].as_str() {
        Some(c) if c == config.cluster_id => {}
        Some(c) if config.cluster_id == crate::config::default_cluster_id() => config.cluster_id = c.to_string(),
        Some(c) => bail!(
            "node {id} is configured for cluster {} but the cluster at {via} is {c}; {again}",
            config.cluster_id
        ),
        None => bail!("the node at {via} did not say which cluster it belongs to (an eventual-mode node, or an older version?); {again}"),
    }
    if view["node"].as_u64() == Some(u64::from(id)) {
        bail!("{via} is node {id} itself: --via must name another member, which the node is rebuilt from; {again}");
    }
    let members = view["members"].as_array().cloned().unwrap_or_default();
    let member = |m: &&serde_json::Value| m["id"].as_u64() == Some(u64::from(id));
    let is_member = members.iter().any(|m| member(&m));
    if !members.iter().any(|m| m["voter"] == true && !member(&m)) {
        bail!("the cluster at {via} has no voter other than node {id}: there is no peer to rebuild it from; {again}");
    }

    if is_member {
        say(format!("step 2/5: removing node {id} from the membership through the leader"));
        let body = serde_json::json!({ "op": "remove", "id": id });
        let answer = target.call(via, "POST", "/v1/members", &body).await.with_context(|| {
            format!("removing node {id} (its data directory is untouched); run the command again")
        })?;
        say(format!("        removed at log index {}: voters now {}", answer["index"], answer["voters"]));
    } else {
        say(format!("step 2/5: node {id} is not a member of the cluster at {via} (a previous run removed it): nothing to remove"));
    }

    say(format!("step 3/5: moving node {id}'s old data directory aside (nothing is deleted)"));
    match move_aside(&dir)? {
        Some(to) => say(format!("        {} -> {}", dir.display(), to.display())),
        None => say(format!("        {} is empty or absent: nothing to move", dir.display())),
    }

    say(format!("step 4/5: starting node {id} on a fresh data directory as a learner; it catches up from the leader (snapshot + log)"));
    let (node, added) = join_cluster(config, via, true).await.with_context(|| {
        format!(
            "starting node {id} as a learner (the cluster no longer counts it, and its old data is in the              .broken- directory); run the command again"
        )
    })?;
    say(format!("        added as a learner: voters {}, learners {}", added["voters"], added["learners"]));

    say(format!("step 5/5: promoting node {id} to voter once it has caught up"));
    let promote = serde_json::json!({ "op": "promote", "id": id });
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut said = Instant::now();
    let promoted = loop {
        match target.call(via, "POST", "/v1/members", &promote).await {
            Ok(v) => break v,
            Err(e) if Instant::now() < deadline && e.to_string().contains("not caught up") => {
                if said.elapsed() > Duration::from_secs(5) {
                    say(format!("        still catching up: {e}"));
                    said = Instant::now();
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => {
                let _ = node.shutdown().await;
                return Err(e.context(format!(
                    "promoting node {id}: it is a learner of the cluster now; run the command again (it removes                      the learner and starts over)"
                )));
            }
        }
    };
    say(format!(
        "node {id} is a voter again: voters {}, learners {}",
        promoted["voters"], promoted["learners"]
    ));
    Ok((node, promoted))
}

/// `concord member rebuild`: [`rebuild_node`], printing each step, then run the node as
/// [`crate::serve::run`] does.
pub fn rebuild(config: NodeConfig, via: SocketAddr) -> anyhow::Result<()> {
    init_logging(&config.log);
    let runtime = serve_runtime().context("starting the async runtime")?;
    runtime.block_on(async move {
        let (node, _) = rebuild_node(config, via, &mut |line| println!("{line}")).await?;
        println!(
            "node {} runs on its rebuilt data directory (stop it with Ctrl-C; restart it the usual way)",
            node.peer_addr
        );
        run_until_stopped(node).await
    })
}

/// Who holds `dir`'s lock (a running node), if anyone: the WAL's lock file, taken and released.
fn locked_by(dir: &std::path::Path) -> anyhow::Result<Option<String>> {
    let path = dir.join(concord_wal::layout::LOCK_FILE);
    let file = match std::fs::OpenOptions::new().read(true).write(true).open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => bail!("cannot open {} to see whether the node is running: {e}", path.display()),
    };
    match file.try_lock() {
        Ok(()) => Ok(None), // dropped (and so unlocked) on return
        Err(std::fs::TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            Ok(Some(format!("its lock {} is held by {}", path.display(), holder.trim())))
        }
        Err(std::fs::TryLockError::Error(e)) => bail!("cannot lock {}: {e}", path.display()),
    }
}

/// Rename a non-empty `dir` to `<dir>.broken-<unix time>`; `None` when there is nothing to move.
fn move_aside(dir: &std::path::Path) -> anyhow::Result<Option<PathBuf>> {
    let empty = match std::fs::read_dir(dir) {
        Ok(mut entries) => entries.next().is_none(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            bail!("cannot read {}: {e}; nothing was moved, run the command again once fixed", dir.display())
        }
    };
    if empty {
        return Ok(None);
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "data".into());
    let mut to = dir.with_file_name(format!("{name}.broken-{now}"));
    let mut n = 1;
    while to.exists() {
        to = dir.with_file_name(format!("{name}.broken-{now}-{n}"));
        n += 1;
    }
    std::fs::rename(dir, &to).with_context(|| {
        format!(
            "moving {} aside to {} (the node is removed from the cluster; nothing was moved): run the command              again once fixed",
            dir.display(),
            to.display()
        )
    })?;
    Ok(Some(to))
}

/// A `concord member` command.
#[derive(Debug, Clone)]
pub enum MemberCommand {
    /// Show members, roles, term, leader and replication progress.
    List(MemberTarget),
    /// Add a node (started with `concord serve --join`): every member learns its address, the
    /// leader adds it as a learner, and promotes it to voter once it has caught up.
    Add {
        target: MemberTarget,
        /// The new node: its id and addresses.
        peer: PeerConfig,
        /// Stop after adding it as a learner (no vote).
        learner_only: bool,
    },
    /// Remove a member (the leader itself included: it steps down once the change commits).
    Remove { target: MemberTarget, id: u32 },
}

/// Which node to talk to, and how to prove the right to.
#[derive(Debug, Clone)]
pub struct MemberTarget {
    /// HTTP address of any member.
    pub http: SocketAddr,
    /// The cluster secret file: each call carries a proof of it (`Authorization: Concord-HMAC …`,
    /// see [`crate::auth`]), never the secret itself; not needed for `list`, nor with nodes
    /// started with `--allow-admin`.
    pub secret_file: Option<PathBuf>,
    /// The secret itself (for `concord join`, which has it from the node's own configuration).
    pub secret: Option<String>,
    /// Talk HTTPS and trust this CA certificate: for nodes started with TLS. Every member is then
    /// called over HTTPS. The nodes ask HTTP clients for no certificate, so none is needed here.
    pub tls_ca: Option<PathBuf>,
}

impl MemberTarget {
    fn secret(&self) -> anyhow::Result<Option<String>> {
        if self.secret.is_some() {
            return Ok(self.secret.clone());
        }
        match &self.secret_file {
            None => Ok(None),
            Some(p) => {
                let text =
                    std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?;
                Ok(Some(text.lines().next().unwrap_or("").trim().to_string()))
            }
        }
    }

    /// One JSON call to the node at `addr` (with a proof of the secret, if any): the answer of a
    /// 200, otherwise the API's error as an error.
    pub async fn call(
        &self,
        addr: SocketAddr,
        method: &str,
        path: &str,
        body: &serde_json::Value,
    ) -> anyhow::Result<serde_json::Value> {
        let body = if body.is_null() { Vec::new() } else { serde_json::to_vec(body)? };
        let answer = self.raw(addr, method, path, &body).await?;
        serde_json::from_slice(&answer)
            .map_err(|e| anyhow!("{method} {path} on {addr}: answer is not JSON: {e}"))
    }

    /// `GET path`: the answer's body (after a 200; otherwise the API's error, as an error).
    pub(crate) async fn get_raw(&self, addr: SocketAddr, path: &str) -> anyhow::Result<Vec<u8>> {
        self.raw(addr, "GET", path, &[]).await
    }

    /// `PUT path` with a raw body.
    pub(crate) async fn put_raw(&self, addr: SocketAddr, path: &str, body: &[u8]) -> anyhow::Result<Vec<u8>> {
        self.raw(addr, "PUT", path, body).await
    }

    /// One call with a proof of the secret (if any), over HTTPS with `--tls-ca`; the body of a 200.
    async fn raw(&self, addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> anyhow::Result<Vec<u8>> {
        let secret = self.secret()?;
        let auth = secret.map(|s| crate::auth::proof(s.as_bytes(), method, path, body));
        let headers: Vec<(&str, &str)> = auth.as_deref().map(|a| ("authorization", a)).into_iter().collect();
        let timeout = Duration::from_secs(15);
        let answer = match &self.tls_ca {
            Some(ca) => {
                let tls = crate::tls::client_config(ca).map_err(|e| anyhow!(e))?;
                crate::client::https_with_headers(addr, tls, method, path, &headers, body, timeout)
                    .await
                    .map_err(|e| anyhow!("{e} (called over HTTPS because of --tls-ca)"))?
            }
            None => crate::client::http_with_headers(addr, method, path, &headers, body, timeout)
                .await
                .map_err(|e| anyhow!(plain_http_hint(&format!("{method} {path} on {addr}"), e)))?,
        };
        if answer.status != 200 {
            let error = answer
                .json()
                .ok()
                .and_then(|j| j["error"].as_str().map(String::from))
                .unwrap_or_else(|| answer.text());
            bail!("{method} {path} on {addr}: {} {error}", answer.status);
        }
        Ok(answer.body)
    }
}

/// A failed plain-HTTP call, with a hint when it looks like the node speaks HTTPS: a TLS node
/// drops a plaintext request without an HTTP answer (there is nothing to read, or only a TLS alert).
fn plain_http_hint(call: &str, e: String) -> String {
    if e.starts_with("connect ") || e.ends_with("timed out") {
        return e; // nobody listening, or nobody answering: not a TLS question
    }
    format!(
        "{call}: {e}; if the node serves HTTPS (started with --tls-cert, or by `concord up --tls`), pass --tls-ca \
         with the cluster's CA certificate (e.g. DATA/tls/ca.pem)"
    )
}

/// Add node `id` at the given addresses to the cluster reachable at `target`.
pub async fn member_add(
    target: &MemberTarget,
    peer: PeerConfig,
    learner_only: bool,
) -> anyhow::Result<serde_json::Value> {
    let view = target.call(target.http, "GET", "/v1/cluster", &serde_json::Value::Null).await?;
    let body = serde_json::to_value(&peer)?;
    let mut told = 0;
    for m in view["members"].as_array().into_iter().flatten() {
        let Some(addr) = m["http_addr"].as_str().and_then(|a| a.parse::<SocketAddr>().ok()) else {
            eprintln!(
                "member {} has no known HTTP address; it will not learn node {}'s address",
                m["id"], peer.id
            );
            continue;
        };
        target.call(addr, "POST", "/v1/members/addresses", &body).await?;
        told += 1;
    }
    if told == 0 {
        bail!("no member could be told node {}'s address", peer.id);
    }
    let change = |op: &str| serde_json::json!({ "op": op, "id": peer.id });
    let added = target.call(target.http, "POST", "/v1/members", &change("add_learner")).await?;
    if learner_only {
        return Ok(added);
    }
    // A learner can be promoted once it holds everything committed (the leader checks).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match target.call(target.http, "POST", "/v1/members", &change("promote")).await {
            Ok(v) => return Ok(v),
            Err(e) if Instant::now() < deadline && e.to_string().contains("not caught up") => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Run one `concord member` command; its answer (what the command prints).
pub async fn member_command(command: &MemberCommand) -> anyhow::Result<serde_json::Value> {
    Ok(match command {
        MemberCommand::List(t) => t.call(t.http, "GET", "/v1/cluster", &serde_json::Value::Null).await?,
        MemberCommand::Add { target, peer, learner_only } => {
            member_add(target, peer.clone(), *learner_only).await?
        }
        MemberCommand::Remove { target, id } => {
            let body = serde_json::json!({ "op": "remove", "id": id });
            target.call(target.http, "POST", "/v1/members", &body).await?
        }
    })
}

/// `concord member`: run `command` on a runtime of its own; the cluster's answer.
pub fn member(command: &MemberCommand) -> anyhow::Result<serde_json::Value> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(member_command(command))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_data_directory_is_moved_aside_never_deleted() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("node3");
        assert_eq!(move_aside(&dir).unwrap(), None, "absent: nothing to move");
        std::fs::create_dir(&dir).unwrap();
        assert_eq!(move_aside(&dir).unwrap(), None, "empty: nothing to move");
        std::fs::write(dir.join("identity.json"), b"{}").unwrap();
        let first = move_aside(&dir).unwrap().expect("moved");
        assert!(!dir.exists());
        assert!(first.file_name().unwrap().to_string_lossy().starts_with("node3.broken-"), "{first:?}");
        assert_eq!(std::fs::read(first.join("identity.json")).unwrap(), b"{}");
        // A second run within the same second keeps both.
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("x"), b"y").unwrap();
        let second = move_aside(&dir).unwrap().expect("moved");
        assert_ne!(first, second);
        assert!(first.exists() && second.join("x").exists());
    }

    #[test]
    fn a_running_node_is_seen_by_its_lock() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(locked_by(dir.path()).unwrap(), None, "no lock file: not running");
        let path = dir.path().join(concord_wal::layout::LOCK_FILE);
        std::fs::write(&path, b"pid 42\n").unwrap();
        assert_eq!(locked_by(dir.path()).unwrap(), None, "a lock file nobody holds: not running");
        let held = std::fs::OpenOptions::new().read(true).write(true).open(&path).unwrap();
        held.lock().unwrap();
        let holder = locked_by(dir.path()).unwrap().expect("held");
        assert!(holder.contains("pid 42"), "{holder}");
        drop(held);
        assert_eq!(locked_by(dir.path()).unwrap(), None);
    }
}
