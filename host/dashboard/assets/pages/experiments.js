// Experiments and the runs any MLflow client logged in them: the list of
// experiments (deleted ones on request, restorable), an experiment's runs
// and traces, and a run with its params, metrics (charted), tags, dataset
// inputs and artifacts. Read through the MLflow API the server serves.
// A trace's page is in traces.js.

import { mlflow } from "../api.js";
import { h, mount, table, when, badge, num, short } from "../dom.js";
import { link, setQuery } from "../nav.js";
import { lineChart } from "../chart.js";
import * as traces from "./traces.js";
import * as tracked from "./tracked_compare.js";

export async function render(view, parts, query, current) {
  if (parts[0] === "compare") return tracked.render(view, query, current);
  if (parts[0] && parts[1] === "runs" && parts[2]) return run(view, parts[0], parts[2], current);
  if (parts[0] && parts[1] === "traces" && parts[2]) return traces.render(view, parts[0], parts[2], current);
  if (parts[0]) return runs(view, parts[0], query, current);
  return list(view, query, current);
}

const deletedToggle = (query) => h("label", { class: "toggle" },
  h("input", {
    type: "checkbox", "data-show-deleted": "", checked: query.get("deleted") === "1" ? "" : null,
    onchange: (e) => setQuery({ deleted: e.target.checked ? "1" : "" }),
  }), " show deleted");

async function list(view, query, current) {
  const deleted = query.get("deleted") === "1";
  const { experiments = [] } = await mlflow.get("experiments/search", {
    max_results: 1000, view_type: deleted ? "ALL" : "ACTIVE_ONLY", order_by: "name",
  });
  if (!current()) return;
  mount(view,
    h("div", { class: "page-head" }, h("h1", {}, "Experiments"), deletedToggle(query)),
    h("p", { class: "muted" }, "Every experiment of this server: pipelines, and runs logged by any MLflow client."),
    table(["Experiment", "Id", "State", "Created", "Tags", ""], experiments.map((e) => h("tr", { "data-experiment": e.name },
      h("td", {}, h("a", { href: link(["experiments", e.experiment_id]) }, e.name)),
      h("td", { class: "num" }, e.experiment_id),
      h("td", {}, e.lifecycle_stage === "deleted" ? badge("FAILED", "deleted") : "active"),
      h("td", {}, when(Number(e.creation_time))),
      h("td", {}, (e.tags || []).filter((t) => !t.key.startsWith("mlflow.")).map((t) => h("span", { class: "tag" }, `${t.key}=${t.value}`))),
      h("td", {}, e.lifecycle_stage === "deleted"
        ? h("button", { "data-restore": e.experiment_id, onclick: () => restore("experiments/restore", { experiment_id: e.experiment_id }) }, "Restore")
        : null))),
    { empty: "No experiment yet." }));
}

async function runs(view, id, query, current) {
  const deleted = query.get("deleted") === "1";
  const [{ experiment }, { runs = [] }, traceSection] = await Promise.all([
    mlflow.get("experiments/get", { experiment_id: id }),
    mlflow.post("runs/search", {
      experiment_ids: [id], max_results: 500, order_by: ["attributes.start_time DESC"],
      run_view_type: deleted ? "ALL" : "ACTIVE_ONLY",
    }),
    traces.section(id),
  ]);
  if (!current()) return;
  const metricKeys = [...new Set(runs.flatMap((r) => (r.data.metrics || []).map((m) => m.key)))].sort().slice(0, 6);
  const paramKeys = [...new Set(runs.flatMap((r) => (r.data.params || []).map((p) => p.key)))].sort().slice(0, 6);
  const compare = tracked.compareLink();
  mount(view,
    h("div", { class: "page-head" }, h("h1", {}, experiment.name), deletedToggle(query), compare,
      h("a", { class: "button", href: "#/experiments" }, "← Experiments")),
    h("h2", {}, `Runs (${runs.length})`),
    table(["", "Run", "Status", "Started", "Duration", ...paramKeys, ...metricKeys, ""], runs.map((r) => {
      const params = new Map((r.data.params || []).map((p) => [p.key, p.value]));
      const metrics = new Map((r.data.metrics || []).map((m) => [m.key, m.value]));
      const info = r.info;
      return h("tr", { "data-run": info.run_name },
        h("td", {}, tracked.pickBox(info.run_id, compare)),
        h("td", {}, h("a", { href: link(["experiments", id, "runs", info.run_id]) }, info.run_name || short(info.run_id))),
        h("td", {}, info.lifecycle_stage === "deleted" ? badge("FAILED", "deleted") : badge(info.status)),
        h("td", {}, when(Number(info.start_time))),
        h("td", { class: "num" }, info.end_time ? `${((info.end_time - info.start_time) / 1000).toFixed(1)} s` : "—"),
        ...paramKeys.map((k) => h("td", {}, params.get(k) ?? "")),
        ...metricKeys.map((k) => h("td", { class: "num" }, metrics.has(k) ? num(Number(metrics.get(k))) : "")),
        h("td", {}, info.lifecycle_stage === "deleted"
          ? h("button", { "data-restore": info.run_id, onclick: () => restore("runs/restore", { run_id: info.run_id }) }, "Restore")
          : null));
    }), { empty: "No run in this experiment." }),
    traceSection);
}

async function run(view, experimentId, runId, current) {
  const { run } = await mlflow.get("runs/get", { run_id: runId });
  const info = run.info;
  const metrics = run.data.metrics || [];
  const histories = await Promise.all(metrics.map((m) =>
    mlflow.get("metrics/get-history", { run_id: runId, metric_key: m.key, max_results: 1000 })));
  const artifactRoot = info.artifact_uri.replace(/^mlflow-artifacts:\//, "");
  let files = [];
  try {
    files = (await mlflow.artifacts(artifactRoot)).files || [];
  } catch { /* no artifacts */ }
  if (!current()) return;
  const tags = (run.data.tags || []).filter((t) => !t.key.startsWith("mlflow."));
  const inputs = run.inputs?.dataset_inputs || [];
  mount(view,
    h("div", { class: "page-head" }, h("h1", {}, info.run_name || short(info.run_id)),
      h("a", { class: "button", href: link(["experiments", experimentId]) }, "← Runs")),
    h("dl", { class: "facts" },
      h("dt", {}, "Status"), h("dd", {}, badge(info.status)),
      h("dt", {}, "Run id"), h("dd", {}, h("code", {}, info.run_id)),
      h("dt", {}, "Started"), h("dd", {}, when(Number(info.start_time))),
      h("dt", {}, "User"), h("dd", {}, info.user_id || "—")),
    h("h2", {}, "Params"),
    table(["Param", "Value"], (run.data.params || []).map((p) => h("tr", { "data-param": p.key },
      h("td", {}, p.key), h("td", {}, p.value))), { empty: "No params." }),
    h("h2", {}, "Metrics"),
    table(["Metric", "Latest", "Step"], metrics.map((m) => h("tr", { "data-metric": m.key },
      h("td", {}, m.key), h("td", { class: "num" }, num(Number(m.value))), h("td", { class: "num" }, m.step))),
    { empty: "No metrics." }),
    h("div", { class: "charts" }, metrics.map((m, i) => {
      const points = (histories[i].metrics || []).map((p) => [Number(p.step), typeof p.value === "number" ? p.value : null]);
      return lineChart([{ label: m.key, points, total: points.length }], { title: m.key });
    })),
    h("h2", {}, "Tags"),
    table(["Tag", "Value"], tags.map((t) => h("tr", { "data-tag": t.key }, h("td", {}, t.key), h("td", {}, t.value))),
      { empty: "No tags." }),
    inputs.length ? [h("h2", {}, "Datasets"),
      table(["Dataset", "Digest", "Source", "Context"], inputs.map((d) => h("tr", { "data-dataset": d.dataset.name },
        h("td", {}, d.dataset.name), h("td", {}, h("code", {}, d.dataset.digest)),
        h("td", {}, h("code", {}, d.dataset.source)),
        h("td", {}, (d.tags || []).find((t) => t.key === "mlflow.data.context")?.value || ""))))] : null,
    h("h2", {}, "Artifacts"),
    table(["Path", "Size"], files.map((f) => h("tr", { "data-artifact": f.path },
      h("td", {}, f.is_dir ? `${f.path}/` : h("a", { href: `/api/2.0/mlflow-artifacts/artifacts/${artifactRoot}/${f.path}`, download: "" }, f.path)),
      h("td", { class: "num" }, f.file_size ?? ""))), { empty: "No artifacts." }));
}

async function restore(path, body) {
  await mlflow.post(path, body);
  window.dispatchEvent(new HashChangeEvent("hashchange"));
}
