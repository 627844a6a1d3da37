//! The HTTP API (axum).
//!
//! | method and path | body | answer |
//! |---|---|---|
//! | `GET /v1/kv/{key}?consistency=linearizable\|lease\|stale` | – | 200 the raw value (headers `x-concord-mod-revision`, `-create-revision`, `-version`), 404 if absent |
//! | `GET /v1/kv?prefix=P` or `?start=A&end=B` (`end` exclusive, absent: to the last key), `&limit=N` (default 100; at most the store's `max_range_limit`, 1 000 by default), `&consistency=…` | – | 200 `{"kvs": [{"key", "value" (UTF-8) or "value_base64", "create_revision", "mod_revision", "version"}], "next": key or null}`: keys in order, one consistent read; `next` starts the following page |
//! | `PUT /v1/kv/{key}?ttl_ms=N` | the value (raw bytes) | 200 `{"revision": n}` |
//! | `DELETE /v1/kv/{key}` | – | 200 `{"deleted": n, "revision": n}` |
//! | `DELETE /v1/kv?prefix=P` or `?start=A&end=B` (`end` exclusive, absent: to the last key) | – | 200 `{"deleted": n, "revision": n}`: every key of the range, in one command |
//! | `POST /v1/kv/{key}/cas` | `{"expect": {"value": "a"} \| {"absent": true} \| {"version": n} \| {"mod_revision": n} \| {"create_revision": n}, "value": "b", "ttl_ms": n?}` | 200 `{"succeeded": bool, "revision": n, "current": kv?}` (the JSON: [`crate::front::cas_txn`]) |
//! | `POST /v1/txn` | `{"compares": [{"key", "op": "equal\|not_equal\|greater\|less", "target": <expect>}], "success": [op], "failure": [op]}`, op = `{"get": {"key"}}`, `{"put": {"key", "value", "ttl_ms"?}}`, `{"delete": {"key"}}` | 200 `{"succeeded", "revision", "responses": [...]}` |
//! | `GET /v1/cluster` | – | members, roles, term, leader, commit/applied index, per-follower match index and lag (leader's view) |
//! | `POST /v1/members/addresses` (admin) | `{"id", "addr", "http_addr"?, "redis_addr"?}` | this node learns a joining node's addresses |
//! | `GET /v1/backup` (admin) | – | every key in one linearizable read, as a checksummed backup (JSON lines, see [`crate::backup`]) |
//! | `POST /v1/members` (admin) | `{"op": "add_learner"\|"promote"\|"remove"\|"transfer_leader", "id"}` | the change, through the leader: `{"index", "voters", "learners"}` |
//! | `GET /healthz` | – | 200 `{"status": "ok", …}` while the node runs |
//! | `GET /`, `GET /dashboard`, `GET /v1/overview`, `GET /v1/events`, `GET /v1/stats` | – | the live dashboard and its data ([`crate::dashboard`]) |
//! | `GET /v1/faults`, `POST /v1/faults/partition\|heal\|stop`, `POST /v1/faults/nodes/{id}/{action}` | – | fault injection, off unless `--allow-fault-injection` ([`crate::fault_injection`]) |
//! | `GET /metrics` | – | OpenMetrics text |
//!
//! Keys in paths and values in JSON are UTF-8 text; `PUT` and `GET` bodies are raw bytes.
//! `docs/http.md` is the reference for users. Errors are `{"error": "…"}` (every one: unknown routes
//! and axum's own rejections too, see [`crate::front::http::with_json_errors`]) with a status that
//! says what to do: 400 bad input, 404 no such key,
//! 413 too large, 503 no leader or refused (retry; `leader` and `leader_http` hint where to),
//! 504 timed out and 500 outcome unknown (a write may or may not have happened).
//!
//! Who may call what is decided before a handler runs, for every route at once, by
//! [`crate::auth::guard`]: admin endpoints need an admin credential (a cluster proof, an admin
//! user, the dashboard token) unless the node runs with `allow_admin`; data endpoints need what the
//! client's role allows when the node requires authentication.
//!
//! Writes on a follower are forwarded to the leader by the [`NodeHandle`], so any node can be used.

use super::handle::NodeHandle;
use crate::config::{NodeConfig, ReadMode};
use crate::fault_injection::FaultTarget as _;
use crate::front::cas_txn::{self, json_body};
use crate::front::http::{body_limit, metrics_text, page_json, ApiError, DeleteRangeParams, ListParams};
use crate::front::{self, ClientError};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use concord_kv::{Command, Put, Write};
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Instant;

/// The API's routes, bound to a node.
pub fn router(handle: NodeHandle, config: &NodeConfig) -> Router {
    let admin = AdminState { handle: handle.clone(), cluster_id: config.cluster_id.clone() };
    let admin_routes = Router::new()
        .route("/v1/members/addresses", post(learn_peer))
        .route("/v1/members", post(change_membership))
        .route("/v1/backup", get(backup))
        .with_state(std::sync::Arc::new(admin));
    // The largest request body: a value at the store's limit, plus JSON overhead for CAS/txn.
    let body_limit = body_limit(config.kv.max_command_bytes.max(config.kv.max_value_bytes));
    Router::new()
        .route("/v1/kv", get(list_keys).delete(delete_range))
        .route("/v1/kv/{key}", get(get_key).put(put_key).delete(delete_key))
        .route("/v1/kv/{key}/cas", post(cas_key))
        .route("/v1/txn", post(txn))
        .route("/v1/cluster", {
            // The cluster's id too, so that `concord join` can learn it before the cluster changes.
            let cluster_id = config.cluster_id.clone();
            get(move |State(handle): State<NodeHandle>| async move {
                let mut view = cluster_json(&handle);
                view["cluster_id"] = json!(cluster_id);
                Json(view)
            })
        })
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(handle)
        .merge(admin_routes)
}

/// A client error, with the leader's addresses as hints when it is "not the leader".
fn from_client(handle: &NodeHandle, e: ClientError) -> ApiError {
    match e {
        ClientError::NotLeader { leader } => {
            let leader = leader.or(handle.status().leader);
            let http = leader.and_then(|l| handle.peer(l)).and_then(|p| p.http_addr);
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
                .with("leader", leader)
                .with("leader_http", http.map(|a| a.to_string()))
        }
        e => ApiError::from_error(e),
    }
}

async fn timed<T>(
    handle: &NodeHandle,
    kind: &'static str,
    f: impl std::future::Future<Output = Result<T, ClientError>>,
) -> Result<T, ClientError> {
    front::timed(handle.metrics(), kind, f).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GetParams {
    consistency: Option<String>,
}

async fn get_key(
    State(handle): State<NodeHandle>,
    Path(key): Path<String>,
    Query(params): Query<GetParams>,
) -> Result<Response, ApiError> {
    let consistency = match params.consistency.as_deref() {
        None => handle.default_read(),
        Some(c) => ReadMode::parse(c).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e))?.consistency(),
    };
    let query = concord_kv::Query::get(key.as_bytes());
    let r = timed(&handle, "get", handle.read(query, consistency)).await;
    match r.map_err(|e| from_client(&handle, e))? {
        concord_kv::Response::Get(Some(kv)) => Ok(crate::front::http::found_key(kv, HeaderMap::new())),
        concord_kv::Response::Get(None) => {
            Err(ApiError::new(StatusCode::NOT_FOUND, format!("key {key:?} not found")))
        }
        other => Err(ApiError::unexpected(&other)),
    }
}

/// `GET /v1/kv`: the keys of a prefix or a range, in order, a page at a time.
async fn list_keys(
    State(handle): State<NodeHandle>,
    Query(params): Query<ListParams>,
) -> Result<Json<Value>, ApiError> {
    let request = params.range_request()?;
    let consistency = match params.consistency.as_deref() {
        None => handle.default_read(),
        Some(c) => ReadMode::parse(c).map_err(|e| ApiError::bad_request(e.to_string()))?.consistency(),
    };
    let query = concord_kv::Query::Range(request);
    let r = timed(&handle, "range", handle.read(query, consistency)).await;
    match r.map_err(|e| from_client(&handle, e))? {
        concord_kv::Response::Range(page) => Ok(Json(page_json(&page))),
        other => Err(ApiError::unexpected(&other)),
    }
}

async fn put_key(
    State(handle): State<NodeHandle>,
    Path(key): Path<String>,
    Query(params): Query<crate::front::http::PutParams>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let value = body.map_err(ApiError::body)?;
    let mut put = Put::new(key.as_bytes(), value.to_vec());
    put.ttl_ms = params.ttl_ms;
    let command = Command::new(handle.now(), Write::Put(put));
    let r = timed(&handle, "put", handle.write(command)).await;
    match r.map_err(|e| from_client(&handle, e))? {
        concord_kv::Response::Put { revision } => Ok(Json(json!({ "revision": revision }))),
        other => Err(ApiError::unexpected(&other)),
    }
}

async fn delete_key(
    State(handle): State<NodeHandle>,
    Path(key): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let command = Command::delete(handle.now(), key.as_bytes());
    let r = timed(&handle, "delete", handle.write(command)).await;
    match r.map_err(|e| from_client(&handle, e))? {
        concord_kv::Response::Delete { revision, deleted } => {
            Ok(Json(json!({ "deleted": deleted, "revision": revision })))
        }
        other => Err(ApiError::unexpected(&other)),
    }
}

async fn cas_key(
    State(handle): State<NodeHandle>,
    Path(key): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let command = Command::new(handle.now(), Write::Cas(cas_txn::cas(key, body)?));
    let r = timed(&handle, "cas", handle.write(command)).await;
    Ok(Json(cas_txn::cas_answer(r.map_err(|e| from_client(&handle, e))?)?))
}

async fn txn(
    State(handle): State<NodeHandle>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let command = Command::txn(handle.now(), cas_txn::txn(body)?);
    let r = timed(&handle, "txn", handle.write(command)).await;
    Ok(Json(cas_txn::txn_answer(r.map_err(|e| from_client(&handle, e))?)?))
}

/// `DELETE /v1/kv?prefix=P` (or `start`, `end`): every key of the range, in one command – one
/// point of the log.
async fn delete_range(
    State(handle): State<NodeHandle>,
    Query(params): Query<DeleteRangeParams>,
) -> Result<Json<Value>, ApiError> {
    let command = Command::delete_range(handle.now(), params.key_range()?);
    let r = timed(&handle, "delete_range", handle.write(command)).await;
    match r.map_err(|e| from_client(&handle, e))? {
        concord_kv::Response::Delete { revision, deleted } => {
            Ok(Json(json!({ "deleted": deleted, "revision": revision })))
        }
        other => Err(ApiError::unexpected(&other)),
    }
}

/// The document `GET /v1/cluster` answers (the dashboard also sends it for this node).
pub fn cluster_json(handle: &NodeHandle) -> Value {
    let s = handle.status();
    let me = handle.id().0;
    let mut members = Vec::new();
    let mut ids: Vec<u32> = s.voters.iter().chain(s.learners.iter()).copied().collect();
    ids.sort_unstable();
    for id in ids {
        let peer = handle.peer(id);
        let peer = peer.as_ref();
        let role = if Some(id) == s.leader {
            "leader"
        } else if s.learners.contains(&id) {
            "learner"
        } else {
            "follower"
        };
        let mut m = json!({
            "id": id,
            "voter": s.voters.contains(&id),
            "role_as_seen_here": if id == me { s.role } else { role },
            "peer_addr": peer.map(|p| p.addr.to_string()),
            "http_addr": peer.and_then(|p| p.http_addr).map(|a| a.to_string()),
            "redis_addr": peer.and_then(|p| p.redis_addr).map(|a| a.to_string()),
        });
        if s.role == "leader" && id != me {
            let matched = s.match_index.get(&id).copied();
            m["match_index"] = json!(matched);
            m["lag"] = json!(matched.map(|mi| s.last_log_index.saturating_sub(mi)));
            m["frames_dropped"] = json!(handle.metrics().dropped_to(id));
        }
        members.push(m);
    }
    json!({
        "node": me,
        "role": s.role,
        "term": s.term,
        "leader": s.leader,
        "commit_index": s.commit_index,
        "follower_log_regressions": s.follower_log_regressions,
        "applied_index": s.applied_index,
        "last_log_index": s.last_log_index,
        "snapshot_index": s.snapshot_index,
        "wal_syncs": s.wal_syncs,
        "isolated": handle.isolated(),
        "members": members,
    })
}

async fn healthz(State(handle): State<NodeHandle>) -> Json<Value> {
    let s = handle.status();
    Json(json!({ "status": "ok", "node": s.id, "role": s.role, "term": s.term, "leader": s.leader }))
}

async fn metrics(State(handle): State<NodeHandle>) -> Response {
    metrics_text(handle.metrics())
}

/// What the admin endpoints need (their credential is checked by [`crate::auth::guard`]).
struct AdminState {
    handle: NodeHandle,
    cluster_id: String,
}

/// `GET /v1/backup` (admin): every key, in one linearizable read, as a checksummed backup
/// ([`crate::backup`]).
async fn backup(State(admin): State<std::sync::Arc<AdminState>>) -> Result<Response, ApiError> {
    let handle = &admin.handle;
    let consistency = concord_raft::ReadConsistency::Linearizable;
    let r = timed(handle, "backup", handle.read(concord_kv::Query::Export, consistency)).await;
    match r.map_err(|e| from_client(handle, e))? {
        concord_kv::Response::Range(page) => {
            let body = crate::backup::encode(&admin.cluster_id, &page.kvs);
            Ok(([("content-type", "application/x-ndjson")], body).into_response())
        }
        other => Err(ApiError::unexpected(&other)),
    }
}

async fn learn_peer(
    State(admin): State<std::sync::Arc<AdminState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let peer: crate::config::PeerConfig = json_body(body)?;
    if peer.id == 0 || peer.id >= 4096 {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "node ids are 1 to 4095"));
    }
    admin.handle.learn_peer(peer.clone()).map_err(|e| from_client(&admin.handle, e))?;
    Ok(Json(json!({ "learned": peer.id, "addr": peer.addr.to_string() })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MembershipBody {
    op: String,
    id: u32,
}

async fn change_membership(
    State(admin): State<std::sync::Arc<AdminState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    use concord_raft::AdminRequest;
    let body: MembershipBody = json_body(body)?;
    let node = concord_core::NodeId(body.id);
    let request = match body.op.as_str() {
        "add_learner" => AdminRequest::AddLearner(node),
        "promote" => AdminRequest::Promote(node),
        "remove" => AdminRequest::Remove(node),
        "transfer_leader" => AdminRequest::TransferLeadership(node),
        other => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("op {other:?}: expected add_learner, promote, remove or transfer_leader"),
            ))
        }
    };
    if matches!(request, AdminRequest::AddLearner(_)) && admin.handle.peer(body.id).is_none() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("node {} has no known address here; POST /v1/members/addresses first", body.id),
        ));
    }
    let start = Instant::now();
    let r = admin.handle.admin(request).await;
    admin.handle.metrics().request("admin", ClientError::label_of(&r), start.elapsed());
    match r.map_err(|e| from_client(&admin.handle, e))? {
        concord_raft::RaftResponse::MembershipChanged { index, membership } => Ok(Json(json!({
            "index": index,
            "voters": membership.voters.iter().map(|v| v.0).collect::<Vec<_>>(),
            "learners": membership.learners.iter().map(|v| v.0).collect::<Vec<_>>(),
        }))),
        concord_raft::RaftResponse::LeadershipTransferred { to } => Ok(Json(json!({ "leader": to.0 }))),
        other => Err(ApiError::unexpected(&other)),
    }
}
