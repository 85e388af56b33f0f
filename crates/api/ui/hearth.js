// Hearth's web UI: plain JavaScript over the Prometheus HTTP API (no
// framework, no build step). Pages: query (table and graph), targets,
// status, configuration.
"use strict";

const $ = (sel, el = document) => el.querySelector(sel);

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// GET by default; queries go by POST (no URL length limit), as Prometheus's UI.
async function api(path, params = {}, method = "GET") {
  const body = new URLSearchParams(params);
  const res = method === "POST"
    ? await fetch(path, { method, headers: { "Content-Type": "application/x-www-form-urlencoded" }, body })
    : await fetch(`${path}?${body}`);
  let json;
  try {
    json = await res.json();
  } catch (e) {
    throw new Error(`${res.status} ${res.statusText}`);
  }
  if (json.status !== "success") {
    throw new Error(`${json.errorType || res.status}: ${json.error || "request failed"}`);
  }
  return json;
}

function metricName(metric) {
  const name = metric.__name__ || "";
  const labels = Object.entries(metric)
    .filter(([k]) => k !== "__name__")
    .map(([k, v]) => `${k}=${JSON.stringify(v)}`);
  return labels.length ? `${name}{${labels.join(", ")}}` : name || "{}";
}

function notices(json) {
  return [
    ...(json.warnings || []).map((w) => h("div", { class: "warning" }, w)),
    ...(json.infos || []).map((w) => h("div", { class: "warning" }, w)),
  ];
}

// ---- query page ------------------------------------------------------------

const RANGES = { "5m": 300, "15m": 900, "1h": 3600, "3h": 10800, "6h": 21600, "12h": 43200, "1d": 86400, "1w": 604800 };

function queryPage(root) {
  const params = new URLSearchParams(location.search);
  const expr = h("textarea", { placeholder: "Expression (press Shift+Enter for newlines)" });
  expr.value = params.get("expr") || "";
  const tab = params.get("tab") === "graph" ? "graph" : "table";
  const range = h("select", {}, Object.keys(RANGES).map((r) => h("option", { value: r }, r)));
  range.value = params.get("range") || "1h";
  const out = h("div", { id: "result" });
  const tabs = h("div", { class: "row tabs" },
    h("button", { "data-tab": "table", onclick: () => setTab("table") }, "Table"),
    h("button", { "data-tab": "graph", onclick: () => setTab("graph") }, "Graph"),
    h("span", { class: "muted" }, "range"), range);
  let current = tab;
  function setTab(t) {
    current = t;
    for (const b of tabs.querySelectorAll("button")) b.classList.toggle("active", b.dataset.tab === t);
    range.style.display = t === "graph" ? "" : "none";
    run();
  }
  async function run() {
    const q = expr.value.trim();
    const url = new URL(location.href);
    url.searchParams.set("expr", q);
    url.searchParams.set("tab", current);
    url.searchParams.set("range", range.value);
    history.replaceState(null, "", url);
    out.replaceChildren();
    if (!q) return;
    const started = performance.now();
    try {
      if (current === "table") {
        const json = await api("/api/v1/query", { query: q }, "POST");
        out.replaceChildren(...notices(json), renderTable(json.data), timing(started));
      } else {
        const end = Date.now() / 1000;
        const seconds = RANGES[range.value];
        const step = Math.max(1, Math.ceil(seconds / 250));
        const json = await api("/api/v1/query_range", { query: q, start: end - seconds, end, step }, "POST");
        out.replaceChildren(...notices(json), renderGraph(json.data.result, end - seconds, end), timing(started));
      }
    } catch (e) {
      out.replaceChildren(h("div", { class: "error" }, e.message));
    }
  }
  expr.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) {
      e.preventDefault();
      run();
    }
  });
  range.addEventListener("change", run);
  root.replaceChildren(
    expr,
    h("div", { class: "row" }, h("button", { class: "primary", onclick: run }, "Execute")),
    tabs,
    out,
  );
  setTab(tab);
}

function timing(started) {
  return h("p", { class: "muted" }, `Load time: ${Math.round(performance.now() - started)} ms`);
}

function renderTable(data) {
  const rows = [];
  switch (data.resultType) {
    case "scalar":
    case "string":
      rows.push([data.resultType, data.result[1]]);
      break;
    case "vector":
      for (const s of data.result) rows.push([metricName(s.metric), s.value ? s.value[1] : "(histogram)"]);
      break;
    case "matrix":
      for (const s of data.result) {
        const values = (s.values || []).map(([t, v]) => `${v} @${t}`).join("\n");
        rows.push([metricName(s.metric), values]);
      }
      break;
  }
  if (!rows.length) return h("p", { class: "muted" }, "Empty query result");
  return h("table", {},
    h("tr", {}, h("th", {}, "Series"), h("th", {}, "Value")),
    rows.map(([m, v]) => h("tr", {}, h("td", { class: "metric" }, m), h("td", { class: "value" }, h("pre", { style: "margin:0;border:0;padding:0;background:none" }, v)))));
}

const COLORS = ["#2e6fd8", "#e8590c", "#2b8a3e", "#c2255c", "#7048e8", "#0b7285", "#e67700", "#5c940d", "#a61e4d", "#364fc7"];

function renderGraph(series, start, end) {
  if (!series.length) return h("p", { class: "muted" }, "Empty query result");
  const W = 1000, H = 360, L = 70, B = 24;
  let lo = Infinity, hi = -Infinity;
  for (const s of series) for (const [, v] of s.values || []) {
    const f = parseFloat(v);
    if (Number.isFinite(f)) { lo = Math.min(lo, f); hi = Math.max(hi, f); }
  }
  if (!Number.isFinite(lo)) { lo = 0; hi = 1; }
  if (lo === hi) { lo -= 1; hi += 1; }
  const x = (t) => L + ((t - start) / (end - start)) * (W - L - 10);
  const y = (v) => 10 + (1 - (v - lo) / (hi - lo)) * (H - B - 10);
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("width", "100%");
  const add = (tag, attrs, text) => {
    const el = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
    if (text !== undefined) el.textContent = text;
    svg.append(el);
  };
  for (let i = 0; i <= 4; i++) {
    const v = lo + ((hi - lo) * i) / 4;
    add("line", { x1: L, x2: W - 10, y1: y(v), y2: y(v), stroke: "#e3e6eb" });
    add("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end", "font-size": 11, fill: "#6b7280" }, formatNumber(v));
  }
  for (let i = 0; i <= 5; i++) {
    const t = start + ((end - start) * i) / 5;
    add("text", { x: x(t), y: H - 6, "text-anchor": "middle", "font-size": 11, fill: "#6b7280" }, new Date(t * 1000).toLocaleTimeString());
  }
  series.forEach((s, i) => {
    let d = "", prev = null;
    for (const [t, v] of s.values || []) {
      const f = parseFloat(v);
      if (!Number.isFinite(f)) { prev = null; continue; }
      // A gap of more than two steps breaks the line, as missing data.
      d += (prev === null || t - prev > 2 * ((end - start) / 250 + 1) ? "M" : "L") + x(t).toFixed(1) + "," + y(f).toFixed(1);
      prev = t;
    }
    add("path", { d, fill: "none", stroke: COLORS[i % COLORS.length], "stroke-width": 1.5 });
  });
  const legend = h("div", { class: "legend" }, series.map((s, i) =>
    h("div", {}, h("span", { class: "swatch", style: `background:${COLORS[i % COLORS.length]}` }), metricName(s.metric))));
  return h("div", { id: "graph" }, svg, legend);
}

function formatNumber(v) {
  const a = Math.abs(v);
  if (a >= 1e9) return (v / 1e9).toPrecision(3) + "G";
  if (a >= 1e6) return (v / 1e6).toPrecision(3) + "M";
  if (a >= 1e3) return (v / 1e3).toPrecision(3) + "k";
  return Number(v.toPrecision(4)).toString();
}

// ---- targets ---------------------------------------------------------------

async function targetsPage(root) {
  root.replaceChildren(h("p", { class: "muted" }, "Loading…"));
  try {
    const json = await api("/api/v1/targets", { state: "any" });
    const pools = {};
    for (const t of json.data.activeTargets) (pools[t.scrapePool] ||= []).push(t);
    const sections = Object.keys(pools).sort().map((pool) => {
      const ts = pools[pool];
      const up = ts.filter((t) => t.health === "up").length;
      return [
        h("h2", {}, `${pool} (${up}/${ts.length} up)`),
        h("table", {},
          h("tr", {}, h("th", {}, "Endpoint"), h("th", {}, "State"), h("th", {}, "Labels"), h("th", {}, "Last scrape"), h("th", {}, "Duration"), h("th", {}, "Error")),
          ts.map((t) => h("tr", {},
            h("td", { class: "metric" }, t.scrapeUrl),
            h("td", { class: `health-${t.health}` }, t.health.toUpperCase()),
            h("td", { class: "metric" }, metricName(t.labels)),
            h("td", {}, t.lastScrape && !t.lastScrape.startsWith("0001") ? `${Math.round((Date.now() - Date.parse(t.lastScrape)) / 1000)}s ago` : "never"),
            h("td", {}, `${(t.lastScrapeDuration * 1000).toFixed(1)} ms`),
            h("td", { class: "health-down" }, t.lastError || "")))),
      ];
    });
    const dropped = json.data.droppedTargets || [];
    root.replaceChildren(
      ...(sections.length ? sections.flat() : [h("p", { class: "muted" }, "No targets.")]),
      h("p", { class: "muted" }, `${dropped.length} dropped target(s).`),
    );
  } catch (e) {
    root.replaceChildren(h("div", { class: "error" }, e.message));
  }
}

// ---- status and configuration ------------------------------------------------

async function statusPage(root) {
  try {
    const [build, runtime, flags] = await Promise.all([
      api("/api/v1/status/buildinfo"), api("/api/v1/status/runtimeinfo"), api("/api/v1/status/flags"),
    ]);
    const table = (obj) => h("table", {}, Object.entries(obj).map(([k, v]) =>
      h("tr", {}, h("th", {}, k), h("td", { class: "metric" }, typeof v === "object" ? JSON.stringify(v) : String(v)))));
    root.replaceChildren(
      h("h2", {}, "Build information"), table(build.data),
      h("h2", {}, "Runtime information"), table(runtime.data),
      h("h2", {}, "Command-line flags"), table(flags.data),
    );
  } catch (e) {
    root.replaceChildren(h("div", { class: "error" }, e.message));
  }
}

async function configPage(root) {
  try {
    const json = await api("/api/v1/status/config");
    root.replaceChildren(h("pre", {}, json.data.yaml || "(no configuration file)"));
  } catch (e) {
    root.replaceChildren(h("div", { class: "error" }, e.message));
  }
}

// ---- routing -------------------------------------------------------------------

const PAGES = { query: queryPage, targets: targetsPage, status: statusPage, config: configPage };

function route() {
  const name = location.pathname.replace(/^\/+/, "").split("/")[0] || "query";
  const page = PAGES[name] || PAGES.query;
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.page === name);
  page($("#page"));
}

route();
