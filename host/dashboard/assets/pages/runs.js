// The runs list: filtered, sorted and paged by the server.

import { api } from "../api.js";
import { h, mount, table, badge, duration, when, short } from "../dom.js";
import { setQuery, link } from "../nav.js";

const PAGE = 50;
const STATUSES = ["running", "succeeded", "failed", "cancelled", "crashed"];
/** Runs ticked for comparison; kept while paging. */
const selected = new Set();

export async function render(view, _parts, query, current) {
  const params = {
    q: query.get("q") || "",
    status: query.get("status") || "",
    pipeline: query.get("pipeline") || "",
    sort: query.get("sort") || "started",
    order: query.get("order") || "desc",
    offset: Math.max(0, Number(query.get("offset")) || 0),
  };
  const [page, pipelines] = await Promise.all([
    api.runs({ ...params, limit: PAGE }),
    api.pipelines(),
  ]);
  if (!current()) return;

  let typing = null;
  const search = h("input", {
    type: "search", placeholder: "Filter by pipeline or run id", value: params.q, "aria-label": "filter runs",
    oninput: (e) => {
      clearTimeout(typing);
      typing = setTimeout(() => setQuery({ q: e.target.value.trim(), offset: "" }), 300);
    },
  });
  const choose = (name, label, options) => h("select", {
    "aria-label": label, name,
    onchange: (e) => setQuery({ [name]: e.target.value, offset: "" }),
  }, h("option", { value: "" }, label), options.map((o) => h("option", { value: o, selected: params[name] === o }, o)));

  const sortHref = (key) => link(["runs"], {
    ...clean(params), sort: key, order: params.sort === key && params.order === "desc" ? "asc" : "desc", offset: "",
  });
  const rows = page.runs.map((r) => h("tr", { "data-run": r.id },
    h("td", {}, h("input", {
      type: "checkbox", "aria-label": `select run ${r.id}`, checked: selected.has(r.id),
      onchange: (e) => { e.target.checked ? selected.add(r.id) : selected.delete(r.id); updateCompare(); },
    })),
    h("td", {}, h("a", { href: `#/runs/${r.id}` }, `${r.pipeline} #${r.number}`), " ", h("code", { class: "muted" }, short(r.id))),
    h("td", {}, badge(r.status)),
    h("td", {}, when(r.started_at)),
    h("td", { class: "num" }, duration(r.duration_ms)),
    h("td", { class: "num" }, r.steps),
    h("td", { class: "num" }, r.cached ? h("span", { class: "cached-count" }, `${r.cached} cached`) : "—"),
    h("td", { class: "num" }, r.failed ? h("span", { class: "failed-count" }, `${r.failed} failed`) : "—"),
  ));
  const compareButton = h("a", { class: "button", href: "#" }, "Compare");
  function updateCompare() {
    const ids = [...selected];
    compareButton.textContent = ids.length ? `Compare ${ids.length} run${ids.length > 1 ? "s" : ""}` : "Tick runs to compare";
    compareButton.classList.toggle("disabled", ids.length < 1);
    compareButton.setAttribute("href", ids.length ? `#/compare?runs=${ids.join(",")}` : "#/runs");
  }
  updateCompare();

  const first = page.total ? params.offset + 1 : 0;
  const last = params.offset + page.runs.length;
  const pager = h("div", { class: "pager" },
    h("span", { class: "muted", "data-total": page.total }, `${first}–${last} of ${page.total.toLocaleString("en-US")} runs`),
    params.offset > 0 ? h("a", { class: "button", href: link(["runs"], { ...clean(params), offset: Math.max(0, params.offset - PAGE) || "" }) }, "← Newer") : null,
    page.next_offset !== null ? h("a", { class: "button", href: link(["runs"], { ...clean(params), offset: page.next_offset }) }, "Older →") : null);

  mount(view,
    h("div", { class: "page-head" }, h("h1", {}, "Runs"), compareButton),
    h("div", { class: "filters" }, search,
      choose("status", "any status", STATUSES),
      choose("pipeline", "any pipeline", pipelines.pipelines.map((p) => p.name))),
    table([
      "", { label: "Run", sort: "pipeline" }, { label: "Status", sort: "status" }, { label: "Started", sort: "started" },
      { label: "Duration", sort: "duration" }, "Steps", "Cache hits", "Failures",
    ], rows, { sort: params.sort, order: params.order, sortHref, class: "grid runs", empty: "No run matches." }),
    pager);
  if (params.q && document.activeElement === document.body) {
    search.focus();
    search.setSelectionRange(search.value.length, search.value.length);
  }
}

function clean(params) {
  const out = {};
  for (const [k, v] of Object.entries(params)) if (v !== "" && v !== 0) out[k] = v;
  return out;
}
