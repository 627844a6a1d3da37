// Concord live dashboard: one EventSource to the node that served the page, rendered as plain
// DOM and SVG. No framework, no build step, nothing fetched from elsewhere.
//
// Every "snapshot" event (see crates/concord-server/src/dashboard.rs) carries the serving node's
// status, each peer's /v1/cluster (or why it did not answer), the serving node's leader history and
// its request rates. The page keeps a bounded history of snapshots for the two charts.
"use strict";

const SNAPSHOT_STALE_MS = 3000; // no snapshot for this long: the stream is treated as lost
const RETRY_MS_MIN = 1000;
const RETRY_MS_MAX = 5000;
const HISTORY_MS = 120000; // the charts show at most the last two minutes
const SPANS_MS = [20000, 30000, 60000, 120000]; // chart spans: the smallest that holds what we know
const SAMPLES_MAX = 600; // bound on kept samples (≈ 5 min at 2 per second)
const CONFIRM_MS = 3000; // a Stop button waits this long for its confirming second click

// State the tests read (window.dashboard).
const dash = {
  ready: false, // a first snapshot arrived
  connected: false, // the event stream is up
  error: null,
  snapshots: 0,
  snapshot: null,
  leader: null, // id of the member that leads (highest term among those calling themselves leader)
  members: {}, // id -> "leader" | "follower" | … | "unreachable" | "unknown"
  samples: [], // {t, gap, leader, members: {id: {state, term}}, rate}
  lastSeen: {}, // id -> {role, term, t}: the last status a member reported
  disconnectedAt: null,
  retryMs: RETRY_MS_MIN,
};
window.dashboard = dash;

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";

function el(tag, attrs = {}, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "dataset") Object.assign(e.dataset, v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  if (text !== undefined) e.textContent = text;
  return e;
}

function svg(tag, attrs = {}, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function clock(ms) {
  const d = new Date(ms);
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

function fmtRate(x) {
  if (x === null || x === undefined) return "–";
  return x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2);
}

function fmtMs(x) {
  if (x === null || x === undefined) return "–";
  return x >= 1000 ? `${(x / 1000).toFixed(1)} s` : x >= 1 ? `${x.toFixed(x >= 10 ? 0 : 1)} ms` : `${(x * 1000).toFixed(0)} µs`;
}

// ---------------------------------------------------------------------------------------------
// Connection: one EventSource; on error, close it, say so, and retry with back-off. EventSource's
// own retry would also work, but this way the page knows exactly when it is disconnected.

let source = null;
let staleTimer = null;
let retryTimer = null;

function connect() {
  clearTimeout(retryTimer);
  if (source) source.close();
  source = new EventSource("/v1/events");
  source.addEventListener("snapshot", (e) => {
    let snap;
    try {
      snap = JSON.parse(e.data);
    } catch (err) {
      dash.error = `bad snapshot: ${err}`;
      return;
    }
    onSnapshot(snap);
  });
  source.onerror = () => {
    // EventSource does not say why it failed: ask once, so that a node that wants a credential
    // (requirepass, or a token from an earlier run) is told apart from a node that is down.
    fetch("/v1/overview").then(async (r) => {
      if (r.status === 401 || r.status === 403) {
        const body = await r.json().catch(() => ({}));
        if (!dash.connected) renderConnection(`not allowed: ${body.error || r.status}. Open the dashboard with the URL (and its token) that the node or concord up printed`);
      }
    }).catch(() => {});
    lost("the event stream broke");
  };
}

function lost(why) {
  if (source) {
    source.close();
    source = null;
  }
  clearTimeout(staleTimer);
  if (dash.connected || dash.disconnectedAt === null) dash.disconnectedAt = Date.now();
  dash.connected = false;
  renderConnection(why);
  if (dash.ready) {
    // No data while disconnected: a gap in the charts, not a frozen last state.
    pushSample({ t: Date.now(), gap: true, leader: null, members: {}, rate: null });
    renderCharts();
  }
  retryTimer = setTimeout(connect, dash.retryMs);
  dash.retryMs = Math.min(dash.retryMs * 2, RETRY_MS_MAX);
}

function onSnapshot(snap) {
  const now = Date.now();
  dash.connected = true;
  dash.disconnectedAt = null;
  dash.retryMs = RETRY_MS_MIN;
  dash.snapshot = snap;
  dash.snapshots += 1;
  clearTimeout(staleTimer);
  staleTimer = setTimeout(() => lost("no snapshot for 3 s"), SNAPSHOT_STALE_MS);

  const members = {};
  for (const m of snap.members) {
    const s = m.status;
    if (m.reachable && s) {
      members[m.id] = { state: s.isolated ? "isolated" : s.role, role: s.role, term: s.term };
      dash.lastSeen[m.id] = { role: s.role, term: s.term, t: now };
    } else {
      members[m.id] = { state: m.reachable === false ? "unreachable" : "unknown" };
    }
  }
  dash.leader = leaderOf(snap);
  dash.members = Object.fromEntries(Object.entries(members).map(([id, m]) => [id, m.state]));
  pushSample({ t: now, gap: false, leader: dash.leader, members, rate: snap.requests.rate_per_s ?? null });

  render(snap);
  dash.ready = true;
}

function pushSample(sample) {
  dash.samples.push(sample);
  const horizon = sample.t - HISTORY_MS - 5000;
  while (dash.samples.length > SAMPLES_MAX || (dash.samples.length && dash.samples[0].t < horizon)) {
    dash.samples.shift();
  }
}

// The leader: a reachable member that says it leads; if two do (an old leader cut off), the one
// with the higher term.
function leaderOf(snap) {
  let best = null;
  for (const m of snap.members) {
    const s = m.status;
    if (m.reachable && s && s.role === "leader" && (!best || s.term > best.status.term)) best = m;
  }
  return best ? best.id : null;
}

// ---------------------------------------------------------------------------------------------
// Rendering.

function renderConnection(why) {
  const conn = $("conn");
  const snap = dash.snapshot;
  document.body.classList.toggle("disconnected", !dash.connected);
  for (const b of document.querySelectorAll("#members-body button")) b.disabled = b.disabled || !dash.connected;
  if (dash.connected) {
    conn.className = "badge good";
    conn.textContent = "live";
    $("banner").hidden = true;
    return;
  }
  conn.className = "badge bad";
  conn.textContent = "disconnected";
  const banner = $("banner");
  banner.replaceChildren();
  const who = snap ? `Node ${snap.served_by}, which served this page,` : "The node that served this page";
  const since = dash.disconnectedAt ? ` since ${clock(dash.disconnectedAt)}` : "";
  banner.append(`${who} is unreachable${since} (${why}). Retrying every few seconds… The figures below are the last ones received.`);
  const others = snap ? snap.members.filter((m) => !m.serving && m.http_addr) : [];
  if (others.length) {
    banner.append(" Other members' dashboards: ");
    others.forEach((m, i) => {
      if (i) banner.append(", ");
      banner.append(el("a", { href: `${snap.scheme || "http"}://${m.http_addr}/dashboard` }, `node ${m.id}`));
    });
  }
  banner.hidden = false;
}

function render(snap) {
  renderConnection();
  $("served-by").textContent = `served by node ${snap.served_by}`;
  $("fault-flag").hidden = !snap.fault_injection;
  renderSummary(snap);
  renderMembers(snap);
  renderHistory(snap);
  renderRequests(snap);
  renderCharts();
}

function statusOf(snap, id) {
  const m = snap.members.find((x) => x.id === id);
  return m && m.reachable ? m.status : null;
}

function renderSummary(snap) {
  const leader = dash.leader;
  const ls = leader !== null ? statusOf(snap, leader) : null;
  $("leader-card").classList.toggle("none", leader === null);
  $("leader").textContent = leader !== null ? `node ${leader}` : "none";
  const changes = countLeaderChanges();
  $("leader-sub").textContent = leader !== null
    ? `${changes} change${changes === 1 ? "" : "s"} in the last 2 min`
    : "election in progress or no quorum";
  const terms = snap.members.filter((m) => m.reachable && m.status).map((m) => m.status.term);
  $("term").textContent = ls ? ls.term : terms.length ? Math.max(...terms) : "–";
  $("term-sub").textContent = ls ? "the leader's term" : "highest term seen";
  $("commit").textContent = ls ? ls.commit_index : "–";
  $("commit-sub").textContent = ls ? `applied ${ls.applied_index} on the leader` : "no leader";
  const reachable = snap.members.filter((m) => m.reachable).length;
  $("reachable").textContent = `${reachable} of ${snap.members.length}`;
  const down = snap.members.filter((m) => m.reachable === false).map((m) => `node ${m.id}`);
  $("reachable-sub").textContent = down.length ? `${down.join(", ")} unreachable` : "all answer";
  const r = snap.requests;
  $("rate").textContent = r.rate_per_s === null || r.rate_per_s === undefined ? "–" : `${fmtRate(r.rate_per_s)}/s`;
  $("rate-sub").textContent = `on node ${snap.served_by}, last ${Math.round(r.window_s || 0)} s`;
}

// Leader changes from the serving node's own history (kept since it started, so a freshly opened
// page knows them too): the moments a new leader became known, after the first.
function leaderChanges(snap) {
  const changes = [];
  let prev = null;
  for (const e of snap.leader_history) {
    if (e.leader === null || e.leader === undefined) continue;
    if (prev !== null && e.leader !== prev.leader) changes.push(e);
    prev = e;
  }
  return changes;
}

function countLeaderChanges() {
  const since = Date.now() - HISTORY_MS;
  return dash.snapshot ? leaderChanges(dash.snapshot).filter((e) => e.at_ms >= since).length : 0;
}

function renderMembers(snap) {
  const faults = !!snap.fault_injection;
  for (const th of document.querySelectorAll(".fault-col")) th.hidden = !faults;
  const leaderStatus = dash.leader !== null ? statusOf(snap, dash.leader) : null;
  const body = $("members-body");
  // Keep a Stop button that waits for its confirmation across re-renders.
  const confirming = body.querySelector("button.confirm");
  const confirmingId = confirming ? confirming.dataset.node : null;
  body.replaceChildren();
  for (const m of snap.members) {
    const s = m.reachable ? m.status : null;
    const tr = el("tr", {
      "data-node": m.id,
      class: [m.reachable ? "" : "unreachable", m.serving ? "serving" : ""].join(" ").trim() || null,
    });
    const name = el("td", {}, `n${m.id}`);
    if (m.serving) name.append(el("span", { class: "muted small" }, " (this page)"));
    else if (m.http_addr) name.append(el("a", { href: `${snap.scheme || "http"}://${m.http_addr}/dashboard`, title: "this member's own dashboard" }, "open"));
    tr.append(name);

    const roleCell = el("td");
    if (s) {
      roleCell.append(el("span", { class: `role ${s.role}`, "data-field": "role" }, s.role));
    } else {
      const last = dash.lastSeen[m.id];
      roleCell.append(el("span", { class: "role gone", "data-field": "role", title: last ? `last seen as ${last.role}, term ${last.term}, at ${clock(last.t)}` : "never seen" }, last ? `was ${last.role}` : "not seen"));
    }
    tr.append(roleCell);
    tr.append(el("td", { class: "num", "data-field": "term", "data-label": "term" }, s ? s.term : "–"));
    tr.append(el("td", { class: "num wide" }, s ? (s.leader ? `n${s.leader}` : "none") : "–"));
    tr.append(el("td", { class: "num", "data-field": "commit", "data-label": "commit" }, s ? s.commit_index : "–"));
    tr.append(el("td", { class: "num wide" }, s ? s.applied_index : "–"));
    tr.append(el("td", { class: "num wide" }, s ? s.last_log_index : "–"));
    let lag = "–";
    if (leaderStatus && m.id === dash.leader) lag = "leader";
    else if (leaderStatus) {
      const seen = leaderStatus.members.find((x) => x.id === m.id);
      if (seen && seen.lag !== undefined && seen.lag !== null) lag = seen.lag;
    }
    tr.append(el("td", { class: "num", "data-field": "lag", "data-label": "lag" }, lag));

    const state = el("td", { "data-field": "state" });
    if (s && s.isolated) state.append(el("span", { class: "state isolated" }, "partitioned"));
    else if (s) state.append(el("span", { class: "state up" }, "up"), el("span", { class: "muted small" }, m.rtt_ms !== undefined ? ` ${m.rtt_ms.toFixed(0)} ms` : ""));
    else if (m.reachable === false) state.append(el("span", { class: "state unreachable" }, "unreachable"), el("span", { class: "why", title: m.error || "" }, m.error || ""));
    else state.append(el("span", { class: "state" }, "unknown"), el("span", { class: "why" }, m.error || ""));
    tr.append(state);

    if (faults) {
      const cell = el("td", { class: "fault-col" });
      const isolated = !!(s && s.isolated);
      cell.append(
        el("button", { "data-action": isolated ? "heal" : "partition", "data-node": m.id, disabled: !s, title: isolated ? "let its peer traffic through again" : "drop all peer traffic to and from this node" }, isolated ? "Heal" : "Partition"),
        el("button", { "data-action": "stop", "data-node": m.id, disabled: !s, title: "shut this node's process down (click twice)", class: String(m.id) === confirmingId ? "confirm" : null }, String(m.id) === confirmingId ? "Confirm stop" : "Stop"),
      );
      // A node that is down can only be started by `concord up`'s supervisor (the serving node asks it).
      if (snap.restart && !s) {
        cell.append(el("button", { "data-action": "restart", "data-node": m.id, title: "ask concord up to start this node again" }, "Restart"));
      }
      tr.append(cell);
    }
    body.append(tr);
  }
}

function renderHistory(snap) {
  $("history-node").textContent = snap.served_by;
  const list = $("changes");
  list.replaceChildren();
  const entries = snap.leader_history.slice(-12).reverse();
  for (const e of entries) {
    const who = e.leader ? `node ${e.leader} leads` : "no leader";
    list.append(el("li", {}, `${clock(e.at_ms)} · term ${e.term} · ${who} · node ${snap.served_by} is ${e.role}`));
  }
  if (!entries.length) list.append(el("li", { class: "muted" }, "none yet"));
}

function renderRequests(snap) {
  const r = snap.requests;
  $("req-node").textContent = snap.served_by;
  $("req-window").textContent = r.window_s ? `(last ${r.window_s.toFixed(1)} s)` : "";
  const body = $("requests-body");
  body.replaceChildren();
  for (const k of r.kinds) {
    const tr = el("tr", { "data-kind": k.kind });
    body.append(tr);
    tr.append(
      el("td", {}, k.kind),
      el("td", { class: "num" }, fmtRate(k.rate_per_s)),
      el("td", { class: "num" }, fmtRate(k.errors_per_s)),
      el("td", { class: "num" }, k.count ? fmtMs(k.p50_ms_at_most) : "–"),
      el("td", { class: "num" }, k.count ? fmtMs(k.p99_ms_at_most) : "–"),
    );
  }
  if (!r.kinds.length) {
    const tr = el("tr");
    tr.append(el("td", { colspan: 5, class: "muted" }, "no client requests yet"));
    body.append(tr);
  }
}

// ---------------------------------------------------------------------------------------------
// Charts: SVG sized to their container, redrawn on each snapshot (a few hundred rects at most).

function chartWidth(node) {
  return Math.max(240, Math.floor(node.getBoundingClientRect().width || node.parentNode.clientWidth || 600));
}

function renderCharts() {
  renderTimeline();
  renderRateChart();
}

function memberIds() {
  const ids = new Set();
  for (const s of dash.samples) for (const id of Object.keys(s.members)) ids.add(Number(id));
  return [...ids].sort((a, b) => a - b);
}

// The span of both charts: the smallest of SPANS_MS that covers what the page knows.
function chartSpan(now) {
  let earliest = dash.samples.length ? dash.samples[0].t : now;
  if (dash.snapshot) for (const e of leaderChanges(dash.snapshot)) earliest = Math.min(earliest, e.at_ms);
  return SPANS_MS.find((span) => now - earliest <= span) || HISTORY_MS;
}

function timeAxis(g, x0, x1, y, span) {
  g.append(svg("line", { class: "axis", x1: x0, x2: x1, y1: y, y2: y }));
  const step = span / 4;
  for (let back = 0; back <= span; back += step) {
    const x = x1 - ((x1 - x0) * back) / span;
    const anchor = back === 0 ? "end" : back === span ? "start" : "middle";
    g.append(svg("text", { x, y: y + 13, "text-anchor": anchor }, back === 0 ? "now" : `−${Math.round(back / 1000)}s`));
  }
}

function renderTimeline() {
  const node = $("timeline");
  const ids = memberIds();
  const width = chartWidth(node);
  const lane = 22;
  const top = 28; // two rows of change labels above the lanes
  const height = top + ids.length * lane + 20;
  const left = 34;
  const right = width - 6;
  node.setAttribute("viewBox", `0 0 ${width} ${height}`);
  node.setAttribute("height", height);
  node.replaceChildren();
  const now = Date.now();
  const span = chartSpan(now);
  $("timeline-span").textContent = `(last ${span / 1000} s)`;
  const x = (t) => Math.round(Math.max(left, right - ((right - left) * (now - t)) / span));
  const g = svg("g", { "shape-rendering": "crispEdges" });
  ids.forEach((id, i) => {
    const y = top + i * lane;
    g.append(svg("text", { class: "lane", x: 4, y: y + lane / 2 + 4 }, `n${id}`));
    g.append(svg("rect", { class: "nodata", x: left, y: y + 3, width: right - left, height: lane - 6 }));
  });
  // Each member's lane: runs of samples in the same state become one rect. A sample covers the
  // time until the next one, at most 1.5 s (a longer silence is a gap: no data).
  ids.forEach((id, li) => {
    const y = top + li * lane;
    let run = null;
    const flush = () => {
      if (run && run.state !== "unknown") {
        const x0 = x(run.from);
        g.append(svg("rect", { class: run.state, x: x0, y: y + 3, width: Math.max(1, x(run.to) - x0), height: lane - 6 }));
      }
      run = null;
    };
    dash.samples.forEach((s, i) => {
      const next = dash.samples[i + 1];
      const state = s.gap || !s.members[id] ? null : s.members[id].state;
      if (state === null) return flush();
      const end = next ? Math.min(next.t, s.t + 1500) : now;
      if (run && run.state === state && run.to >= s.t) run.to = end;
      else {
        flush();
        run = { state, from: s.t, to: end };
      }
    });
    flush();
  });
  // Leader changes (from the serving node's history): a dashed line and the new leader and term.
  // Labels go on the upper row unless the previous one is too close; then on the lower one.
  const labelRows = [-Infinity, -Infinity];
  for (const e of dash.snapshot ? leaderChanges(dash.snapshot) : []) {
    if (e.at_ms < now - span) continue;
    const cx = x(e.at_ms);
    const row = labelRows.findIndex((lastX) => cx - lastX > 64);
    g.append(svg("line", { class: "change", x1: cx, x2: cx, y1: row === 1 ? top - 2 : top - 14, y2: top + ids.length * lane }));
    if (row >= 0) {
      const lx = Math.min(cx + 3, right - 58);
      g.append(svg("text", { class: "change-label", x: lx, y: row === 0 ? top - 16 : top - 4 }, `→ n${e.leader} (t${e.term})`));
      labelRows[row] = cx;
    }
  }
  timeAxis(g, left, right, top + ids.length * lane + 2, span);
  node.append(g);
}

function renderRateChart() {
  const node = $("rate-chart");
  const width = chartWidth(node);
  const height = 90;
  const left = 34;
  const right = width - 6;
  const top = 8;
  const bottom = height - 18;
  node.setAttribute("viewBox", `0 0 ${width} ${height}`);
  node.setAttribute("height", height);
  node.replaceChildren();
  const now = Date.now();
  const span = chartSpan(now);
  const points = dash.samples.filter((s) => !s.gap && s.rate !== null && s.t > now - span);
  const max = Math.max(1, ...points.map((p) => p.rate));
  const x = (t) => right - ((right - left) * (now - t)) / span;
  const y = (r) => bottom - ((bottom - top) * r) / max;
  const g = svg("g");
  g.append(svg("text", { x: 2, y: top + 8 }, `${fmtRate(max)}`));
  g.append(svg("text", { x: 2, y: bottom }, "0/s"));
  // One polyline per stretch without gaps.
  let stretch = [];
  const draw = () => {
    if (stretch.length > 1) {
      const line = stretch.map((p) => `${x(p.t).toFixed(1)},${y(p.rate).toFixed(1)}`).join(" ");
      const first = x(stretch[0].t).toFixed(1);
      const last = x(stretch[stretch.length - 1].t).toFixed(1);
      g.append(svg("polygon", { class: "area", points: `${first},${bottom} ${line} ${last},${bottom}` }));
      g.append(svg("polyline", { points: line }));
    }
    stretch = [];
  };
  for (const s of dash.samples) {
    if (s.t <= now - span) continue;
    if (s.gap || s.rate === null) draw();
    else stretch.push(s);
  }
  draw();
  timeAxis(g, left, right, bottom, span);
  node.append(g);
}

// ---------------------------------------------------------------------------------------------
// Fault-injection controls (shown only when the serving node has fault injection on). Every request goes to
// the serving node, which acts itself or forwards to the member with a proof of the cluster secret. The
// right to use them is the HttpOnly cookie the node set when the page was opened with its ?token=
// (the browser sends it with these same-origin requests; scripts cannot read it).

async function labAction(id, action) {
  const out = $("fault-result");
  out.hidden = false;
  out.className = "small";
  out.textContent = `${action} node ${id}…`;
  try {
    const r = await fetch(`/v1/faults/nodes/${id}/${action}`, { method: "POST" });
    const body = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(body.error || `HTTP ${r.status}`);
    const what = { partition: "partitioned (its peer traffic is dropped)", heal: "healed", stop: "is stopping", restart: "is starting again" }[action];
    out.textContent = `${clock(Date.now())}: node ${id} ${what}.`;
  } catch (e) {
    out.className = "small error";
    out.textContent = `${clock(Date.now())}: ${action} node ${id} failed: ${e.message}`;
  }
}

$("members-body").addEventListener("click", (e) => {
  const button = e.target.closest("button[data-action]");
  if (!button || button.disabled) return;
  const id = Number(button.dataset.node);
  const action = button.dataset.action;
  if (action === "stop" && !button.classList.contains("confirm")) {
    button.classList.add("confirm");
    button.textContent = "Confirm stop";
    setTimeout(() => {
      for (const b of document.querySelectorAll(`button.confirm[data-node="${id}"]`)) {
        b.classList.remove("confirm");
        b.textContent = "Stop";
      }
    }, CONFIRM_MS);
    return;
  }
  button.classList.remove("confirm");
  button.disabled = true;
  labAction(id, action);
});

window.addEventListener("resize", () => dash.ready && renderCharts());
connect();
