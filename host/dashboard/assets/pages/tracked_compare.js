// Any runs of the tracking model side by side, whatever logged them: runs
// of an MLflow client, pipeline runs and step runs (one model, so the same
// shape). Runs are picked on the experiments pages (a basket kept for the
// browser tab, so runs of different experiments can be picked); this page
// shows their params and latest metrics (rows that differ are marked) and
// any metric's histories overlaid. Read through the MLflow API.

import { mlflow } from "../api.js";
import { h, mount, table, badge, num, short } from "../dom.js";
import { link, setQuery } from "../nav.js";
import { lineChart } from "../chart.js";
import { rowsOf } from "./compare.js";

const BASKET = "weft.compare";
const MAX_RUNS = 20;

/** The run ids picked for comparison. */
export function picked() {
  try {
    const ids = JSON.parse(sessionStorage.getItem(BASKET) || "[]");
    return Array.isArray(ids) ? ids.filter((id) => typeof id === "string").slice(0, MAX_RUNS) : [];
  } catch {
    return [];
  }
}

function setPicked(ids) {
  sessionStorage.setItem(BASKET, JSON.stringify(ids.slice(0, MAX_RUNS)));
}

/** The page-head link to the comparison of what is picked. */
export function compareLink() {
  const a = h("a", { class: "button", "data-compare": "" });
  const update = () => {
    const ids = picked();
    a.textContent = `Compare (${ids.length})`;
    a.href = link(["experiments", "compare"], { runs: ids.join(",") });
    a.classList.toggle("disabled", ids.length < 2);
  };
  update();
  a.refresh = update;
  return a;
}

/** A tick box that puts a run in the basket or takes it out. */
export function pickBox(runId, headLink) {
  return h("input", {
    type: "checkbox", "data-pick": runId, "aria-label": "compare", checked: picked().includes(runId) ? "" : null,
    onchange: (e) => {
      const ids = picked().filter((id) => id !== runId);
      if (e.target.checked) ids.push(runId);
      setPicked(ids);
      headLink.refresh();
    },
  });
}

/** A run's name as this page shows it: a step run names its pipeline run. */
async function label(run) {
  const tags = new Map((run.data.tags || []).map((t) => [t.key, t.value]));
  const name = run.info.run_name || short(run.info.run_id);
  const parent = tags.get("mlflow.parentRunId");
  if (!parent || !tags.has("weft.step")) return name;
  try {
    const { run: p } = await mlflow.get("runs/get", { run_id: parent });
    return `${p.info.run_name} · ${name}`;
  } catch {
    return name;
  }
}

export async function render(view, query, current) {
  const ids = (query.get("runs") || "").split(",").map((s) => s.trim()).filter(Boolean).slice(0, MAX_RUNS);
  if (ids.length < 2) {
    mount(view, h("h1", {}, "Compare runs"),
      h("p", {}, "Tick two or more runs on the ", h("a", { href: "#/experiments" }, "experiments"),
        " pages (client-logged runs, pipeline runs and their steps, from any experiments), then Compare."));
    return;
  }
  const runs = await Promise.all(ids.map(async (id) => {
    const { run } = await mlflow.get("runs/get", { run_id: id });
    return { run, name: await label(run) };
  }));
  const metricKeys = [...new Set(runs.flatMap((r) => (r.run.data.metrics || []).map((m) => m.key)))].sort();
  const key = metricKeys.includes(query.get("key")) ? query.get("key") : metricKeys[0];
  const histories = key ? await Promise.all(runs.map((r) =>
    mlflow.get("metrics/get-history", { run_id: r.run.info.run_id, metric_key: key, max_results: 1000 }))) : [];
  if (!current()) return;

  const header = () => ["", ...runs.map((r) => h("a", {
    href: link(["experiments", r.run.info.experiment_id, "runs", r.run.info.run_id]),
  }, r.name, " ", badge(r.run.info.status)))];
  const params = rowsOf(runs, (r) => new Map((r.run.data.params || []).map((p) => [p.key, p.value])));
  const metrics = rowsOf(runs, (r) => new Map((r.run.data.metrics || []).map((m) => [m.key, typeof m.value === "number" ? num(m.value) : String(m.value)])));
  const series = runs.map((r, i) => ({
    label: r.name,
    points: (histories[i]?.metrics || []).map((p) => [Number(p.step), typeof p.value === "number" ? p.value : null]),
  })).map((s) => ({ ...s, total: s.points.length }));

  mount(view,
    h("div", { class: "page-head" }, h("h1", {}, `Compare ${runs.length} runs`),
      h("a", { class: "button", href: "#/experiments" }, "← Experiments")),
    h("h2", {}, "Metric histories"),
    key
      ? [h("div", { class: "filters" }, h("select", { "aria-label": "metric", onchange: (e) => setQuery({ key: e.target.value }) },
          metricKeys.map((k) => h("option", { value: k, selected: k === key }, k)))),
        lineChart(series, { title: key, width: 820 })]
      : h("p", { class: "muted" }, "None of these runs logged a metric."),
    h("h2", {}, "Params"),
    table(header(), params, { class: "grid compare", empty: "No params." }),
    h("h2", {}, "Latest metrics"),
    table(header(), metrics, { class: "grid compare", empty: "No metrics." }));
}
