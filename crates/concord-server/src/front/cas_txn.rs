//! The JSON of CAS and transactions, which the strong and the sharded mode take and answer alike.
//!
//! # Format
//! `POST /v1/kv/{key}/cas`:
//! `{"expect": {"value": "a"} | {"absent": true} | {"version": n} | {"mod_revision": n} |
//! {"create_revision": n}, "value": "b", "ttl_ms": n?}` → `{"succeeded", "revision", "current": kv?}`.
//!
//! `POST /v1/txn`: `{"compares": [{"key", "op": "equal|not_equal|greater|less", "target":
//! <expect>}], "success": [op], "failure": [op]}`, op = `{"get": {"key"}}`, `{"put": {"key",
//! "value", "ttl_ms"?}}` or `{"delete": {"key"}}` → `{"succeeded", "revision", "responses"}`.
//!
//! Parsing is here, once, so the two modes cannot drift apart; *where* a command runs (the one
//! Raft group, or the shard of its keys) is each mode's own.

use super::http::ApiError;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use concord_kv::{Cas, Compare, CompareOp, CompareTarget, KeyValue, Put, Response, Txn, TxnOp};
use serde::Deserialize;
use serde_json::{json, Value};

/// What a CAS or a compare tests, in JSON.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
enum Expect {
    Value(String),
    Absent(bool),
    Version(u64),
    ModRevision(u64),
    CreateRevision(u64),
}

impl Expect {
    fn target(self) -> Result<CompareTarget, ApiError> {
        Ok(match self {
            Expect::Value(v) => CompareTarget::Value(Some(v.into_bytes())),
            Expect::Absent(true) => CompareTarget::Version(0),
            Expect::Absent(false) => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "\"absent\": false means nothing; omit it",
                ))
            }
            Expect::Version(n) => CompareTarget::Version(n),
            Expect::ModRevision(n) => CompareTarget::ModRevision(n),
            Expect::CreateRevision(n) => CompareTarget::CreateRevision(n),
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CasBody {
    expect: Expect,
    value: String,
    ttl_ms: Option<u64>,
}

/// A JSON request body, or 400 naming what is wrong with it.
pub fn json_body<T: serde::de::DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    let bytes = body.map_err(ApiError::body)?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("bad JSON body: {e}")))
}

fn kv_json(kv: &KeyValue) -> Value {
    json!({
        "key": String::from_utf8_lossy(&kv.key),
        "value": String::from_utf8_lossy(&kv.value),
        "create_revision": kv.create_revision,
        "mod_revision": kv.mod_revision,
        "version": kv.version,
    })
}

/// The CAS on `key` a `POST /v1/kv/{key}/cas` body asks for.
pub fn cas(key: String, body: Result<Bytes, BytesRejection>) -> Result<Cas, ApiError> {
    let body: CasBody = json_body(body)?;
    Ok(Cas {
        key: key.into_bytes(),
        expect: body.expect.target()?,
        value: body.value.into_bytes(),
        ttl_ms: body.ttl_ms,
    })
}

/// A CAS's answer: `{"succeeded", "revision", "current"}`.
pub fn cas_answer(response: Response) -> Result<Value, ApiError> {
    match response {
        Response::Cas { succeeded, revision, current } => Ok(json!({
            "succeeded": succeeded,
            "revision": revision,
            "current": current.as_ref().map(kv_json),
        })),
        other => Err(ApiError::unexpected(&other)),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CompareJson {
    key: String,
    op: CompareOpJson,
    target: Expect,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum CompareOpJson {
    Equal,
    NotEqual,
    Greater,
    Less,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyJson {
    key: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PutJson {
    key: String,
    value: String,
    ttl_ms: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
enum TxnOpJson {
    Get(KeyJson),
    Put(PutJson),
    Delete(KeyJson),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TxnJson {
    #[serde(default)]
    compares: Vec<CompareJson>,
    #[serde(default)]
    success: Vec<TxnOpJson>,
    #[serde(default)]
    failure: Vec<TxnOpJson>,
}

fn txn_op(op: TxnOpJson) -> TxnOp {
    match op {
        TxnOpJson::Get(k) => TxnOp::Get { key: k.key.into_bytes() },
        TxnOpJson::Put(p) => {
            TxnOp::Put(Put { key: p.key.into_bytes(), value: p.value.into_bytes(), ttl_ms: p.ttl_ms })
        }
        TxnOpJson::Delete(k) => TxnOp::Delete { key: k.key.into_bytes() },
    }
}

/// The transaction a `POST /v1/txn` body asks for.
pub fn txn(body: Result<Bytes, BytesRejection>) -> Result<Txn, ApiError> {
    let body: TxnJson = json_body(body)?;
    let mut compares = Vec::new();
    for c in body.compares {
        let op = match c.op {
            CompareOpJson::Equal => CompareOp::Equal,
            CompareOpJson::NotEqual => CompareOp::NotEqual,
            CompareOpJson::Greater => CompareOp::Greater,
            CompareOpJson::Less => CompareOp::Less,
        };
        compares.push(Compare::new(c.key.into_bytes(), op, c.target.target()?));
    }
    Ok(Txn {
        compares,
        success: body.success.into_iter().map(txn_op).collect(),
        failure: body.failure.into_iter().map(txn_op).collect(),
    })
}

fn response_json(r: &Response) -> Value {
    match r {
        Response::Get(kv) => json!({ "get": kv.as_ref().map(kv_json) }),
        Response::Put { revision } => json!({ "put": { "revision": revision } }),
        Response::Delete { revision, deleted } => {
            json!({ "delete": { "revision": revision, "deleted": deleted } })
        }
        Response::Range(page) => json!({ "range": page.kvs.iter().map(kv_json).collect::<Vec<_>>() }),
        other => json!({ "other": format!("{other:?}") }),
    }
}

/// A transaction's answer: `{"succeeded", "revision", "responses"}`.
pub fn txn_answer(response: Response) -> Result<Value, ApiError> {
    match response {
        Response::Txn { succeeded, revision, responses } => Ok(json!({
            "succeeded": succeeded,
            "revision": revision,
            "responses": responses.iter().map(response_json).collect::<Vec<_>>(),
        })),
        other => Err(ApiError::unexpected(&other)),
    }
}
