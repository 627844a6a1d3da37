//! The HTTP API of a sharded node (axum). Key requests look as in the strong mode; any node serves
//! any key (the node forwards inside the cluster).
//!
//! | method and path | body | answer |
//! |---|---|---|
//! | `GET /v1/kv/{key}?consistency=linearizable\|lease\|stale` | – | 200 the raw value (headers `x-concord-mod-revision`, `-create-revision`, `-version`, `-slot`, `-shard`), 404 if absent |
//! | `PUT /v1/kv/{key}?ttl_ms=N` | the value (raw bytes) | 200 `{"revision": n}` (revisions are per shard) |
//! | `DELETE /v1/kv/{key}` | – | 200 `{"deleted": n, "revision": n}` |
//! | `POST /v1/kv/{key}/cas` | as in the strong mode ([`crate::front::cas_txn`]) | 200 `{"succeeded", "revision", "current"}`: one command in the key's shard |
//! | `POST /v1/txn` | as in the strong mode | 200 `{"succeeded", "revision", "responses"}`, atomically in the one shard holding every key; 400 `CROSSSLOT …` with `shards` and `slots` (slot → shard) if the keys live in several shards (give them one `{hash tag}`) |
//! | `DELETE /v1/kv?prefix=P` or `?start=A&end=B` | – | 200 `{"deleted": n}`: the range's keys in every shard, each shard's at one point of its log (not one atomic step of the cluster; [`super::scan`]); 503 `moving` (with `deleted` so far) if a slot kept moving until the deadline |
//! | `GET /v1/backup` (admin) | – | every key of every shard, page by page, as a checksummed backup ([`crate::backup`]; not one snapshot across shards) |
//! | `GET /v1/kv?prefix=P` or `?start=A&end=B`, `&limit=N` (default 100, at most `max_range_limit`), `&consistency=…` | – | 200 `{"kvs": [{"key", "value" or "value_base64", "create_revision", "mod_revision", "version"}], "next": key or null}`, as in the strong mode: the keys of **every** shard, in key order, a page at a time (each shard read through its Raft read path, then merged: [`super::scan`]); 503 `moving` if slots kept moving until the deadline |
//! | `GET /v1/cluster` | – | the shard map: epoch, slot ranges → shard, each shard's replicas and leader as this node knows it (of a shard not replicated here: what the last leader probe heard), moves in progress, members (with `connected`: whether this node's peer connection to it is up) |
//! | `GET /v1/status` | – | this node: the groups it replicates (role, term, indexes, keys, slot table) |
//! | `POST /v1/cluster/moves` (admin) | `{"slots": "0-99", "to": 3}` | 200 `{"move", "epoch", "slots", "from", "to"}` once the move is committed in the map; 400 bad input (a slot out of range, an unknown shard, a range owned by two shards or already the target's), 409 a slot already moving; the map is then unchanged |
//! | `POST /v1/cluster/replicas` (admin) | `{"shard": 2, "from": 1, "to": 4}` | 200 `{"shard", "from", "to", "epoch"}` once the replica move is committed in the map (the mover then adds `to` as a learner, promotes it once caught up – which makes `from` leave in the same map change – and removes `from` from the group); 400 an unknown shard or node, `from` not a voter, `to` already a replica; 409 a replica move already under way; the map is then unchanged |
//! | `POST /v1/cluster/rebalance` (admin) | `{"on": true}` (the default) or `{"on": false}` | 200 `{"rebalance", "epoch"}` once the switch is committed in the map; while on, the metadata leader evens out replicas, slots and leaders one step at a time (`GET /v1/cluster`'s `rebalance` shows the next step and whether the map is balanced) |
//! | `POST /v1/members/addresses` (admin) | `{"id", "addr", "http_addr"?, "redis_addr"?}` | this node learns a joining node's addresses (kept in `DATA/peers.json`) |
//! | `POST /v1/members` (admin) | `{"op": "add_learner" \| "promote", "id": 4}` | the metadata group's membership: a joining node is added as a learner, then promoted once caught up (400 `not caught up` until then); 200 `{"index", "voters", "learners"}` |
//! | `POST /v1/cluster/nodes` (admin) | `{"node": 4}` | 200 `{"node", "epoch"}` once the node is in the map's placement (replicas may go there: the rebalancer, when on, fills it); 409 already there; 400 a node whose address this node does not know |
//! | `POST /v1/cluster/decommission` (admin) | `{"node": 3}` | one step of a node's decommission, and where it stands: 200 `{"node", "state", "epoch", "shards", "metadata_voters", "note"}` with `state` `draining` (the first call commits `Change::RemoveNode`; the metadata leader then moves the node's replicas off, with the rebalancer if it is on, else with drain steps alone), then – once the map says it holds no replica – the call moves the metadata group's leadership off it if it has it and removes it from the group's membership: `removed` (it may be stopped). Calling again reports progress (it is how `concord shard decommission` waits). 400: an unknown node, the node asked itself (ask another), fewer nodes left than replicas per shard, the metadata group's last voter; 409: the metadata group's remaining voters would not have a reachable majority |
//! | `GET /healthz`, `GET /metrics` | – | as in the strong mode |
//! | `GET /v1/faults`, `POST /v1/faults/partition\|heal\|stop`, `POST /v1/faults/nodes/{id}/{action}` | – | fault injection, off unless `--allow-fault-injection` ([`crate::fault_injection`]): a partition cuts the node from every peer, so each Raft group it replicates loses it (a group it leads elects a new leader on the majority side) |
//! | `GET /`, `GET /dashboard` | – | the sharded mode's dashboard (`web/dashboard/sharded.html`): the slot strip coloured by shard, shards × nodes with replicas and leaders, the map epoch, moves in progress; it polls `GET /v1/cluster` |
//!
//! A slot that is being moved answers 503 (`moving`: retry shortly) after the node's own retries
//! ran out; a shard without a leader 503 too.

use super::scan::Scope;
use super::{KeyError, ShardedHandle};
use crate::config::{NodeConfig, ReadMode};
use crate::front::cas_txn;
use crate::front::http::{body_limit, metrics_text, page_json, ApiError, DeleteRangeParams, ListParams};
use crate::front::ClientError;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use concord_core::NodeId;
use concord_kv::{Command, Put, Write};
use concord_shard::machine::MapOutput;
use concord_shard::map::{Change, MapError, Phase, Proposal, ShardId};
use concord_shard::{key_slot, Slot, SlotRange, SLOTS};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// The API's routes, bound to a node.
pub fn router(handle: ShardedHandle, config: &NodeConfig) -> Router {
    let limit = body_limit(config.kv.max_command_bytes.max(config.kv.max_value_bytes));
    Router::new()
        .route("/v1/kv/{key}", get(get_key).put(put_key).delete(delete_key))
        .route("/v1/kv", get(list_keys).delete(delete_range))
        .route("/v1/kv/{key}/cas", post(cas_key))
        .route("/v1/txn", post(txn))
        .route("/v1/members", post(change_members))
        .route("/v1/members/addresses", post(learn_peer))
        .route("/v1/cluster/nodes", post(add_node))
        .route("/v1/cluster/decommission", post(decommission))
        .route("/v1/backup", get(backup))
        .route("/v1/cluster", get(cluster))
        .route("/v1/cluster/moves", post(start_move))
        .route("/v1/cluster/replicas", post(move_replica))
        .route("/v1/cluster/rebalance", post(rebalance))
        .route("/v1/status", get(status))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/", get(dashboard))
        .route("/dashboard", get(dashboard))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(handle)
}

/// A key request's failure as an answer.
fn key_error(e: KeyError) -> ApiError {
    match e {
        KeyError::Client(e) => ApiError::from_error(e),
        e @ KeyError::Moving { slot } => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()).with("moving", slot)
        }
        e @ KeyError::ClusterDown(_) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        // HTTP requests are served through forwarding; a redirect is a RESP answer only.
        e @ KeyError::Moved { .. } => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        KeyError::CrossShard { slots } => {
            let shards: std::collections::BTreeSet<u32> = slots.iter().map(|&(_, shard)| shard).collect();
            let by_slot: serde_json::Map<String, Value> =
                slots.iter().map(|(slot, shard)| (slot.to_string(), json!(shard))).collect();
            let message = KeyError::CrossShard { slots }.to_string();
            ApiError::bad_request(message).with("shards", json!(shards)).with("slots", by_slot)
        }
    }
}

/// Where a key lives: its slot and the shard owning it, as headers.
fn placement_headers(handle: &ShardedHandle, key: &[u8], headers: &mut HeaderMap) {
    let slot = key_slot(key);
    headers.insert("x-concord-slot", HeaderValue::from(slot.get()));
    if let Some(shard) = handle.status().map.owner(slot) {
        headers.insert("x-concord-shard", HeaderValue::from(shard.0));
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GetParams {
    consistency: Option<String>,
}

async fn get_key(
    State(handle): State<ShardedHandle>,
    Path(key): Path<String>,
    Query(params): Query<GetParams>,
) -> Result<Response, ApiError> {
    let consistency = match params.consistency.as_deref() {
        None => handle.default_read(),
        Some(c) => ReadMode::parse(c).map_err(|e| ApiError::bad_request(e.to_string()))?.consistency(),
    };
    let query = concord_kv::Query::get(key.as_bytes());
    let start = std::time::Instant::now();
    let r = handle.read(query, consistency).await;
    handle.metrics().request("get", if r.is_ok() { "ok" } else { "failed" }, start.elapsed());
    let mut headers = HeaderMap::new();
    placement_headers(&handle, key.as_bytes(), &mut headers);
    match r.map_err(key_error)? {
        concord_kv::Response::Get(Some(kv)) => Ok(crate::front::http::found_key(kv, headers)),
        concord_kv::Response::Get(None) => {
            let body = json!({ "error": format!("key {key:?} not found") });
            Ok((StatusCode::NOT_FOUND, headers, Json(body)).into_response())
        }
        other => Err(ApiError::unexpected(&other)),
    }
}

/// `GET /v1/kv?prefix=P` (or `start`, `end`), `&limit=N`: a page of the keys of every shard, in
/// key order, gathered as [`super::scan`] says (no key missed or seen twice while slots move).
async fn list_keys(
    State(handle): State<ShardedHandle>,
    Query(params): Query<ListParams>,
) -> Result<Json<Value>, ApiError> {
    let request = params.range_request()?;
    let consistency = match params.consistency.as_deref() {
        None => handle.default_read(),
        Some(c) => ReadMode::parse(c).map_err(|e| ApiError::bad_request(e.to_string()))?.consistency(),
    };
    let start = std::time::Instant::now();
    let r = handle.scan(Scope::Cluster, request, consistency).await;
    handle.metrics().request("range", if r.is_ok() { "ok" } else { "failed" }, start.elapsed());
    Ok(Json(page_json(&r.map_err(key_error)?)))
}

async fn put_key(
    State(handle): State<ShardedHandle>,
    Path(key): Path<String>,
    Query(params): Query<crate::front::http::PutParams>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let value = body.map_err(ApiError::body)?;
    if params.ttl_ms == Some(0) {
        return Err(ApiError::bad_request("ttl_ms must be at least 1"));
    }
    let put = Put { key: key.into_bytes(), value: value.to_vec(), ttl_ms: params.ttl_ms };
    let command = Command { now: handle.now(), write: Write::Put(put) };
    match run(&handle, "put", command).await? {
        concord_kv::Response::Put { revision, .. } => Ok(Json(json!({ "revision": revision }))),
        other => Err(ApiError::unexpected(&other)),
    }
}

async fn delete_key(
    State(handle): State<ShardedHandle>,
    Path(key): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let command = Command { now: handle.now(), write: Write::Delete { key: key.into_bytes() } };
    match run(&handle, "delete", command).await? {
        concord_kv::Response::Delete { deleted, revision } => {
            Ok(Json(json!({ "deleted": deleted, "revision": revision })))
        }
        other => Err(ApiError::unexpected(&other)),
    }
}

/// `POST /v1/kv/{key}/cas`: as in the strong mode ([`crate::front::cas_txn`]), in the key's
/// shard – one Raft command there, so linearizable.
async fn cas_key(
    State(handle): State<ShardedHandle>,
    Path(key): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let command = Command { now: handle.now(), write: Write::Cas(cas_txn::cas(key, body)?) };
    Ok(Json(cas_txn::cas_answer(run(&handle, "cas", command).await?)?))
}

/// `POST /v1/txn`: as in the strong mode, atomically in the one shard holding every key of it;
/// 400 `CROSSSLOT` naming the slots and shards if its keys live in several.
async fn txn(
    State(handle): State<ShardedHandle>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let command = Command::txn(handle.now(), cas_txn::txn(body)?);
    if command.write.keys().is_empty() {
        return Err(ApiError::bad_request(
            "a transaction names no key: in the sharded mode it runs in the shard of its keys",
        ));
    }
    let start = std::time::Instant::now();
    let r = handle.transaction(command).await;
    handle.metrics().request("txn", label(&r), start.elapsed());
    Ok(Json(cas_txn::txn_answer(r.map_err(key_error)?)?))
}

/// `DELETE /v1/kv?prefix=P` (or `start`, `end`): the range's keys in every shard, each shard's at
/// one point of its log ([`super::scan`]'s "Range deletes"); 200 `{"deleted": n}`, the sum.
async fn delete_range(
    State(handle): State<ShardedHandle>,
    Query(params): Query<DeleteRangeParams>,
) -> Result<Json<Value>, ApiError> {
    let range = params.key_range()?;
    // Refused here, not by every shard's log: a range the store refuses (a bound too long, start
    // after end).
    concord_kv::validate(&Command::delete_range(handle.now(), range.clone()), handle.limits())
        .map_err(|e| ApiError::from_error(ClientError::Kv(e)))?;
    let start = std::time::Instant::now();
    let r = handle.delete_range(range).await;
    let result = r.as_ref().map_err(|(e, _)| e.clone());
    handle.metrics().request("delete_range", label(&result), start.elapsed());
    match r {
        Ok(deleted) => Ok(Json(json!({ "deleted": deleted }))),
        Err((e, deleted)) => Err(key_error(e).with("deleted", deleted)),
    }
}

/// `GET /v1/backup` (admin): every key of every shard, page by page ([`crate::backup`]).
async fn backup(State(handle): State<ShardedHandle>) -> Result<Response, ApiError> {
    let start = std::time::Instant::now();
    let r = handle.every_key().await;
    handle.metrics().request("backup", label(&r), start.elapsed());
    let kvs = r.map_err(key_error)?;
    let body = crate::backup::encode_read(handle.cluster_id(), &kvs, crate::backup::PER_SHARD_PAGE);
    Ok(([("content-type", "application/x-ndjson")], body).into_response())
}

async fn run(
    handle: &ShardedHandle,
    kind: &'static str,
    command: Command,
) -> Result<concord_kv::Response, ApiError> {
    let start = std::time::Instant::now();
    let r = handle.write(command).await;
    handle.metrics().request(kind, label(&r), start.elapsed());
    r.map_err(key_error)
}

/// A request's `result` label in the metrics.
fn label<T>(r: &Result<T, KeyError>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(KeyError::Client(e)) => ClientError::label_of::<()>(&Err(e.clone())),
        Err(KeyError::CrossShard { .. }) => "refused",
        Err(_) => "unavailable",
    }
}

// ----- the shard map -------------------------------------------------------------------------

async fn cluster(State(handle): State<ShardedHandle>) -> Json<Value> {
    Json(cluster_json(&handle))
}

/// The document `GET /v1/cluster` answers in the sharded mode: the map this node applied, and the
/// leaders it knows.
pub fn cluster_json(handle: &ShardedHandle) -> Value {
    let s = handle.status();
    let map = &s.map;
    let ranges: Vec<Value> = map
        .ranges
        .iter()
        .map(|(range, shard)| {
            json!({ "slots": range.to_string(), "start": range.start.get(), "end": range.end.get(), "shard": shard.0 })
        })
        .collect();
    // Slots per shard in one pass over the ranges (not one pass per shard: 10 000 shards own
    // 10 000 ranges).
    let mut slots_of: BTreeMap<ShardId, usize> = BTreeMap::new();
    for (range, owner) in &map.ranges {
        *slots_of.entry(*owner).or_default() += range.len();
    }
    let shards: Vec<Value> = map
        .shards
        .iter()
        .map(|(id, shard)| {
            let slots = slots_of.get(id).copied().unwrap_or(0);
            json!({
                "shard": id.0,
                "replicas": shard.voters.iter().map(|v| v.0).collect::<Vec<_>>(),
                "learners": shard.learners.iter().map(|v| v.0).collect::<Vec<_>>(),
                "leaving": shard.leaving.iter().map(|v| v.0).collect::<Vec<_>>(),
                "leader": s.leaders.get(&id.0),
                "slots": slots,
            })
        })
        .collect();
    let moves: Vec<Value> = map
        .moves
        .iter()
        .map(|m| {
            let phase = match m.phase {
                Phase::Started => "started",
                Phase::Fenced { .. } => "fenced",
                Phase::Copied { .. } => "copied",
            };
            json!({ "move": m.id, "slots": m.range.to_string(), "from": m.from.0, "to": m.to.0, "phase": phase })
        })
        .collect();
    let members: Vec<Value> = handle
        .peers()
        .iter()
        .map(|p| {
            json!({
                "id": p.id,
                "peer_addr": p.addr.to_string(),
                "http_addr": p.http_addr.map(|a| a.to_string()),
                "redis_addr": p.redis_addr.map(|a| a.to_string()),
                "connected": handle.connected(p.id),
            })
        })
        .collect();
    json!({
        "mode": "sharded",
        "cluster_id": handle.cluster_id(),
        "node": s.id,
        "epoch": map.epoch,
        "bootstrapped": map.bootstrapped,
        "map_leader": s.leaders.get(&0),
        "slots": SLOTS,
        "ranges": ranges,
        "shards": shards,
        "moves": moves,
        "moves_settling": map.settling,
        "nodes": map.nodes.iter().map(|n| n.0).collect::<Vec<_>>(),
        "leaving_nodes": leaving_nodes(map),
        "metadata": {
            "voters": s.groups.first().map(|g| g.voters.clone()).unwrap_or_default(),
            "learners": s.groups.first().map(|g| g.learners.clone()).unwrap_or_default(),
        },
        "rebalance": {
            "on": map.rebalancing,
            "balanced": map.balanced(),
            "next": map.next_step.as_ref().map(describe),
        },
        "members": members,
        "layout": handle.layout().map(|l| json!({ "shards": l.shards, "replicas": l.replicas })),
    })
}

async fn status(State(handle): State<ShardedHandle>) -> Json<Value> {
    let s = handle.status();
    let groups: Vec<Value> = s
        .groups
        .iter()
        .map(|g| {
            json!({
                "group": g.group,
                "kind": if g.group == 0 { "metadata" } else { "shard" },
                "role": g.role,
                "term": g.term,
                "leader": g.leader,
                "commit_index": g.commit_index,
                "applied_index": g.applied_index,
                "last_log_index": g.last_log_index,
                "snapshot_index": g.snapshot_index,
                "voters": g.voters,
                "learners": g.learners,
                "keys": g.keys,
                "quiesced": g.quiesced,
                "slots": g.slots.iter().map(|(r, state)| json!({ "slots": r.to_string(), "state": state })).collect::<Vec<_>>(),
            })
        })
        .collect();
    Json(json!({
        "mode": "sharded",
        "node": s.id,
        "role": s.role,
        "epoch": s.map.epoch,
        "groups": groups,
        // Idle groups that stopped heartbeating (quiescence): as leader, as follower.
        "quiesced": {
            "leaders": s.groups.iter().filter(|g| g.quiesced && g.role == "leader").count(),
            "followers": s.groups.iter().filter(|g| g.quiesced && g.role != "leader").count(),
        },
        "pending_requests": s.pending,
        "pending_map_changes": s.admin_pending,
        "wal_syncs": s.wal_syncs,
    }))
}

/// `POST /v1/cluster/moves`: what to move where.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MoveBody {
    /// `"5"` or `"0-99"` (inclusive).
    slots: String,
    to: u32,
}

/// Parse `"5"` or `"0-99"`: a slot range, or why not.
pub fn parse_slots(text: &str) -> Result<SlotRange, String> {
    let slot = |t: &str| -> Result<Slot, String> {
        let n: i64 = t.trim().parse().map_err(|_| format!("slots {text:?}: `{t}` is not a slot number"))?;
        Slot::new(n).ok_or_else(|| format!("slot {n} is out of range: slots are 0 to {}", SLOTS - 1))
    };
    let (start, end) = match text.split_once('-') {
        Some((a, b)) => (slot(a)?, slot(b)?),
        None => {
            let s = slot(text)?;
            (s, s)
        }
    };
    SlotRange::new(start, end).ok_or_else(|| format!("slots {text:?}: the range ends before it starts"))
}

async fn start_move(
    State(handle): State<ShardedHandle>,
    body: Result<Json<MoveBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(body) = body.map_err(|e| {
        ApiError::bad_request(format!("{}: expected {{\"slots\": \"0-99\", \"to\": 3}}", e.body_text()))
    })?;
    let range = parse_slots(&body.slots).map_err(ApiError::bad_request)?;
    let to = ShardId(body.to);
    let view = handle.status().map;
    if !view.bootstrapped {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the shard map is not bootstrapped yet; retry shortly",
        ));
    }
    let from = view.owner(range.start);
    let proposal = Proposal { if_epoch: None, change: Change::StartMove { range, to } };
    let output = handle.change_map(proposal).await.map_err(ApiError::from_error)?;
    match output {
        MapOutput::Applied(Ok(applied)) => Ok(Json(json!({
            "move": applied.move_id,
            "epoch": applied.epoch,
            "slots": range.to_string(),
            "from": from.map(|s| s.0),
            "to": to.0,
        }))),
        MapOutput::Applied(Err(e)) => Err(refused("move", e)),
        other => Err(ApiError::unexpected(&other)),
    }
}

async fn learn_peer(
    State(handle): State<ShardedHandle>,
    body: Result<Json<crate::config::PeerConfig>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(peer) = body.map_err(|e| {
        ApiError::bad_request(format!("{}: expected {{\"id\": 4, \"addr\": \"host:port\"}}", e.body_text()))
    })?;
    if peer.id == 0 || peer.id >= 4096 {
        return Err(ApiError::bad_request("node ids are 1 to 4095"));
    }
    handle.learn_peer(peer.clone()).map_err(ApiError::from_error)?;
    Ok(Json(json!({ "learned": peer.id, "addr": peer.addr.to_string() })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MembershipBody {
    op: String,
    id: u32,
}

/// `POST /v1/members`: the metadata group's membership – how a joining node gets the map.
async fn change_members(
    State(handle): State<ShardedHandle>,
    body: Result<Json<MembershipBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    use concord_raft::{AdminRequest, RaftResponse};
    let Json(body) = body.map_err(|e| {
        ApiError::bad_request(format!("{}: expected {{\"op\": \"add_learner\", \"id\": 4}}", e.body_text()))
    })?;
    let node = NodeId(body.id);
    let request = match body.op.as_str() {
        "add_learner" => AdminRequest::AddLearner(node),
        "promote" => AdminRequest::Promote(node),
        other => {
            return Err(ApiError::bad_request(format!(
                "op {other:?}: the sharded mode takes add_learner and promote (a node joining); removing \
                 a node is not supported yet"
            )))
        }
    };
    if handle.peer(body.id).is_none() {
        return Err(ApiError::bad_request(format!(
            "node {} has no known address here; POST /v1/members/addresses first",
            body.id
        )));
    }
    match handle.change_members(request).await.map_err(ApiError::from_error)? {
        RaftResponse::MembershipChanged { index, membership } => Ok(Json(json!({
            "index": index,
            "voters": membership.voters.iter().map(|v| v.0).collect::<Vec<_>>(),
            "learners": membership.learners.iter().map(|v| v.0).collect::<Vec<_>>(),
        }))),
        other => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("unexpected answer to a membership change: {other:?}"),
        )),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeBody {
    node: u32,
}

/// `POST /v1/cluster/nodes`: a node enters the map's placement (`Change::AddNode`).
async fn add_node(
    State(handle): State<ShardedHandle>,
    body: Result<Json<NodeBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(body) =
        body.map_err(|e| ApiError::bad_request(format!("{}: expected {{\"node\": 4}}", e.body_text())))?;
    if handle.peer(body.node).is_none() {
        return Err(ApiError::bad_request(format!(
            "node {} has no known address here: add it with `concord join` (POST /v1/members/addresses first)",
            body.node
        )));
    }
    match change_map(&handle, Change::AddNode { node: NodeId(body.node) }).await? {
        Ok(applied) => Ok(Json(json!({ "node": body.node, "epoch": applied.epoch }))),
        Err(e @ MapError::AlreadyNode(_)) => Err(ApiError::new(StatusCode::CONFLICT, e.to_string())),
        Err(e) => Err(refused("adding the node", e)),
    }
}

/// Nodes outside the placement that still host a replica: being decommissioned.
fn leaving_nodes(map: &super::MapView) -> Vec<u32> {
    let mut out: Vec<u32> = map
        .shards
        .values()
        .flat_map(|s| s.voters.iter().chain(&s.learners).chain(&s.leaving))
        .filter(|n| !map.nodes.contains(n))
        .map(|n| n.0)
        .collect();
    out.sort();
    out.dedup();
    out
}

/// How long a decommission call waits for the metadata group's leadership to leave the node.
const LEADER_HANDOVER: std::time::Duration = std::time::Duration::from_secs(5);

/// `POST /v1/cluster/decommission`: one step of taking `node` out of the cluster, and where it
/// stands (see the module docs' table). Each call looks at this node's map and metadata group and
/// does what is next: commit `RemoveNode` (the metadata leader drains the node from then on),
/// report the drain, or – drained – hand the metadata group's leadership over and remove the node
/// from the group. Safe to call again at any point.
async fn decommission(
    State(handle): State<ShardedHandle>,
    body: Result<Json<NodeBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    use concord_raft::{AdminRequest, RaftResponse};
    let Json(body) =
        body.map_err(|e| ApiError::bad_request(format!("{}: expected {{\"node\": 3}}", e.body_text())))?;
    let node = NodeId(body.node);
    if node == handle.id() {
        return Err(ApiError::bad_request(format!(
            "node {} is the node asked: ask another node (the node's own view of the cluster stops when it \
             leaves the metadata group)",
            body.node
        )));
    }
    let s = handle.status();
    if !s.map.bootstrapped {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the shard map is not bootstrapped yet; retry shortly",
        ));
    }
    let (voters, learners) =
        s.groups.first().map(|g| (g.voters.clone(), g.learners.clone())).unwrap_or_default();
    let in_placement = s.map.nodes.contains(&node);
    let hosted = |map: &super::MapView| -> Vec<u32> {
        map.shards.iter().filter(|(_, sh)| sh.hosts(node)).map(|(id, _)| id.0).collect()
    };
    let member = voters.contains(&body.node) || learners.contains(&body.node);
    let progress = |state: &str, epoch: u64, shards: Vec<u32>, voters: &[u32], note: String| {
        Json(json!({
            "node": body.node,
            "state": state,
            "epoch": epoch,
            "shards": shards,
            "metadata_voters": voters,
            "note": note,
        }))
    };
    if !in_placement && hosted(&s.map).is_empty() && !member {
        if handle.peer(body.node).is_none() {
            return Err(ApiError::bad_request(format!(
                "unknown node {}: not in the placement, the metadata group or the peer list",
                body.node
            )));
        }
        let note = format!(
            "node {} holds no replica and is not in the metadata group: it may be stopped",
            body.node
        );
        return Ok(progress("removed", s.map.epoch, vec![], &voters, note));
    }
    if in_placement {
        let replicas = handle.layout().map_or(1, |l| l.replicas).max(1);
        let left = s.map.nodes.len() - 1;
        if left < replicas {
            return Err(ApiError::bad_request(format!(
                "decommissioning node {} would leave {left} node(s) in the placement for {replicas} replicas \
                 per shard; add a node first (concord join)",
                body.node
            )));
        }
        metadata_keeps_a_majority(&handle, &voters, node)?;
        let epoch = match change_map(&handle, Change::RemoveNode { node }).await? {
            Ok(applied) => applied.epoch,
            // Another call got there first: report the drain.
            Err(MapError::AlreadyLeaving(_)) => s.map.epoch,
            Err(e) => return Err(refused("decommission", e)),
        };
        let note = format!(
            "node {} left the placement; its replicas are being moved off{}",
            body.node,
            if s.map.rebalancing { " by the rebalancer" } else { " (drain steps; the rebalancer stays off)" }
        );
        return Ok(progress("draining", epoch, hosted(&s.map), &voters, note));
    }
    let shards = hosted(&s.map);
    if !shards.is_empty() {
        let note = format!(
            "node {} already left the placement; {} replica(s) still to move off",
            body.node,
            shards.len()
        );
        return Ok(progress("draining", s.map.epoch, shards, &voters, note));
    }
    // Drained: out of the metadata group, its leadership first.
    metadata_keeps_a_majority(&handle, &voters, node)?;
    if s.leaders.get(&0) == Some(&body.node) {
        let heir = voters.iter().copied().find(|&v| v != body.node && handle.connected(v));
        let Some(heir) = heir else {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "no other reachable metadata voter to lead the group",
            ));
        };
        handle
            .change_members(AdminRequest::TransferLeadership(NodeId(heir)))
            .await
            .map_err(ApiError::from_error)?;
        let deadline = std::time::Instant::now() + LEADER_HANDOVER;
        while handle.status().leaders.get(&0) == Some(&body.node) && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        if handle.status().leaders.get(&0).is_none_or(|&l| l == body.node) {
            let note = format!(
                "node {} still leads the metadata group or no leader is known yet: try again",
                body.node
            );
            return Ok(progress("draining", s.map.epoch, vec![], &voters, note));
        }
    }
    match handle.change_members(AdminRequest::Remove(node)).await.map_err(ApiError::from_error)? {
        RaftResponse::MembershipChanged { membership, .. } => {
            let voters: Vec<u32> = membership.voters.iter().map(|v| v.0).collect();
            let note =
                format!("node {} holds no replica and left the metadata group: it may be stopped", body.node);
            Ok(progress("removed", s.map.epoch, vec![], &voters, note))
        }
        RaftResponse::Rejected { reason } => Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, reason)),
        other => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("unexpected answer to a membership change: {other:?}"),
        )),
    }
}

/// Refuse to take `node` out of the metadata group when it is the group's last voter, or when the
/// voters left would not have a majority reachable from this node (the group could then commit
/// nothing: no map change, no failover of the map's leader).
fn metadata_keeps_a_majority(handle: &ShardedHandle, voters: &[u32], node: NodeId) -> Result<(), ApiError> {
    if !voters.contains(&node.0) {
        return Ok(()); // a learner or a non-member: no vote is lost
    }
    let rest: Vec<u32> = voters.iter().copied().filter(|&v| v != node.0).collect();
    if rest.is_empty() {
        return Err(ApiError::bad_request(format!("node {} is the metadata group's last voter", node.0)));
    }
    let up: Vec<u32> = rest.iter().copied().filter(|&v| handle.connected(v)).collect();
    if up.len() * 2 <= rest.len() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "removing node {} would leave the metadata group's voters {rest:?} with only {up:?} reachable \
                 – below a majority; bring the others back first",
                node.0
            ),
        ));
    }
    Ok(())
}

/// A rebalancer step as a person reads it.
pub fn describe(change: &Change) -> String {
    match change {
        Change::AddLearner { shard, node } => {
            format!("add a replica of shard {} on node {}", shard.0, node.0)
        }
        Change::RemoveReplica { shard, node } => {
            format!("remove shard {}'s replica on node {}", shard.0, node.0)
        }
        Change::StartMove { range, to } => format!("move slots {range} to shard {}", to.0),
        Change::PreferLeader { shard, node } => format!("lead shard {} from node {}", shard.0, node.0),
        other => format!("{other:?}"),
    }
}

/// A refused map change as an answer: 409 for a conflict with what is under way, 400 otherwise.
fn refused(what: &str, e: MapError) -> ApiError {
    let status = match e {
        MapError::AlreadyMoving { .. }
        | MapError::ShardBusy { .. }
        | MapError::StaleEpoch { .. }
        | MapError::ReplicaMoveBusy { .. }
        | MapError::StillLeaving { .. } => StatusCode::CONFLICT,
        MapError::NotBootstrapped => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    };
    ApiError::new(status, format!("{what} refused, the map is unchanged: {e}"))
}

/// `POST /v1/cluster/replicas`: which shard's replica moves from which node to which.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplicaBody {
    shard: u32,
    from: u32,
    to: u32,
}

async fn move_replica(
    State(handle): State<ShardedHandle>,
    body: Result<Json<ReplicaBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(body) = body.map_err(|e| {
        ApiError::bad_request(format!("{}: expected {{\"shard\": 2, \"from\": 1, \"to\": 4}}", e.body_text()))
    })?;
    let (shard, from, to) = (ShardId(body.shard), NodeId(body.from), NodeId(body.to));
    let change = Change::MoveReplica { shard, from, to };
    match change_map(&handle, change).await? {
        Ok(applied) => Ok(Json(json!({
            "shard": shard.0,
            "from": from.0,
            "to": to.0,
            "epoch": applied.epoch,
        }))),
        Err(e) => Err(refused("replica move", e)),
    }
}

/// `POST /v1/cluster/rebalance`: the rebalancer's switch (on unless said otherwise).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RebalanceBody {
    on: Option<bool>,
}

async fn rebalance(State(handle): State<ShardedHandle>, body: Bytes) -> Result<Json<Value>, ApiError> {
    let body: RebalanceBody = if body.iter().all(u8::is_ascii_whitespace) {
        RebalanceBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request(format!("{e}: expected {{\"on\": true}} or {{\"on\": false}}"))
        })?
    };
    let on = body.on.unwrap_or(true);
    match change_map(&handle, Change::Rebalance { on }).await? {
        Ok(applied) => Ok(Json(json!({ "rebalance": on, "epoch": applied.epoch }))),
        Err(e) => Err(refused("rebalance", e)),
    }
}

/// Commit `change` through the metadata leader: what the map said, or why it was not asked.
async fn change_map(
    handle: &ShardedHandle,
    change: Change,
) -> Result<Result<concord_shard::Applied, MapError>, ApiError> {
    if !handle.status().map.bootstrapped {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the shard map is not bootstrapped yet; retry shortly",
        ));
    }
    let proposal = Proposal { if_epoch: None, change };
    match handle.change_map(proposal).await.map_err(ApiError::from_error)? {
        MapOutput::Applied(result) => Ok(result),
        other => Err(ApiError::unexpected(&other)),
    }
}

/// The sharded mode's dashboard: one page (no build step) that polls `GET /v1/cluster` and draws
/// the map – the slot strip by shard, shards × nodes with leaders, the epoch, moves in progress.
async fn dashboard() -> axum::response::Html<&'static str> {
    axum::response::Html(include_str!("../../../../web/dashboard/sharded.html"))
}

async fn healthz(State(handle): State<ShardedHandle>) -> Json<Value> {
    let s = handle.status();
    Json(json!({ "status": "ok", "node": s.id, "mode": "sharded", "epoch": s.map.epoch }))
}

async fn metrics(State(handle): State<ShardedHandle>) -> Response {
    metrics_text(handle.metrics())
}

#[cfg(test)]
mod tests {
    use super::parse_slots;

    #[test]
    fn slot_ranges_parse_with_precise_errors() {
        assert_eq!(parse_slots("0-99").unwrap().to_string(), "0-99");
        assert_eq!(parse_slots("7").unwrap().len(), 1);
        assert!(
            parse_slots("16384").unwrap_err().contains("out of range"),
            "{}",
            parse_slots("16384").unwrap_err()
        );
        assert!(parse_slots("9-3").unwrap_err().contains("ends before it starts"));
        assert!(parse_slots("a-3").unwrap_err().contains("not a slot number"));
        assert!(parse_slots("-1").is_err());
    }
}
