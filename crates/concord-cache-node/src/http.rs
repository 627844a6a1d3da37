//! The node's HTTP port (`--http-port`): `/metrics` (Prometheus text), `/v1/stats` (JSON) and `/`
//! (a page that polls `/v1/stats` once a second: hit ratio, memory, leases, the database feeds).
//! Plain HTML and JavaScript in this file, no build step.

use crate::Shared;
use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::{Json, Router};
use std::sync::atomic::Ordering;
use std::sync::Arc;

pub async fn serve(shared: Arc<Shared>, listener: tokio::net::TcpListener) {
    let app = Router::new()
        .route("/", get(page))
        .route("/metrics", get(metrics))
        .route("/v1/stats", get(stats))
        .with_state(shared);
    let _ = axum::serve(listener, app).await;
}

/// Every number the node reports, as one JSON object.
pub fn stats_json(shared: &Shared) -> serde_json::Value {
    let inner = shared.lock();
    let stats = inner.cache.stats();
    let c = &shared.counters;
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let lookups = stats.hits + stats.misses;
    let feeds: Vec<serde_json::Value> = shared
        .options
        .db
        .iter()
        .zip(&inner.feeds)
        .map(|(addr, state)| serde_json::json!({"addr": addr.to_string(), "state": state.word(), "detail": format!("{state:?}")}))
        .collect();
    serde_json::json!({
        "addr": shared.addr.to_string(),
        "cluster_id": shared.options.cluster_id,
        "uptime_seconds": shared.started.elapsed().as_secs(),
        "policy": inner.cache.store().policy_name(),
        "placement": shared.tier.placement_name(),
        "members": shared.tier.members.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "write_policy": shared.options.write_policy.name(),
        "db": inner.db_word(),
        "serving_from_cache": inner.serving,
        "feeds": feeds,
        "hits": stats.hits,
        "misses": stats.misses,
        "hit_ratio": if lookups == 0 { 0.0 } else { stats.hits as f64 / lookups as f64 },
        "evictions": stats.store.evictions,
        "expirations": stats.store.expirations,
        "invalidations": stats.invalidations,
        "flushes": stats.flushes,
        "leases_issued": stats.leases_issued,
        "leases_outstanding": inner.cache.leases_outstanding(),
        "lease_waits": stats.waits,
        "fill_waits": load(&c.fill_waits),
        "stale_served": stats.stale_served,
        "fills_stored": stats.fills_stored,
        "fills_refused": stats.fills_refused,
        "bytes_used": stats.store.bytes_used,
        "budget_bytes": inner.cache.store().budget_bytes(),
        "items": stats.store.entries,
        "connections": load(&c.connections),
        "commands": load(&c.commands),
        "forwarded": load(&c.forwarded),
        "db_reads": load(&c.db_reads),
        "db_writes": load(&c.db_writes),
        "db_errors": load(&shared.db.counters.errors),
        "feed_pushes": load(&c.feed_pushes),
    })
}

async fn stats(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    Json(stats_json(&shared))
}

async fn metrics(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    let s = stats_json(&shared);
    let mut text = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: f64| {
        text.push_str(&format!(
            "# HELP concord_cache_{name} {help}\n# TYPE concord_cache_{name} {kind}\nconcord_cache_{name} {value}\n"
        ));
    };
    let n = |k: &str| s[k].as_f64().unwrap_or(0.0);
    metric("hits_total", "counter", "GETs answered from memory.", n("hits"));
    metric("misses_total", "counter", "GETs not answered from memory.", n("misses"));
    metric("hit_ratio", "gauge", "hits / (hits + misses) since start.", n("hit_ratio"));
    metric("evictions_total", "counter", "Entries evicted to stay within the budget.", n("evictions"));
    metric("expirations_total", "counter", "Entries whose TTL ran out.", n("expirations"));
    metric(
        "invalidations_total",
        "counter",
        "Invalidations applied from the database's feed.",
        n("invalidations"),
    );
    metric("flushes_total", "counter", "Flushes (feed lost or back, null pushes, FLUSHALL).", n("flushes"));
    metric("leases_issued_total", "counter", "Leases handed out on misses.", n("leases_issued"));
    metric("leases_outstanding", "gauge", "Leases not yet used, voided or swept.", n("leases_outstanding"));
    metric("lease_waits_total", "counter", "Misses told to wait for another's lease.", n("lease_waits"));
    metric(
        "fill_waits_total",
        "counter",
        "Read-through misses that waited for a fill in flight.",
        n("fill_waits"),
    );
    metric("bytes_used", "gauge", "Bytes charged to the budget.", n("bytes_used"));
    metric("budget_bytes", "gauge", "The byte budget.", n("budget_bytes"));
    metric("items", "gauge", "Entries in memory.", n("items"));
    metric("forwarded_total", "counter", "Requests forwarded to the owning cache node.", n("forwarded"));
    metric("db_reads_total", "counter", "Reads sent to the database.", n("db_reads"));
    metric("db_writes_total", "counter", "Writes sent to the database.", n("db_writes"));
    metric("db_errors_total", "counter", "Database requests that failed.", n("db_errors"));
    metric(
        "serving_from_cache",
        "gauge",
        "1 when every invalidation feed is live and values are served from memory.",
        if s["serving_from_cache"].as_bool() == Some(true) { 1.0 } else { 0.0 },
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}

async fn page() -> Html<&'static str> {
    Html(PAGE)
}

const PAGE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>concord cache</title>
<style>
body{font:14px system-ui,sans-serif;margin:2em;color:#222}
h1{font-size:20px} table{border-collapse:collapse} td{padding:2px 12px 2px 0}
.big{font-size:32px;font-weight:600} .ok{color:#080} .bad{color:#b00}
.bar{background:#eee;width:300px;height:14px} .bar div{background:#48c;height:14px}
</style></head><body>
<h1>concord cache node <span id="addr"></span></h1>
<p>hit ratio <span class="big" id="ratio">–</span> &nbsp; database <b id="db">–</b> &nbsp; serving from memory <b id="serving">–</b></p>
<p>memory <span id="mem"></span></p><div class="bar"><div id="membar" style="width:0"></div></div>
<h2>counters</h2><table id="counters"></table>
<h2>database feeds</h2><table id="feeds"></table>
<script>
const keys=["hits","misses","evictions","expirations","invalidations","flushes","leases_issued","leases_outstanding","lease_waits","fill_waits","items","forwarded","db_reads","db_writes","db_errors","connections","policy","placement","write_policy","members"];
async function poll(){
  try{
    const s=await (await fetch('/v1/stats')).json();
    document.getElementById('addr').textContent=s.addr+' (cluster '+s.cluster_id+')';
    document.getElementById('ratio').textContent=(100*s.hit_ratio).toFixed(1)+'%';
    const db=document.getElementById('db'); db.textContent=s.db; db.className=s.db==='ok'?'ok':'bad';
    const sv=document.getElementById('serving'); sv.textContent=s.serving_from_cache?'yes':'no'; sv.className=s.serving_from_cache?'ok':'bad';
    document.getElementById('mem').textContent=s.bytes_used+' of '+s.budget_bytes+' bytes';
    document.getElementById('membar').style.width=(300*s.bytes_used/Math.max(1,s.budget_bytes))+'px';
    document.getElementById('counters').innerHTML=keys.map(k=>'<tr><td>'+k+'</td><td>'+s[k]+'</td></tr>').join('');
    document.getElementById('feeds').innerHTML=s.feeds.map(f=>'<tr><td>'+f.addr+'</td><td class="'+(f.state==='ok'?'ok':'bad')+'">'+f.state+'</td></tr>').join('');
  }catch(e){document.getElementById('db').textContent='(node not answering)';}
}
poll(); setInterval(poll,1000);
</script></body></html>
"#;
