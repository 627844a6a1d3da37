//! Membership of a running cluster, seen from outside: `concord member` (list, add, remove through
//! a member's HTTP API) and `concord join` (start a node and have the cluster add it).
//!
//! Everything here is a client of the nodes' admin endpoints (`GET /v1/cluster`,
//! `POST /v1/members/addresses`, `POST /v1/members`), called through [`crate::client`] over HTTP or
//! HTTPS. Adding a node tells every member its addresses first, then asks the leader to add it as
//! a learner and to promote it once it has caught up.

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
    match member_add(&target, peer, learner_only).await {
        Ok(answer) => Ok((node, answer)),
        Err(e) => {
            let _ = node.shutdown().await;
            Err(e.context(format!("the cluster at {via} did not add this node")))
        }
    }
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
