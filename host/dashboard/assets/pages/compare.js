// Runs side by side: their params and final metrics in one table (rows
// that differ are marked), and any metric's histories overlaid.

import { api } from "../api.js";
import { h, mount, table, badge, num } from "../dom.js";
import { lineChart } from "../chart.js";
import { setQuery } from "../nav.js";

export async function render(view, _parts, query, current) {
  const ids = (query.get("runs") || "").split(",").map((s) => s.trim()).filter(Boolean).slice(0, 20);
  if (!ids.length) {
    mount(view, h("h1", {}, "Compare runs"), h("p", {}, "Tick two or more runs in the ", h("a", { href: "#/runs" }, "runs list"), " to compare them."));
    return;
  }
  const runs = await Promise.all(ids.map(async (id) => {
    const [detail, metrics] = await Promise.all([api.run(id), api.metrics(id)]);
    return { detail, metrics: metrics.metrics, name: `${detail.run.pipeline} #${detail.run.number}` };
  }));
  const historyKeys = [...new Set(runs.flatMap((r) => r.metrics.filter((m) => m.count > 1).map((m) => m.key)))].sort();
  const key = query.get("key") && historyKeys.includes(query.get("key")) ? query.get("key") : historyKeys[0];
  const overlay = key ? await overlayChart(runs, key) : null;
  if (!current()) return;

  const paramRows = rowsOf(runs, (r) => {
    const out = new Map();
    for (const st of r.detail.manifest?.steps || []) {
      for (const [k, v] of Object.entries(st.params || {})) out.set(`${st.name}.${k}`, JSON.stringify(v));
    }
    const names = stepNames(r.detail);
    for (const p of r.detail.params) out.set(`${names.get(p.step_run_id) || "?"}.${p.key}`, p.value);
    return out;
  });
  const metricRows = rowsOf(runs, (r) => new Map(r.metrics.map((m) => [`${m.step}.${m.key}`, num(m.last)])));
  // A function: a DOM node can sit in one table only.
  const header = () => ["", ...runs.map((r) => h("a", { href: `#/runs/${r.detail.run.id}` }, r.name, " ", badge(r.detail.run.status)))];

  mount(view,
    h("div", { class: "page-head" }, h("h1", {}, `Compare ${runs.length} run${runs.length > 1 ? "s" : ""}`), h("a", { class: "button", href: "#/runs" }, "← Runs")),
    h("h2", {}, "Metric histories"),
    historyKeys.length
      ? [h("div", { class: "filters" }, h("select", { "aria-label": "metric", onchange: (e) => setQuery({ key: e.target.value }) },
          historyKeys.map((k) => h("option", { value: k, selected: k === key }, k)))), overlay]
      : h("p", { class: "muted" }, "None of these runs logged a metric more than once."),
    h("h2", {}, "Params"),
    table(header(), paramRows, { class: "grid compare", empty: "No params." }),
    h("h2", {}, "Final metrics"),
    table(header(), metricRows, { class: "grid compare", empty: "No metrics." }));
}

async function overlayChart(runs, key) {
  const results = await Promise.all(runs.map((r) => api.series(r.detail.run.id, key).then((s) => ({ r, s }))));
  const series = results.flatMap(({ r, s }) => s.series.map((ser) => ({ label: `${r.name} · ${ser.step}`, points: ser.points, total: ser.total })));
  return lineChart(series, { title: key, width: 820 });
}

/** One row per key any run has; differing rows are marked. */
export function rowsOf(runs, valuesOf) {
  const maps = runs.map(valuesOf);
  const keys = [...new Set(maps.flatMap((m) => [...m.keys()]))].sort();
  return keys.map((k) => {
    const values = maps.map((m) => m.get(k));
    const differs = new Set(values.map((v) => v ?? "")).size > 1;
    return h("tr", { class: differs ? "differs" : "", "data-row": k }, h("th", { scope: "row" }, k),
      values.map((v) => h("td", { class: "num" }, v ?? "—")));
  });
}

function stepNames(detail) {
  const names = new Map();
  for (const s of detail.steps) names.set(s.cached_from || s.id, s.step_name);
  return names;
}
