// Concord replay viewer.
//
// The page fetches /api/trace (every event of one simulated run, plus the checker's verdict on the
// client history when `concord view --history` was given) and replays it:
//
//   events ──apply()──▶ state (nodes, network cuts, messages in flight, recent drops)
//
// `apply` is the one place that knows what an event means. Scrubbing is fast because a full copy of
// the state is kept every SNAPSHOT_EVERY events: seeking to event i restores the snapshot at or
// before i and applies at most SNAPSHOT_EVERY events. Drawing happens in requestAnimationFrame and
// reuses a fixed set of SVG elements (one group per node, a pool of message dots), so a long trace
// never turns into a long DOM. The client history is drawn on a <canvas> for the same reason.
"use strict";

const SNAPSHOT_EVERY = 500;
const MESSAGE_DOTS_MAX = 400;
const DROP_SHOWN_NS = 20e6;        // a dropped message stays marked for 20 ms of virtual time
const RING_RADIUS = 185;
const NODE_RADIUS = 34;
const SVG_NS = "http://www.w3.org/2000/svg";

const ROLE_COLOURS = { follower: "#8796aa", "pre-candidate": "#f2c14e", candidate: "#f08a24", leader: "#2fa86b", learner: "#a58bd6" };
const KIND_COLOURS = {
  vote: "#f08a24", "vote-resp": "#f2c14e", "pre-vote": "#f6b26b", "pre-vote-resp": "#f9d49b",
  append: "#3f7be0", "append-resp": "#8fb3f0", heartbeat: "#7a8799", "heartbeat-resp": "#b5bfcc",
  snapshot: "#a058c8", "snapshot-resp": "#cfa5e6", rumour: "#3f7be0", digest: "#7a8799", exchange: "#a058c8",
  // Paxos: phase 1 in oranges, phase 2 in blues, decisions green, refusals red.
  prepare: "#f08a24", promise: "#f2c14e", accept: "#3f7be0", accepted: "#8fb3f0", nack: "#d93b3b",
  decide: "#2fa86b", "catch-up": "#a058c8", "catch-up-resp": "#cfa5e6",
};
// What a Paxos message is called in the papers (its label on the ring).
const PAXOS_LABELS = {
  prepare: "prepare (1a)", promise: "promise (1b)", accept: "accept (2a)", accepted: "accepted (2b)",
  nack: "nack", decide: "decide", heartbeat: "heartbeat", "catch-up": "catch-up", "catch-up-resp": "catch-up resp", snapshot: "snapshot",
};
const PAXOS_MESSAGES = new Set(["Prepare", "Promise", "Accept", "Accepted", "Nack", "Decide", "CatchUp", "CatchUpResp"]);
const MESSAGE_LABELS_MAX = 40;     // labelled arrows (Paxos); further messages are plain dots
const PAXOS_KEEP_SLOTS = 256;      // per node, slots kept below its highest one (the grid shows the top)
const FAULT_EVENTS = new Set(["crash", "restart", "partition", "isolate", "one-way", "cut", "heal-link", "heal", "heal-all", "pause", "resume", "skew", "loss", "nemesis-trigger"]);

// ---------------------------------------------------------------- state and how events change it

function emptyNode(id) {
  return {
    id, up: false, paused: false, role: null, term: 0, leader: null, votedFor: null, commit: 0,
    log: [],            // log[i] = {term, payload} for index i+1; null when compacted or unknown
    snapshotIndex: 0, timers: {}, items: {}, itemCount: 0, inspect: null, lastEvent: null,
    // Paxos: the ballot it leads or campaigns with, its promise (ballots as "round.node"), slot →
    // [ballot, value kind] it accepted, slot → value kind it learned as chosen, and how far it applied.
    ballot: null, promised: null, acc: {}, learned: {}, applied: 0, topSlot: 0,
  };
}

function initialState(nodeIds) {
  const nodes = {};
  for (const id of nodeIds) nodes[id] = emptyNode(id);
  return { index: 0, time: 0, nodes, cuts: [], inflight: new Map(), drops: [], clientsPending: new Map() };
}

function cloneState(s) {
  const nodes = {};
  for (const id in s.nodes) {
    const n = s.nodes[id];
    nodes[id] = { ...n, log: n.log.slice(), timers: { ...n.timers }, items: { ...n.items }, acc: { ...n.acc }, learned: { ...n.learned } };
  }
  const inflight = new Map();
  for (const [id, m] of s.inflight) inflight.set(id, { ...m });
  return { index: s.index, time: s.time, nodes, cuts: s.cuts.slice(), inflight, drops: s.drops.slice(), clientsPending: new Map(s.clientsPending) };
}

// The term a node announces in a message it sends is its current term (pre-votes excepted: they
// carry the term the node would campaign in).
function messageTerm(msg) {
  if (!msg || typeof msg !== "object") return null;
  const [variant, body] = Object.entries(msg)[0] || [];
  if (!body || variant === "PreVote" || variant === "PreVoteResp") return null;
  return typeof body.term === "number" ? body.term : null;
}

function messageItems(msg) {
  if (!msg || typeof msg !== "object") return null;
  const body = Object.values(msg)[0];
  return body && Array.isArray(body.items) ? body.items : null;
}

function learnItems(node, items) {
  for (const it of items) {
    const k = it.origin + "#" + it.seq;
    if (!(k in node.items)) { node.items[k] = it; node.itemCount++; }
  }
}

function truncateLog(node, lastIndex) {
  if (node.log.length > lastIndex) node.log.length = Math.max(0, lastIndex);
}

function apply(s, e, i, trace) {
  s.index = i + 1;
  s.time = e.t;
  const node = e.node != null ? s.nodes[e.node] : null;
  if (node) node.lastEvent = i;
  switch (e.ev) {
    case "boot": node.up = true; node.paused = false; break;
    case "crash": node.up = false; node.paused = false; node.timers = {}; break;
    case "pause": node.paused = true; break;
    case "resume": node.paused = false; break;
    case "state": {
      const st = e.state || {};
      node.inspect = st;
      if (trace.protocol === "paxos") { paxosRecovered(node, st); break; }
      if (st.role) node.role = st.role;
      if (typeof st.term === "number") node.term = st.term;
      if ("leader" in st) node.leader = st.leader;
      if ("voted_for" in st) node.votedFor = st.voted_for;
      if (typeof st.commit_index === "number") node.commit = st.commit_index;
      if (typeof st.snapshot_index === "number") node.snapshotIndex = st.snapshot_index;
      if (typeof st.last_log_index === "number") {
        truncateLog(node, st.last_log_index);
        while (node.log.length < st.last_log_index) node.log.push(null);
      }
      break;
    }
    case "timer-set": node.timers[e.timer] = { set: e.t, at: e.at }; break;
    case "timer": delete node.timers[e.timer]; break;
    case "send": {
      const m = { id: e.id, from: e.from, to: e.to, kind: e.kind, t0: e.t, send: i, copies: 1, delivered: 0 };
      s.inflight.set(e.id, m);
      const sender = s.nodes[e.from];
      const term = messageTerm(e.msg);
      if (sender && term != null && term > sender.term) sender.term = term;
      const items = messageItems(e.msg);
      if (sender && items) learnItems(sender, items);
      break;
    }
    case "duplicate": { const m = s.inflight.get(e.id); if (m) m.copies++; break; }
    case "deliver":
    case "drop": {
      const m = s.inflight.get(e.id);
      if (e.ev === "drop") s.drops.push({ from: e.from, to: e.to, kind: e.kind, t: e.t, id: e.id, why: e.why, index: i });
      if (e.ev === "deliver") {
        const items = messageItems(trace.events[trace.sendOf.get(e.id)]?.msg);
        if (items && s.nodes[e.to]) learnItems(s.nodes[e.to], items);
      }
      if (m) {
        m.copies--; m.delivered++;
        if (m.copies <= 0) s.inflight.delete(e.id);
      }
      break;
    }
    case "partition": {
      // A partition replaces the current cuts: nodes in different groups cannot talk.
      s.cuts = [];
      const group = {};
      e.groups.forEach((g, gi) => g.forEach((n) => { group[n] = gi; }));
      const ids = Object.keys(s.nodes).map(Number);
      for (const a of ids) for (const b of ids) if (a < b && group[a] !== group[b]) s.cuts.push({ from: a, to: b, both: true });
      break;
    }
    case "isolate":
      for (const b of Object.keys(s.nodes).map(Number)) if (b !== e.node) s.cuts.push({ from: e.node, to: b, both: true });
      break;
    case "one-way":
      for (const a of e.from) for (const b of e.to) s.cuts.push({ from: a, to: b, both: false });
      break;
    case "cut": s.cuts.push({ from: e.a, to: e.b, both: true }); break;
    case "heal-link":
      s.cuts = s.cuts.filter((c) => !((c.from === e.a && c.to === e.b) || (c.from === e.b && c.to === e.a)));
      break;
    case "heal": case "heal-all": s.cuts = []; break;
    case "request": {
      const req = e.req && e.req.Broadcast;
      if (req) node.pendingBroadcast = req;
      break;
    }
    case "invoke": s.clientsPending.set(e.request, i); break;
    case "complete": s.clientsPending.delete(e.request); break;
    case "protocol": if (trace.protocol === "paxos") applyPaxos(node, e); else applyProtocol(s, node, e); break;
    default: break;
  }
  if (s.drops.length > 64 || (s.drops.length && s.drops[0].t < e.t - DROP_SHOWN_NS)) {
    s.drops = s.drops.filter((d) => d.t >= e.t - DROP_SHOWN_NS).slice(-64);
  }
}

function applyProtocol(s, node, e) {
  const d = e.detail || {};
  switch (e.name) {
    case "role":
      node.role = d.to;
      if (typeof d.term === "number") node.term = d.term;
      if (d.to !== "leader" && node.leader === node.id) node.leader = null;
      break;
    case "elected": node.role = "leader"; node.term = d.term; node.leader = node.id; break;
    case "leader": node.leader = d.leader; if (d.term > node.term) node.term = d.term; break;
    case "vote": if (d.granted) node.votedFor = d.for; if (d.term > node.term) node.term = d.term; break;
    case "step-down": if (d.term > node.term) node.term = d.term; break;
    case "commit": node.commit = Math.max(node.commit, d.index); break;
    case "append":
      truncateLog(node, d.index - 1);
      while (node.log.length < d.index - 1) node.log.push(null);
      node.log.push({ term: d.term, payload: d.payload });
      break;
    case "truncate": truncateLog(node, d.from - 1); break;
    case "snapshot-taken": node.snapshotIndex = Math.max(node.snapshotIndex, d.index); break;
    case "snapshot-installed":
      node.snapshotIndex = d.index;
      node.commit = Math.max(node.commit, d.index);
      if (node.log.length < d.index) { while (node.log.length < d.index) node.log.push(null); }
      break;
    case "learned": break; // the items arrive with the message (see "deliver")
    default: break;
  }
}

// ---------------------------------------------------------------- Paxos
//
// concord-paxos's protocol events (docs/paxos.md): "campaign" (phase 1a with a new ballot),
// "promise" (an acceptor promised), "elected" (phase 1 done: leading), "noop-filled" (a hole below
// the highest reported slot, proposed as a no-op), "accept" (an acceptor accepted {slot, ballot,
// value}), "chosen" (the leader counted q2 acceptances), "learned" (a replica learned a chosen
// slot), "preempted", "leader" (a follower heard a leader), "snapshot", "snapshot-installed".
// A node's `state` at boot (its inspect) says what it recovered: promise, applied prefix, the
// highest accepted slots. Which slots were chosen or filled is indexed once per trace (see
// extendTrace), so a node here only holds its own view.

function ballotKey(b) {
  if (b == null) return [0, 0];
  const [r, n] = String(b).split(".").map(Number);
  return [r || 0, n || 0];
}

function ballotAbove(a, b) {
  const [ra, na] = ballotKey(a), [rb, nb] = ballotKey(b);
  return ra > rb || (ra === rb && na > nb);
}

function raisePromise(node, b) {
  if (b != null && (node.promised == null || ballotAbove(b, node.promised))) node.promised = b;
}

function noteSlot(node, slot) {
  if (slot <= node.topSlot) return;
  node.topSlot = slot;
  // Keep a node's view bounded: the grid shows the highest slots, snapshots copy what is kept.
  if (slot % 64 === 0) {
    const floor = slot - PAXOS_KEEP_SLOTS;
    for (const k in node.acc) if (Number(k) < floor) delete node.acc[k];
    for (const k in node.learned) if (Number(k) < floor) delete node.learned[k];
  }
}

function advanceApplied(node) {
  while (node.learned[node.applied + 1] !== undefined) node.applied++;
}

function forgetUpTo(node, slot) {
  for (const k in node.acc) if (Number(k) <= slot) delete node.acc[k];
  node.snapshotIndex = Math.max(node.snapshotIndex, slot);
}

function paxosRecovered(node, st) {
  node.role = st.role || "follower";
  node.ballot = st.ballot ?? null;
  node.promised = st.promised ?? null;
  node.leader = st.leader ?? null;
  node.applied = st.applied || 0;
  node.snapshotIndex = st.snapshot_slot || 0;
  node.learned = {};
  node.acc = {};
  for (const [slot, b, kind] of st.accepted_tail || []) { node.acc[slot] = [b, kind]; noteSlot(node, slot); }
  noteSlot(node, node.applied);
}

function applyPaxos(node, e) {
  const d = e.detail || {};
  switch (e.name) {
    case "campaign": node.role = "candidate"; node.ballot = d.ballot; node.leader = null; raisePromise(node, d.ballot); break;
    case "promise": raisePromise(node, d.ballot); break;
    case "elected": node.role = "leader"; node.ballot = d.ballot; node.leader = node.id; break;
    case "preempted":
      node.role = "follower"; node.ballot = null;
      node.leader = ballotKey(d.by)[1] !== node.id ? ballotKey(d.by)[1] : null;
      break;
    case "leader": node.leader = d.leader; if (node.role !== "leader") node.role = "follower"; break;
    case "accept":
      node.acc[d.slot] = [d.ballot, d.value || "?"];
      raisePromise(node, d.ballot);
      noteSlot(node, d.slot);
      break;
    case "learned":
      if (d.slot > node.applied) node.learned[d.slot] = d.value || "?";
      advanceApplied(node);
      noteSlot(node, d.slot);
      break;
    case "snapshot": forgetUpTo(node, d.slot); break;
    case "snapshot-installed":
      forgetUpTo(node, d.slot);
      node.applied = Math.max(node.applied, d.slot);
      for (const k in node.learned) if (Number(k) <= d.slot) delete node.learned[k];
      advanceApplied(node);
      noteSlot(node, d.slot);
      break;
    default: break;
  }
}

// ---------------------------------------------------------------- loading: one pass over the trace

// `ids`: the nodes, when known beforehand (live mode); otherwise every node the trace mentions.
function prepare(doc, ids) {
  const trace = {
    doc, events: doc.events, ids: ids || nodeIdsOf(doc.events),
    sendOf: new Map(),       // message id → index of its send event
    endTimes: new Map(),     // message id → times its copies were delivered or dropped
    arrivals: new Map(),     // live mode: message id → when the simulator will deliver it
    ops: [], opByRequest: new Map(), clientSet: new Set(), clients: [],
    categories: { fault: [], election: [], commit: [], client: [], "noop-fill": [] },
    // Paxos, per slot: the first event that made it chosen ({index, ballot, value}) and the
    // first no-op fill of it as a hole ({index, ballot, node}).
    chosen: new Map(), filled: new Map(),
    protocolSeen: null, sawLearned: false, protocol: "unknown", hasLogs: false,
    snapshots: [], indexed: 0, head: null, endTime: 0, maxItems: 1,
  };
  // A scenario with a [topology] starts its trace with each node's region and zone.
  const topology = doc.events.find((e) => e.ev === "topology");
  trace.places = topology ? topology.nodes : {};
  trace.head = initialState(trace.ids);
  trace.snapshots.push(cloneState(trace.head));
  extendTrace(trace);
  markOffending(trace, doc.check);
  return trace;
}

function nodeIdsOf(events) {
  const nodeIds = new Set();
  for (const e of events) {
    if (e.node != null) nodeIds.add(e.node);
    if (e.ev === "send") { nodeIds.add(e.from); nodeIds.add(e.to); }
  }
  return [...nodeIds].filter((n) => typeof n === "number").sort((a, b) => a - b);
}

// Index the events not seen yet (all of them when loading a trace, the new ones in live mode),
// then replay them onto `trace.head`, keeping a snapshot every SNAPSHOT_EVERY events.
function extendTrace(trace) {
  const events = trace.events, from = trace.indexed;
  for (let i = from; i < events.length; i++) {
    const e = events[i];
    switch (e.ev) {
      case "send":
        trace.sendOf.set(e.id, i);
        if (!trace.protocolSeen && e.msg) {
          const variant = Object.keys(e.msg)[0];
          trace.protocolSeen = PAXOS_MESSAGES.has(variant) ? "paxos"
            : "Rumour" in e.msg || "Digest" in e.msg || "Exchange" in e.msg ? "gossip" : "raft";
        }
        break;
      case "deliver": case "drop": {
        let list = trace.endTimes.get(e.id);
        if (!list) trace.endTimes.set(e.id, (list = []));
        list.push(e.t);
        break;
      }
      case "invoke": {
        const op = { client: e.client, node: e.node, request: e.request, op: e.op, t0: e.t, t1: null, type: null, result: null, invoke: i, complete: null, offending: null };
        trace.opByRequest.set(e.request, op);
        trace.ops.push(op);
        trace.clientSet.add(e.client);
        trace.categories.client.push(i);
        break;
      }
      case "complete": {
        const op = trace.opByRequest.get(e.request);
        if (op) { op.t1 = e.t; op.type = e.type; op.result = e.op; op.complete = i; }
        break;
      }
      case "protocol":
        if (e.name === "campaign" || e.name === "noop-filled" || e.name === "chosen") trace.paxosEvents = true;
        if (e.detail && typeof e.detail.ballot === "string" && typeof e.detail.slot === "number") {
          // Paxos slots (its ballots are "round.node" strings).
          const slot = e.detail.slot;
          if ((e.name === "chosen" || e.name === "learned") && !trace.chosen.has(slot)) {
            trace.chosen.set(slot, { index: i, ballot: e.detail.ballot, value: e.detail.value || "?" });
          }
          if (e.name === "noop-filled") {
            if (!trace.filled.has(slot)) trace.filled.set(slot, { index: i, ballot: e.detail.ballot, node: e.node });
            trace.categories["noop-fill"].push(i);
          }
          if (e.name === "chosen") trace.categories.commit.push(i);
          break;
        }
        if (e.name === "campaign") { trace.categories.election.push(i); break; }
        if (e.name === "elected" || (e.name === "role" && e.detail && e.detail.to === "candidate")) trace.categories.election.push(i);
        else if (e.name === "commit" || e.name === "learned") trace.categories.commit.push(i);
        else if (e.name === "append") trace.hasLogs = true;
        if (e.name === "learned") trace.sawLearned = true;
        break;
      default:
        if (FAULT_EVENTS.has(e.ev)) trace.categories.fault.push(i);
    }
  }
  trace.protocol = trace.protocolSeen || (trace.paxosEvents ? "paxos" : trace.sawLearned ? "gossip" : "raft");
  if (trace.clients.length !== trace.clientSet.size) trace.clients = [...trace.clientSet].sort((a, b) => a - b);
  const s = trace.head;
  for (let i = from; i < events.length; i++) {
    apply(s, events[i], i, trace);
    if ((i + 1) % SNAPSHOT_EVERY === 0) trace.snapshots.push(cloneState(s));
  }
  trace.indexed = events.length;
  trace.endTime = events.length ? events[events.length - 1].t : 0;
  trace.maxItems = Math.max(1, ...trace.ids.map((id) => s.nodes[id].itemCount));
}

// The checker reports offending operations by process and invocation time; the trace's client ops
// carry the same client number and time.
function markOffending(trace, check) {
  trace.offending = [];
  if (!check || !Array.isArray(check.offending)) return;
  for (const bad of check.offending) {
    const op = trace.ops.find((o) => o.client === bad.process && o.t0 === bad.call_time);
    if (op) { op.offending = bad; trace.offending.push(op); }
  }
}

function stateAt(trace, index) {
  const k = Math.min(Math.floor(index / SNAPSHOT_EVERY), trace.snapshots.length - 1);
  const s = cloneState(trace.snapshots[k]);
  for (let i = k * SNAPSHOT_EVERY; i < index; i++) apply(s, trace.events[i], i, trace);
  return s;
}

// ---------------------------------------------------------------- the viewer

const $ = (id) => document.getElementById(id);
const viewer = { ready: false, playing: false, speedLog: -1.5, selected: null, historySpanNs: 2e9 };
window.viewer = viewer;

function fmtTime(ns) {
  if (ns >= 1e9) return (ns / 1e9).toFixed(3) + " s";
  if (ns >= 1e6) return (ns / 1e6).toFixed(2) + " ms";
  return (ns / 1e3).toFixed(1) + " µs";
}

function svg(tag, attrs, parent) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const k in attrs) el.setAttribute(k, attrs[k]);
  if (parent) parent.appendChild(el);
  return el;
}

function nodePos(trace, id) {
  const k = trace.ids.indexOf(id);
  const a = -Math.PI / 2 + (2 * Math.PI * k) / trace.ids.length;
  return [RING_RADIUS * Math.cos(a), RING_RADIUS * Math.sin(a)];
}

function buildRing(trace) {
  const links = $("links"), nodes = $("nodes"), msgs = $("messages");
  // Live mode may learn the protocol after the first build (from the first message): start over.
  for (const g of [links, nodes, msgs]) g.textContent = "";
  viewer.builtFor = trace.protocol;
  viewer.nodeEls = {};
  for (const a of trace.ids) for (const b of trace.ids) if (a < b) {
    const [x1, y1] = nodePos(trace, a), [x2, y2] = nodePos(trace, b);
    svg("line", { class: "link", x1, y1, x2, y2 }, links);
  }
  for (const id of trace.ids) {
    const [x, y] = nodePos(trace, id);
    const g = svg("g", { class: "node", transform: `translate(${x},${y})`, "data-node": id, id: "node-" + id }, nodes);
    const body = svg("circle", { class: "body", r: NODE_RADIUS }, g);
    const timer = svg("path", { class: "timer" }, g);
    const label = svg("text", { class: "id", y: 7 }, g);
    label.textContent = id;
    const place = trace.places[id];
    if (place) {
      // Inside the circle, under the id: the zone (its region in the tooltip and the node panel).
      svg("text", { class: "place", y: 22 }, g).textContent = place.zone;
      svg("title", {}, g).textContent = `node ${id}: region ${place.region}, zone ${place.zone}`;
    }
    const outward = y < -10 ? -1 : 1;
    const sub1 = svg("text", { class: "sub", y: outward * (NODE_RADIUS + 16) + (outward < 0 ? -14 : 0) }, g);
    const sub2 = svg("text", { class: "sub", y: outward * (NODE_RADIUS + 16) + (outward < 0 ? 0 : 15) }, g);
    g.addEventListener("click", () => select({ type: "node", id }));
    viewer.nodeEls[id] = { g, body, timer, sub1, sub2 };
  }
  viewer.dots = [];
  for (let i = 0; i < MESSAGE_DOTS_MAX; i++) {
    const c = svg("circle", { class: "msg", r: 6, visibility: "hidden" }, msgs);
    c.addEventListener("click", (ev) => { ev.stopPropagation(); if (c.dataset.id) select({ type: "message", id: Number(c.dataset.id) }); });
    viewer.dots.push(c);
  }
  // Paxos: arrows labelled with the message's kind, for the first MESSAGE_LABELS_MAX in flight.
  viewer.arrows = [];
  if (trace.protocol === "paxos") {
    const defs = svg("defs", {}, msgs);
    const marker = svg("marker", { id: "arrow-head", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 5, markerHeight: 5, orient: "auto-start-reverse" }, defs);
    svg("path", { d: "M 0 0 L 10 5 L 0 10 z", fill: "context-stroke" }, marker);
    for (let i = 0; i < MESSAGE_LABELS_MAX; i++) {
      const line = svg("line", { class: "msg-arrow", "marker-end": "url(#arrow-head)", visibility: "hidden" }, msgs);
      const text = svg("text", { class: "msg-label", visibility: "hidden" }, msgs);
      viewer.arrows.push({ line, text });
    }
    $("log-title").innerHTML = `Slots <span class="muted small">(per acceptor: the ballot it accepted; <span class="swatch committed"></span> learned by that node, `
      + `<span class="swatch uncommitted"></span> accepted only, <span class="swatch noop"></span> no-op, <span class="swatch compacted"></span> in a snapshot; `
      + `top row: ✓ chosen, <span class="swatch filled"></span> a hole a new leader filled with a no-op)</span>`
      + ` <span class="zoom"><button id="slots-back" title="older slots">‹</button><button id="slots-latest" title="back to the highest slots">⇥</button><button id="slots-fwd" title="newer slots">›</button></span>`;
    viewer.slotBack = 0;
    document.querySelector("[data-jump=noop-fill]").hidden = false;
    document.querySelector("[data-jump=commit]").textContent = "chosen";
    $("slots-back").addEventListener("click", () => { viewer.slotBack += 8; viewer.dirty = true; });
    $("slots-fwd").addEventListener("click", () => { viewer.slotBack = Math.max(0, viewer.slotBack - 8); viewer.dirty = true; });
    $("slots-latest").addEventListener("click", () => { viewer.slotBack = 0; viewer.dirty = true; });
  }
  const legend = $("legend");
  const entries = trace.protocol === "raft"
    ? Object.entries(ROLE_COLOURS).filter(([r]) => r !== "learner").concat([["down", "#c4c8ce"]])
    : trace.protocol === "paxos"
    ? [["follower (acceptor)", ROLE_COLOURS.follower], ["candidate (phase 1)", ROLE_COLOURS.candidate], ["leader (proposer)", ROLE_COLOURS.leader], ["down", "#c4c8ce"]]
    : [["fewer items", itemColour(0)], ["all items", itemColour(1)], ["down", "#c4c8ce"]];
  legend.innerHTML = entries.map(([n, c]) => `<span><i style="background:${c}"></i>${n}</span>`).join("");
}

function itemColour(fraction) {
  // From pale blue (little known) to deep green (everything known).
  const h = 210 - 70 * fraction, l = 78 - 38 * fraction;
  return `hsl(${h},55%,${l}%)`;
}

function arcPath(fraction) {
  const r = NODE_RADIUS + 7;
  if (fraction <= 0) return "";
  const f = Math.min(fraction, 0.9999);
  const a = 2 * Math.PI * f - Math.PI / 2;
  const large = f > 0.5 ? 1 : 0;
  return `M 0 ${-r} A ${r} ${r} 0 ${large} 1 ${r * Math.cos(a)} ${r * Math.sin(a)}`;
}

function drawRing(trace, s, now) {
  for (const id of trace.ids) {
    const n = s.nodes[id], el = viewer.nodeEls[id];
    el.g.classList.toggle("down", !n.up);
    el.g.classList.toggle("paused", n.up && n.paused);
    el.g.classList.toggle("selected", viewer.selected && viewer.selected.type === "node" && viewer.selected.id === id);
    let colour, line1, line2;
    if (trace.protocol === "raft") {
      colour = ROLE_COLOURS[n.role] || ROLE_COLOURS.follower;
      line1 = n.up ? `${n.role || "?"} · term ${n.term}` : "crashed";
      line2 = `commit ${n.commit} · log ${n.log.length}`;
    } else if (trace.protocol === "paxos") {
      colour = ROLE_COLOURS[n.role] || ROLE_COLOURS.follower;
      line1 = n.up ? `${n.role || "?"}${n.ballot ? " · b " + n.ballot : ""}` : "crashed";
      line2 = window.innerWidth < 600 ? `p ${n.promised ?? "–"} · a ${n.applied}` : `promised ${n.promised ?? "–"} · applied ${n.applied}`;
      if (n.up && n.paused) line2 = "paused";
    } else {
      colour = itemColour(n.itemCount / trace.maxItems);
      line1 = n.up ? `${n.itemCount} items` : "crashed";
      line2 = n.paused ? "paused" : "";
    }
    if (n.up && n.paused && trace.protocol === "raft") line2 = "paused";
    el.body.setAttribute("fill", colour);
    el.sub1.textContent = line1;
    el.sub2.textContent = line2;
    const timer = n.up && (n.timers.Election || n.timers.LeaderTimeout || null);
    el.timer.setAttribute("d", timer && timer.at > timer.set ? arcPath(1 - (now - timer.set) / (timer.at - timer.set)) : "");
  }
  // Cuts: a red dashed line per severed pair (one-way cuts marked with an arrow head).
  const cuts = $("cuts");
  const key = s.cuts.map((c) => `${c.from}-${c.to}-${c.both}`).join(",");
  if (cuts.dataset.key !== key) {
    cuts.dataset.key = key;
    cuts.textContent = "";
    for (const c of s.cuts) {
      const [x1, y1] = nodePos(trace, c.from), [x2, y2] = nodePos(trace, c.to);
      svg("line", { class: "cut", x1, y1, x2, y2 }, cuts);
      const t = c.both ? 0.5 : 0.7;
      const mark = svg("text", { class: "cut-mark", x: x1 + (x2 - x1) * t, y: y1 + (y2 - y1) * t }, cuts);
      mark.textContent = c.both ? "✂" : "⇥";
    }
  }
  // Messages in flight, positioned by virtual time between send and arrival.
  let k = 0;
  for (const m of s.inflight.values()) {
    if (k >= MESSAGE_DOTS_MAX) break;
    const ends = trace.endTimes.get(m.id) || [];
    const t1 = ends[m.delivered] ?? trace.arrivals.get(m.id) ?? ends[ends.length - 1] ?? m.t0 + 1;
    const f = Math.max(0, Math.min(1, (now - m.t0) / Math.max(1, t1 - m.t0)));
    const [x1, y1] = nodePos(trace, m.from), [x2, y2] = nodePos(trace, m.to);
    const dot = viewer.dots[k++];
    dot.setAttribute("cx", x1 + (x2 - x1) * f);
    dot.setAttribute("cy", y1 + (y2 - y1) * f);
    dot.setAttribute("fill", KIND_COLOURS[m.kind] || "#555");
    dot.setAttribute("visibility", "visible");
    dot.dataset.id = m.id;
    dot.classList.toggle("selected", viewer.selected && viewer.selected.type === "message" && viewer.selected.id === m.id);
  }
  viewer.dotsShown = k;
  if (viewer.arrows.length) drawArrows(trace, s, now);
  for (; k < MESSAGE_DOTS_MAX && viewer.dots[k].getAttribute("visibility") !== "hidden"; k++) {
    viewer.dots[k].setAttribute("visibility", "hidden");
    delete viewer.dots[k].dataset.id;
  }
  // Dropped messages: a red cross on the link, near the sender.
  const drops = $("drops");
  drops.textContent = "";
  for (const d of s.drops) {
    if (d.t < now - DROP_SHOWN_NS) continue;
    const [x1, y1] = nodePos(trace, d.from), [x2, y2] = nodePos(trace, d.to);
    const x = x1 + (x2 - x1) * 0.35, y = y1 + (y2 - y1) * 0.35, r = 6;
    const g = svg("g", { "data-id": d.id, style: "cursor:pointer" }, drops);
    svg("line", { class: "drop-mark", x1: x - r, y1: y - r, x2: x + r, y2: y + r }, g);
    svg("line", { class: "drop-mark", x1: x - r, y1: y + r, x2: x + r, y2: y - r }, g);
    g.addEventListener("click", () => select({ type: "message", id: d.id }));
  }
}

// Paxos: a short arrow behind each of the first messages in flight, with the message's kind.
function drawArrows(trace, s, now) {
  let k = 0;
  for (const m of s.inflight.values()) {
    if (k >= MESSAGE_LABELS_MAX) break;
    const ends = trace.endTimes.get(m.id) || [];
    const t1 = ends[m.delivered] ?? trace.arrivals.get(m.id) ?? ends[ends.length - 1] ?? m.t0 + 1;
    const f = Math.max(0, Math.min(1, (now - m.t0) / Math.max(1, t1 - m.t0)));
    const [x1, y1] = nodePos(trace, m.from), [x2, y2] = nodePos(trace, m.to);
    const len = Math.hypot(x2 - x1, y2 - y1) || 1, ux = (x2 - x1) / len, uy = (y2 - y1) / len;
    const x = x1 + (x2 - x1) * f, y = y1 + (y2 - y1) * f;
    const a = viewer.arrows[k++];
    const colour = KIND_COLOURS[m.kind] || "#555";
    a.line.setAttribute("x1", x - ux * 26); a.line.setAttribute("y1", y - uy * 26);
    a.line.setAttribute("x2", x - ux * 7); a.line.setAttribute("y2", y - uy * 7);
    a.line.setAttribute("stroke", colour);
    a.line.setAttribute("visibility", "visible");
    // The label sits beside the arrow, on the side away from the ring's centre line.
    a.text.setAttribute("x", x - uy * 12); a.text.setAttribute("y", y + ux * 12);
    a.text.textContent = PAXOS_LABELS[m.kind] || m.kind;
    a.text.setAttribute("fill", colour);
    a.text.setAttribute("visibility", "visible");
    a.text.dataset.kind = m.kind;
  }
  viewer.arrowsShown = k;
  for (; k < MESSAGE_LABELS_MAX && viewer.arrows[k].line.getAttribute("visibility") !== "hidden"; k++) {
    viewer.arrows[k].line.setAttribute("visibility", "hidden");
    viewer.arrows[k].text.setAttribute("visibility", "hidden");
  }
}

function describeEvent(e) {
  const text = describeEventInFull(e);
  return text.length > 160 ? text.slice(0, 159) + "…" : text;
}

function describeEventInFull(e) {
  if (!e) return "";
  switch (e.ev) {
    case "send": return `send ${e.kind} ${e.from}→${e.to}`;
    case "deliver": return `deliver ${e.kind} ${e.from}→${e.to}`;
    case "drop": return `drop ${e.kind} ${e.from}→${e.to} (${e.why})`;
    case "protocol": return `node ${e.node}: ${e.name} ${JSON.stringify(e.detail)}`;
    case "invoke": return `client ${e.client} → node ${e.node}: ${e.op}`;
    case "complete": return `${e.request} ${e.type}: ${e.op}`;
    default: {
      const { t, ev, ...rest } = e;
      return `${ev} ${JSON.stringify(rest)}`;
    }
  }
}

function drawLogs(trace, s) {
  const host = $("logs");
  if (trace.protocol === "paxos") { host.innerHTML = paxosGrid(trace, s); return; }
  if (trace.protocol !== "raft") {
    if (host.dataset.mode !== "gossip") { host.dataset.mode = "gossip"; }
    host.innerHTML = gossipTable(trace, s);
    return;
  }
  if (!trace.hasLogs) {
    host.innerHTML = `<p class="muted">This trace has no log entries (traces from before <code>append</code> events were added); roles, terms and commit indexes are shown on the ring.</p>`;
    return;
  }
  const COLS = window.innerWidth < 600 ? 12 : 20;
  let last = 0;
  for (const id of trace.ids) last = Math.max(last, s.nodes[id].log.length);
  const first = Math.max(1, last - COLS + 1);
  let html = "<table><tr><th>index</th>";
  for (let i = first; i < first + COLS; i++) html += `<th>${i}</th>`;
  html += "</tr>";
  for (const id of trace.ids) {
    const n = s.nodes[id];
    html += `<tr><th>node ${id}</th>`;
    for (let i = first; i < first + COLS; i++) {
      const entry = n.log[i - 1];
      let cls = "empty", text = "";
      if (i <= n.log.length) {
        if (i <= n.snapshotIndex && !entry) { cls = "compacted"; text = "s"; }
        else if (entry) { cls = i <= n.commit ? "committed" : "uncommitted"; text = entry.term; }
        else { cls = "compacted"; text = "?"; }
      }
      const tip = entry ? ` title="${escapeHtml(payloadText(entry.payload))}"` : "";
      html += `<td class="${cls}${n.up ? "" : " down"}"${tip}>${text}</td>`;
    }
    html += "</tr>";
  }
  host.innerHTML = html + "</table>";
}

// The Paxos log grid: a column per slot, the highest ones (or older ones, with ‹ ›); a row per
// acceptor with the ballot it accepted there; a top row with what was chosen.
function paxosGrid(trace, s) {
  // As many columns as fit the section (a cell is 2.3rem + spacing; the row header ~4.5rem).
  const rem = parseFloat(getComputedStyle(document.documentElement).fontSize) || 16;
  const COLS = Math.max(4, Math.min(24, Math.floor(($("logs").clientWidth - 4.8 * rem) / (2.3 * rem + 2))));
  let top = 0;
  for (const id of trace.ids) top = Math.max(top, s.nodes[id].topSlot);
  const last = Math.max(COLS, top - (viewer.slotBack || 0));
  const first = Math.max(1, last - COLS + 1);
  let html = "<table class=\"paxos\"><tr><th>slot</th>";
  for (let k = first; k <= last; k++) html += `<th>${k}</th>`;
  html += "</tr><tr><th>chosen</th>";
  for (let k = first; k <= last; k++) {
    const c = trace.chosen.get(k), f = trace.filled.get(k);
    const chosen = c && c.index < s.index ? c : null, filled = f && f.index < s.index ? f : null;
    let cls = "empty", text = "", tip = "";
    if (filled) { cls = "filled"; text = "∅"; tip = `a hole: leader ${filled.node} (ballot ${filled.ballot}) proposed a no-op here`; }
    if (chosen) {
      cls = (filled && chosen.value === "noop" ? "chosen filled" : "chosen") + (chosen.value === "noop" ? " noop" : "");
      text = chosen.value === "noop" ? "✓∅" : "✓";
      tip = `chosen at ballot ${chosen.ballot}: ${chosen.value}` + (filled ? ` (${tip})` : "");
    }
    html += `<td class="${cls}" data-slot="${k}" title="${escapeHtml(tip)}">${text}</td>`;
  }
  html += "</tr>";
  for (const id of trace.ids) {
    const n = s.nodes[id];
    html += `<tr><th>node ${id}${n.role === "leader" && n.up ? " ★" : ""}</th>`;
    for (let k = first; k <= last; k++) {
      const a = n.acc[k], learned = k <= n.applied || n.learned[k] !== undefined;
      let cls = "empty", text = "", tip = "";
      if (a) {
        cls = learned ? "committed" : "uncommitted";
        if (a[1] === "noop") cls += " noop";
        text = a[0];
        tip = `accepted ${a[1]} at ballot ${a[0]}${learned ? "; learned as chosen" : ""}`;
      } else if (k <= n.snapshotIndex) {
        cls = "compacted"; text = "s"; tip = "in the node's snapshot";
      } else if (learned) {
        cls = "committed learned-only"; text = "·"; tip = "learned as chosen (did not accept it)";
      }
      html += `<td class="${cls}${n.up ? "" : " down"}" title="${escapeHtml(tip)}">${escapeHtml(text)}</td>`;
    }
    html += "</tr>";
  }
  return html + "</table>";
}

function gossipTable(trace, s) {
  let html = "<table><tr><th>node</th><th>items</th><th>values by key</th></tr>";
  for (const id of trace.ids) {
    const n = s.nodes[id];
    const byKey = {};
    for (const it of Object.values(n.items)) (byKey[it.key] ||= []).push(it.value);
    const vals = Object.keys(byKey).sort().map((k) => `${k}: ${byKey[k].length}`).join(", ");
    html += `<tr><th>node ${id}</th><td>${n.itemCount}</td><td style="text-align:left;width:auto">${escapeHtml(vals)}</td></tr>`;
  }
  return html + "</table>";
}

function payloadText(p) {
  if (p == null) return "";
  if (typeof p === "string") return p;
  return JSON.stringify(p, (k, v) => (Array.isArray(v) && v.length && v.every((b) => Number.isInteger(b) && b >= 0 && b < 256) ? bytesText(v) : v));
}

function bytesText(bytes) {
  const s = String.fromCharCode(...bytes.slice(0, 64));
  return /^[\x20-\x7e]*$/.test(s) ? s : `${bytes.length} bytes`;
}

function escapeHtml(s) {
  return String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
}

// ---------------------------------------------------------------- side panel

function select(what) {
  viewer.selected = what;
  viewer.dirty = true;
}

function drawPanel(trace, s) {
  const sel = viewer.selected;
  const title = $("panel-title"), body = $("panel-body");
  if (!sel) return;
  let rows = [], extra = "";
  if (sel.type === "node") {
    const n = s.nodes[sel.id];
    title.textContent = `Node ${n.id}`;
    rows.push(["status", n.up ? (n.paused ? "paused" : "up") : "crashed"]);
    const place = trace.places[n.id];
    if (place) rows.push(["region", place.region], ["zone", place.zone]);
    if (trace.protocol === "raft") {
      rows.push(["role", n.role || "?"], ["term", n.term], ["leader", n.leader ?? "–"], ["voted for", n.votedFor ?? "–"],
        ["commit index", n.commit], ["last log index", n.log.length], ["snapshot index", n.snapshotIndex]);
      const lastTerm = n.log.length ? n.log[n.log.length - 1]?.term ?? "?" : 0;
      rows.push(["last log term", lastTerm]);
    } else if (trace.protocol === "paxos") {
      const slots = Object.keys(n.acc).map(Number);
      rows.push(["role", n.role || "?"], ["ballot", n.ballot ?? "–"], ["leader", n.leader ?? "–"], ["promised", n.promised ?? "–"],
        ["applied", n.applied], ["snapshot slot", n.snapshotIndex], ["highest accepted slot", slots.length ? Math.max(...slots) : "–"]);
    } else {
      rows.push(["items held", n.itemCount]);
    }
    for (const [name, tm] of Object.entries(n.timers)) rows.push([`timer ${name}`, `fires at ${fmtTime(tm.at)} (in ${fmtTime(Math.max(0, tm.at - s.time))})`]);
    const pending = [...s.inflight.values()].filter((m) => m.to === n.id).length;
    rows.push(["messages on the way in", pending]);
    if (n.lastEvent != null) rows.push(["last event", describeEvent(trace.events[n.lastEvent])]);
    if (n.inspect) extra = `<p class="muted">state it recovered at its last boot:</p><pre>${escapeHtml(JSON.stringify(n.inspect, null, 1))}</pre>`;
    if (trace.protocol === "raft" && n.log.length) {
      const tail = n.log.slice(-8).map((en, k) => {
        const idx = n.log.length - Math.min(8, n.log.length) + k + 1;
        return `${idx}${idx <= n.commit ? " ✓" : "  "} t${en ? en.term : "?"} ${en ? payloadText(en.payload) : "(snapshot)"}`;
      });
      extra = `<p class="muted">log tail (✓ committed):</p><pre>${escapeHtml(tail.join("\n"))}</pre>` + extra;
    }
    if (trace.protocol === "paxos") {
      const tail = Object.keys(n.acc).map(Number).sort((a, b) => a - b).slice(-8)
        .map((k) => `${k}${k <= n.applied || n.learned[k] !== undefined ? " ✓" : "  "} b ${n.acc[k][0]} ${n.acc[k][1]}`);
      if (tail.length) extra = `<p class="muted">highest accepted slots (✓ learned as chosen):</p><pre>${escapeHtml(tail.join("\n"))}</pre>` + extra;
    }
  } else if (sel.type === "message") {
    const sendIdx = trace.sendOf.get(sel.id);
    const e = trace.events[sendIdx];
    title.textContent = `Message ${sel.id}`;
    if (e) {
      const m = s.inflight.get(sel.id);
      const ends = trace.endTimes.get(sel.id) || [];
      const fate = trace.events.slice(sendIdx + 1).find((x) => (x.ev === "deliver" || x.ev === "drop") && x.id === sel.id);
      rows.push(["kind", e.kind], ["from → to", `${e.from} → ${e.to}`], ["sent at", fmtTime(e.t)],
        ["state", m ? "in flight" : fate && fate.ev === "drop" ? `dropped (${fate.why})` : "delivered"],
        ["arrives / ends at", ends.length ? ends.map(fmtTime).join(", ") : "never"]);
      extra = `<pre>${escapeHtml(JSON.stringify(e.msg, (k, v) => (Array.isArray(v) && v.length > 32 && v.every(Number.isInteger) ? `[${v.length} bytes]` : v), 1))}</pre>`;
    }
  } else if (sel.type === "op") {
    const op = sel.op;
    title.textContent = `Client ${op.client}: ${op.op}`;
    rows.push(["request", op.request], ["sent to node", op.node], ["invoked", fmtTime(op.t0)],
      ["completed", op.t1 != null ? fmtTime(op.t1) : "never"], ["outcome", op.type ?? "pending"], ["result", op.result ?? "–"]);
    if (op.offending) rows.push(["checker", (op.offending.blocking ? "cannot be placed (blocking): " : "cannot be placed: ") + (op.offending.why || "")]);
  }
  body.innerHTML = `<dl>${rows.map(([k, v]) => `<dt>${escapeHtml(k)}</dt><dd data-field="${escapeHtml(k)}">${escapeHtml(v)}</dd>`).join("")}</dl>${extra}`;
}

// ---------------------------------------------------------------- client history (canvas)

function drawHistory(trace, s) {
  const canvas = $("history");
  const dpr = window.devicePixelRatio || 1;
  const rows = Math.max(1, trace.clients.length);
  const rowH = 18, top = 16, leftPad = 34;
  const cssW = canvas.clientWidth || 600, cssH = top + rows * rowH + 6;
  if (canvas.width !== Math.round(cssW * dpr) || canvas.height !== Math.round(cssH * dpr)) {
    canvas.width = Math.round(cssW * dpr); canvas.height = Math.round(cssH * dpr);
    canvas.style.height = cssH + "px";
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, cssW, cssH);
  const span = viewer.historySpanNs;
  const t0 = Math.max(0, s.time - span * 0.7), t1 = t0 + span;
  const x = (t) => leftPad + ((t - t0) / span) * (cssW - leftPad - 4);
  viewer.historyGeom = { t0, span, leftPad, cssW, rowH, top };
  ctx.font = "11px system-ui, sans-serif";
  ctx.fillStyle = "#6b7585";
  ctx.textBaseline = "middle";
  trace.clients.forEach((c, r) => ctx.fillText("c" + c, 2, top + r * rowH + rowH / 2));
  ctx.fillText(fmtTime(t0), leftPad, 7);
  ctx.textAlign = "right";
  ctx.fillText(fmtTime(t1), cssW - 4, 7);
  ctx.textAlign = "left";
  // Ops sorted by invocation: binary-search the first that may be visible (ops last < 10 s).
  const ops = trace.ops;
  let lo = 0, hi = ops.length;
  while (lo < hi) { const mid = (lo + hi) >> 1; if (ops[mid].t0 < t0 - 10e9) lo = mid + 1; else hi = mid; }
  for (let i = lo; i < ops.length && ops[i].t0 <= t1; i++) {
    const op = ops[i];
    const end = op.t1 == null || op.t1 > s.time ? (op.t1 == null ? trace.endTime : op.t1) : op.t1;
    if (end < t0) continue;
    const r = trace.clients.indexOf(op.client);
    const xa = Math.max(leftPad, x(op.t0)), xb = Math.max(xa + 2, Math.min(cssW - 4, x(end)));
    const y = top + r * rowH + 3;
    const done = op.t1 != null && op.t1 <= s.time;
    const future = op.t0 > s.time;
    ctx.globalAlpha = future ? 0.3 : 1;
    ctx.fillStyle = !done ? "#dfe6f3" : op.type === "ok" ? "#4caf7a" : op.type === "fail" ? "#b9bfc8" : "#f0a23b";
    ctx.fillRect(xa, y, xb - xa, rowH - 6);
    if (op.offending) { ctx.strokeStyle = "#d93b3b"; ctx.lineWidth = 3; ctx.strokeRect(xa - 1, y - 1, xb - xa + 2, rowH - 4); }
    if (viewer.selected && viewer.selected.type === "op" && viewer.selected.op === op) { ctx.strokeStyle = "#1d2430"; ctx.lineWidth = 2; ctx.strokeRect(xa, y, xb - xa, rowH - 6); }
    if (xb - xa > 40) { ctx.fillStyle = "#1d2430"; ctx.fillText(op.op.slice(0, Math.floor((xb - xa) / 6)), xa + 2, y + (rowH - 6) / 2); }
  }
  ctx.globalAlpha = 1;
  ctx.strokeStyle = "#5b8def"; ctx.lineWidth = 1.5;
  ctx.beginPath(); ctx.moveTo(x(s.time), top - 4); ctx.lineTo(x(s.time), cssH); ctx.stroke();
}

function historyClick(ev) {
  const g = viewer.historyGeom, trace = viewer.trace;
  if (!g) return;
  const rect = $("history").getBoundingClientRect();
  const px = ev.clientX - rect.left, py = ev.clientY - rect.top;
  const r = Math.floor((py - g.top) / g.rowH);
  const client = trace.clients[r];
  const t = g.t0 + ((px - g.leftPad) / (g.cssW - g.leftPad - 4)) * g.span;
  const slack = (6 / (g.cssW - g.leftPad)) * g.span;
  const op = trace.ops.find((o) => o.client === client && o.t0 - slack <= t && (o.t1 ?? trace.endTime) + slack >= t);
  if (op) jumpToOp(op);
}

function jumpToOp(op) {
  viewer.selected = { type: "op", op };
  seek(op.invoke + 1);
}

// ---------------------------------------------------------------- time control

function seek(index) {
  const trace = viewer.trace;
  index = Math.max(0, Math.min(trace.events.length, index));
  if (viewer.live && liveFollow(index >= trace.events.length)) return;
  viewer.state = stateAt(trace, index);
  viewer.now = index > 0 ? trace.events[index - 1].t : 0;
  viewer.dirty = true;
}

function advanceTo(time) {
  const trace = viewer.trace, s = viewer.state;
  const events = trace.events;
  let i = s.index;
  // Bound the work per frame; the next frame continues.
  const limit = i + 20000;
  while (i < events.length && events[i].t <= time && i < limit) { apply(s, events[i], i, trace); i++; }
  viewer.now = i < limit ? time : events[i - 1].t;
  if (i >= events.length) { viewer.now = trace.endTime; setPlaying(false); }
  viewer.dirty = true;
}

function step() {
  if (viewer.live) { liveFollow(true); liveCommand({ cmd: "step" }); return; }
  const trace = viewer.trace, s = viewer.state;
  if (s.index >= trace.events.length) return;
  apply(s, trace.events[s.index], s.index, trace);
  viewer.now = s.time;
  viewer.dirty = true;
}

function jump(category) {
  const list = viewer.trace.categories[category];
  const cur = viewer.state.index;
  let lo = 0, hi = list.length;
  while (lo < hi) { const mid = (lo + hi) >> 1; if (list[mid] < cur) lo = mid + 1; else hi = mid; }
  if (lo < list.length) seek(list[lo] + 1);
  else $("status").textContent = `no further ${category} event`;
}

function speedFactor() { return Math.pow(10, viewer.speedLog); } // virtual seconds per wall second

function setPlaying(on) {
  if (viewer.live) { if (on !== viewer.live.running) liveCommand(on ? { cmd: "run", speed: speedFactor() } : { cmd: "pause" }); return; }
  viewer.playing = on;
  viewer.lastFrame = null;
  $("play").textContent = on ? "❚❚ Pause" : "▶ Play";
}

function frame(wall) {
  if (viewer.playing) {
    if (viewer.lastFrame != null) {
      const dtWallMs = Math.min(100, wall - viewer.lastFrame);
      advanceTo(viewer.now + dtWallMs * 1e6 * speedFactor());
    }
    viewer.lastFrame = wall;
  }
  if (viewer.dirty) render();
  requestAnimationFrame(frame);
}

function render() {
  const trace = viewer.trace, s = viewer.state;
  viewer.dirty = false;
  drawRing(trace, s, viewer.now);
  drawLogs(trace, s);
  drawPanel(trace, s);
  drawHistory(trace, s);
  $("time").textContent = fmtTime(viewer.now);
  $("index").textContent = s.index;
  $("scrub").value = s.index;
  $("current-event").textContent = s.index > 0 ? describeEvent(trace.events[s.index - 1]) : "";
  if (viewer.live) drawLiveActions(trace);
  viewer.renders = (viewer.renders || 0) + 1;
}

function showCheck(trace, check) {
  const badge = $("verdict"), list = $("offending");
  if (!check) return;
  badge.hidden = false;
  badge.textContent = `checker (${check.model}): ${check.verdict}`;
  badge.className = "badge " + (check.verdict === "linearizable" ? "good" : check.verdict === "not-linearizable" ? "bad" : "unknown");
  badge.title = check.text || "";
  if (check.verdict === "not-linearizable") {
    list.innerHTML = `<b>Offending operations</b> (key ${escapeHtml(check.key ?? "–")}): `;
    if (!trace.offending.length) list.innerHTML += `<span class="muted">none of them appear in this trace (was the history recorded from the same run?)</span>`;
    for (const op of trace.offending) {
      const b = document.createElement("button");
      b.textContent = `c${op.client} ${op.op}${op.result && op.result !== op.op ? " → " + op.result : ""} @ ${fmtTime(op.t0)}`;
      b.title = op.offending.why || "";
      b.addEventListener("click", () => jumpToOp(op));
      list.appendChild(b);
    }
  }
}

function wireControls() {
  $("play").addEventListener("click", () => setPlaying(viewer.live ? !viewer.live.running : !viewer.playing));
  $("step").addEventListener("click", () => { setPlaying(false); step(); });
  const speed = $("speed"), out = $("speed-out");
  const showSpeed = () => {
    viewer.speedLog = Number(speed.value);
    const f = speedFactor();
    out.textContent = f >= 1 ? `${f.toFixed(f < 10 ? 1 : 0)}× real time` : `1/${Math.round(1 / f)} real time`;
  };
  speed.addEventListener("input", showSpeed);
  showSpeed();
  const scrub = $("scrub");
  scrub.max = viewer.trace.events.length;
  scrub.addEventListener("input", () => seek(Number(scrub.value)));
  for (const b of document.querySelectorAll("[data-jump]")) b.addEventListener("click", () => { setPlaying(false); jump(b.dataset.jump); });
  $("history").addEventListener("click", historyClick);
  $("zoom-in").addEventListener("click", () => { viewer.historySpanNs = Math.max(2e7, viewer.historySpanNs / 2); viewer.dirty = true; });
  $("zoom-out").addEventListener("click", () => { viewer.historySpanNs = Math.min(3.6e12, viewer.historySpanNs * 2); viewer.dirty = true; });
  $("ring").addEventListener("click", (ev) => { if (ev.target.id === "ring") { viewer.selected = null; viewer.dirty = true; } });
  window.addEventListener("resize", () => { viewer.dirty = true; });
  document.addEventListener("keydown", (ev) => {
    if (ev.target.tagName === "INPUT") return;
    if (ev.key === " ") { ev.preventDefault(); setPlaying(viewer.live ? !viewer.live.running : !viewer.playing); }
    else if (ev.key === "ArrowRight") { setPlaying(false); step(); }
  });
}

async function main() {
  if (document.body.dataset.live) return mainLive();
  try {
    const started = performance.now();
    const response = await fetch("api/trace");
    if (!response.ok) throw new Error(`GET /api/trace: HTTP ${response.status}`);
    const text = await response.text();
    const fetched = performance.now();
    const doc = JSON.parse(text);
    const trace = prepare(doc);
    viewer.trace = trace;
    viewer.state = stateAt(trace, 0);
    viewer.now = 0;
    $("trace-name").textContent = `${doc.trace} · ${trace.protocol} · ${trace.ids.length} nodes · ${fmtTime(trace.endTime)}`;
    $("total").textContent = trace.events.length;
    buildRing(trace);
    wireControls();
    showCheck(trace, doc.check);
    render();
    const done = performance.now();
    viewer.loadMs = { fetch: fetched - started, parseAndFirstRender: done - fetched, total: done - started };
    $("status").textContent = `${trace.events.length} events loaded in ${Math.round(done - started)} ms`;
    viewer.ready = true;
    requestAnimationFrame(frame);
  } catch (err) {
    $("status").textContent = "error: " + err.message;
    viewer.error = String(err && err.stack || err);
    console.error(err);
  }
}

// ---------------------------------------------------------------- live mode (concord sim --interactive)
//
// Served by `concord sim --interactive`, which runs the simulation in its own process, the page
// polls GET api/live?from=N for the trace lines it has not seen yet (and the session's status),
// feeds them to extendTrace, and sends what the person does as POST api/live/command. The ring,
// the logs, the side panel and scrubbing back in time are the replay viewer's own. Following the
// present, the page shows `trace.head`, the state after the last event received; moving the
// timeline back shows the past while the run goes on ("⇥ Now" returns).

const LIVE_POLL_MS = { running: 50, paused: 250 };

async function mainLive() {
  try {
    const first = await liveFetch(0);
    const st = first.status;
    const ids = Array.from({ length: st.nodes }, (_, k) => k + 1);
    const trace = prepare({ trace: st.scenario, events: [], check: null }, ids);
    viewer.trace = trace;
    viewer.live = { running: false, speed: st.speed, status: st, now: 0 };
    viewer.follow = true;
    viewer.state = trace.head;
    viewer.now = 0;
    document.querySelector("header h1 span").textContent = "live";
    document.title = "Concord live simulation";
    $("live").hidden = false;
    $("play").title = "Run / pause the simulation (space)";
    $("step").title = "Process one event (→)";
    buildRing(trace);
    wireControls();
    wireLive();
    $("speed").value = String(Math.log10(st.speed));
    $("speed").dispatchEvent(new Event("input"));
    ingest(first);
    render();
    viewer.ready = true;
    requestAnimationFrame(frame);
    pollLive();
  } catch (err) {
    $("status").textContent = "error: " + err.message;
    viewer.error = String(err && err.stack || err);
    console.error(err);
  }
}

async function liveFetch(from) {
  const response = await fetch(`api/live?from=${from}`, { cache: "no-store" });
  if (!response.ok) throw new Error(`GET api/live: HTTP ${response.status}`);
  return response.json();
}

// Take in new trace lines and the session's status. Returns false for an answer that crossed
// another one (it starts at an event the page already has).
function ingest(data) {
  const trace = viewer.trace, live = viewer.live;
  if (data.from !== trace.events.length) return false;
  for (const e of data.events) trace.events.push(e);
  if (data.events.length) extendTrace(trace);
  if (trace.protocol !== viewer.builtFor) buildRing(trace);
  const st = data.status;
  Object.assign(live, { status: st, running: st.running, speed: st.speed, now: st.now });
  trace.arrivals = new Map();
  for (const m of st.in_flight) if (!trace.arrivals.has(m.id)) trace.arrivals.set(m.id, m.at);
  if (viewer.follow) { viewer.state = trace.head; viewer.now = st.now; }
  $("scrub").max = trace.events.length;
  $("total").textContent = trace.events.length;
  $("play").textContent = live.running ? "❚❚ Pause" : "▶ Run";
  const forks = st.forks ? ` · ${st.forks} fork${st.forks > 1 ? "s" : ""}` : "";
  $("trace-name").textContent = `${st.scenario} · seed ${st.seed}${forks} · ${trace.protocol} · ${st.nodes} nodes`;
  $("status").textContent = st.message || `${live.running ? "running" : "paused"} · ${st.events_processed} simulator events · ${fmtTime(st.now)}`;
  drawActionLog(st.actions);
  viewer.dirty = true;
  return true;
}

async function pollLive() {
  for (;;) {
    try {
      ingest(await liveFetch(viewer.trace.events.length));
    } catch (err) {
      $("status").textContent = "lost the simulation: " + err.message;
    }
    await new Promise((done) => setTimeout(done, viewer.live.running ? LIVE_POLL_MS.running : LIVE_POLL_MS.paused));
  }
}

// Send a command; show the server's refusal, if any. Returns the result or null.
async function liveCommand(command) {
  try {
    const response = await fetch("api/live/command", {
      method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(command),
    });
    const answer = await response.json();
    if (!answer.ok) throw new Error(answer.error);
    $("live-error").textContent = "";
    ingest(await liveFetch(viewer.trace.events.length));
    return answer.result;
  } catch (err) {
    $("live-error").textContent = err.message;
    return null;
  }
}

function act(action) { return liveCommand({ cmd: "act", action }); }

// Show the present (on) or stay where the timeline was moved to. Returns whether it follows.
function liveFollow(on) {
  viewer.follow = on;
  $("follow").disabled = on;
  if (!on) return false;
  viewer.state = viewer.trace.head;
  viewer.now = viewer.live.now;
  viewer.dirty = true;
  return true;
}

function currentLeader() {
  const s = viewer.trace.head;
  let best = null;
  for (const id of viewer.trace.ids) {
    const n = s.nodes[id];
    if (n.up && n.role === "leader" && (!best || n.term > s.nodes[best].term)) best = id;
  }
  return best;
}

function clientRequest(kind, node) {
  if (node == null) {
    const target = $("req-node").value;
    node = target === "leader" ? currentLeader() : Number(target);
  }
  if (!node) { $("live-error").textContent = "no leader right now: pick a node for the request"; return null; }
  const key = $("req-key").value.trim() || "x";
  if (kind === "read") return act({ do: "read", node, key });
  const value = Number($("req-value").value);
  if (!Number.isSafeInteger(value)) { $("live-error").textContent = "the value must be an integer"; return null; }
  return act({ do: "write", node, key, value });
}

async function forkHere() {
  const text = $("fork-seed").value.trim();
  const command = { cmd: "fork" };
  if (text !== "") {
    if (!/^\d+$/.test(text)) { $("live-error").textContent = "the fork seed is a whole number (or empty: chosen for you)"; return; }
    command.seed = Number(text);
  }
  const result = await liveCommand(command);
  if (result) $("live-error").textContent = `forked: what follows draws from seed ${result.seed} (the run was rebuilt from its log in ${result.rebuilt_ms} ms and matched)`;
}

function wireLive() {
  $("speed").addEventListener("change", () => liveCommand({ cmd: "speed", speed: speedFactor() }));
  $("follow").addEventListener("click", () => liveFollow(true));
  $("follow").disabled = true;
  $("heal-all").addEventListener("click", () => act({ do: "heal" }));
  $("fork").addEventListener("click", forkHere);
  $("req-write").addEventListener("click", () => clientRequest("write"));
  $("req-read").addEventListener("click", () => clientRequest("read"));
  $("req-node").innerHTML = `<option value="leader">the leader</option>` + viewer.trace.ids.map((id) => `<option value="${id}">node ${id}</option>`).join("");
  // A saved pair (session + trace) must be taken at one moment: pause before downloading.
  for (const a of document.querySelectorAll("#live a[download]")) {
    a.addEventListener("click", async (ev) => {
      if (!viewer.live.running) return;
      ev.preventDefault();
      await liveCommand({ cmd: "pause" });
      a.click();
    });
  }
  $("live-actions").addEventListener("click", (ev) => {
    const b = ev.target.closest("button");
    if (!b) return;
    if (b.dataset.request) clientRequest(b.dataset.request, Number(b.dataset.node));
    else act(JSON.parse(b.dataset.action));
  });
  // Right-click a node: crash it, or restart it.
  $("nodes").addEventListener("contextmenu", (ev) => {
    const g = ev.target.closest("[data-node]");
    if (!g) return;
    ev.preventDefault();
    const id = Number(g.dataset.node);
    act({ do: viewer.trace.head.nodes[id].up ? "crash" : "restart", node: id });
  });
}

function actionButton(name, label, action) {
  return `<button data-act="${name}" data-action="${escapeHtml(JSON.stringify(action))}">${escapeHtml(label)}</button>`;
}

// Buttons for the selected node or message. They act on the present, whatever moment is shown,
// and are rebuilt only when what they offer changes (so a click is never lost to a redraw).
function drawLiveActions(trace) {
  const box = $("live-actions"), sel = viewer.selected, now = trace.head;
  let key = "none", html = "";
  if (sel && sel.type === "node") {
    const n = now.nodes[sel.id], id = n.id;
    const peers = trace.ids.filter((b) => b !== id);
    const cut = (b) => now.cuts.some((c) => (c.from === id && c.to === b) || (c.from === b && c.to === id));
    key = `node ${id} ${n.up} ${n.paused} ${peers.map((b) => (cut(b) ? 1 : 0)).join("")}`;
    const buttons = n.up
      ? [actionButton("crash", "Crash", { do: "crash", node: id }),
         n.paused ? actionButton("resume", "Resume", { do: "resume", node: id }) : actionButton("pause", "Pause", { do: "pause", node: id }),
         actionButton("isolate", "Isolate", { do: "isolate", node: id })]
      : [actionButton("restart", "Restart", { do: "restart", node: id })];
    const links = peers.map((b) => cut(b)
      ? actionButton(`heal-${b}`, `⟲ ${b}`, { do: "heal-link", a: id, b })
      : actionButton(`cut-${b}`, `✂ ${b}`, { do: "cut", a: id, b }));
    html = `<h3>Now, to node ${id}</h3><div class="row">${buttons.join("")}</div>`
      + `<div class="row"><span class="muted">link to</span>${links.join("")}</div>`
      + `<div class="row"><span class="muted">client</span><button data-act="write" data-request="write" data-node="${id}">Write here</button><button data-act="read" data-request="read" data-node="${id}">Read here</button></div>`;
  } else if (sel && sel.type === "message") {
    const at = trace.arrivals.get(sel.id);
    key = `message ${sel.id} ${at}`;
    html = at != null
      ? `<h3>Message ${sel.id}</h3><div class="row">${actionButton("drop", "Drop it", { do: "drop", message: sel.id })}<span class="muted">arrives at ${fmtTime(at)}</span></div>`
      : `<h3>Message ${sel.id}</h3><p class="muted">no longer in flight</p>`;
  }
  if (box.dataset.key === key) return;
  box.dataset.key = key;
  box.innerHTML = html;
  box.hidden = key === "none";
}

function drawActionLog(actions) {
  const host = $("action-log");
  if (host.dataset.count === String(actions.length)) return;
  host.dataset.count = actions.length;
  if (!actions.length) return;
  host.textContent = actions.slice(-6).map((a) => {
    const { events, t, do: what, ...rest } = a;
    const args = Object.values(rest).join(" ");
    return `${fmtTime(t)} ${what}${args ? " " + args : ""}`;
  }).join(" · ") + (actions.length > 6 ? ` (${actions.length} in all)` : "");
}

main();
