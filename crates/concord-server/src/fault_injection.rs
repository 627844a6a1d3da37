//! Fault injection: partition a node, heal it, stop it – from the dashboard or with curl.
//!
//! **Off by default.** Only a node started with `--allow-fault-injection` (`concord serve` or
//! `concord up`) acts on these requests; any other node answers 403 with a sentence saying so, and
//! its dashboard hides the buttons. Even when on, a request must carry a credential – the
//! dashboard's token (its cookie, given to whoever opens the URL the node or `concord up`
//! printed), a cluster proof, or an admin user's password – checked by [`crate::auth::guard`]
//! before these handlers run. A loopback address is no credential: any web page a user opens
//! can send requests to loopback.
//!
//! | method and path | what it does |
//! |---|---|
//! | `GET /v1/faults` | `{"node", "fault_injection", "isolated"}` (always answers: read-only) |
//! | `POST /v1/faults/partition` | drop every peer frame to and from this node ([`crate::transport::Transport::set_isolated`]) |
//! | `POST /v1/faults/heal` | stop dropping them |
//! | `POST /v1/faults/stop` | shut this node down as SIGTERM would (the sync in progress completes, then the process exits 0) |
//! | `POST /v1/faults/nodes/{id}/{action}` | the same, for member `id`: this node forwards the request to that member's HTTP address (HTTPS under TLS) with a proof of the cluster secret (so the page only talks to the node that served it) |
//! | `POST /v1/faults/nodes/{id}/restart` | under `concord up`: ask the supervisor (its control socket, `--supervisor`) to start member `id` again – stopped, killed or running |
//!
//! **Which modes.** Every mode serves them: the strong mode with the dashboard's buttons, the
//! eventual and sharded modes without (`concord lab social --real --faults partition` partitions
//! its likes cluster and its sharded timelines cluster with them). Each mode builds them with
//! [`doors`] and cuts its peers with [`FaultTarget::set_isolated`]; its inbox drops peer frames while
//! [`FaultTarget::isolated`]. In the sharded mode a partitioned node is cut from every Raft group it
//! is in: on a three-replica layout each of its groups is the minority of one there, so it
//! commits nothing until healed.
//!
//! **What the faults are.** A *partition* cuts Raft traffic only: the node's HTTP API and
//! dashboard keep answering, so the page can show the partitioned node's view (its term rising
//! while it cannot win, or its stale leader). Client requests to it that need the leader time out,
//! as they would behind a real partition. *Stop* is final for the process: under `concord serve`
//! it exits; under `concord up --allow-fault-injection` the supervisor keeps the other nodes running.
//! *Restart* cannot be asked of the stopped process itself, so the node that serves the page asks
//! the supervisor, which started every node and can start this one again (`concord restart N` does
//! the same from a terminal).

use crate::dashboard::PeerHttp;
use crate::front::http::ApiError;
use crate::front::ClientError;
use crate::node::DoorParts;
use crate::transport::Transport;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// A forwarded fault-injection request may take this long.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(2);
/// `stop` answers first, then stops after this delay (so the answer leaves before the listener
/// closes).
const STOP_DELAY: Duration = Duration::from_millis(100);

/// What the endpoints need of a node, whatever its mode (the strong mode's
/// [`crate::strong::NodeHandle`], the eventual mode's [`crate::eventual::EventualHandle`], the
/// sharded mode's [`crate::sharded::ShardedHandle`]).
pub trait FaultTarget: Send + Sync + 'static {
    fn node_id(&self) -> u32;
    /// The node's peer transport (none without a cluster secret: no peers to cut).
    fn transport(&self) -> Option<&Transport>;
    /// Member `id`'s HTTP address, if this node knows it.
    fn peer_http(&self, id: u32) -> Option<SocketAddr>;

    /// Whether this node is partitioned from its peers.
    fn isolated(&self) -> bool {
        self.transport().is_some_and(Transport::is_isolated)
    }

    /// Partition this node from every peer, or heal it.
    fn set_isolated(&self, isolated: bool) -> Result<(), ClientError> {
        let transport = self.transport().ok_or_else(|| {
            ClientError::Rejected("this node runs without a cluster secret, so it has no peers to cut".into())
        })?;
        transport.set_isolated(isolated);
        Ok(())
    }
}

/// A mode's fault-injection routes for `handle` (on only with `--allow-fault-injection`; `stop`
/// flips the node's shutdown switch; `restart` asks `concord up`'s supervisor).
pub fn doors(handle: Arc<dyn FaultTarget>, peer_http: PeerHttp, parts: &DoorParts<'_>) -> Router {
    let config = parts.config;
    routes(FaultInjection::new(
        handle,
        peer_http,
        config.allow_fault_injection,
        parts.shutdown.clone(),
        config.supervisor.clone(),
    ))
}

/// What the fault-injection endpoints need.
pub struct FaultInjection {
    handle: Arc<dyn FaultTarget>,
    peer_http: PeerHttp,
    enabled: bool,
    /// The node's shutdown switch (what SIGTERM flips).
    stop: watch::Sender<bool>,
    /// The control socket of the `concord up` that supervises the cluster, if any.
    supervisor: Option<std::path::PathBuf>,
}

impl FaultInjection {
    pub fn new(
        handle: Arc<dyn FaultTarget>,
        peer_http: PeerHttp,
        enabled: bool,
        stop: watch::Sender<bool>,
        supervisor: Option<std::path::PathBuf>,
    ) -> Arc<FaultInjection> {
        Arc::new(FaultInjection { handle, peer_http, enabled, stop, supervisor })
    }

    /// Ask the supervisor to start member `id` again (it stops it first if it runs).
    async fn restart(&self, id: u32, remote: SocketAddr) -> Response {
        let Some(socket) = self.supervisor.clone() else {
            let why = format!(
                "no supervisor to restart node {id}: only a cluster started by `concord up` can restart its nodes"
            );
            return refuse(StatusCode::CONFLICT, why);
        };
        let command = format!("restart {id}");
        let asked =
            tokio::task::spawn_blocking(move || crate::cluster::control::request_at(&socket, &command)).await;
        match asked {
            Ok(Ok(answer)) => {
                tracing::warn!("fault injection: restart node {id} (asked by {remote}): {answer}");
                Json(json!({ "node": id, "restarted": true, "supervisor": answer })).into_response()
            }
            Ok(Err(e)) => refuse(StatusCode::BAD_GATEWAY, format!("{e:#}")),
            Err(e) => refuse(StatusCode::INTERNAL_SERVER_ERROR, format!("restart node {id}: {e}")),
        }
    }

    /// `Err`: the 403 message (the credential was checked by [`crate::auth::guard`]).
    fn authorize(&self) -> Result<(), String> {
        authorize(self.enabled, self.handle.node_id())
    }

    /// Apply `action` to this node.
    fn act(&self, action: &str, remote: SocketAddr) -> Response {
        let me = self.handle.node_id();
        let result = match action {
            "partition" | "heal" => {
                let isolate = action == "partition";
                self.handle.set_isolated(isolate).map(|()| json!({ "node": me, "isolated": isolate }))
            }
            "stop" => {
                let stop = self.stop.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(STOP_DELAY).await;
                    let _ = stop.send(true);
                });
                Ok(json!({ "node": me, "stopping": true }))
            }
            other => {
                return refuse(
                    StatusCode::NOT_FOUND,
                    format!("no fault-injection action {other:?}: expected partition, heal, stop or restart"),
                )
            }
        };
        match result {
            Ok(body) => {
                tracing::warn!("fault injection: {action} (asked by {remote})");
                Json(body).into_response()
            }
            Err(e) => refuse(StatusCode::CONFLICT, e.to_string()),
        }
    }

    /// Forward `action` to member `id`, with a proof of the cluster secret (added by [`PeerHttp`]).
    async fn forward(&self, id: u32, action: &str) -> Response {
        let Some(addr) = self.handle.peer_http(id) else {
            return refuse(StatusCode::NOT_FOUND, format!("node {id} has no known HTTP address here"));
        };
        if !self.peer_http.signs() {
            return refuse(StatusCode::CONFLICT, "this node has no cluster secret to forward with".into());
        }
        let path = format!("/v1/faults/{action}");
        match self.peer_http.call(addr, "POST", &path, &[], FORWARD_TIMEOUT).await {
            Ok(answer) => {
                let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::BAD_GATEWAY);
                let body = answer.json().unwrap_or_else(|e| json!({ "error": e }));
                (status, Json(body)).into_response()
            }
            Err(e) => refuse(StatusCode::BAD_GATEWAY, format!("node {id} at {addr} did not answer: {e}")),
        }
    }
}

/// Whether a fault-injection request may act: fault injection must be on. `Err` is the 403 message.
fn authorize(enabled: bool, node: u32) -> Result<(), String> {
    if !enabled {
        return Err(format!(
            "fault injection is off on node {node}: start it with --allow-fault-injection (test clusters only)"
        ));
    }
    Ok(())
}

fn refuse(status: StatusCode, message: String) -> Response {
    ApiError::new(status, message).into_response()
}

/// The fault-injection routes. The server must be run with connect info (`into_make_service_with_connect_info`):
/// the log says who asked.
pub fn routes(faults: Arc<FaultInjection>) -> Router {
    Router::new()
        .route("/v1/faults", get(state))
        .route("/v1/faults/{action}", post(local))
        .route("/v1/faults/nodes/{id}/{action}", post(member))
        .with_state(faults)
}

async fn state(State(faults): State<Arc<FaultInjection>>) -> Json<Value> {
    Json(json!({
        "node": faults.handle.node_id(),
        "fault_injection": faults.enabled,
        "isolated": faults.handle.isolated(),
    }))
}

async fn local(
    State(faults): State<Arc<FaultInjection>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    Path(action): Path<String>,
) -> Response {
    if let Err(message) = faults.authorize() {
        return refuse(StatusCode::FORBIDDEN, message);
    }
    if action == "restart" {
        return faults.restart(faults.handle.node_id(), remote).await;
    }
    faults.act(&action, remote)
}

async fn member(
    State(faults): State<Arc<FaultInjection>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    Path((id, action)): Path<(u32, String)>,
) -> Response {
    if let Err(message) = faults.authorize() {
        return refuse(StatusCode::FORBIDDEN, message);
    }
    if action == "restart" {
        // The member may be down: the supervisor, not the member, starts it.
        faults.restart(id, remote).await
    } else if id == faults.handle.node_id() {
        faults.act(&action, remote)
    } else {
        faults.forward(id, &action).await
    }
}

#[cfg(test)]
mod tests {
    use super::authorize;

    #[test]
    fn lab_requests_need_the_flag() {
        // Off: refused whoever asks, and the message says how to turn it on. (Who may ask when it
        // is on is `crate::auth`'s: a credential, never a loopback address.)
        let off = authorize(false, 2).unwrap_err();
        assert!(off.contains("--allow-fault-injection") && off.contains("node 2"), "{off}");
        assert_eq!(authorize(true, 2), Ok(()));
    }
}
