// One run: its DAG with each step's state, the selected step's logs and
// artifacts, params, metrics with charts, tags. Refreshed every second
// while the run goes on.

import { api } from "../api.js";
import { h, mount, table, badge, duration, when, num, short, bytes } from "../dom.js";
import { dag } from "../graph.js";
import { lineChart } from "../chart.js";
import { link } from "../nav.js";

const LIVE = new Set(["running", "pending"]);
const MAX_CHARTS = 12;

export async function render(view, [id], query, current) {
  let timer = null;
  let stopped = false;
  const draw = async () => {
    const [detail, summaries] = await Promise.all([api.run(id), api.metrics(id)]);
    const stepName = query.get("step") || null;
    const [step, logs] = stepName
      ? await Promise.all([api.step(id, stepName).catch(() => null), api.logs(id, stepName).catch(() => "")])
      : [null, null];
    const charts = await chartsFor(id, summaries.metrics);
    if (stopped || !current()) return;
    const scroll = window.scrollY;
    mount(view, page(detail, summaries.metrics, stepName, step, logs, charts));
    window.scrollTo(0, scroll);
    const live = LIVE.has(detail.run.status) || detail.steps.some((s) => LIVE.has(s.status));
    if (live) timer = setTimeout(() => draw().catch(() => { timer = setTimeout(draw, 2000); }), 1000);
  };
  await draw();
  return () => { stopped = true; clearTimeout(timer); };
}

/** Charts of every metric logged more than once (step-indexed histories). */
async function chartsFor(runId, metrics) {
  const keys = [...new Set(metrics.filter((m) => m.count > 1).map((m) => m.key))].slice(0, MAX_CHARTS);
  const all = await Promise.all(keys.map((key) => api.series(runId, key)));
  return all.map((r) => lineChart(r.series.map((s) => ({ label: s.step, points: s.points, total: s.total })), { title: r.key }));
}

function page(detail, metrics, stepName, step, logs, charts) {
  const { run } = detail;
  const elapsed = (run.ended_at || Date.now()) - run.started_at;
  const cached = detail.steps.filter((s) => s.status === "cached").length;
  return [
    h("div", { class: "page-head" },
      h("h1", {}, `${run.pipeline} #${run.number}`, " ", badge(run.status)),
      h("a", { class: "button", href: `#/compare?runs=${run.id}` }, "Compare…")),
    h("dl", { class: "facts" },
      fact("Run", h("code", {}, run.id)),
      fact("Started", when(run.started_at)),
      fact("Duration", duration(elapsed) + (run.ended_at ? "" : " so far")),
      fact("Steps", `${detail.steps.length} (${cached} cached)`),
      run.error ? fact("Error", h("span", { class: "error" }, run.error)) : null),
    h("h2", {}, "Pipeline"),
    pipelineGraph(detail, stepName),
    stepName ? stepPanel(detail, stepName, step, logs) : h("p", { class: "muted" }, "Click a step to see its logs, params and artifacts."),
    detail.inputs.length ? [h("h2", {}, "Source data"), table(["Input", "Artifact", "Size"], detail.inputs.map((i) => h("tr", {},
      h("td", {}, i.slot), h("td", {}, h("a", { href: `#/artifacts/${i.id}` }, `${i.name} v${i.version}`)), h("td", { class: "num" }, bytes(i.size)))))] : null,
    h("h2", {}, "Metrics"),
    charts.length ? h("div", { class: "charts" }, charts) : null,
    table(["Step", "Key", "Final", "Min", "Max", "Points"], metrics.map((m) => h("tr", {},
      h("td", {}, m.step), h("td", {}, m.key), h("td", { class: "num" }, num(m.last)), h("td", { class: "num" }, num(m.min)),
      h("td", { class: "num" }, num(m.max)), h("td", { class: "num" }, num(m.count)))), { empty: "No metric logged." }),
    h("h2", {}, "Params"),
    paramTable(detail),
    h("h2", {}, "Tags"),
    kvTable(detail, detail.tags, "No tag."),
    detail.metadata.length ? [h("h2", {}, "Metadata"), kvTable(detail, detail.metadata, "")] : null,
    detail.plugin_calls.length ? [h("h2", {}, "Plugins"), pluginTable(detail.plugin_calls)] : null,
    detail.verifications.length ? [h("h2", {}, "Verifications"), verificationTable(detail.verifications)] : null,
  ];
}

function fact(label, value) {
  return [h("dt", {}, label), h("dd", {}, value)];
}

function pipelineGraph(detail, selectedStep) {
  const runId = detail.run.id;
  const byName = new Map(detail.steps.map((s) => [s.step_name, s]));
  const manifest = detail.manifest && Array.isArray(detail.manifest.steps) ? detail.manifest : { inputs: [], steps: detail.steps.map((s) => ({ name: s.step_name, inputs: {} })) };
  const nodes = [];
  const edges = [];
  for (const input of manifest.inputs || []) {
    nodes.push({ id: `inputs.${input.name}`, label: input.name, sub: "source data", kind: "data", title: input.path });
  }
  for (const st of manifest.steps) {
    const run = byName.get(st.name);
    const state = run ? run.status : "pending";
    const took = run && run.started_at ? duration((run.ended_at || Date.now()) - run.started_at) : "";
    nodes.push({
      id: st.name, label: st.name, kind: "step", state, selected: st.name === selectedStep,
      sub: [state, took, run && run.attempts > 1 ? `${run.attempts} attempts` : ""].filter(Boolean).join(" · "),
      href: link(["runs", runId], { step: st.name }),
      title: run && run.error ? `${st.name}: ${run.error}` : st.name,
    });
    for (const source of Object.values(st.inputs || {})) {
      const [from, output] = source.split(".");
      edges.push([from === "inputs" ? `inputs.${output}` : from, st.name]);
    }
  }
  return dag(nodes, edges, { label: `pipeline ${detail.run.pipeline}` });
}

function stepPanel(detail, name, step, logs) {
  if (!step) return h("section", { class: "panel" }, h("p", { class: "error" }, `No step '${name}' in this run.`));
  const s = step.step;
  let params = {};
  try { params = JSON.parse(s.params); } catch { /* shown raw below */ }
  const artifactRows = (links) => links.map((l) => h("tr", {},
    h("td", {}, l.slot), h("td", {}, h("a", { href: `#/artifacts/${l.id}` }, `${l.name} v${l.version}`)),
    h("td", {}, l.media_type), h("td", { class: "num" }, bytes(l.size))));
  return h("section", { class: "panel step-panel", "data-step": name },
    h("h3", {}, `Step ${name} `, badge(s.status)),
    h("dl", { class: "facts" },
      fact("Started", when(s.started_at)),
      fact("Duration", s.started_at ? duration((s.ended_at || Date.now()) - s.started_at) : "—"),
      fact("Attempts", s.attempts),
      s.cached_from ? fact("Served from", h("span", {}, "the cache (step run ", h("code", {}, short(s.cached_from)), ")")) : null,
      s.determinism === "real" ? fact("Determinism", "nondeterministic: real time and randomness, never cached") : null,
      s.origin !== "local" ? fact("Origin", `${s.origin} (serves the cache once verified here)`) : null,
      lastVerification(detail, s.id),
      s.component_digest ? fact("Component", h("code", {}, short(s.component_digest.replace(/^blake3:/, "")))) : null,
      s.error ? fact("Error", h("span", { class: "error" }, s.error)) : null),
    Object.keys(params).length ? table(["Param", "Value"], Object.entries(params).map(([k, v]) => h("tr", {}, h("td", {}, k), h("td", {}, JSON.stringify(v))))) : null,
    step.inputs.length ? [h("h4", {}, "Read"), table(["Input", "Artifact", "Type", "Size"], artifactRows(step.inputs))] : null,
    step.outputs.length ? [h("h4", {}, "Wrote"), table(["Output", "Artifact", "Type", "Size"], artifactRows(step.outputs))] : null,
    h("h4", {}, "Logs"),
    h("pre", { class: "logs" }, logs || "(no output)"));
}

/** The newest `weft verify` of a step run, as a fact. */
function lastVerification(detail, stepRunId) {
  const v = detail.verifications.filter((x) => x.step_run_id === stepRunId).pop();
  if (!v) return null;
  return fact("Verified", h("span", {}, badge(verifyState(v.outcome), v.outcome), " ", when(v.verified_at)));
}

function verifyState(outcome) {
  return outcome === "match" ? "succeeded" : "failed";
}

/** Re-executions by `weft verify`: each step's outcome and any output that differed. */
function verificationTable(verifications) {
  return table(["When", "Step", "Outcome", "Outputs", "Details"], verifications.map((v) => h("tr", { "data-verification": v.step },
    h("td", {}, when(v.verified_at)), h("td", {}, v.step),
    h("td", {}, badge(verifyState(v.outcome), v.outcome)),
    h("td", {}, v.outputs.map((o) => h("div", { class: o.now === o.recorded ? "" : "error" },
      `${o.name}: ${short(o.recorded)}${o.now === o.recorded ? "" : ` → ${o.now ? short(o.now) : "nothing"}`}`))),
    h("td", {}, v.message ? h("span", { class: v.outcome === "match" ? "muted" : "error" }, v.message) : null))));
}

/** Gates, hooks and tracker sinks called for the run, with any refusal. */
function pluginTable(calls) {
  const ok = new Set(["ok", "passed"]);
  return table(["Why", "Plugin", "Outcome", "Took", "Details"], calls.map((c) => h("tr", { "data-plugin": c.plugin },
    h("td", {}, c.purpose), h("td", {}, c.plugin),
    h("td", {}, h("span", { class: `badge ${ok.has(c.outcome) ? "st-succeeded" : "st-failed"}` }, c.outcome)),
    h("td", { class: "num" }, duration(c.duration_ms)),
    h("td", {}, c.message ? h("pre", { class: "preview" }, c.message) : null,
      c.refused.map((r) => h("div", { class: "error" }, `refused: ${r}`))))));
}

/** The params each step ran with, then any a step logged itself. */
function paramTable(detail) {
  const rows = [];
  for (const st of detail.manifest?.steps || []) {
    for (const [k, v] of Object.entries(st.params || {})) rows.push([st.name, k, paramText(v), "pipeline"]);
  }
  const names = new Map(detail.steps.map((s) => [s.cached_from || s.id, s.step_name]));
  for (const p of detail.params) rows.push([names.get(p.step_run_id) || short(p.step_run_id), p.key, p.value, "logged"]);
  return table(["Step", "Param", "Value", "From"], rows.map((r) => h("tr", {}, r.map((c, i) => h("td", { class: i === 3 ? "muted" : i === 2 ? "value" : "" }, c)))), { empty: "No params." });
}

/** A param's JSON on one line, with a space after each comma (long lists wrap). */
function paramText(v) {
  return typeof v === "object" && v !== null ? JSON.stringify(v, null, 1).replace(/\n\s*/g, " ") : JSON.stringify(v);
}

function kvTable(detail, rows, empty) {
  const names = new Map();
  for (const s of detail.steps) names.set(s.cached_from || s.id, s.step_name);
  return table(["Step", "Key", "Value"], rows.map((r) => h("tr", {},
    h("td", {}, names.get(r.step_run_id) || short(r.step_run_id)), h("td", {}, r.key), h("td", { class: "value" }, r.value))), { empty });
}
