// MLflow traces (`@mlflow.trace`, `mlflow.start_span`): the traces of an
// experiment, and one trace as a tree of spans with a timing bar each.
// The trace's record comes from the MLflow API; its spans are the
// `traces.json` the client uploaded to the trace's artifact location.

import { mlflow, ApiError } from "../api.js";
import { h, s, mount, table, when, badge, duration, short } from "../dom.js";
import { link } from "../nav.js";

const experimentLocation = (id) => ({ type: "MLFLOW_EXPERIMENT", mlflow_experiment: { experiment_id: id } });

/** "1.250s" (protobuf's JSON duration) in milliseconds. */
const millis = (text) => (text ? Number.parseFloat(text) * 1000 : null);

/** A span's length: sub-millisecond ones to the microsecond. */
const spanDuration = (ns) => (ns < 1e6 ? `${(ns / 1e6).toFixed(3)} ms` : duration(ns / 1e6));

const stateBadge = (state) => badge(state === "OK" ? "succeeded" : state === "ERROR" ? "failed" : "running", state);

/** The traces of an experiment, newest first (a section of its page). */
export async function section(experimentId) {
  let traces = [];
  try {
    ({ traces = [] } = await mlflow.post("traces/search", {
      locations: [experimentLocation(experimentId)], max_results: 200,
    }));
  } catch (e) {
    if (!(e instanceof ApiError)) throw e;
    return h("p", { class: "error" }, `Traces could not be read: ${e.message}`);
  }
  return [
    h("h2", {}, `Traces (${traces.length}${traces.length === 200 ? "+" : ""})`),
    table(["Trace", "State", "Started", "Duration", "Request", "Run"], traces.map((t) => {
      const run = t.trace_metadata?.["mlflow.sourceRun"];
      return h("tr", { "data-trace": t.trace_id },
        h("td", {}, h("a", { href: link(["experiments", experimentId, "traces", t.trace_id]) },
          t.tags?.["mlflow.traceName"] || short(t.trace_id))),
        h("td", {}, stateBadge(t.state)),
        h("td", {}, when(Date.parse(t.request_time))),
        h("td", { class: "num" }, duration(millis(t.execution_duration))),
        h("td", { class: "preview" }, (t.request_preview || "").slice(0, 120)),
        h("td", {}, run ? h("a", { href: link(["experiments", experimentId, "runs", run]) }, short(run)) : ""));
    }), { empty: "No trace in this experiment." }),
  ];
}

/** The spans of a trace in tree order, each with its depth: walked with a
 * stack (no recursion on a depth the file decides), each span once. */
export function spanTree(spans) {
  const ids = new Set(spans.map((sp) => sp.span_id));
  const children = new Map();
  const roots = [];
  for (const sp of spans) {
    const parent = sp.parent_span_id;
    if (parent && ids.has(parent) && parent !== sp.span_id) {
      if (!children.has(parent)) children.set(parent, []);
      children.get(parent).push(sp);
    } else {
      roots.push(sp);
    }
  }
  const byStart = (a, b) => Number(a.start_time_unix_nano) - Number(b.start_time_unix_nano);
  const rows = [];
  const seen = new Set();
  const stack = roots.sort(byStart).reverse().map((sp) => [sp, 0]);
  while (stack.length) {
    const [sp, depth] = stack.pop();
    if (seen.has(sp.span_id)) continue;
    seen.add(sp.span_id);
    rows.push({ span: sp, depth });
    const kids = (children.get(sp.span_id) || []).slice().sort(byStart).reverse();
    for (const kid of kids) stack.push([kid, depth + 1]);
  }
  return rows;
}

/** An attribute as MLflow stores it (JSON text), shown as its value. */
function attribute(span, key) {
  const raw = span.attributes?.[key];
  if (raw === undefined || raw === null) return undefined;
  try { return JSON.parse(raw); } catch { return raw; }
}

const pretty = (value) => (typeof value === "string" ? value : JSON.stringify(value, null, 2));

async function spansOf(info) {
  const location = info.tags?.["mlflow.artifactLocation"] || "";
  if (!location.startsWith("mlflow-artifacts:/")) return null;
  const path = location.replace(/^mlflow-artifacts:\/+/, "").replace(/\/+$/, "");
  const response = await fetch(`/api/2.0/mlflow-artifacts/artifacts/${path}/traces.json`);
  if (response.status === 404) return null;
  if (!response.ok) throw new ApiError(response.status, null);
  const data = await response.json();
  return Array.isArray(data?.spans) ? data.spans : [];
}

/** One trace: its facts, and its spans as a tree with a timing bar each. */
export async function render(view, experimentId, traceId, current) {
  const { trace } = await mlflow.get(`traces/${encodeURIComponent(traceId)}`);
  const info = trace.trace_info;
  const spans = await spansOf(info);
  if (!current()) return;
  const rows = spanTree(spans || []);
  const starts = rows.map((r) => Number(r.span.start_time_unix_nano));
  const ends = rows.map((r) => Number(r.span.end_time_unix_nano));
  const t0 = Math.min(...starts);
  const total = Math.max(1, Math.max(...ends) - t0);
  const run = info.trace_metadata?.["mlflow.sourceRun"];
  mount(view,
    h("div", { class: "page-head" }, h("h1", {}, info.tags?.["mlflow.traceName"] || short(info.trace_id)),
      h("a", { class: "button", href: link(["experiments", experimentId]) }, "← Experiment")),
    h("dl", { class: "facts" },
      h("dt", {}, "State"), h("dd", {}, stateBadge(info.state)),
      h("dt", {}, "Trace id"), h("dd", {}, h("code", {}, info.trace_id)),
      h("dt", {}, "Started"), h("dd", {}, when(Date.parse(info.request_time))),
      h("dt", {}, "Duration"), h("dd", {}, duration(millis(info.execution_duration))),
      run ? [h("dt", {}, "Run"), h("dd", {}, h("a", { href: link(["experiments", experimentId, "runs", run]) }, run))] : null,
      h("dt", {}, "Request"), h("dd", {}, h("code", {}, info.request_preview || "—")),
      h("dt", {}, "Response"), h("dd", {}, h("code", {}, info.response_preview || "—"))),
    h("h2", {}, `Spans (${rows.length})`),
    spans === null
      ? h("p", { class: "muted" }, "The client has not uploaded this trace's spans.")
      : table(["Span", "Type", "Status", "Duration", "Timeline"], rows.map(({ span, depth }) => {
        const start = Number(span.start_time_unix_nano) - t0;
        const length = Math.max(0, Number(span.end_time_unix_nano) - Number(span.start_time_unix_nano));
        const name = h("td", { class: "span-name" },
          h("details", {},
            h("summary", {}, span.name),
            h("dl", { class: "facts" },
              ["mlflow.spanInputs", "mlflow.spanOutputs"].map((key) => {
                const value = attribute(span, key);
                return value === undefined ? null
                  : [h("dt", {}, key === "mlflow.spanInputs" ? "Inputs" : "Outputs"), h("dd", {}, h("pre", {}, pretty(value)))];
              }),
              Object.keys(span.attributes || {}).filter((k) => !k.startsWith("mlflow.")).map((k) =>
                [h("dt", {}, k), h("dd", {}, h("code", {}, pretty(attribute(span, k))))]),
              (span.events || []).length
                ? [h("dt", {}, "Events"), h("dd", {}, span.events.map((e) => h("span", { class: "tag" }, e.name)))]
                : null,
              span.status?.message ? [h("dt", {}, "Message"), h("dd", {}, span.status.message)] : null)));
        // Indented through the CSSOM (inline style attributes are refused
        // by the dashboard's content security policy).
        name.style.paddingLeft = `${8 + Math.min(depth, 40) * 18}px`;
        const status = span.status?.code === "STATUS_CODE_ERROR" ? "ERROR" : span.status?.code === "STATUS_CODE_OK" ? "OK" : "UNSET";
        return h("tr", { "data-span": span.name, "data-depth": depth },
          name,
          h("td", {}, attribute(span, "mlflow.spanType") || ""),
          h("td", {}, stateBadge(status === "UNSET" ? "IN_PROGRESS" : status)),
          h("td", { class: "num" }, spanDuration(length)),
          h("td", { class: "timeline" }, s("svg", { viewBox: "0 0 1000 10", preserveAspectRatio: "none", role: "img",
            "aria-label": `${(start / 1e6).toFixed(3)} ms + ${(length / 1e6).toFixed(3)} ms` },
          s("rect", { x: (start / total) * 1000, y: 1, width: Math.max(2, (length / total) * 1000), height: 8,
            class: status === "ERROR" ? "bar bad" : "bar" }))));
      }), { empty: "No spans." }));
}
