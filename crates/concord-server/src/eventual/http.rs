//! The HTTP API of an eventual-mode node (axum). Shaped after Riak's HTTP API, which solved the
//! same problem: how to show siblings and hand a context back.
//!
//! | method and path | body | answer |
//! |---|---|---|
//! | `GET /v1/kv/{key}?r=N` | – | 200 the raw value, header `x-concord-context`; **300** `{"siblings": [...], "context"}` when concurrent writes left several values; 404 if absent (a tombstone's context still in the header); a counter reads as its decimal value with `x-concord-counter: true` |
//! | `PUT /v1/kv/{key}?w=N&context=C` | the value (raw bytes) | 200 `{"written": true}`; the context (query or `x-concord-context` header) names the versions this write replaces – omit it to supersede what the coordinating replica holds |
//! | `DELETE /v1/kv/{key}?w=N&context=C` | – | 200 `{"deleted": true}` (a tombstone replacing those versions) |
//! | `POST /v1/kv/{key}/incr?by=D&w=N` | – | 200 `{"value": v}`: add `D` (default 1) to a PN-counter; `v` is the coordinator's value |
//! | `GET /v1/cluster` | – | mode, N/R/W, SWIM's view of every member, keys, hints, anti-entropy statistics |
//! | `GET /healthz`, `GET /metrics` | – | as in the strong mode |
//! | `GET /`, `GET /dashboard` | – | the eventual mode's dashboard (`web/dashboard/eventual.html`): this node's SWIM view, N/R/W, keys, hints, anti-entropy |
//!
//! A sibling is a JSON string when it is UTF-8, else `{"hex": "…"}`. A context is text like
//! `1:5,2:3` (see [`super::format_context`]). `r` and `w` must be 1 to N. Errors are
//! `{"error": …}` with the strong mode's statuses (see [`crate::front::http`]).

use super::{format_context, parse_context, EventualHandle};
use crate::front::http::{body_limit, metrics_text, ApiError};
use crate::front::timed;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use concord_dynamo::version::VersionVector;
use serde::Deserialize;
use serde_json::{json, Value};

/// The header that carries a context in both directions.
pub const CONTEXT_HEADER: &str = "x-concord-context";

/// The API's routes, bound to a node.
pub fn router(handle: EventualHandle) -> Router {
    let body_limit = body_limit(handle.limits().max_value_bytes);
    Router::new()
        .route("/v1/kv/{key}", get(get_key).put(put_key).delete(delete_key))
        .route("/v1/kv/{key}/incr", post(increment))
        .route("/v1/kv/{key}/cas", post(strong_only))
        .route("/v1/txn", post(strong_only))
        .route("/v1/kv", get(strong_only))
        .route("/v1/members", post(strong_only))
        .route("/v1/members/addresses", post(strong_only))
        .route("/v1/cluster", get(cluster))
        .route("/", get(dashboard))
        .route("/dashboard", get(dashboard))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(handle)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadParams {
    r: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WriteParams {
    w: Option<usize>,
    context: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IncrParams {
    w: Option<usize>,
    by: Option<i64>,
}

/// `?r=` / `?w=` checked against N: a bad request (400), not a busy cluster.
fn quorum(handle: &EventualHandle, what: &str, k: Option<usize>) -> Result<Option<usize>, ApiError> {
    handle.check_quorum(what, k).map_err(|e| ApiError::bad_request(e.to_string()))
}

/// The context of a write: the query parameter, else the header, else none (a blind write).
fn write_context(params: &WriteParams, headers: &HeaderMap) -> Result<Option<VersionVector>, ApiError> {
    let header = headers.get(CONTEXT_HEADER).map(|h| {
        h.to_str()
            .map_err(|_| ApiError::bad_request(format!("the {CONTEXT_HEADER} header is not text")))
            .map(str::to_string)
    });
    let text = match (&params.context, header) {
        (Some(q), _) => Some(q.clone()),
        (None, Some(h)) => Some(h?),
        (None, None) => None,
    };
    text.map(|t| parse_context(&t).map_err(|e| ApiError::bad_request(e.0))).transpose()
}

fn sibling_json(value: &[u8]) -> Value {
    match std::str::from_utf8(value) {
        Ok(text) => json!(text),
        Err(_) => json!({ "hex": value.iter().map(|b| format!("{b:02x}")).collect::<String>() }),
    }
}

async fn get_key(
    State(handle): State<EventualHandle>,
    Path(key): Path<String>,
    Query(params): Query<ReadParams>,
) -> Result<Response, ApiError> {
    let r = quorum(&handle, "r", params.r)?;
    let found =
        timed(handle.metrics(), "get", handle.get(key.clone(), r)).await.map_err(ApiError::from_error)?;
    let context = format_context(&found.context);
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&context) {
        headers.insert(CONTEXT_HEADER, v);
    }
    // A set or hash (written over RESP) reads as JSON: members, or fields with their values.
    match &found.collection {
        Some(super::Collection::Set(members)) => {
            let members: Vec<Value> = members.iter().map(|m| sibling_json(m)).collect();
            return Ok((
                StatusCode::OK,
                headers,
                Json(json!({ "key": key, "type": "set", "members": members })),
            )
                .into_response());
        }
        Some(super::Collection::Hash(fields)) => {
            let fields: serde_json::Map<String, Value> = fields
                .iter()
                .map(|(f, v)| (String::from_utf8_lossy(f).into_owned(), sibling_json(v)))
                .collect();
            return Ok((
                StatusCode::OK,
                headers,
                Json(json!({ "key": key, "type": "hash", "fields": fields })),
            )
                .into_response());
        }
        None => {}
    }
    if let Some(counter) = found.counter {
        headers.insert("x-concord-counter", HeaderValue::from_static("true"));
        return Ok((StatusCode::OK, headers, counter.to_string()).into_response());
    }
    match found.values.len() {
        0 => {
            let body = json!({ "error": format!("key {key:?} not found"), "context": context });
            Ok((StatusCode::NOT_FOUND, headers, Json(body)).into_response())
        }
        1 => {
            Ok((StatusCode::OK, headers, found.values.into_iter().next().unwrap_or_default()).into_response())
        }
        _ => {
            let siblings: Vec<Value> = found.values.iter().map(|v| sibling_json(v)).collect();
            let body = json!({ "key": key, "siblings": siblings, "context": context });
            Ok((StatusCode::MULTIPLE_CHOICES, headers, Json(body)).into_response())
        }
    }
}

async fn put_key(
    State(handle): State<EventualHandle>,
    Path(key): Path<String>,
    Query(params): Query<WriteParams>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let value = body.map_err(ApiError::body)?;
    let context = write_context(&params, &headers)?;
    let w = quorum(&handle, "w", params.w)?;
    timed(handle.metrics(), "put", handle.put(key, value.to_vec(), context, w))
        .await
        .map_err(ApiError::from_error)?;
    Ok(Json(json!({ "written": true })))
}

async fn delete_key(
    State(handle): State<EventualHandle>,
    Path(key): Path<String>,
    Query(params): Query<WriteParams>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let context = write_context(&params, &headers)?;
    let w = quorum(&handle, "w", params.w)?;
    timed(handle.metrics(), "delete", handle.delete(key, context, w)).await.map_err(ApiError::from_error)?;
    Ok(Json(json!({ "deleted": true })))
}

async fn increment(
    State(handle): State<EventualHandle>,
    Path(key): Path<String>,
    Query(params): Query<IncrParams>,
) -> Result<Json<Value>, ApiError> {
    let by = params.by.unwrap_or(1);
    let w = quorum(&handle, "w", params.w)?;
    let value =
        timed(handle.metrics(), "incr", handle.increment(key, by, w)).await.map_err(ApiError::from_error)?;
    Ok(Json(json!({ "value": value })))
}

async fn cluster(State(handle): State<EventualHandle>) -> Json<Value> {
    Json(cluster_json(&handle))
}

/// The document `GET /v1/cluster` answers in the eventual mode.
pub fn cluster_json(handle: &EventualHandle) -> Value {
    let s = handle.status();
    let mut peers = handle.peers().to_vec();
    peers.sort_by_key(|p| p.id);
    let members: Vec<Value> = peers
        .iter()
        .map(|p| {
            let seen = s.members.iter().find(|m| m.id == p.id);
            json!({
                "id": p.id,
                "state_as_seen_here": if p.id == s.id { Some("alive") } else { seen.map(|m| m.state) },
                "incarnation": seen.map(|m| m.incarnation),
                "peer_addr": p.addr.to_string(),
                "http_addr": p.http_addr.map(|a| a.to_string()),
                "redis_addr": p.redis_addr.map(|a| a.to_string()),
            })
        })
        .collect();
    json!({
        "mode": "eventual",
        "node": s.id,
        "n": s.n,
        "r": s.r,
        "w": s.w,
        "ring": s.ring,
        "keys": s.keys,
        "hints": s.hints,
        "writes_acknowledged": s.writes_acknowledged,
        "anti_entropy": {
            "exchanges": s.anti_entropy_exchanges,
            "in_sync": s.anti_entropy_in_sync,
            "objects_sent": s.anti_entropy_objects_sent,
            "bytes_sent": s.anti_entropy_bytes_sent,
            "full_sync_bytes": s.anti_entropy_full_sync_bytes,
        },
        "tombstones_purged": s.tombstones_purged,
        "wal_syncs": s.wal_syncs,
        "members": members,
    })
}

async fn healthz(State(handle): State<EventualHandle>) -> Json<Value> {
    let s = handle.status();
    let alive = s.members.iter().filter(|m| m.state == "alive").count() + 1;
    Json(json!({ "status": "ok", "node": s.id, "mode": "eventual", "members_alive": alive }))
}

async fn metrics(State(handle): State<EventualHandle>) -> Response {
    metrics_text(handle.metrics())
}

/// Compare-and-set, transactions, key listings and Raft's membership changes need one order of
/// writes (Raft's log); the eventual mode has none (its members come and go through SWIM), so it
/// says so instead of answering a bare 404.
async fn strong_only(uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        format!(
            "{} needs the strong mode: CAS, transactions, key listings and membership changes rely on one \
             order of writes, which the eventual mode (Dynamo-style, concurrent writes become siblings; \
             members found by SWIM) does not have",
            uri.path()
        ),
    )
}

/// The eventual mode's dashboard: one page (no build step) that polls `GET /v1/cluster` and shows
/// this node's view – N/R/W, its keys, hints and anti-entropy, and its SWIM view of the members.
async fn dashboard() -> axum::response::Html<&'static str> {
    axum::response::Html(include_str!("../../../../web/dashboard/eventual.html"))
}
