// memscope dashboard: plain JavaScript, no dependencies, no network beyond this app.
// The token lives in sessionStorage (this tab only) and is sent in the Authorization
// header; it never goes into a URL, so access logs and the Referer header never see it.
"use strict";

const TOKEN_KEY = "memscope.token";
const REFRESH_MS = 5000;
const $ = (id) => document.getElementById(id);
let token = sessionStorage.getItem(TOKEN_KEY) || "";
let timer = null;
let refreshing = false;

function fmtBytes(n) {
  if (n === null || n === undefined || !isFinite(n)) return "–";
  const sign = n < 0 ? "-" : "";
  let v = Math.abs(n);
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
  return sign + (i === 0 ? String(v) : v.toFixed(1)) + " " + units[i];
}

function fmtNum(n) {
  if (n === null || n === undefined || !isFinite(n)) return "–";
  return Number(n).toLocaleString("en-US");
}

function fmtTime(ts) {
  return new Date(ts * 1000).toLocaleTimeString("en-GB");
}

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

function svg(tag, attrs, text) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

async function api(path, method) {
  const headers = {};
  if (token) headers.Authorization = "Bearer " + token;
  let response;
  try {
    response = await fetch(path, {
      method: method || "GET", headers, cache: "no-store", credentials: "omit",
    });
  } catch (err) {
    return { status: 0, data: { error: "cannot reach the app: " + err.message } };
  }
  let data = null;
  try { data = await response.json(); } catch (err) { data = { error: "not JSON" }; }
  return {
    status: response.status,
    data,
    retryAfter: Number(response.headers.get("Retry-After") || 0),
  };
}

function setBadge(text, kind) {
  const badge = $("state");
  badge.textContent = text;
  badge.className = "badge" + (kind ? " " + kind : "");
}

function showLogin(message) {
  clearInterval(timer);
  timer = null;
  $("dash").hidden = true;
  $("logout").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message || "";
  setBadge("locked", "bad");
  $("token").focus();
}

function showDash() {
  $("login").hidden = true;
  $("dash").hidden = false;
  $("logout").hidden = !token;
}

// -- rendering -------------------------------------------------------------------------

function renderStatus(s) {
  $("who").textContent = "pid " + s.pid + " · " + s.python;
  const p = s.process || {};
  const g = s.gc || {};
  const cg = p.cgroup || {};
  const rows = [
    ["RSS", fmtBytes(p.rss_bytes)],
    ["VMS", fmtBytes(p.vms_bytes)],
    ["cgroup limit", cg.limit_bytes ? fmtBytes(cg.limit_bytes) : "none"],
    ["threads", fmtNum(p.num_threads)],
    ["open fds", fmtNum(p.num_fds)],
    ["gc collections", fmtNum(g.collections_total)],
    ["gc collected", fmtNum(g.collected_total)],
    ["gc uncollectable", fmtNum(g.uncollectable_total)],
    ["gc longest pause", g.pause_seconds_max === undefined ? "–" :
      (g.pause_seconds_max * 1000).toFixed(1) + " ms"],
    ["tracked objects", fmtNum((s.tracked || {}).count)],
    ["asyncio tasks", fmtNum((s.tasks || {}).count)],
    ["monitor", s.monitor.running ? "every " + s.monitor.interval_seconds + " s, " +
      s.monitor.kept + "/" + s.monitor.history + " kept" : "not running"],
  ];
  const dl = $("process");
  dl.replaceChildren();
  for (const [k, v] of rows) { dl.append(el("dt", k), el("dd", v)); }
  renderSnapshots(s.snapshots || []);
  setBadge("live · " + fmtTime(s.timestamp), "ok");
}

function renderSnapshots(list) {
  const ul = $("snapshots");
  ul.replaceChildren();
  if (!list.length) ul.append(el("li", "none yet: press Snapshot", "muted"));
  for (const snap of list) {
    ul.append(el("li", "#" + snap.id + "  " + fmtTime(snap.timestamp) + "  " +
      (snap.deep ? "deep" : "cheap")));
  }
  for (const [id, fallback] of [["cmp-a", list.length - 2], ["cmp-b", list.length - 1]]) {
    const select = $(id);
    // the user's choice stays while that snapshot is kept; else the last two are compared
    const keep = select.dataset.chosen || "";
    const kept = list.some((snap) => String(snap.id) === keep);
    select.replaceChildren();
    list.forEach((snap, i) => {
      const option = el("option", "#" + snap.id);
      option.value = String(snap.id);
      if (kept ? option.value === keep : i === Math.max(fallback, 0)) option.selected = true;
      select.append(option);
    });
  }
  $("btn-compare").disabled = list.length < 2;
}

function renderChart(points, interval) {
  const chart = $("chart");
  chart.replaceChildren();
  const pts = points.filter((p) => typeof p.rss_bytes === "number");
  const W = 640, H = 220, L = 70, R = 10, T = 10, B = 28;
  chart.append(svg("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, class: "axis" }));
  chart.append(svg("line", { x1: L, y1: T, x2: L, y2: H - B, class: "axis" }));
  $("chart-note").textContent = pts.length ? "(" + pts.length + " samples)" : "";
  if (pts.length < 2) {
    chart.append(svg("text", { x: L + 10, y: H / 2 },
      "waiting for the monitor's samples (one every " + interval + " s)"));
    return;
  }
  const t0 = pts[0].timestamp, t1 = pts[pts.length - 1].timestamp;
  let lo = Math.min(...pts.map((p) => p.rss_bytes));
  let hi = Math.max(...pts.map((p) => p.rss_bytes));
  const pad = Math.max((hi - lo) * 0.1, 1024 * 1024);
  lo = Math.max(lo - pad, 0); hi += pad;
  const x = (t) => L + (W - L - R) * (t1 > t0 ? (t - t0) / (t1 - t0) : 0);
  const y = (v) => H - B - (H - T - B) * (v - lo) / (hi - lo);
  const d = pts.map((p, i) => (i ? "L" : "M") + x(p.timestamp).toFixed(1) + " " +
    y(p.rss_bytes).toFixed(1)).join(" ");
  chart.append(svg("path", {
    d: d + " L" + x(t1).toFixed(1) + " " + (H - B) + " L" + L + " " + (H - B) + " Z",
    class: "area",
  }));
  chart.append(svg("path", { d, class: "line" }));
  for (let i = 0; i <= 3; i += 1) {
    const v = lo + (hi - lo) * i / 3;
    chart.append(svg("text", { x: 4, y: y(v) + 4 }, fmtBytes(v)));
  }
  chart.append(svg("text", { x: L, y: H - 8 }, fmtTime(t0)));
  chart.append(svg("text", { x: W - R - 56, y: H - 8 }, fmtTime(t1)));
}

function renderHistory(h) {
  renderChart(h.points || [], h.interval_seconds);
  const alerts = $("alerts");
  alerts.replaceChildren();
  if (!(h.alerts || []).length) alerts.append(el("li", "no alerts", "muted"));
  for (const a of h.alerts || []) alerts.append(el("li", a.text, "alert"));
  const trends = $("trends");
  trends.replaceChildren();
  if (!(h.trends || []).length) trends.append(el("li", "nothing growing", "muted"));
  for (const t of (h.trends || []).slice(0, 8)) trends.append(el("li", t.text));
}

function renderCaches(c) {
  const body = $("caches").tBodies[0];
  body.replaceChildren();
  if (!(c.caches || []).length) {
    const row = el("tr");
    const cell = el("td", "nothing tracked (memscope.track(obj) or a guard object)", "muted");
    cell.colSpan = 9;
    row.append(cell);
    body.append(row);
  }
  for (const r of c.caches || []) {
    const row = el("tr");
    const type = el("td", String(r.type || "").split(".").pop());
    type.title = r.type || "";
    const name = el("td", r.name);
    name.title = r.name || "";
    row.append(name, type, el("td", fmtNum(r.len), "num"),
      el("td", fmtBytes(r.size_bytes), "num"), el("td", fmtNum(r.hits), "num"),
      el("td", fmtNum(r.misses), "num"),
      el("td", r.hit_rate === null ? "–" : (r.hit_rate * 100).toFixed(1) + " %", "num"),
      el("td", fmtNum(r.evictions), "num"), el("td", fmtNum(r.overflows), "num"));
    body.append(row);
  }
}

function fillTable(id, rows, key) {
  const body = $(id).tBodies[0];
  body.replaceChildren();
  for (const r of rows) {
    const row = el("tr");
    const name = el("td", r[key]);
    name.title = r[key];
    row.append(name, el("td", fmtNum(r.count), "num"),
      el("td", fmtBytes(r.size_bytes), "num"));
    body.append(row);
  }
}

async function loadObjects() {
  const note = $("objects-note");
  note.textContent = "(scanning…)";
  const r = await api("objects?limit=15");
  if (r.status === 429) {
    note.textContent = "(busy: again in " + r.retryAfter + " s)";
    setTimeout(loadObjects, Math.max(r.retryAfter, 1) * 1000);
    return;
  }
  if (r.status !== 200) { note.textContent = "(" + (r.data.error || r.status) + ")"; return; }
  note.textContent = "(" + fmtNum(r.data.objects_total) + " objects, " +
    fmtBytes(r.data.size_bytes_total) + ")";
  fillTable("types", r.data.by_type || [], "type");
  fillTable("modules", r.data.by_module || [], "module");
}

async function refresh() {
  if (refreshing) return;
  refreshing = true;
  try {
    const s = await api("status");
    if (s.status === 401) { showLogin("the token was refused"); return; }
    if (s.status === 429) { setBadge("busy: next refresh in " + REFRESH_MS / 1000 + " s"); return; }
    if (s.status !== 200) { setBadge("error " + s.status, "bad"); return; }
    renderStatus(s.data);
    const [h, c] = await Promise.all([api("history"), api("caches")]);
    if (h.status === 200) renderHistory(h.data);
    if (c.status === 200) renderCaches(c.data);
  } finally {
    refreshing = false;
  }
}

// -- actions ---------------------------------------------------------------------------

function describe(name, r) {
  const d = r.data || {};
  if (r.status === 429) return name + ": busy, " + d.error + " (retry in " + r.retryAfter + " s)";
  if (r.status !== 200) return name + " failed (" + r.status + "): " + (d.error || "");
  switch (name) {
    case "gc":
      return "gc.collect(" + d.generation + "): " + fmtNum(d.collected) + " objects collected in " +
        (d.seconds * 1000).toFixed(1) + " ms; RSS " + fmtBytes(d.rss_before_bytes) + " -> " +
        fmtBytes(d.rss_after_bytes);
    case "snapshot":
      return "snapshot #" + d.id + " (" + (d.deep ? "deep" : "cheap") + ") at " +
        fmtTime(d.timestamp) + ": RSS " + fmtBytes(d.rss_bytes) + "; " + d.kept + "/" +
        d.maxsize + " kept" + (d.dropped.length ? ", dropped #" + d.dropped.join(", #") : "");
    case "clear_caches":
      return "clear_caches(): " + fmtNum(d.entries_total) + " entries cleared " +
        JSON.stringify(d.cleared);
    default:
      return d.text || JSON.stringify(d, null, 2);
  }
}

async function act(button, name, path, method) {
  button.disabled = true;
  const out = $("result");
  out.className = "";
  out.textContent = name + "…";
  try {
    const r = await api(path, method);
    if (r.status === 401) { showLogin("the token was refused"); return; }
    out.textContent = describe(name, r);
    out.className = r.status === 200 ? "" : "error";
    await refresh();
  } finally {
    button.disabled = false;
  }
}

function start() {
  showDash();
  refresh();
  loadObjects();
  clearInterval(timer);
  timer = setInterval(refresh, REFRESH_MS);
}

async function connect() {
  const r = await api("status");
  if (r.status === 401) {
    if (token) { sessionStorage.removeItem(TOKEN_KEY); token = ""; }
    showLogin();
    return;
  }
  start();
}

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    token = $("token").value.trim();
    $("token").value = "";
    const r = await api("status");
    if (r.status === 401) { token = ""; showLogin("wrong token"); return; }
    sessionStorage.setItem(TOKEN_KEY, token);
    start();
  });
  $("logout").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    token = "";
    showLogin("logged out");
  });
  $("btn-gc").addEventListener("click", (e) => act(e.target, "gc", "gc", "POST"));
  $("btn-release").addEventListener("click", (e) => act(e.target, "release", "release", "POST"));
  $("btn-clear").addEventListener("click",
    (e) => act(e.target, "clear_caches", "clear_caches", "POST"));
  $("btn-snapshot").addEventListener("click",
    (e) => act(e.target, "snapshot", "snapshot", "POST"));
  $("btn-deep").addEventListener("click",
    (e) => act(e.target, "snapshot", "snapshot?deep=true", "POST"));
  $("btn-compare").addEventListener("click", (e) => act(e.target, "compare",
    "compare?a=" + encodeURIComponent($("cmp-a").value) + "&b=" +
    encodeURIComponent($("cmp-b").value), "POST"));
  $("btn-objects").addEventListener("click", () => loadObjects());
  for (const id of ["cmp-a", "cmp-b"]) {
    $(id).addEventListener("change", (e) => { e.target.dataset.chosen = e.target.value; });
  }
  connect();
});
