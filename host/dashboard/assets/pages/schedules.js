// Cron schedules of registered pipelines: when each fires next, and what
// it fired (the runs it started, the due times it skipped).

import { api } from "../api.js";
import { h, mount, table, when, badge, short } from "../dom.js";
import { link } from "../nav.js";

export async function render(view, parts, _query, current) {
  return parts[0] ? one(view, parts[0], current) : list(view, current);
}

function lastFiring(f) {
  if (!f) return "never";
  return [badge(f.outcome), " ", when(f.due_at), f.run_id ? [" ", h("a", { href: link(["runs", f.run_id]) }, `run ${short(f.run_id)}`)] : null];
}

async function list(view, current) {
  const { schedules } = await api.schedules();
  if (!current()) return;
  mount(view,
    h("h1", {}, "Schedules"),
    table(["Schedule", "Pipeline", "Cron (UTC)", "State", "Next", "Last"], schedules.map((s) => h("tr", { "data-schedule": s.name },
      h("td", {}, h("a", { href: link(["schedules", s.name]) }, s.name)),
      h("td", {}, h("a", { href: link(["runs"], { pipeline: s.pipeline }) }, s.pipeline)),
      h("td", {}, h("code", {}, s.cron)),
      h("td", {}, s.paused ? "paused" : "active"),
      h("td", {}, s.paused ? "—" : when(s.next_due_at)),
      h("td", {}, lastFiring(s.last)))),
    { empty: "No schedule yet. Register a pipeline with `weft pipeline register`, then `weft schedule create NAME --pipeline P --cron '0 3 * * *'`." }));
}

async function one(view, name, current) {
  const s = await api.schedule(name);
  if (!current()) return;
  mount(view,
    h("div", { class: "page-head" }, h("h1", {}, s.name), h("a", { class: "button", href: "#/schedules" }, "← Schedules")),
    h("dl", { class: "facts" },
      h("dt", {}, "Pipeline"), h("dd", {}, s.pipeline),
      h("dt", {}, "Cron (UTC)"), h("dd", {}, h("code", {}, s.cron)),
      h("dt", {}, "State"), h("dd", {}, s.paused ? "paused" : `active, next ${when(s.next_due_at)}`),
      h("dt", {}, "Missed times"), h("dd", {}, s.missed === "catch-up" ? "run once, late" : "skipped"),
      Object.keys(s.params || {}).length ? [h("dt", {}, "Params"), h("dd", {}, Object.entries(s.params).map(([k, v]) => h("span", { class: "tag" }, `${k}=${v}`)))] : null),
    h("h2", {}, "History"),
    table(["Due", "Outcome", "Run", "Missed", "Fired"], s.firings.map((f) => h("tr", { "data-due": f.due_at },
      h("td", {}, when(f.due_at)),
      h("td", {}, badge(f.outcome)),
      h("td", {}, f.run_id ? h("a", { href: link(["runs", f.run_id]) }, short(f.run_id)) : (f.error || "")),
      h("td", { class: "num" }, f.missed || ""),
      h("td", {}, when(f.fired_at)))),
    { empty: "It has not fired yet." }));
}
