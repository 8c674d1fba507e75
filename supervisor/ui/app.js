/*
 * ringmail web console - the page's only script (served by ringmaild at /ui/app.js; no framework, no build)
 *
 * Every POLL_MS it reads the admin API (docs/admin-api.md) of the node that served it:
 *   GET /api/v1/status                     node and role instances
 *   GET /api/v1/queue-summary?by=provider  the provider roll-up; and without `by`: one row per path
 *   GET /api/v1/suspend-ready-q            the operator's path suspensions (their ids, for resume)
 *   GET /api/v1/tsa/status, /tsa/history   automation effects in force and recent firings
 *   GET /metrics.json                      latency histograms, when the node has them (METRICS_JSON_HOOK;
 *                                          without: the roles' ring round trip, which /api/v1/status has)
 * and keeps the last hour of samples itself (a ring buffer) for the charts: a page just opened starts
 * with empty charts. Suspend / resume POST /api/v1/suspend-ready-q[/cancel] with the admin token, which
 * the operator types into the page (kept in sessionStorage for this tab, never in a URL); without it the
 * buttons are disabled, and a POST without it shows the node's 401.
 *
 * Everything the node or a remote server wrote (responses, names) goes into the page as text
 * (textContent), never as HTML.
 */
"use strict";

const POLL_MS = 3000;
const HOUR_MS = 3600 * 1000;
const MAX_SAMPLES = Math.ceil(HOUR_MS / POLL_MS);
const TOKEN_KEY = "ringmail.admin_token";
const COLORS = ["#1f6fd1", "#d1501f", "#2a9d4b", "#9b3fc1", "#c9a100", "#0f9aa8", "#b8336a", "#6b6b6b"];

const samples = []; // {t, totals, providers: {name: {delivered, transient}}, latency: {p50, p90, p99} | null}
let polls = 0;
let lastPaths = [];
let pathSuspensions = [];

function $(id) { return document.getElementById(id); }

function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }

/* api - one admin API call: the decoded JSON answer, or an Error saying the HTTP status and the node's reason */
async function api(method, path) {
  const headers = { "Accept": "application/json" };
  const t = token();
  if (t) headers["Authorization"] = "Bearer " + t;
  const r = await fetch(path, { method: method, headers: headers, cache: "no-store", credentials: "omit" });
  const text = await r.text();
  let doc = null;
  try { doc = JSON.parse(text); } catch (e) { doc = null; }
  if (!r.ok) {
    const why = doc && typeof doc.error === "string" ? doc.error : text.slice(0, 200);
    const err = new Error("HTTP " + r.status + ": " + why);
    err.status = r.status;
    throw err;
  }
  if (doc === null) throw new Error(path + ": the answer is not JSON");
  return doc;
}

function num(v) { return typeof v === "number" && isFinite(v) ? v : 0; }
function rate(v) { return num(v).toFixed(2); }

function dur(ms) {
  if (ms === null || ms === undefined) return "-";
  const s = Math.floor(num(ms) / 1000);
  if (s < 60) return s + "s";
  if (s < 3600) return Math.floor(s / 60) + "m" + String(s % 60).padStart(2, "0") + "s";
  if (s < 86400) return Math.floor(s / 3600) + "h" + String(Math.floor(s / 60) % 60).padStart(2, "0") + "m";
  return Math.floor(s / 86400) + "d" + Math.floor(s / 3600) % 24 + "h";
}

/* cell - a td with text (never HTML) and, when given, the data-metric name tests read */
function cell(tr, text, metric, cls) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "-" : String(text);
  if (metric) td.dataset.metric = metric;
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
}

function fillBody(table, items, row) {
  const tbody = $(table).tBodies[0];
  const frag = document.createDocumentFragment();
  for (const it of items) frag.appendChild(row(it));
  tbody.replaceChildren(frag);
}

function showError(msg) {
  const e = $("error");
  e.textContent = msg;
  e.hidden = !msg;
  if (msg) $("notice").hidden = true;
}

function showNotice(msg) {
  const n = $("notice");
  n.textContent = msg;
  n.hidden = !msg;
  if (msg) $("error").hidden = true;
}

/* ---- rendering ---- */

function renderStatus(st) {
  $("node-id").textContent = st.node_id;
  $("uptime").textContent = "up " + dur(st.uptime_ms) + (st.stopping ? " (draining)" : "");
  fillBody("roles", st.roles || [], (r) => {
    const tr = document.createElement("tr");
    tr.dataset.role = r.role + "/" + r.index;
    tr.dataset.state = r.state;
    cell(tr, r.role + " " + r.index);
    cell(tr, r.pid, "pid");
    cell(tr, r.state, "state");
    cell(tr, r.restarts, "restarts");
    cell(tr, dur(r.uptime_ms), "uptime");
    cell(tr, r.heartbeat_age_ms === null ? "-" : r.heartbeat_age_ms + " ms", "heartbeat_age");
    cell(tr, r.ring_rtt_us ? r.ring_rtt_us + " us" : "-", "ring_rtt");
    cell(tr, r.last_exit === null ? "-" : r.last_exit + " (" + dur(r.last_exit_ago_ms) + " ago)", "last_exit", "text");
    return tr;
  });
}

/* renderTotals - the totals row; its rates are the providers' (the scheduler's change over the last minute),
 * summed, so that the row and the provider table agree */
function renderTotals(t, rows) {
  for (const k of ["messages", "scheduled", "ready", "in_flight", "queues", "paths", "added", "delivered",
                   "transient", "bounced", "expired"]) {
    const td = document.querySelector('#totals td[data-metric="' + k + '"]');
    td.textContent = String(num(t[k]));
  }
  const sum = (k) => rows.reduce((a, r) => a + num(r[k]), 0) / 60;
  document.querySelector('#totals td[data-metric="delivered_per_s"]').textContent = rate(sum("delivered_per_min"));
  document.querySelector('#totals td[data-metric="transient_per_s"]').textContent = rate(sum("transient_per_min"));
}

function lastResponse(r) {
  if (r.last_response === null || r.last_response === undefined) return "-";
  return r.last_response + (r.last_response_age_ms === null ? "" : " (" + dur(r.last_response_age_ms) + " ago)");
}

function renderProviders(doc) {
  fillBody("providers", doc.rows || [], (r) => {
    const tr = document.createElement("tr");
    tr.dataset.provider = r.name;
    if (num(r.suspended_ms) > 0) tr.className = "suspended";
    cell(tr, r.name);
    cell(tr, rate(num(r.delivered_per_min) / 60), "delivered_per_s");
    cell(tr, rate(num(r.transient_per_min) / 60), "transient_per_s");
    cell(tr, num(r.connections), "connections");
    cell(tr, num(r.queued), "queued");
    cell(tr, num(r.in_flight), "in_flight");
    cell(tr, num(r.delivered), "delivered");
    cell(tr, num(r.transient), "transient");
    cell(tr, num(r.bounced), "bounced");
    cell(tr, num(r.suspended_ms) > 0 ? dur(r.suspended_ms) : "-", "suspended");
    cell(tr, lastResponse(r), "last_response", "text");
    return tr;
  });
}

function pathSuspensionIds(name) {
  return pathSuspensions.filter((it) => it.source + "->" + it.site === name).map((it) => it.id);
}

function renderPaths(doc) {
  lastPaths = doc.rows || [];
  const canPost = token() !== "";
  fillBody("paths", lastPaths, (r) => {
    const tr = document.createElement("tr");
    tr.dataset.path = r.name;
    const held = pathSuspensionIds(r.name).length > 0;
    if (num(r.suspended_ms) > 0 || held) tr.className = "suspended";
    cell(tr, r.name);
    cell(tr, r.provider || "-", "provider");
    cell(tr, rate(num(r.delivered_per_min) / 60), "delivered_per_s");
    cell(tr, rate(num(r.transient_per_min) / 60), "transient_per_s");
    cell(tr, num(r.connections), "connections");
    cell(tr, num(r.queued), "queued");
    cell(tr, num(r.delivered), "delivered");
    cell(tr, num(r.transient), "transient");
    cell(tr, num(r.suspended_ms) > 0 ? dur(r.suspended_ms) : "-", "suspended");
    cell(tr, lastResponse(r), "last_response", "text");
    const td = document.createElement("td");
    const b = document.createElement("button");
    b.type = "button";
    b.dataset.action = held ? "resume" : "suspend";
    b.textContent = held ? "resume" : "suspend";
    b.disabled = !canPost;
    b.title = canPost ? "" : "needs the admin token";
    b.addEventListener("click", () => (held ? resumePath(r.name) : suspendPath(r.name)));
    td.appendChild(b);
    tr.appendChild(td);
    return tr;
  });
  fillBody("queues", doc.queues || [], (q) => {
    const tr = document.createElement("tr");
    tr.dataset.queue = q.name;
    if (num(q.suspended_ms) > 0) tr.className = "suspended";
    const name = cell(tr, q.name);
    name.className = "text";
    cell(tr, q.domain, "domain", "text");
    cell(tr, q.site || "-", "site", "text");
    cell(tr, num(q.messages), "messages");
    cell(tr, num(q.scheduled), "scheduled");
    cell(tr, num(q.suspended_ms) > 0 ? dur(q.suspended_ms) : "-", "suspended");
    cell(tr, q.next_due_ms === null ? "-" : dur(q.next_due_ms), "next_due");
    tr.addEventListener("click", () => { $("inspect-queue").value = q.name; inspect("inspect-sched-q", q.name); });
    return tr;
  });
}

function tsaWhere(e) {
  if (e.source || e.site) return (e.source || "*") + "->" + (e.site || "*");
  return [e.campaign, e.tenant, e.domain].filter((x) => x).join(":") || "-";
}

function renderTsa(status, history) {
  if (status) {
    $("tsa-responses").textContent = String(num(status.responses));
    const age = num(status.age_ms);
    fillBody("tsa-active", status.active || [], (e) => {
      const tr = document.createElement("tr");
      cell(tr, e.action + (e.option ? " " + e.option + "=" + e.value : ""), "action");
      cell(tr, tsaWhere(e), "where", "text");
      cell(tr, e.rule_scope, "scope");
      cell(tr, e.response, "response", "text");
      cell(tr, num(e.count), "count");
      cell(tr, dur(Math.max(0, num(e.remaining_ms) - age)), "remaining");
      return tr;
    });
  }
  if (history) {
    fillBody("tsa-history", (history.history || []).slice(0, 50), (e) => {
      const tr = document.createElement("tr");
      cell(tr, new Date(num(e.start_ms)).toLocaleTimeString(), "when");
      cell(tr, e.action, "action");
      cell(tr, tsaWhere(e), "where", "text");
      cell(tr, e.rule_scope, "scope");
      cell(tr, e.response, "response", "text");
      cell(tr, num(e.count), "count");
      return tr;
    });
  }
}

/* ---- METRICS_JSON_HOOK: latency percentiles from /metrics.json ----
 * GET /metrics.json (docs/admin-api.md, "Metrics"): families by name, each {type, samples}; a histogram
 * sample has cumulative `buckets` [{le: seconds or "+Inf", count}]. While the node answers 404 (a node
 * without it) the chart shows what exists instead, the roles' ring round trip from /api/v1/status, and
 * says so; the page asks again every minute. readLatencyMetrics() returns the cumulative buckets of
 * LATENCY_FAMILIES, summed over their samples (providers, ingress workers); latencyWindow() turns two
 * of them into the percentiles of the deliveries between them. */
const LATENCY_FAMILIES = {
  delivery: "ringmail_injection_to_delivery_seconds", // reception to delivery, per provider
  ack: "ringmail_time_to_250_seconds",                // end of DATA to the 250 (the spool's commit), per ingress
};
let metricsJson = "unknown"; // "unknown", "absent" (404), "present", or an error text
let metricsNextTry = 0;

/* histogramBuckets - one family's samples summed: [{le (Infinity for "+Inf"), count}] ascending, or null */
function histogramBuckets(doc, name) {
  const fam = doc && doc[name];
  if (!fam || fam.type !== "histogram" || !Array.isArray(fam.samples)) return null;
  const sum = new Map();
  for (const smp of fam.samples) {
    for (const b of Array.isArray(smp.buckets) ? smp.buckets : []) {
      const le = b.le === "+Inf" ? Infinity : Number(b.le);
      if (isNaN(le) || typeof b.count !== "number") continue;
      sum.set(le, (sum.get(le) || 0) + b.count);
    }
  }
  if (!sum.size) return null;
  return [...sum.entries()].sort((a, b) => a[0] - b[0]).map(([le, count]) => ({ le: le, count: count }));
}

async function readLatencyMetrics() {
  if (metricsJson !== "present" && metricsJson !== "unknown" && Date.now() < metricsNextTry) return null;
  try {
    const doc = await api("GET", "/metrics.json");
    metricsJson = "present";
    const out = {};
    for (const k of Object.keys(LATENCY_FAMILIES)) out[k] = histogramBuckets(doc, LATENCY_FAMILIES[k]);
    return out;
  } catch (e) {
    metricsJson = e.status === 404 ? "absent" : e.message;
    metricsNextTry = Date.now() + 60 * 1000; // ask again in a minute (a node upgraded under the page)
    return null;
  }
}

/* percentile - the upper bound (ms) of the bucket holding quantile q of the counts in `b` (cumulative);
 * in the +Inf bucket: the largest finite bound. null without counts. */
function percentile(b, q) {
  const total = b.length ? b[b.length - 1].count : 0;
  if (!(total > 0)) return null;
  let lastFinite = 0;
  for (const x of b) {
    if (isFinite(x.le)) lastFinite = x.le;
    if (x.count >= q * total) return (isFinite(x.le) ? x.le : lastFinite) * 1000;
  }
  return lastFinite * 1000;
}

/* latencyWindow - the buckets counted between an older and a newer cumulative reading (older may be null) */
function latencyWindow(newer, older) {
  if (!newer) return null;
  if (!older || older.length !== newer.length) return newer;
  return newer.map((x, i) => ({ le: x.le, count: Math.max(0, x.count - older[i].count) }));
}

/* ---- charts: <canvas>, drawn here ---- */

function drawChart(id, series, unit, emptyNote) {
  const cv = $(id);
  const ctx = cv.getContext("2d");
  const W = cv.width, H = cv.height, L = 46, R = 8, T = 18, B = 18;
  ctx.clearRect(0, 0, W, H);
  ctx.font = "11px system-ui, sans-serif";
  const pts = series.flatMap((s) => s.points);
  // the x axis spans the samples kept (at most the hour): a page opened a minute ago shows that minute
  const now = Date.now(), t0 = Math.max(now - HOUR_MS, Math.min(now - 60 * 1000, ...pts.map((p) => p[0])));
  cv.dataset.points = String(pts.length);
  if (pts.length === 0) {
    ctx.fillStyle = "#667";
    ctx.fillText(emptyNote, L, H / 2);
    return;
  }
  let max = Math.max(...pts.map((p) => p[1]));
  if (!(max > 0)) max = 1;
  ctx.strokeStyle = "#ccd";
  ctx.fillStyle = "#667";
  ctx.beginPath();
  ctx.moveTo(L, T);
  ctx.lineTo(L, H - B);
  ctx.lineTo(W - R, H - B);
  ctx.stroke();
  ctx.fillText(max.toFixed(max < 10 ? 2 : 0) + " " + unit, 2, T + 4);
  ctx.fillText("0", L - 12, H - B);
  ctx.fillText("-" + dur(now - t0), L, H - 4);
  ctx.fillText("now", W - R - 20, H - 4);
  const x = (t) => L + (W - L - R) * (t - t0) / (now - t0), y = (v) => H - B - (H - T - B) * v / max;
  let lx = L + 4;
  series.forEach((s, i) => {
    const c = COLORS[i % COLORS.length];
    ctx.strokeStyle = c;
    ctx.beginPath();
    s.points.forEach((p, k) => (k ? ctx.lineTo(x(p[0]), y(p[1])) : ctx.moveTo(x(p[0]), y(p[1]))));
    ctx.stroke();
    ctx.fillStyle = c;
    for (const p of s.points.length < 30 ? s.points : []) ctx.fillRect(x(p[0]) - 1.5, y(p[1]) - 1.5, 3, 3);
    ctx.fillStyle = c;
    ctx.fillText(s.name, lx, 11);
    lx += ctx.measureText(s.name).width + 12;
  });
}

/* rateSeries - per provider, the per-second change of its counter `k` between consecutive samples */
function rateSeries(k) {
  const by = new Map();
  for (let i = 1; i < samples.length; i++) {
    const a = samples[i - 1], b = samples[i], dt = (b.t - a.t) / 1000;
    if (dt <= 0) continue;
    for (const name of Object.keys(b.providers)) {
      if (!(name in a.providers)) continue;
      const v = Math.max(0, b.providers[name][k] - a.providers[name][k]) / dt;
      if (!by.has(name)) by.set(name, []);
      by.get(name).push([b.t, v]);
    }
  }
  return [...by.entries()].sort().map(([name, points]) => ({ name: name, points: points }));
}

function drawCharts() {
  const empty = "no samples yet: this page keeps them from when it was opened";
  drawChart("chart-delivered", rateSeries("delivered"), "/s", empty);
  drawChart("chart-deferred", rateSeries("transient"), "/s", empty);
  const q = (k) => samples.map((s) => [s.t, num(s.totals[k])]);
  drawChart("chart-queue", samples.length ? [{ name: "messages", points: q("messages") },
                                             { name: "scheduled", points: q("scheduled") },
                                             { name: "ready", points: q("ready") },
                                             { name: "in flight", points: q("in_flight") }] : [], "msgs", empty);
  const title = $("latency-title");
  if (metricsJson !== "present") {
    // what exists without /metrics.json: each role's ring round trip, as the status page gives it
    title.textContent = "Ring round trip per role (no /metrics.json on this node: no delivery latency)";
    const by = new Map();
    for (const s of samples) for (const [k, v] of Object.entries(s.rtt || {})) {
      if (!by.has(k)) by.set(k, []);
      by.get(k).push([s.t, v]);
    }
    drawChart("chart-latency", [...by.entries()].map(([name, points]) => ({ name: name, points: points })), "us",
              metricsJson === "absent" || metricsJson === "unknown" ? empty
                : "no latency data: /metrics.json: " + metricsJson);
    return;
  }
  title.textContent = "Latency percentiles (reception to delivery; end of DATA to 250), last minute";
  const series = [];
  for (const [fam, label] of [["delivery", "delivery"], ["ack", "250"]]) {
    for (const [q, qn] of [[0.5, "p50"], [0.9, "p90"], [0.99, "p99"]]) {
      if (fam === "ack" && q === 0.9) continue;
      const points = [];
      for (let i = 0; i < samples.length; i++) {
        const cur = samples[i].latency && samples[i].latency[fam];
        if (!cur) continue;
        // the window: back to the oldest sample of the last minute that has this histogram
        let j = i;
        while (j > 0 && samples[j - 1].t >= samples[i].t - 60 * 1000 && samples[j - 1].latency &&
               samples[j - 1].latency[fam]) j--;
        const v = percentile(latencyWindow(cur, j < i ? samples[j].latency[fam] : null), q);
        if (v !== null) points.push([samples[i].t, v]);
      }
      series.push({ name: label + " " + qn, points: points });
    }
  }
  drawChart("chart-latency", series.filter((x) => x.points.length), "ms",
            "no latency yet: /metrics.json has no deliveries or 250s to measure");
}

/* ---- polling ---- */

async function refresh() {
  const calls = [api("GET", "/api/v1/status"), api("GET", "/api/v1/queue-summary?by=provider&limit=200"),
                 api("GET", "/api/v1/queue-summary?limit=500"), api("GET", "/api/v1/suspend-ready-q"),
                 api("GET", "/api/v1/tsa/status"), api("GET", "/api/v1/tsa/history"), readLatencyMetrics()];
  const [st, prov, paths, susp, tsa, hist, lat] = await Promise.allSettled(calls);
  const failed = [st, prov, paths, susp, tsa, hist].filter((r) => r.status === "rejected");
  $("poll-error").textContent = failed.length ? "API: " + failed[0].reason.message : "";
  if (st.status === "fulfilled") renderStatus(st.value);
  if (susp.status === "fulfilled") pathSuspensions = susp.value.items || [];
  if (prov.status === "fulfilled" && paths.status === "fulfilled") {
    const providers = {};
    for (const r of prov.value.rows || []) providers[r.name] = { delivered: num(r.delivered), transient: num(r.transient) };
    const rtt = {};
    if (st.status === "fulfilled")
      for (const r of st.value.roles || []) if (r.ring_rtt_us) rtt[r.role + " " + r.index] = r.ring_rtt_us;
    samples.push({ t: Date.now(), totals: prov.value.totals || {}, providers: providers, rtt: rtt,
                   latency: lat.status === "fulfilled" ? lat.value : null });
    while (samples.length > MAX_SAMPLES || (samples.length && samples[0].t < Date.now() - HOUR_MS)) samples.shift();
    renderTotals(prov.value.totals || {}, prov.value.rows || []);
    renderProviders(prov.value);
    renderPaths(paths.value);
  }
  renderTsa(tsa.status === "fulfilled" ? tsa.value : null, hist.status === "fulfilled" ? hist.value : null);
  drawCharts();
  polls++;
  const u = $("updated");
  u.dataset.updated = String(polls);
  u.textContent = "updated " + new Date().toLocaleTimeString();
}

async function poll() {
  try {
    await refresh();
  } catch (e) {
    $("poll-error").textContent = "console: " + e.message;
  }
  setTimeout(poll, POLL_MS);
}

/* ---- operator actions ---- */

async function suspendPath(name) {
  try {
    const it = await api("POST", "/api/v1/suspend-ready-q?name=" + encodeURIComponent(name) +
                                 "&reason=" + encodeURIComponent("web console"));
    showNotice("suspended " + name + " (id " + it.id + ", " + dur(it.remaining_ms) + ")");
  } catch (e) {
    showError("suspend " + name + ": " + e.message);
  }
  await refresh().catch(() => {});
}

async function resumePath(name) {
  const ids = pathSuspensionIds(name);
  try {
    if (!ids.length) throw new Error("no operator suspension of this path is in force");
    for (const id of ids) await api("POST", "/api/v1/suspend-ready-q/cancel?id=" + encodeURIComponent(id));
    showNotice("resumed " + name);
  } catch (e) {
    showError("resume " + name + ": " + e.message);
  }
  await refresh().catch(() => {});
}

async function inspect(what, arg) {
  const out = $("inspect-out");
  const key = what === "inspect-message" ? "id" : "name";
  out.dataset.state = "loading";
  try {
    if (!arg) throw new Error("give a " + (key === "id" ? "message id" : "name"));
    const doc = await api("GET", "/api/v1/" + what + "?" + key + "=" + encodeURIComponent(arg));
    out.textContent = JSON.stringify(doc, null, 2);
    out.dataset.state = "ok";
  } catch (e) {
    out.textContent = what + " " + arg + ": " + e.message;
    out.dataset.state = "error";
  }
}

function renderToken() {
  const set = token() !== "";
  const st = $("token-state");
  st.dataset.state = set ? "set" : "none";
  st.textContent = set ? "token set: suspend/resume enabled" : "read-only (no token)";
  for (const b of document.querySelectorAll("#paths button")) {
    b.disabled = !set;
    b.title = set ? "" : "needs the admin token";
  }
}

function setup() {
  $("token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const v = $("token").value.trim();
    $("token").value = "";
    if (!/^[0-9a-f]{64}$/.test(v)) {
      showError("the admin token is 64 lower-case hex digits (the node's admin.token)");
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, v);
    showError("");
    renderToken();
    refresh().catch(() => {}); // a wrong token shows at once (every call answers 401)
  });
  $("token-forget").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    renderToken();
    refresh().catch(() => {});
  });
  const form = (id, what, input) => $(id).addEventListener("submit", (ev) => {
    ev.preventDefault();
    inspect(what, $(input).value.trim());
  });
  form("inspect-queue-form", "inspect-sched-q", "inspect-queue");
  form("inspect-path-form", "inspect-ready-q", "inspect-path");
  form("inspect-message-form", "inspect-message", "inspect-message");
  renderToken();
  drawCharts();
  poll();
}

document.addEventListener("DOMContentLoaded", setup);
