// The dashboard's router: `#/page/arg?query` to a page module's render().
// A page may return a function that stops what it started (polling).

import { h, mount } from "./dom.js";
import { route } from "./nav.js";
import * as runs from "./pages/runs.js";
import * as run from "./pages/run.js";
import * as compare from "./pages/compare.js";
import * as artifacts from "./pages/artifacts.js";
import * as models from "./pages/models.js";
import * as experiments from "./pages/experiments.js";
import * as schedules from "./pages/schedules.js";

const view = document.getElementById("view");
let stop = null;
let generation = 0;

function pageFor(parts) {
  switch (parts[0]) {
    case "runs": return parts[1] ? run : runs;
    case "compare": return compare;
    case "artifacts": return artifacts;
    case "models": return models;
    case "experiments": return experiments;
    case "schedules": return schedules;
    default: return null;
  }
}

async function show() {
  if (stop) { stop(); stop = null; }
  const mine = ++generation;
  const { parts, query } = route();
  for (const a of document.querySelectorAll("[data-nav]")) {
    a.classList.toggle("active", a.dataset.nav === (parts[0] === "compare" ? "runs" : parts[0]));
  }
  // `data-ready` holds the route once its page is drawn (tests wait on it).
  delete view.dataset.ready;
  const page = pageFor(parts);
  if (!page) {
    mount(view, h("h1", {}, "Not found"), h("p", {}, "No page at ", h("code", {}, location.hash), ". ", h("a", { href: "#/runs" }, "Back to the runs")));
    return;
  }
  try {
    const cleanup = await page.render(view, parts.slice(1), query, () => mine === generation);
    if (mine === generation) {
      stop = cleanup || null;
      view.dataset.ready = location.hash;
    } else if (cleanup) cleanup();
  } catch (e) {
    if (mine !== generation) return;
    mount(view, h("h1", {}, "Something went wrong"),
      h("p", { class: "error" }, e.status === 404 ? `Not found: ${e.message}` : e.message),
      h("p", {}, h("a", { href: "#/runs" }, "Back to the runs")));
  }
}

window.addEventListener("hashchange", show);
show();
