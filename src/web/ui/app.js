// lakebuild's web UI: one page, hash routes, plain DOM and SVG. Every figure comes from
// the JSON API (/api/…), the same structures as the CLI's --json. Text from the lake is
// always set as text (never as HTML).
"use strict";

const main = document.getElementById("main");
const liveBar = document.getElementById("live");
const STATES = ["fresh", "stale", "missing", "failed", "running"];
let session = { actions: false, authenticated: false };
let live = [];

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "text") e.textContent = v;
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const kid of kids.flat()) {
    if (kid === undefined || kid === null || kid === false) continue;
    e.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return e;
}

function svgEl(tag, attrs, ...kids) {
  const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "text") e.textContent = v;
    else e.setAttribute(k, v);
  }
  for (const kid of kids.flat()) if (kid) e.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  return e;
}

async function api(path, opts) {
  const r = await fetch(path, Object.assign({ credentials: "same-origin" }, opts || {}));
  let body = null;
  try { body = await r.json(); } catch (_) { body = { error: r.status + " " + r.statusText }; }
  if (!r.ok) throw new Error((body && body.error) || r.statusText);
  return body;
}

async function post(path, payload) {
  return api(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(payload || {}),
  });
}

const pad = (n) => String(n).padStart(2, "0");
function when(ms) {
  if (!ms) return "-";
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}
function span(ms) {
  if (ms === null || ms === undefined) return "-";
  if (ms < 1000) return ms + " ms";
  if (ms < 60000) return (ms / 1000).toFixed(1) + " s";
  return Math.floor(ms / 60000) + " min " + Math.round((ms % 60000) / 1000) + " s";
}
function bytes(b) {
  if (!b) return "0";
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (b >= 1024 && i < u.length - 1) { b /= 1024; i++; }
  return b.toFixed(i ? 1 : 0) + " " + u[i];
}
const num = (x, d = 4) => (x === null || x === undefined ? "-" : Number(x).toFixed(d));
const short = (h) => (h ? String(h).slice(0, 12) : "-");
const badge = (state) => el("span", { class: "badge " + state, text: state });
const assetLink = (a) => el("a", { href: "#/asset/" + encodeURIComponent(a), text: a });
const runLink = (r) => el("a", { href: "#/run/" + encodeURIComponent(r), text: r });
const canAct = () => session.actions && session.authenticated;

function table(id, head, rows) {
  return el("table", { id },
    el("thead", {}, el("tr", {}, head.map((h) => el("th", { text: h })))),
    el("tbody", {}, rows.map((cells) => el("tr", {}, cells.map((c) =>
      c instanceof Node && c.tagName === "TD" ? c : el("td", {}, c))))));
}
const numCell = (v) => el("td", { class: "num", text: v });

function runningAssets() {
  const s = new Set();
  for (const r of live) for (const st of r.steps) if (!st.ended_at) s.add(st.asset);
  return s;
}

// ---- live progress --------------------------------------------------------------
async function pollLive() {
  try {
    const before = JSON.stringify([...runningAssets()].sort());
    live = await api("/api/live");
    liveBar.replaceChildren();
    liveBar.hidden = live.length === 0;
    for (const r of live) {
      const line = el("div", { class: "live-run" }, "Running ", runLink(r.run_id), ` (${r.trigger}, started ${when(r.started_at)}): `);
      for (const st of r.steps.filter((s) => !s.ended_at)) {
        line.append(assetLink(st.asset), el("progress", { max: st.total || 1, value: st.done }),
          `${st.done}/${st.total} ${st.message || ""} `);
      }
      liveBar.append(line);
    }
    const after = JSON.stringify([...runningAssets()].sort());
    if (before !== after && route().page === "graph") render();
  } catch (_) { /* the next poll tries again */ }
}

// ---- the asset graph ---------------------------------------------------------------
async function graphPage(params) {
  const select = params.get("select") || "";
  const input = el("input", { id: "select", value: select, placeholder: "selection, e.g. +predictions or raw_stock_data+" });
  const form = el("form", { class: "filter", onsubmit: (e) => {
    e.preventDefault();
    location.hash = "#/?select=" + encodeURIComponent(input.value.trim());
  } }, input, el("button", { type: "submit", text: "Filter" }));
  const g = await api("/api/graph" + (select ? "?select=" + encodeURIComponent(select) : ""));
  const running = runningAssets();
  const inputs = {};
  for (const e of g.edges) (inputs[e.to] = inputs[e.to] || []).push(e.from);
  const depth = {};
  for (const n of g.nodes) {  // build order: inputs come first
    depth[n.asset] = Math.max(0, ...(inputs[n.asset] || []).map((i) => (depth[i] ?? -1) + 1));
  }
  const columns = [];
  for (const n of g.nodes) (columns[depth[n.asset]] = columns[depth[n.asset]] || []).push(n);
  const W = 220, H = 58, GX = 70, GY = 22, pos = {};
  columns.forEach((col, c) => col.forEach((n, r) => { pos[n.asset] = { x: 20 + c * (W + GX), y: 20 + r * (H + GY) }; }));
  const width = 40 + columns.length * (W + GX);
  const height = 40 + Math.max(1, ...columns.map((c) => c.length)) * (H + GY);
  const svg = svgEl("svg", { id: "graph", width, height, viewBox: `0 0 ${width} ${height}` });
  for (const e of g.edges) {
    const a = pos[e.from], b = pos[e.to];
    if (!a || !b) continue;
    const x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x, y2 = b.y + H / 2, mx = (x1 + x2) / 2;
    svg.append(svgEl("path", { class: "edge", d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}` },
      svgEl("title", { text: `${e.from} → ${e.to} window ${e.coverage}` })));
  }
  for (const n of g.nodes) {
    const p = pos[n.asset];
    const state = running.has(n.asset) ? "running" : n.status;
    const checks = n.checks ? `checks ${n.checks_passed}/${n.checks} ok` : "no checks";
    const last = n.last_built ? n.last_built.slice(0, 16).replace("T", " ") : "never built";
    const node = svgEl("g", { class: "node", id: "node-" + n.asset, "data-asset": n.asset, "data-state": state,
      transform: `translate(${p.x},${p.y})`, onclick: () => { location.hash = "#/asset/" + encodeURIComponent(n.asset); } },
      svgEl("rect", { width: W, height: H, fill: `var(--${state})`, "fill-opacity": "0.22" }),
      svgEl("rect", { width: 6, height: H, fill: `var(--${state})` }),
      svgEl("text", { x: 14, y: 18, "font-weight": "600", text: n.asset }),
      svgEl("text", { x: 14, y: 34, text: `${state} · ${n.op}${n.daily ? " · daily" : ""}` }),
      svgEl("text", { x: 14, y: 50, fill: "#5f6368", text: `${last} · ${checks}` }),
      svgEl("title", { text: n.note || state }));
    svg.append(node);
  }
  const legend = el("p", { class: "legend" }, STATES.map((s) => el("span", {}, badge(s))));
  return [el("h1", { text: "Assets" }), form, legend, svg];
}

// ---- one asset -----------------------------------------------------------------------
function strip(cells) {
  const n = cells.length, maxW = 1400;
  const w = Math.max(2, Math.min(14, Math.floor(maxW / Math.max(1, n))));
  const svg = svgEl("svg", { id: "partitions", width: Math.max(40, n * w), height: 32 });
  const checkColour = { passed: "var(--built)", warned: "var(--stale)", failed: "var(--failed)" };
  cells.forEach((c, i) => {
    const tip = [`${c.partition}: ${c.state}`, c.key && `key ${c.key}`, c.content_hash && `content ${c.content_hash}`,
      c.rows !== null && c.rows !== undefined && `${c.rows} rows`, c.version !== null && c.version !== undefined && `version ${c.version}`,
      c.reason, c.checks && `checks ${c.checks} (run ${c.checked_in})`].filter(Boolean).join("\n");
    const width = Math.max(1, w - (w > 3 ? 1 : 0));
    svg.append(svgEl("rect", { class: "cell", "data-partition": c.partition, "data-state": c.state,
      x: i * w, y: 2, width, height: 22, fill: `var(--${c.state})` },
      svgEl("title", { text: tip })));
    // The day's check results, a thin bar under the cell.
    if (c.checks) svg.append(svgEl("rect", { class: "check", "data-partition": c.partition, "data-checks": c.checks,
      x: i * w, y: 26, width, height: 4, fill: checkColour[c.checks] || "var(--unknown)" },
      svgEl("title", { text: `${c.partition}: checks ${c.checks} (run ${c.checked_in})` })));
  });
  return svg;
}

// The provenance as a tree: the asset's inputs open, deeper levels folded.
function provenanceTree(p, depth = 0) {
  const inputs = (p.inputs || []).map((i) => {
    const line = [assetLink(i.asset), ` v${i.version} · ${i.first ?? "-"}..${i.last ?? "-"} (${i.count} partitions) · digest ${short(i.digest)}`];
    if (!i.anchor) return el("li", {}, line);
    return el("li", {}, el("details", { open: depth === 0 }, el("summary", {}, line),
      el("ul", { class: "tree" }, provenanceTree(i.anchor, depth + 1))));
  });
  return el("li", {},
    el("strong", {}, assetLink(p.asset)), ` v${p.version} · ${p.partition} · key ${short(p.key)} · content ${short(p.content_hash)} · `,
    `${p.rows} rows · ${p.op} ${p.code_version ? "(" + short(p.code_version) + ")" : ""} · run `, runLink(p.run_id), ` at ${p.committed_at}`,
    (p.restated || []).length ? el("div", { class: "muted", text: "restated: " + p.restated.map((r) => r[1]).join("; ") }) : null,
    inputs.length ? el("ul", { class: "tree" }, inputs) : null);
}

async function assetPage(name) {
  const [v, why] = await Promise.all([
    api("/api/assets/" + encodeURIComponent(name)),
    api("/api/why/" + encodeURIComponent(name)).catch((e) => ({ error: e.message })),
  ]);
  const counts = {};
  for (const c of v.partitions) counts[c.state] = (counts[c.state] || 0) + 1;
  const out = [el("h1", {}, v.asset, " ", runningAssets().has(v.asset) ? badge("running") : null)];
  if (v.description) out.push(el("p", { text: v.description }));
  out.push(el("h2", { text: "Rule" }), table("rule", ["op", "partitioned", "params", "inputs", "checks", "SLA"], [[
    v.op, v.daily ? "daily" : "whole", el("pre", { text: JSON.stringify(v.params, null, 1) }),
    el("div", {}, v.inputs.map((i) => el("div", {}, assetLink(i.asset), ` window ${i.window}${i.alias ? " @" + i.alias : ""}${i.full ? ` (complete ${i.full})` : ""}`))),
    v.checks.join(", ") || "-", v.sla || "-",
  ]]));
  out.push(el("h2", { text: `Partitions (${v.partitions.length})` }),
    el("p", { class: "legend" }, Object.entries(counts).map(([s, n]) => el("span", {}, badge(s), ` ${n}`))),
    strip(v.partitions));
  if (why.error) out.push(el("h2", { text: "Lineage" }), el("p", { class: "muted", text: why.error }));
  else {
    out.push(el("h2", { text: "Lineage (why)" }),
      el("p", {}, "Status of the latest partition: ", badge(why.status === "fresh" ? "fresh" : "stale"), ` ${why.status}`),
      why.reasons.length ? el("ul", { id: "reasons" }, why.reasons.map((r) => el("li", { text: typeof r === "string" ? r : JSON.stringify(r) }))) : null,
      el("ul", { class: "tree", id: "lineage" }, provenanceTree(why.provenance)));
  }
  out.push(el("h2", { text: "Recent materializations" }), table("materializations",
    ["version", "committed", "run", "partitions", "first", "last", "rows"],
    v.materializations.map((m) => [String(m.version), m.committed_at, runLink(m.run_id), numCell(m.partitions), m.first || "-", m.last || "-", numCell(m.rows)])));
  const checkNames = [...new Set(v.check_runs.flatMap((r) => r.checks.map((c) => c.name)))];
  if (checkNames.length) {
    out.push(el("h2", { text: "Checks per run" }), table("checks", ["run", "partitions", ...checkNames],
      v.check_runs.map((r) => [runLink(r.run_id), `${r.partition_from || "-"}..${r.partition_to || "-"}`,
        ...checkNames.map((n) => {
          const c = r.checks.find((x) => x.name === n);
          return c ? el("span", { class: "badge " + (c.passed ? "ok" : c.severity === "warn" ? "stale" : "failed"), title: c.detail, text: c.passed ? "pass" : "fail" }) : "-";
        })])));
  }
  out.push(el("h2", { text: "Schema" }), table("schema", ["column", "type"], v.schema.map(([c, t]) => [c, t])));
  if (v.sample.length) {
    const shown = v.sample_columns.slice(0, 16);
    const more = v.sample_columns.length - shown.length;
    out.push(el("h2", { text: `Sample (${v.sample_partition}, first ${v.sample.length} rows${more > 0 ? `, ${shown.length} of ${v.sample_columns.length} columns` : ""})` }),
      table("sample", shown, v.sample.map((r) => shown.map((_, i) => r[i] === null ? "null" : typeof r[i] === "number" ? numCell(Number.isInteger(r[i]) ? r[i] : r[i].toPrecision(6)) : String(r[i])))));
  }
  return out.filter(Boolean);
}

// ---- runs ----------------------------------------------------------------------------
async function retryButton(runId) {
  const b = el("button", { class: "action", text: "Retry", disabled: !canAct(), title: canAct() ? "" : "log in to act",
    onclick: async () => {
      b.disabled = true;
      try { await post("/api/runs/" + encodeURIComponent(runId) + "/retry"); b.textContent = "Started"; }
      catch (e) { b.textContent = e.message; }
    } });
  return b;
}

async function runsPage() {
  const runs = await api("/api/runs?limit=200");
  const rows = [];
  for (const r of runs) {
    rows.push([runLink(r.run_id), r.trigger, badge(r.status), when(r.started_at), span(r.duration_ms),
      numCell(r.steps), numCell(`${r.built} / ${r.failed} / ${r.reused}`), numCell(r.rows),
      r.assets.slice(0, 4).join(", ") + (r.assets.length > 4 ? ` +${r.assets.length - 4}` : ""),
      r.status === "failed" ? await retryButton(r.run_id) : ""]);
  }
  return [el("h1", { text: "Runs" }),
    runs.length ? table("runs", ["run", "trigger", "status", "started", "duration", "steps", "built / failed / reused", "rows", "assets", ""], rows)
      : el("p", { class: "muted", text: "No run yet: lakebuild build" })];
}

function gantt(steps) {
  const t0 = Math.min(...steps.map((s) => s.started_at)), t1 = Math.max(...steps.map((s) => s.ended_at), t0 + 1);
  const L = 240, W = 900, RH = 22;
  const svg = svgEl("svg", { id: "gantt", width: L + W + 20, height: steps.length * RH + 30 });
  const x = (t) => L + ((t - t0) / (t1 - t0)) * W;
  steps.forEach((s, i) => {
    const y = 4 + i * RH, state = s.outcome === "failed" || s.outcome === "skipped" ? "failed" : s.outcome === "reused" ? "missing" : "fresh";
    svg.append(svgEl("text", { x: 4, y: y + 14, text: `${s.asset}${s.attempt > 1 ? " (try " + s.attempt + ")" : ""}` }),
      svgEl("rect", { class: "bar", "data-asset": s.asset, x: x(s.started_at), y, width: Math.max(2, x(s.ended_at) - x(s.started_at)), height: RH - 6, fill: `var(--${state})` },
        svgEl("title", { text: `${s.asset}: ${s.outcome} in ${span(s.duration_ms)}, ${s.rows} rows` })));
  });
  svg.append(svgEl("text", { x: L, y: steps.length * RH + 22, fill: "#5f6368", text: when(t0) }),
    svgEl("text", { x: L + W - 140, y: steps.length * RH + 22, fill: "#5f6368", text: `+${span(t1 - t0)}` }));
  return svg;
}

async function runPage(id) {
  const { run, steps } = await api("/api/runs/" + encodeURIComponent(id));
  steps.sort((a, b) => a.started_at - b.started_at);
  const out = [el("h1", {}, `Run ${run.run_id} `, badge(run.status)),
    el("p", {}, `${run.trigger} · started ${when(run.started_at)} · ${span(run.duration_ms)} · ${run.steps} steps`,
      run.status === "failed" ? [" ", await retryButton(run.run_id)] : null),
    el("h2", { text: "Steps over time" }), gantt(steps),
    el("h2", { text: "Steps" }),
    table("steps", ["asset", "outcome", "try", "partitions", "rows", "bytes written", "bytes read", "CPU", "peak memory", "duration"],
      steps.map((s) => [assetLink(s.asset), el("span", { class: "badge " + (s.outcome === "failed" || s.outcome === "skipped" ? "failed" : "ok"), text: s.outcome }),
        numCell(s.attempt), `${s.partition_from || "-"}..${s.partition_to || "-"} (${s.partitions})`, numCell(s.rows), numCell(bytes(s.bytes)),
        numCell(bytes(s.bytes_read)), numCell(span(s.cpu_ms)), numCell(bytes(s.peak_memory_bytes)), numCell(span(s.duration_ms))]))];
  const errors = steps.filter((s) => s.error);
  if (errors.length) {
    out.push(el("h2", { text: "Errors" }));
    for (const s of errors) out.push(el("h3", {}, assetLink(s.asset), ` (try ${s.attempt})`), el("pre", { class: "error", text: s.error }));
  }
  return out;
}

// ---- schedules, sensors, SLAs, alerts --------------------------------------------
async function schedulesPage() {
  const [jobs, ticks, sensors, slas, alerts] = await Promise.all([
    api("/api/jobs"), api("/api/ticks?limit=50"), api("/api/sensors"), api("/api/slas"), api("/api/alerts")]);
  const launch = (name) => {
    const b = el("button", { class: "action", id: "launch-" + name, text: "Launch", disabled: !canAct(), title: canAct() ? "" : "log in to act",
      onclick: async () => {
        b.disabled = true;
        try { await post("/api/jobs/" + encodeURIComponent(name) + "/launch"); b.textContent = "Started"; }
        catch (e) { b.textContent = e.message; }
      } });
    return b;
  };
  return [
    el("h1", { text: "Schedules & alerts" }),
    el("h2", { text: "Jobs" }),
    table("jobs", ["job", "description", "select", "partitions", "schedule", "next", ""], jobs.map((j) => [
      j.name, j.description || "-", j.select.join(" "), j.partitions,
      j.cron ? `${j.cron} (${j.timezone}, catch up ${j.catch_up})` : "no schedule", j.next || "-", launch(j.name)])),
    el("h2", { text: "Recent tick decisions" }),
    ticks.length ? table("ticks", ["tick", "job", "occurrence", "action", "run", "result"], ticks.map((t) => [
      t.tick_at, t.job, t.scheduled_for || "-", t.action, t.run_id ? runLink(t.run_id) : "-",
      t.ok === undefined || t.ok === null ? (t.error || "-") : t.ok ? badge("ok") : el("span", {}, badge("failed"), " ", t.error || "")]))
      : el("p", { class: "muted", text: "No tick yet (lakebuild tick, from cron)." }),
    el("h2", { text: "Sensors (cursors)" }),
    Object.keys(sensors).length ? table("sensors", ["sensor", "cursor"], Object.entries(sensors).map(([k, v]) => [k, v]))
      : el("p", { class: "muted", text: "No sensor has fired yet." }),
    el("h2", { text: "SLAs" }),
    slas.evaluated.length ? table("slas", ["asset", "state", "breaches"], slas.evaluated.map((a) => {
      const b = slas.breaches.filter((x) => x.asset === a);
      return [assetLink(a), badge(b.length ? "failed" : "ok"), b.map((x) => `${x.kind}: ${x.detail}`).join("; ") || "-"];
    })) : el("p", { class: "muted", text: "No asset has an [sla]." }),
    el("h2", { text: "Open alerts" }),
    alerts.length ? table("alerts", ["since", "kind", "asset", "check", "detail", "run"], alerts.map((a) => [
      a.since, String(a.kind), assetLink(a.asset), a.check || "-", el("pre", { class: "detail", text: a.detail }), runLink(a.run_id)]))
      : el("p", { class: "muted", text: "Nothing open." })];
}

// ---- models ----------------------------------------------------------------------------
function lineChart(title, points, series) {
  const W = 460, H = 190, P = 34;
  const xs = points.map((p) => Date.parse(p.date));
  const vals = points.flatMap((p) => series.map((s) => p[s.key])).filter((v) => v !== null && v !== undefined);
  const m = Math.max(0.02, ...vals.map(Math.abs));
  const x0 = Math.min(...xs), x1 = Math.max(...xs, x0 + 1);
  const X = (t) => P + ((t - x0) / (x1 - x0)) * (W - P - 8), Y = (v) => H / 2 - (v / m) * (H / 2 - 16);
  const svg = svgEl("svg", { class: "chart", width: W, height: H + 18, "data-title": title },
    svgEl("text", { x: P, y: 12, "font-weight": "600", text: title }),
    svgEl("line", { x1: P, x2: W - 8, y1: Y(0), y2: Y(0), stroke: "#bdc1c6" }),
    svgEl("text", { x: 0, y: Y(m) + 4, fill: "#5f6368", text: m.toFixed(2) }),
    svgEl("text", { x: 0, y: Y(-m) + 4, fill: "#5f6368", text: (-m).toFixed(2) }),
    svgEl("text", { x: P, y: H + 14, fill: "#5f6368", text: points.length ? points[0].date : "" }),
    svgEl("text", { x: W - 80, y: H + 14, fill: "#5f6368", text: points.length ? points[points.length - 1].date : "" }));
  series.forEach((s, k) => {
    let d = "";
    points.forEach((p, i) => { const v = p[s.key]; if (v === null || v === undefined) return; d += (d ? "L" : "M") + X(xs[i]).toFixed(1) + "," + Y(v).toFixed(1); });
    svg.append(svgEl("path", { d, fill: "none", stroke: s.color, "stroke-width": 1.5 }),
      svgEl("text", { x: W - 150, y: 12 + 14 * k, fill: s.color, text: s.label }));
  });
  return svg;
}

async function modelsPage() {
  const out = [el("h1", { text: "Models" })];
  let versions = [];
  try { versions = await api("/api/models"); } catch (e) { out.push(el("p", { class: "muted", text: e.message })); }
  if (versions.length) {
    out.push(el("h2", { text: "Versions of trained_model" }), table("versions",
      ["version", "committed", "model id", "trained to", "CV RankIC", "aliases", ""],
      versions.slice().reverse().map((v) => [String(v.version), v.committed || "-", short(v.model_id), v.train_last || "-",
        numCell(num(v.cv_rank_ic)), v.aliases.join(", ") || "-", v.current ? badge("fresh") : v.unreadable || ""])));
    const cur = versions.find((v) => v.current) || versions[versions.length - 1];
    if (cur && cur.folds.length) {
      const hs = cur.folds[0].horizons.map((h) => h.horizon);
      out.push(el("h2", { text: `CV RankIC per fold and horizon (version ${cur.version})` }), table("folds",
        ["fold", "validation", ...hs], cur.folds.map((f) => [String(f.fold), `${f.valid_first}..${f.valid_last}`,
          ...hs.map((h) => numCell(num((f.horizons.find((x) => x.horizon === h) || {}).rank_ic)))])));
    }
  }
  let perf = [];
  try { perf = await api("/api/performance"); } catch (e) { out.push(el("p", { class: "muted", text: e.message })); }
  if (perf.length) {
    const horizons = [...new Set(perf.map((p) => p.horizon))];
    out.push(el("h2", { text: "Live rolling IC / RankIC (prediction_performance)" }),
      el("div", { class: "grid", id: "performance" }, horizons.map((h) => lineChart(h, perf.filter((p) => p.horizon === h), [
        { key: "rank_ic_20d", label: "RankIC 20d", color: "#1a73e8" },
        { key: "rank_ic_60d", label: "RankIC 60d", color: "#d93025" },
        { key: "ic_60d", label: "IC 60d", color: "#188038" }]))));
  }
  const aliased = (name) => versions.some((v) => v.aliases.includes(name));
  if (aliased("production") && aliased("challenger")) {
    try {
      const c = await api("/api/compare?a=production&b=challenger");
      out.push(el("h2", { text: "Champion (production) vs challenger, days out of sample for both" }), table("comparison",
        ["horizon", "days", "RankIC production", "RankIC challenger", "difference", "Newey–West SE", "t", "p (challenger better)"],
        c.horizons.map((h) => [h.horizon, numCell(h.days), numCell(num(h.a.rank_ic)), numCell(num(h.b.rank_ic)), numCell(num(h.diff)),
          numCell(num(h.hac_se)), numCell(num(h.t, 2)), numCell(num(h.p_b_better, 3))])));
    } catch (e) { out.push(el("p", { class: "muted", text: "comparison: " + e.message })); }
  }
  const tuning = await api("/api/tuning").catch(() => ({ trials: [], models: [] }));
  if (tuning.trials.length) {
    const byRun = Object.fromEntries(tuning.models.map((m) => [m.run_id, m]));
    out.push(el("h2", { text: "Tuning trials (lakebuild tune)" }), table("tuning",
      ["trial", "outcome", "started", "duration", "CV RankIC", "model id", "run"],
      tuning.trials.map((t) => {
        const m = byRun[t.run_id] || {};
        return [t.trigger.replace(/^tune:/, ""), t.outcome, when(t.started_at), span(t.duration_ms), numCell(num(m.cv_rank_ic)), short(m.model_id), runLink(t.run_id)];
      })));
  }
  const [moves, decisions] = await Promise.all([api("/api/models/history").catch(() => []), api("/api/promotions").catch(() => [])]);
  out.push(el("h2", { text: "Alias moves" }), moves.length ? table("aliases", ["when", "asset", "alias", "from", "to", "by"],
    moves.map((m) => [m.at || m.when || "-", m.asset, m.alias, m.from ?? "-", m.to ?? "-", m.by || "-"].map(String)))
    : el("p", { class: "muted", text: "No alias moved yet." }));
  out.push(el("h2", { text: "Promotion decisions" }), decisions.length ? table("promotions",
    ["at", "action", "champion", "challenger", "then champion", "then challenger", "days", "reason"],
    decisions.slice().reverse().map((d) => [d.at, d.action, d.champion ?? "-", d.challenger ?? "-", d.then_champion ?? "-", d.then_challenger ?? "-", d.days, d.reason].map(String)))
    : el("p", { class: "muted", text: "The promotion policy has decided nothing yet." }));
  return out;
}

// ---- routing -------------------------------------------------------------------------
function route() {
  const h = location.hash.replace(/^#/, "") || "/";
  const [path, query] = h.split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  const params = new URLSearchParams(query || "");
  if (parts[0] === "asset" && parts[1]) return { page: "asset", arg: parts[1], nav: "graph" };
  if (parts[0] === "run" && parts[1]) return { page: "run", arg: parts[1], nav: "runs" };
  if (["runs", "schedules", "models"].includes(parts[0])) return { page: parts[0], nav: parts[0] };
  return { page: "graph", params, nav: "graph" };
}

// Only the latest navigation's page is shown: a slow page that finishes after the user
// moved on is dropped.
let generation = 0;

async function render() {
  const mine = ++generation;
  const r = route();
  for (const a of document.querySelectorAll("[data-nav]")) a.classList.toggle("active", a.dataset.nav === r.nav);
  let nodes;
  try {
    if (r.page === "asset") nodes = await assetPage(r.arg);
    else if (r.page === "run") nodes = await runPage(r.arg);
    else if (r.page === "runs") nodes = await runsPage();
    else if (r.page === "schedules") nodes = await schedulesPage();
    else if (r.page === "models") nodes = await modelsPage();
    else nodes = await graphPage(r.params);
  } catch (e) {
    nodes = [el("pre", { class: "error", text: e.message })];
  }
  if (mine !== generation) return;
  main.replaceChildren(...nodes);
  document.body.dataset.page = r.page;
}

async function start() {
  try { session = await api("/api/session"); } catch (_) { /* read-only */ }
  const s = document.getElementById("session");
  if (session.actions && session.authenticated) {
    s.append("logged in · ", el("form", { method: "post", action: "/logout", class: "inline" }, el("button", { type: "submit", text: "Log out" })));
  } else if (session.actions) {
    s.append(el("a", { href: "/login", id: "login-link", text: "Log in to act" }));
  } else {
    s.append("read-only");
  }
  window.addEventListener("hashchange", render);
  await pollLive();
  await render();
  setInterval(pollLive, 1500);
}

start();
