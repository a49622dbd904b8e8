// The twinstream operator console: a fleet page, a device page and an alerts inbox, over the
// API at /api/v1 with the key the operator signs in with (kept for this browser tab only).
"use strict";

const API = "/api/v1";
const SEVERITIES = ["info", "warning", "major", "critical"];
const state = { key: sessionStorage.getItem("twin.key"), me: null, cleanup: [], view: 0 };

// -- small helpers ------------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (value !== null && value !== undefined && value !== false) node.setAttribute(name, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

const sleep = (ms) => new Promise((done) => setTimeout(done, ms));
const main = () => document.getElementById("main");
const canAct = () => state.me && state.me.role !== "viewer";

function when(value) {
  if (value === null || value === undefined || value === "") return "—";
  const date = typeof value === "number" ? new Date(value) : new Date(value);
  return isNaN(date) ? String(value) : date.toLocaleString();
}

function number(value) {
  if (typeof value !== "number") return value ?? "—";
  return Math.abs(value) >= 1000 || Number.isInteger(value) ? value.toLocaleString() : value.toFixed(2);
}

function toast(text) {
  const box = document.getElementById("toast");
  box.textContent = text;
  box.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => (box.hidden = true), 3500);
}

async function api(path, options = {}) {
  const headers = { Authorization: `Bearer ${state.key}`, ...(options.headers || {}) };
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(API + path, {
    ...options, headers, body: options.body === undefined ? undefined : JSON.stringify(options.body),
  });
  if (response.status === 401) {
    signOut("Your key was not accepted: sign in again.");
    throw new Error("not signed in");
  }
  const body = response.headers.get("content-type")?.includes("json") ? await response.json() : await response.text();
  if (!response.ok) throw new Error(body.detail || response.statusText);
  return body;
}

// Server-Sent Events over fetch (EventSource cannot send the Authorization header), resumed
// with Last-Event-ID after a dropped connection.
function openStream(query, onEvent) {
  const control = new AbortController();
  let lastId = null;
  let stopped = false;
  const dot = document.getElementById("live-dot");
  (async () => {
    while (!stopped) {
      try {
        const headers = { Authorization: `Bearer ${state.key}` };
        if (lastId) headers["Last-Event-ID"] = lastId;
        const response = await fetch(`${API}/stream?${query}`, { headers, signal: control.signal });
        if (!response.ok) throw new Error(`stream: ${response.status}`);
        const reader = response.body.getReader();
        const decoder = new TextDecoder();
        let buffer = "";
        if (dot) dot.classList.add("on");
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += decoder.decode(value, { stream: true });
          let cut;
          while ((cut = buffer.indexOf("\n\n")) >= 0) {
            const block = buffer.slice(0, cut);
            buffer = buffer.slice(cut + 2);
            const event = {};
            for (const line of block.split("\n")) {
              const at = line.indexOf(": ");
              if (at > 0) event[line.slice(0, at)] = line.slice(at + 2);
            }
            if (event.id) lastId = event.id;
            if (event.event && event.data) onEvent(event.event, JSON.parse(event.data));
          }
        }
      } catch (error) {
        if (stopped) return;
      }
      if (dot) dot.classList.remove("on");
      await sleep(2000);
    }
  })();
  return () => { stopped = true; control.abort(); };
}

// Each navigation is a new view; work a page started for an older view is stopped, not shown.
function keep(view, stop) {
  if (view === state.view) state.cleanup.push(stop);
  else stop();
}

function show(view, ...nodes) {
  if (view !== state.view) return false;
  main().replaceChildren(...nodes);
  return true;
}

function every(view, ms, fn) {
  const timer = setInterval(fn, ms);
  keep(view, () => clearInterval(timer));
}

function statusPill(status) {
  return el("span", { class: `pill ${status}` }, status);
}

function severity(sev) {
  return el("span", { class: `sev-${sev}` }, sev || "—");
}

// -- sign in ------------------------------------------------------------------------------

function signOut(message) {
  sessionStorage.removeItem("twin.key");
  state.key = null;
  state.me = null;
  location.hash = "#/signin";
  render(message);
}

function signInPage(message) {
  const input = el("input", { id: "key", type: "password", placeholder: "tws_…", autocomplete: "off" });
  const error = el("p", { class: "error", id: "signin-error" }, message || "");
  const form = el("form", {
    class: "panel signin",
    onsubmit: async (event) => {
      event.preventDefault();
      const key = input.value.trim();
      const answer = await fetch(`${API}/me`, { headers: { Authorization: `Bearer ${key}` } });
      if (!answer.ok) { error.textContent = "That key was not accepted."; return; }
      state.key = key;
      state.me = await answer.json();
      sessionStorage.setItem("twin.key", key);
      if (location.hash === "#/fleet") render(); else location.hash = "#/fleet";
    },
  },
  el("h1", {}, "Sign in"),
  el("label", { for: "key" }, "API key (from ", el("code", {}, "twin apikey create"), ")"),
  input, el("button", { type: "submit", id: "sign-in" }, "Sign in"), error);
  main().replaceChildren(form);
  input.focus();
}

// -- fleet --------------------------------------------------------------------------------

async function fleetPage(view) {
  const cards = el("div", { class: "cards", id: "cards" });
  const search = el("input", { id: "search", placeholder: "Search id, model, VIN" });
  const status = el("select", { id: "status-filter" },
    el("option", { value: "" }, "any status"), ...["online", "silent", "offline"].map((s) => el("option", { value: s }, s)));
  const rows = el("tbody", { id: "devices" });
  const more = el("button", { class: "small", hidden: true }, "More");
  const map = svg("svg", { id: "map", viewBox: "0 0 800 340", preserveAspectRatio: "xMidYMid meet" });
  let cursor = null;
  const known = new Map();

  async function loadDevices(reset) {
    if (reset) { cursor = null; rows.replaceChildren(); known.clear(); }
    const query = new URLSearchParams({ limit: "100" });
    if (search.value.trim()) query.set("search", search.value.trim());
    if (status.value) query.set("status", status.value);
    if (cursor) query.set("cursor", cursor);
    const page = await api(`/devices?${query}`);
    for (const d of page.items) {
      known.set(d.device_id, d);
      rows.append(el("tr", { class: "link", "data-device": d.device_id, onclick: () => (location.hash = `#/device/${encodeURIComponent(d.device_id)}`) },
        el("td", {}, d.device_id), el("td", {}, d.kind), el("td", {}, d.profile), el("td", {}, statusPill(d.status)),
        el("td", {}, d.health ?? "—"),
        el("td", {}, d.open_alerts ? [String(d.open_alerts), " ", severity(d.worst_open_severity)] : "0"),
        el("td", { class: "muted" }, when(d.last_seen))));
    }
    cursor = page.next_cursor;
    more.hidden = !cursor;
    if (!rows.children.length) rows.append(el("tr", {}, el("td", { colspan: 7, class: "muted" }, "No devices match.")));
  }

  async function loadSummary() {
    const s = await api("/fleet/summary");
    const open = SEVERITIES.reduce((n, sev) => n + (s.open_alerts_by_severity[sev] || 0), 0);
    cards.replaceChildren(...[
      ["devices", s.devices], ["online", s.by_status.online], ["silent", s.by_status.silent],
      ["offline", s.by_status.offline], ["open alerts", open], ["critical", s.open_alerts_by_severity.critical],
      ["open anomalies", s.open_anomalies], ["open recommendations", s.open_recommendations],
    ].map(([label, value]) => el("div", { class: "card", "data-card": label }, el("b", {}, number(value)), el("span", {}, label))));
  }

  async function loadMap() {
    const { items } = await api("/fleet/positions?limit=5000");
    drawMap(map, items, known);
  }

  let typing;
  search.addEventListener("input", () => { clearTimeout(typing); typing = setTimeout(() => loadDevices(true), 300); });
  status.addEventListener("change", () => loadDevices(true));
  more.addEventListener("click", () => loadDevices(false));
  show(view,
    el("h1", {}, "Fleet ", el("span", { id: "live-dot", class: "live-dot", title: "live" })), cards,
    el("div", { class: "grid" },
      el("section", { class: "panel" }, el("h2", {}, "Devices"), el("div", { class: "toolbar" }, search, status),
        el("table", {}, el("thead", {}, el("tr", {}, ...["device", "kind", "profile", "status", "health", "open alerts", "last seen"].map((h) => el("th", {}, h)))), rows), more),
      el("section", { class: "panel" }, el("h2", {}, "Map"), map, el("p", { class: "muted", id: "map-note" }))));
  await Promise.all([loadSummary(), loadDevices(true)]);
  await loadMap();
  every(view, 10000, () => { loadSummary(); loadMap(); });
  keep(view, openStream("devices=fleet", (kind, data) => {
    if (kind === "alert") { toast(`${data.device_id}: ${data.rule_id} ${data.transition}`); loadSummary(); loadDevices(true); }
  }));
}

function drawMap(map, items, known) {
  const note = document.getElementById("map-note");
  map.replaceChildren();
  if (!items.length) { note.textContent = "No positioned devices."; return; }
  let [s, n, w, e] = [90, -90, 180, -180];
  for (const p of items) { s = Math.min(s, p.lat); n = Math.max(n, p.lat); w = Math.min(w, p.lon); e = Math.max(e, p.lon); }
  const pad = Math.max(0.01, (n - s) * 0.08, (e - w) * 0.08);
  s -= pad; n += pad; w -= pad; e += pad;
  const squeeze = Math.cos(((s + n) / 2) * Math.PI / 180);
  const scale = Math.min(780 / ((e - w) * squeeze), 320 / (n - s));
  const left = 10 + (780 - (e - w) * squeeze * scale) / 2, top = 10 + (320 - (n - s) * scale) / 2;
  const x = (lon) => left + (lon - w) * squeeze * scale;
  const y = (lat) => top + (n - lat) * scale;
  for (let i = 0; i <= 4; i++) {
    const lat = s + (n - s) * i / 4, lon = w + (e - w) * i / 4;
    map.append(svg("line", { x1: 0, x2: 800, y1: y(lat), y2: y(lat), stroke: "#d3dcea" }));
    map.append(svg("line", { y1: 0, y2: 340, x1: x(lon), x2: x(lon), stroke: "#d3dcea" }));
    map.append(svg("text", { x: 4, y: y(lat) - 2, "font-size": 9, fill: "#8a94a8" }, lat.toFixed(2)));
  }
  for (const p of items) {
    const d = known.get(p.device_id);
    const color = d && d.open_alerts ? "#c62828" : "#2456d6";
    const dot = svg("circle", { cx: x(p.lon), cy: y(p.lat), r: 5, fill: color, "data-device": p.device_id, style: "cursor:pointer" },
      svg("title", {}, p.device_id));
    dot.addEventListener("click", () => (location.hash = `#/device/${encodeURIComponent(p.device_id)}`));
    map.append(dot);
  }
  note.textContent = `${items.length} positioned devices; red: open alerts. Drawn without map tiles.`;
}

// -- device -------------------------------------------------------------------------------

async function devicePage(view, deviceId) {
  const device = await api(`/devices/${encodeURIComponent(deviceId)}`);
  const twin = await api(`/twins/${encodeURIComponent(deviceId)}`);
  const values = el("tbody", { id: "values" });
  const facts = el("p", { class: "muted", id: "facts" });
  const metric = el("select", { id: "metric" });
  const range = el("select", { id: "range" }, ...[["0.25", "last 15 minutes"], ["1", "last hour"], ["6", "last 6 hours"], ["24", "last 24 hours"]].map(([h, t]) => el("option", { value: h }, t)));
  const chart = svg("svg", { id: "chart", viewBox: "0 0 800 260", preserveAspectRatio: "none" });
  const alerts = el("tbody", { id: "device-alerts" });
  const recs = el("tbody", { id: "device-recs" });
  const episodes = el("tbody", { id: "device-anomalies" });
  const cells = new Map();
  let newest = twin.last_seen_ms || Date.now();  // the chart ends at the device's last reading
  let pinned = null;  // a past time being shown instead of the live twin
  const atTime = el("input", { type: "datetime-local", id: "at-time", step: "1", title: "show the twin as it was then" });
  const atShow = el("button", { id: "at-show", class: "small" }, "Show then");
  const atLive = el("button", { id: "at-live", class: "small", hidden: "" }, "Back to live");
  const asOf = el("p", { class: "muted", id: "as-of", hidden: "" });
  const valuesTitle = el("h2", {}, "Live values");

  async function showAt(time) {
    const t = await api(`/twins/${encodeURIComponent(deviceId)}?at=${encodeURIComponent(time.toISOString())}`);
    pinned = time;
    const r = t.resolution;
    const base = r.base_last_seen ? `the ${r.base} of ${when(r.base_last_seen)}` : "its first reading";
    asOf.replaceChildren(`As it was at ${time.toLocaleString()}: ${number(r.replayed_readings)} readings replayed `,
      `from ${base}; values exact to the reading, health as of ${r.health_as_of ? when(r.health_as_of) : "the replay's start"}.`);
    asOf.hidden = false;
    atLive.hidden = false;
    valuesTitle.textContent = "Values then";
    showTwin({ ...t, status: "past", alerts_open: t.alerts_open.length });
  }

  async function backToLive() {
    pinned = null;
    asOf.hidden = true;
    atLive.hidden = true;
    valuesTitle.textContent = "Live values";
    atTime.value = "";
    showTwin(await api(`/twins/${encodeURIComponent(deviceId)}`));
  }

  function showTwin(t) {
    facts.replaceChildren(statusPill(t.status || "offline"), ` health ${t.health ?? "—"} · last reading ${when(t.last_seen_ms)} · `,
      `${number(t.readings)} readings · ${t.alerts_open ?? 0} open alerts`);
    for (const [name, value] of Object.entries(t.values || {}).sort()) {
      let cell = cells.get(name);
      if (!cell) {
        cell = el("td", { "data-metric": name });
        cells.set(name, cell);
        values.append(el("tr", {}, el("td", {}, name), cell));
        if (typeof value === "number") metric.append(el("option", { value: name }, name));
      }
      const text = String(number(value));
      if (cell.textContent !== text) {
        cell.textContent = text;
        cell.classList.remove("changed");
        void cell.offsetWidth;
        cell.classList.add("changed");
      }
    }
  }

  async function loadChart() {
    if (!metric.value) return;
    const to = new Date(newest + 1000), from = new Date(to - Number(range.value) * 3600e3);
    const query = new URLSearchParams({ from: from.toISOString(), to: to.toISOString(), metrics: metric.value });
    const [series, episodes] = await Promise.all([
      api(`/devices/${encodeURIComponent(deviceId)}/telemetry?${query}`),
      api(`/anomalies?device=${encodeURIComponent(deviceId)}&since=${from.toISOString()}&limit=200`),
    ]);
    drawChart(chart, series, episodes.items, metric.value, from, to);
  }

  async function loadLists() {
    const [a, r, e] = await Promise.all([api(`/alerts?device=${encodeURIComponent(deviceId)}&limit=50`),
      api(`/recommendations?device=${encodeURIComponent(deviceId)}`),
      api(`/anomalies?device=${encodeURIComponent(deviceId)}&limit=20`)]);
    episodes.replaceChildren(...anomalyRows(e.items));
    if (!e.items.length) episodes.append(el("tr", {}, el("td", { colspan: 6, class: "muted" }, "No anomalies.")));
    alerts.replaceChildren(...alertRows(a.items, loadLists, false));
    if (!a.items.length) alerts.append(el("tr", {}, el("td", { colspan: 7, class: "muted" }, "No alerts.")));
    recs.replaceChildren(...r.items.map((x) => el("tr", {}, el("td", {}, x.part), el("td", {}, x.name),
      el("td", {}, number(x.final_confidence)), el("td", {}, x.due ?? "—"), el("td", {}, x.stock))));
    if (!r.items.length) recs.append(el("tr", {}, el("td", { colspan: 5, class: "muted" }, "No open recommendations.")));
  }

  metric.addEventListener("change", loadChart);
  range.addEventListener("change", loadChart);
  atShow.addEventListener("click", () => {
    if (atTime.value) showAt(new Date(atTime.value)).catch((e) => toast(e.message));
  });
  atLive.addEventListener("click", () => backToLive().catch((e) => toast(e.message)));
  chart.addEventListener("click", (e) => {  // the twin at the clicked time
    const box = chart.getBoundingClientRect(), to = newest + 1000, from = to - Number(range.value) * 3600e3;
    const frac = ((e.clientX - box.left) / box.width * 800 - 40) / 750;
    if (frac < 0 || frac > 1) return;
    const time = new Date(from + frac * (to - from));
    atTime.value = new Date(time - time.getTimezoneOffset() * 60e3).toISOString().slice(0, 19);
    showAt(time).catch((err) => toast(err.message));
  });
  if (!show(view,
    el("h1", {}, deviceId, " ", el("span", { class: "muted" }, `${device.kind} · ${device.profile}`), " ", el("span", { id: "live-dot", class: "live-dot", title: "live" })),
    facts,
    el("div", { class: "grid" },
      el("section", { class: "panel" }, valuesTitle,
        el("div", { class: "toolbar" }, atTime, atShow, atLive), asOf, el("table", { class: "values" }, values)),
      el("section", { class: "panel" }, el("h2", {}, "History"), el("div", { class: "toolbar" }, metric, range), chart,
        el("p", { class: "muted" }, "Shaded: anomaly episodes. Click the chart to see the twin as it was then."))),
    el("section", { class: "panel" }, el("h2", {}, "Alerts"), alertTable(alerts)),
    el("section", { class: "panel" }, el("h2", {}, "Anomalies"),
      el("table", {}, el("thead", {}, el("tr", {}, ...["started", "ended", "detector", "metric", "score", "expected → observed"].map((h) => el("th", {}, h)))), episodes)),
    el("section", { class: "panel" }, el("h2", {}, "Maintenance recommendations"),
      el("table", {}, el("thead", {}, el("tr", {}, ...["part", "name", "confidence", "due", "stock"].map((h) => el("th", {}, h)))), recs)))) return;
  showTwin(twin);
  await Promise.all([loadChart(), loadLists()]);
  every(view, 30000, loadChart);
  keep(view, openStream(`devices=${encodeURIComponent(deviceId)}`, (kind, data) => {
    if (kind === "twin" && data.last_seen_ms) newest = Math.max(newest, data.last_seen_ms);
    if (kind === "twin" && !pinned) showTwin({ ...data, values: Object.fromEntries(Object.entries(data).filter(([k]) => !TWIN_FIELDS.has(k))) });
    if (kind === "alert") { toast(`${data.rule_id} ${data.transition}`); loadLists(); }
  }));
}

const TWIN_FIELDS = new Set(["device_id", "kind", "profile", "status", "last_seen_ms", "updated_ms", "messages", "readings",
  "rejected", "health", "anomalies_open", "alerts_open", "alert_severity", "km_per_day", "usage_category",
  "operating_hours", "load_ema", "recs_open", "recs_top"]);

function drawChart(chart, series, episodes, name, from, to) {
  chart.replaceChildren();
  const points = series.points.filter((p) => typeof p.values[name] === "number")
    .map((p) => [new Date(p.ts).getTime(), p.values[name]]);
  const t0 = from.getTime(), t1 = to.getTime();
  const x = (t) => 40 + (t - t0) / (t1 - t0) * 750;
  for (const a of episodes) {
    const start = Math.max(t0, new Date(a.started_at).getTime());
    const end = a.ended_at ? new Date(a.ended_at).getTime() : t1;
    if (end < t0) continue;
    chart.append(svg("rect", { x: x(start), y: 0, width: Math.max(2, x(end) - x(start)), height: 240,
      fill: a.metric === name ? "#f6c9c9" : "#f3e6e6", class: "episode" }, svg("title", {}, `${a.detector} ${a.metric} ${a.severity}`)));
  }
  if (!points.length) { chart.append(svg("text", { x: 300, y: 130, fill: "#8a94a8" }, "No readings in this range")); return; }
  let lo = Math.min(...points.map((p) => p[1])), hi = Math.max(...points.map((p) => p[1]));
  if (hi === lo) { hi += 1; lo -= 1; }
  const y = (v) => 230 - (v - lo) / (hi - lo) * 215;
  for (const v of [lo, (lo + hi) / 2, hi]) {
    chart.append(svg("line", { x1: 40, x2: 790, y1: y(v), y2: y(v), stroke: "#e1e6ef" }));
    chart.append(svg("text", { x: 2, y: y(v) + 3, "font-size": 10, fill: "#8a94a8" }, number(v)));
  }
  chart.append(svg("polyline", { points: points.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(" "),
    fill: "none", stroke: "#2456d6", "stroke-width": 1.5, id: "series" }));
  chart.append(svg("text", { x: 40, y: 255, "font-size": 10, fill: "#8a94a8" }, from.toLocaleTimeString()));
  chart.append(svg("text", { x: 730, y: 255, "font-size": 10, fill: "#8a94a8" }, to.toLocaleTimeString()));
}

// -- alerts -------------------------------------------------------------------------------

function anomalyRows(items) {
  // a relation names several metrics: each one's expected value given the others, and what it read
  return items.map((a) => {
    const why = a.explanation?.length ? a.explanation : [{ metric: a.metric, expected: a.expected, observed: a.observed }];
    return el("tr", { "data-anomaly": `${a.detector}:${a.metric}` },
      el("td", {}, when(a.started_at)), el("td", {}, a.ended_at ? when(a.ended_at) : "open"),
      el("td", {}, a.detector, " ", el("span", { class: "muted" }, a.kind)), el("td", {}, a.metric),
      el("td", {}, number(a.score)),
      el("td", { class: "explained" }, ...why.map((w) => el("div", {},
        why.length > 1 ? `${w.metric}: ` : "", `${number(w.expected)} → ${number(w.observed)}`))));
  });
}

function alertTable(body) {
  return el("table", {}, el("thead", {}, el("tr", {}, ...["severity", "device", "alert", "status", "first seen", "n", "actions"].map((h) => el("th", {}, h)))), body);
}

function alertRows(items, reload, withDevice = true) {
  return items.map((a) => {
    const act = async (action, body) => {
      try {
        await api(`/alerts/${encodeURIComponent(a.id)}/${action}`, { method: "POST", body });
        toast(`${a.rule_id} on ${a.device_id}: ${action === "ack" ? "acknowledged" : action === "assign" ? "assigned" : "resolved"}`);
      } catch (err) { toast(err.message); }
      reload();
    };
    const title = canAct() ? null : "needs an operator key";
    const buttons = el("td", {},
      a.status === "new" ? el("button", { class: "small", "data-action": "ack", disabled: !canAct(), title, onclick: () => act("ack", {}) }, "Acknowledge") : null, " ",
      a.status !== "resolved" ? el("button", { class: "small", "data-action": "assign", disabled: !canAct(), title, onclick: () => {
        const who = prompt("Assign to whom?"); if (who) act("assign", { to: who });
      } }, "Assign") : null, " ",
      a.status !== "resolved" ? el("button", { class: "small", "data-action": "resolve", disabled: !canAct(), title, onclick: () => act("resolve", {}) }, "Resolve") : null);
    return el("tr", { "data-alert": a.id },
      el("td", {}, severity(a.severity)),
      el("td", {}, withDevice ? el("a", { href: `#/device/${encodeURIComponent(a.device_id)}` }, a.device_id) : a.device_id),
      el("td", {}, a.rule_id, el("div", { class: "muted" }, a.detail)),
      el("td", { class: "alert-status" }, a.status, a.assigned_to ? el("div", { class: "muted" }, `→ ${a.assigned_to}`) : null),
      el("td", {}, when(a.first_seen)), el("td", {}, a.occurrences), buttons);
  });
}

async function alertsPage(view) {
  const status = el("select", { id: "alert-status" }, ...["open", "new", "acknowledged", "resolved"].map((s) => el("option", { value: s }, s)));
  const sev = el("select", { id: "alert-severity" }, el("option", { value: "" }, "any severity"), ...SEVERITIES.map((s) => el("option", { value: s }, `${s} or worse`)));
  const body = el("tbody", { id: "inbox" });
  const count = el("span", { class: "muted", id: "inbox-count" });
  async function load() {
    const query = new URLSearchParams({ status: status.value, limit: "200" });
    if (sev.value) query.set("severity", sev.value);
    const { items } = await api(`/alerts?${query}`);
    body.replaceChildren(...alertRows(items, load));
    if (!items.length) body.append(el("tr", {}, el("td", { colspan: 7, class: "muted" }, "Nothing here.")));
    count.textContent = `${items.length} alert(s)`;
    updateBadge();
  }
  status.addEventListener("change", load);
  sev.addEventListener("change", load);
  show(view, el("h1", {}, "Alerts ", el("span", { id: "live-dot", class: "live-dot", title: "live" })),
    el("section", { class: "panel" }, el("div", { class: "toolbar" }, status, sev, count), alertTable(body)));
  await load();
  keep(view, openStream("devices=fleet", (kind) => { if (kind === "alert") load(); }));
}

async function updateBadge() {
  try {
    const s = await api("/fleet/summary");
    const open = SEVERITIES.reduce((n, sev) => n + (s.open_alerts_by_severity[sev] || 0), 0);
    const badge = document.getElementById("alert-badge");
    badge.textContent = String(open);
    badge.hidden = open === 0;
  } catch (err) { /* shown on the page itself */ }
}

// -- routing ------------------------------------------------------------------------------

async function render(message) {
  for (const stop of state.cleanup.splice(0)) stop();
  const view = ++state.view;
  const signedIn = Boolean(state.key);
  document.getElementById("nav").hidden = !signedIn;
  document.getElementById("sign-out").hidden = !signedIn;
  if (!signedIn) { document.getElementById("who").textContent = ""; return signInPage(message); }
  try {
    if (!state.me) state.me = await api("/me");
    document.getElementById("who").textContent = `${state.me.name} · ${state.me.role}`;
    const [, page, arg] = location.hash.split("/");
    for (const link of document.querySelectorAll("nav a")) link.classList.toggle("active", link.dataset.page === (page || "fleet"));
    if (page === "device" && arg) await devicePage(view, decodeURIComponent(arg));
    else if (page === "alerts") await alertsPage(view);
    else await fleetPage(view);
    updateBadge();
  } catch (err) {
    if (state.key) show(view, el("p", { class: "error" }, err.message));
  }
}

window.addEventListener("hashchange", () => render());
document.getElementById("sign-out").addEventListener("click", () => signOut());
render();
