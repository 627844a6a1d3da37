//! The HTTP plumbing both modes' APIs (and the dashboard and fault-injection endpoints) share.
//!
//! * [`ApiError`] – every error answer is `{"error": "…"}` (plus hints) with a status that says
//!   what to do: 400 bad input, 403 forbidden, 404 no such key, 413 too large, 503 refused or no
//!   leader (retry), 504 timed out, 507 the data disk is full (writes refused, reads served) and
//!   500 outcome unknown (a write may or may not have happened);
//! * [`body_limit`] – the largest request body a node takes;
//! * [`metrics_text`] – `GET /metrics` in the Prometheus text format.

use super::ClientError;
use crate::metrics::Metrics;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use concord_kv::KvError;
use serde_json::{json, Value};

/// `PUT /v1/kv/{key}`'s query: `?ttl_ms=N` (both modes that keep revisions take it).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutParams {
    pub ttl_ms: Option<u64>,
}

/// The page `GET /v1/kv` answers without a `limit`. A larger one is the store's to refuse
/// (`max_range_limit`, 1 000 by default), and a page also ends early at `max_range_bytes`.
pub const DEFAULT_LIST: usize = 100;

/// `GET /v1/kv`'s query: `prefix=P`, or `start=A[&end=B]`; `limit=N`; `consistency=…` (the strong
/// and the sharded mode take the same).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    pub prefix: Option<String>,
    pub start: Option<String>,
    pub end: Option<String>,
    pub limit: Option<usize>,
    pub consistency: Option<String>,
}

impl ListParams {
    /// The range read asked for, or why it is not one (400).
    pub fn range_request(&self) -> Result<concord_kv::RangeRequest, ApiError> {
        let range = match (&self.prefix, &self.start, &self.end) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
                return Err(ApiError::bad_request("give either prefix, or start (and end), not both"))
            }
            (Some(prefix), None, None) => concord_kv::KeyRange::prefix(prefix.as_bytes()),
            (None, start, Some(end)) => {
                concord_kv::KeyRange::new(start.as_deref().unwrap_or("").as_bytes(), end.as_bytes())
            }
            (None, start, None) => concord_kv::KeyRange::from(start.as_deref().unwrap_or("").as_bytes()),
        };
        let limit = self.limit.unwrap_or(DEFAULT_LIST);
        if limit == 0 {
            return Err(ApiError::bad_request("limit must be at least 1"));
        }
        Ok(concord_kv::RangeRequest::new(range, limit))
    }
}

/// `DELETE /v1/kv`'s query: `prefix=P`, or `start=A[&end=B]` – one of them at least, so that a
/// bare `DELETE /v1/kv` deletes nothing by accident (every key: `?prefix=`).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteRangeParams {
    pub prefix: Option<String>,
    pub start: Option<String>,
    pub end: Option<String>,
}

impl DeleteRangeParams {
    /// The keys to delete, or why the query names none (400).
    pub fn key_range(&self) -> Result<concord_kv::KeyRange, ApiError> {
        Ok(match (&self.prefix, &self.start, &self.end) {
            (None, None, None) => {
                return Err(ApiError::bad_request(
                    "DELETE /v1/kv needs prefix=P, or start=A (and end=B): which keys to delete \
                     (every key: ?prefix=)",
                ))
            }
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
                return Err(ApiError::bad_request("give either prefix, or start (and end), not both"))
            }
            (Some(prefix), None, None) => concord_kv::KeyRange::prefix(prefix.as_bytes()),
            (None, start, Some(end)) => {
                concord_kv::KeyRange::new(start.as_deref().unwrap_or("").as_bytes(), end.as_bytes())
            }
            (None, Some(start), None) => concord_kv::KeyRange::from(start.as_bytes()),
        })
    }
}

/// `GET /v1/kv`'s answer: `{"kvs": [{"key", "value" (UTF-8) or "value_base64", "create_revision",
/// "mod_revision", "version"}], "next": key or null}`.
pub fn page_json(page: &concord_kv::RangePage) -> Value {
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    let kvs: Vec<Value> = page
        .kvs
        .iter()
        .map(|kv| {
            let mut entry = json!({
                "key": text(&kv.key),
                "create_revision": kv.create_revision,
                "mod_revision": kv.mod_revision,
                "version": kv.version,
            });
            match std::str::from_utf8(&kv.value) {
                Ok(value) => entry["value"] = json!(value),
                Err(_) => {
                    use base64::Engine;
                    entry["value_base64"] = json!(base64::engine::general_purpose::STANDARD.encode(&kv.value))
                }
            }
            entry
        })
        .collect();
    json!({ "kvs": kvs, "next": page.next_key.as_deref().map(text) })
}

/// `GET /v1/kv/{key}`'s answer for a key that exists: the value as the body, its revisions as
/// `x-concord-*` headers (added to `headers`). Both modes that keep revisions answer this way.
pub fn found_key(kv: concord_kv::KeyValue, mut headers: axum::http::HeaderMap) -> Response {
    for (name, n) in [
        ("x-concord-mod-revision", kv.mod_revision),
        ("x-concord-create-revision", kv.create_revision),
        ("x-concord-version", kv.version),
    ] {
        headers.insert(name, axum::http::HeaderValue::from(n));
    }
    (StatusCode::OK, headers, kv.value).into_response()
}

/// An error answer: a status and `{"error": …}` plus optional hints.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: Value,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError { status, body: json!({ "error": message.into() }) }
    }

    /// The store answered a request with a response of another kind: a bug, said as one (500).
    pub fn unexpected(answer: &impl std::fmt::Debug) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("unexpected answer {answer:?}"))
    }

    /// The status this error answers with.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// 400: the request itself is wrong.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    /// The same answer with one more field beside `error` (a hint such as `leader`).
    pub fn with(mut self, field: &str, value: impl Into<Value>) -> ApiError {
        if let Value::Object(map) = &mut self.body {
            map.insert(field.to_string(), value.into());
        }
        self
    }

    /// A client error as a status and message (the table in the module docs).
    pub fn from_error(e: ClientError) -> ApiError {
        let message = e.to_string();
        match e {
            ClientError::NotLeader { .. } | ClientError::Unavailable(_) | ClientError::Rejected(_) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message)
            }
            ClientError::Timeout => {
                ApiError::new(StatusCode::GATEWAY_TIMEOUT, message).with("outcome", "unknown")
            }
            ClientError::ReadTimeout => ApiError::new(StatusCode::GATEWAY_TIMEOUT, message),
            ClientError::NoSpace(_) => ApiError::new(StatusCode::INSUFFICIENT_STORAGE, message),
            ClientError::Unknown(_) => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message).with("outcome", "unknown")
            }
            ClientError::Kv(kv) => {
                let status = match kv {
                    KvError::KeyTooLarge { .. }
                    | KvError::ValueTooLarge { .. }
                    | KvError::CommandTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                    _ => StatusCode::BAD_REQUEST,
                };
                ApiError::new(status, message)
            }
        }
    }

    /// A body axum could not read (too large, cut short).
    pub fn body(rejection: BytesRejection) -> ApiError {
        ApiError::new(rejection.status(), format!("cannot read the request body: {}", rejection.body_text()))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

/// The largest request body: a value (or command) of `max_bytes`, plus room for JSON overhead.
pub fn body_limit(max_bytes: usize) -> usize {
    max_bytes + 64 * 1024
}

/// `GET /metrics`: OpenMetrics text (what `prometheus_client` writes: `# TYPE … counter`, `# EOF`),
/// under OpenMetrics' own content type – served as Prometheus' older `text/plain` format, a
/// scraper parses it with the wrong parser and loses the counters' types.
pub fn metrics_text(metrics: &Metrics) -> Response {
    ([("content-type", "application/openmetrics-text; version=1.0.0; charset=utf-8")], metrics.render())
        .into_response()
}

/// Every error either front door answers is the documented `{"error": "…"}`, whatever produced it:
/// an unknown route (404, naming it), a method the route does not take (405, `Allow` kept), or a
/// rejection axum writes as plain text (a query string that does not parse, a bad header…).
pub fn with_json_errors(app: axum::Router) -> axum::Router {
    app.fallback(no_such_route).layer(axum::middleware::map_response(json_errors))
}

async fn no_such_route(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, format!("no route {method} {}: docs/http.md lists them", uri.path()))
}

/// Rewrite an error response that is not JSON into `{"error": its text}`.
async fn json_errors(response: Response) -> Response {
    use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
    let status = response.status();
    let is_json =
        response.headers().get(CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024).await.unwrap_or_default();
    let mut message = String::from_utf8_lossy(&text).trim().to_string();
    if message.is_empty() {
        message = match status {
            StatusCode::METHOD_NOT_ALLOWED => {
                "this route does not take that method (see the Allow header)".into()
            }
            other => other.canonical_reason().unwrap_or("error").to_lowercase(),
        };
    }
    parts.headers.remove(CONTENT_LENGTH);
    parts.headers.remove(CONTENT_TYPE);
    (parts, Json(json!({ "error": message }))).into_response()
}
