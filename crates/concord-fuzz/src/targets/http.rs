//! `http`: requests to a real node's HTTP API, in-process.
//!
//! One single-node cluster (strong mode, its WAL and state in a temporary directory) is started per
//! process; its axum `Router`, exactly as the HTTP port serves it ([`concord_server::Node::
//! http_router`]), is called with `tower::ServiceExt::oneshot` – no sockets, so thousands of
//! requests a second. Each input is one to three requests: a method, a route (or raw path bytes),
//! a key, query parameters, headers and a body, all read from the bytes.
//!
//! Properties, beyond no panic and an answer within the hang limit:
//! * every error answer (4xx, 5xx) is `{"error": "…"}` JSON, as `docs/http.md` promises;
//! * no 500 except "outcome unknown" (a write that may or may not have happened): a 500 of any other
//!   kind is a handler that failed where it should have refused;
//! * an acknowledged write is there: after a `PUT /v1/kv/{key}` answered 200, a linearizable `GET`
//!   of the key returns the body that was put.
//!
//! Streaming answers (`text/event-stream`) are not read to their end.

use crate::driver::Target;
use crate::input::Cursor;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderName, HeaderValue, Method, Request, StatusCode};
use http_body_util::BodyExt;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;
use tower::ServiceExt;

pub const TARGET: Target = Target {
    name: "http",
    about: "the node's HTTP API (axum Router, in-process)",
    seeds,
    dictionary: &[
        b"{\"expect\":{\"value\":\"a\"},\"value\":\"b\"}",
        b"{\"expect\":{\"absent\":true},\"value\":\"b\",\"ttl_ms\":10}",
        b"{\"compares\":[{\"key\":\"k\",\"op\":\"equal\",\"target\":{\"version\":1}}],\"success\":[{\"put\":{\"key\":\"k\",\"value\":\"v\"}}],\"failure\":[{\"get\":{\"key\":\"k\"}}]}",
        b"{\"delete\":{\"key\":\"k\"}}",
        b"{\"op\":\"add_learner\",\"id\":2}",
        b"\"mod_revision\"", b"\"create_revision\"", b"\"version\"", b"null", b"true", b"[]", b"{}", b"\"", b":", b",",
        b"application/json", b"text/plain", b"Bearer ", b"Basic ", b"linearizable", b"lease", b"stale",
    ],
    max_len: 4096,
    max_alloc_bytes: 16 << 20,
    run,
};

/// Answers are bodies of at most this many bytes (a page of keys, the dashboard, metrics).
const MAX_ANSWER_BYTES: usize = 4 << 20;
/// A request must be answered within this time (requests wait for Raft, whose timeouts are seconds).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(8);

const ROUTES: &[&str] = &[
    "/v1/kv/{key}",
    "/v1/kv",
    "/v1/kv/{key}/cas",
    "/v1/txn",
    "/v1/cluster",
    "/healthz",
    "/metrics",
    "/",
    "/dashboard",
    "/v1/overview",
    "/v1/stats",
    "/v1/members",
    "/v1/members/addresses",
    "/v1/backup",
    "/v1/faults",
    "/v1/faults/partition",
    "/v1/faults/nodes/{key}/stop",
    "/v1/kv/{key}/{key}",
];
const METHODS: &[&str] = &["GET", "PUT", "POST", "DELETE", "HEAD", "PATCH", "OPTIONS", "TRACE", "FUZZ"];
const PARAMS: &[&str] = &["consistency", "prefix", "start", "end", "limit", "ttl_ms", "op", "id"];
const HEADERS: &[&str] = &[
    "content-type",
    "authorization",
    "host",
    "origin",
    "content-length",
    "accept",
    "x-forwarded-for",
    "expect",
    "cookie",
];
const VALUES: &[&str] = &[
    "application/json",
    "application/json; charset=utf-8",
    "text/plain",
    "application/x-www-form-urlencoded",
    "Bearer fuzz",
    "Basic ZnV6ejpmdXp6",
    "127.0.0.1",
    "evil.example",
    "http://evil.example",
    "0",
    "100-continue",
];

/// The single node every input talks to.
struct Harness {
    runtime: tokio::runtime::Runtime,
    router: axum::Router,
    _node: concord_server::Node,
    _dir: tempfile::TempDir,
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut config = concord_server::NodeConfig::new(1, dir.path().join("node1"));
        config.http_addr = None;
        config.redis_addr = None;
        let node = runtime.block_on(async {
            let node = concord_server::Node::start(config).await.expect("start a one-node cluster");
            let handle = node.handle();
            for _ in 0..200 {
                if handle.status().leader == Some(1) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            assert_eq!(handle.status().leader, Some(1), "the one-node cluster elects itself");
            node
        });
        let router = node.http_router();
        Harness { runtime, router, _node: node, _dir: dir }
    })
}

fn seeds() -> Vec<Vec<u8>> {
    // One request each: [count, method, route, key…, params, headers, body…] (see `request`).
    let put = |key: &[u8], body: &[u8]| {
        let mut s = vec![0u8, 1, 0, key.len() as u8];
        s.extend_from_slice(key);
        s.extend_from_slice(&[0, 0]);
        s.extend_from_slice(body);
        s
    };
    let mut seeds = vec![
        put(b"greeting", b"hello"),
        put(b"a/b?c", &[0xff, 0]),
        vec![0, 0, 1, 0, 2, 0, 1, 1],
        vec![0, 0, 5, 0, 0, 0],
        vec![0, 0, 6, 0, 0, 0],
        vec![0, 0, 4, 0, 0, 0],
        vec![2, 0, 0, 1, b'k', 1, 0, 4, 0, 0],
    ];
    let json = |route: u8, body: &[u8]| {
        let mut s = vec![0u8, 2, route, 1, b'k', 0, 1, 0, 0];
        s.extend_from_slice(body);
        s
    };
    seeds.push(json(2, TARGET.dictionary[0]));
    seeds.push(json(2, TARGET.dictionary[1]));
    seeds.push(json(3, TARGET.dictionary[2]));
    seeds.push(json(11, TARGET.dictionary[4]));
    seeds
}

/// `bytes` with everything but unreserved characters percent-encoded.
fn escape(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

struct Call {
    method: Method,
    path: String,
    request: Request<Body>,
    body: Vec<u8>,
    /// A `PUT /v1/kv/{key}` without a TTL: its value must read back.
    plain_put: Option<String>,
}

fn request(c: &mut Cursor<'_>, last: bool) -> Option<Call> {
    let method = Method::from_bytes(c.pick(METHODS).as_bytes()).expect("a method");
    let route = c.below(ROUTES.len() + 1);
    let key = escape(c.bytes(24));
    let mut path = match ROUTES.get(route) {
        Some(route) => route.replace("{key}", &key),
        // Raw path bytes, as a client could send them.
        None => String::from_utf8_lossy(c.bytes(40)).into_owned(),
    };
    let params = c.below(4);
    let with_ttl = (0..params)
        .map(|i| {
            let name = c.pick(PARAMS);
            let value = escape(c.bytes(12));
            path.push(if i == 0 { '?' } else { '&' });
            path.push_str(name);
            path.push('=');
            path.push_str(&value);
            *name == "ttl_ms"
        })
        .fold(false, |a, b| a | b);
    let mut builder = Request::builder().method(method.clone()).uri(path.as_str());
    for _ in 0..c.below(4) {
        let name: &'static str = HEADERS[c.below(HEADERS.len())];
        let name = HeaderName::from_static(name);
        let value = if c.chance(70) {
            let value: &'static str = VALUES[c.below(VALUES.len())];
            HeaderValue::from_static(value)
        } else {
            HeaderValue::from_bytes(c.bytes(24)).unwrap_or(HeaderValue::from_static("x"))
        };
        builder = builder.header(name, value);
    }
    let body = if last { c.rest().to_vec() } else { c.bytes(512).to_vec() };
    let mut request = builder.body(Body::from(body.clone())).ok()?;
    request.extensions_mut().insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
    let plain_put =
        (method == Method::PUT && route == 0 && !with_ttl).then(|| ROUTES[0].replace("{key}", &key));
    Some(Call { method, path, request, body, plain_put })
}

/// Send one request; the status, and the body (`None` for a stream).
async fn send(router: &axum::Router, request: Request<Body>) -> (StatusCode, Option<Vec<u8>>, bool) {
    let response = tokio::time::timeout(ANSWER_TIMEOUT, router.clone().oneshot(request))
        .await
        .unwrap_or_else(|_| panic!("no answer within {ANSWER_TIMEOUT:?}"))
        .unwrap_or_else(|never| match never {});
    let status = response.status();
    let content_type =
        response.headers().get("content-type").map(|v| v.as_bytes().to_vec()).unwrap_or_default();
    let json = content_type.starts_with(b"application/json");
    if content_type.starts_with(b"text/event-stream") {
        return (status, None, json);
    }
    let body = tokio::time::timeout(
        ANSWER_TIMEOUT,
        http_body_util::Limited::new(response.into_body(), MAX_ANSWER_BYTES).collect(),
    )
    .await
    .unwrap_or_else(|_| panic!("the answer's body did not end within {ANSWER_TIMEOUT:?}"))
    .unwrap_or_else(|e| panic!("the answer's body failed (or passed {MAX_ANSWER_BYTES} bytes): {e}"))
    .to_bytes()
    .to_vec();
    (status, Some(body), json)
}

fn run(input: &[u8]) -> String {
    let h = harness();
    let mut c = Cursor::new(input);
    let count = 1 + c.below(3);
    let mut statuses = Vec::new();
    for i in 0..count {
        let Some(call) = request(&mut c, i + 1 == count) else {
            statuses.push("unbuildable".to_string());
            continue;
        };
        let (method, path) = (call.method.clone(), call.path.clone());
        let (status, body, json) = h.runtime.block_on(send(&h.router, call.request));
        statuses.push(format!("{method} {}", status.as_u16()));
        let Some(body) = body else { continue };
        if (status.is_client_error() || status.is_server_error()) && method != Method::HEAD {
            let error: serde_json::Value = serde_json::from_slice(&body).unwrap_or_else(|_| {
                panic!(
                    "{method} {path} answered {status} without a JSON body: {:?}",
                    String::from_utf8_lossy(&body)
                )
            });
            assert!(json, "{method} {path} answered {status} with JSON but not as application/json");
            let message = error["error"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path} answered {status} without an \"error\": {error}"));
            assert!(
                status != StatusCode::INTERNAL_SERVER_ERROR || message.contains("outcome unknown"),
                "{method} {path} answered 500: {message}"
            );
        }
        if let (Some(key_path), StatusCode::OK) = (call.plain_put, status) {
            let get = Request::get(format!("{key_path}?consistency=linearizable"))
                .body(Body::empty())
                .expect("a GET request");
            let (read, value, _) = h.runtime.block_on(send(&h.router, get));
            assert_eq!(read, StatusCode::OK, "{key_path}: an acknowledged PUT does not read back");
            assert_eq!(
                value.as_deref(),
                Some(&call.body[..]),
                "{key_path}: an acknowledged PUT reads back different bytes"
            );
        }
    }
    statuses.join(", ")
}
