// Artifacts: the list, and one artifact with a preview of its content, a
// download link and its lineage graph back to the source data.

import { api } from "../api.js";
import { h, mount, table, badge, when, bytes, short } from "../dom.js";
import { dag } from "../graph.js";
import { link, setQuery } from "../nav.js";

const PAGE = 50;
const PREVIEW_BYTES = 2 * 1024 * 1024;
const PREVIEW_ROWS = 100;

export async function render(view, parts, query, current) {
  return parts[0] ? one(view, parts[0], current) : list(view, query, current);
}

async function list(view, query, current) {
  const prefix = query.get("prefix") || "";
  const offset = Math.max(0, Number(query.get("offset")) || 0);
  const page = await api.artifacts({ prefix, limit: PAGE, offset });
  if (!current()) return;
  let typing = null;
  mount(view,
    h("h1", {}, "Artifacts"),
    h("div", { class: "filters" }, h("input", {
      type: "search", placeholder: "Name starts with… (e.g. iris/train.)", value: prefix, "aria-label": "artifact name prefix",
      oninput: (e) => { clearTimeout(typing); typing = setTimeout(() => setQuery({ prefix: e.target.value, offset: "" }), 300); },
    })),
    table(["Name", "Version", "Type", "Size", "Made by", "Created"], page.artifacts.map((a) => h("tr", {},
      h("td", {}, h("a", { href: `#/artifacts/${a.id}` }, a.name)), h("td", { class: "num" }, a.version),
      h("td", {}, a.media_type), h("td", { class: "num" }, bytes(a.size)),
      h("td", {}, a.producer_step_run_id ? "a step" : "source data"), h("td", {}, when(a.created_at)))),
    { empty: "No artifact matches." }),
    h("div", { class: "pager" },
      offset > 0 ? h("a", { class: "button", href: link(["artifacts"], { prefix, offset: Math.max(0, offset - PAGE) || "" }) }, "← Newer") : null,
      page.next_offset !== null ? h("a", { class: "button", href: link(["artifacts"], { prefix, offset: page.next_offset }) }, "Older →") : null));
}

async function one(view, key, current) {
  const [detail, lineage] = await Promise.all([api.artifact(key), api.lineage(key)]);
  const a = detail.artifact;
  const preview = detail.bytes_present ? await previewOf(a) : h("p", { class: "error" }, "The bytes of this artifact are not in this artifact store.");
  if (!current()) return;
  const p = detail.producer;
  mount(view,
    h("div", { class: "page-head" }, h("h1", {}, `${a.name} v${a.version}`),
      detail.bytes_present ? h("a", { class: "button", href: api.contentUrl(a.id, true), download: "" }, "Download") : null),
    h("dl", { class: "facts" },
      fact("Id", h("code", {}, a.id)),
      fact("Type", `${a.media_type} (${a.kind})`),
      fact("Size", bytes(a.size)),
      fact("Digest", h("code", {}, a.digest)),
      fact("Created", when(a.created_at)),
      p ? fact("Made by", h("a", { href: link(["runs", p.run_id], { step: p.step_name }) }, `step ${p.step_name}`), " of run ", h("code", {}, short(p.run_id)), " ", badge(p.status))
        : fact("Source", a.source_uri ? h("code", {}, a.source_uri) : "external data")),
    h("h2", {}, "Lineage"),
    h("p", { class: "muted" }, "How this artifact was made, back to the source data. Click an artifact or a step to go there."),
    lineageGraph(lineage, a.id),
    h("h2", {}, "Preview"),
    preview);
}

function fact(label, ...value) {
  return [h("dt", {}, label), h("dd", {}, value)];
}

/** Artifacts and steps as one graph, each node once. */
function lineageGraph(root, selectedId) {
  const nodes = new Map();
  const edges = new Set();
  const walk = (node) => {
    const a = node.artifact;
    if (!nodes.has(a.id)) {
      nodes.set(a.id, {
        id: a.id, kind: "data", label: a.name,
        sub: `v${a.version} · ${node.truncated ? "lineage cut here (too deep or too large)" : node.producer || node.repeated ? a.media_type : "source data"}`,
        href: `#/artifacts/${a.id}`, selected: a.id === selectedId, title: `${a.name} v${a.version}`,
      });
    }
    const p = node.producer;
    if (!p) return;
    if (!nodes.has(p.id)) {
      nodes.set(p.id, { id: p.id, kind: "step", label: p.step_name, state: p.status, sub: `step · run ${short(p.run_id)}`, href: link(["runs", p.run_id], { step: p.step_name }) });
    }
    edges.add(`${p.id} ${a.id}`);
    for (const [, input] of node.inputs) {
      edges.add(`${input.artifact.id} ${p.id}`);
      walk(input);
    }
  };
  walk(root);
  return dag([...nodes.values()], [...edges].map((e) => e.split(" ")), { label: "lineage" });
}

async function previewOf(a) {
  const url = api.contentUrl(a.id);
  if (a.kind === "dir") {
    const listing = await (await fetch(url)).json();
    const entries = Array.isArray(listing) ? listing : listing.entries || [];
    return table(["Path", "Size"], entries.slice(0, 500).map((e) => h("tr", {}, h("td", {}, e.path ?? e.name ?? JSON.stringify(e)), h("td", { class: "num" }, e.size !== undefined ? bytes(e.size) : ""))), { empty: "An empty directory." });
  }
  if (a.media_type.startsWith("image/")) return h("img", { class: "preview-image", src: url, alt: a.name });
  if (a.size > PREVIEW_BYTES) return h("p", { class: "muted" }, `Too large to preview here (${bytes(a.size)}): download it.`);
  const text = await (await fetch(url)).text();
  const type = a.media_type.split(";")[0].trim();
  if (type === "text/csv") return csvTable(text);
  if (type === "application/json" || type.endsWith("+json")) {
    try { return h("pre", { class: "preview json" }, JSON.stringify(JSON.parse(text), null, 2)); } catch { /* show as text */ }
  }
  if (type.startsWith("text/") || type.endsWith("+json") || type === "application/json" || !text.includes("\u0000")) {
    return h("pre", { class: "preview" }, text);
  }
  return h("p", { class: "muted" }, "Binary content: download it.");
}

function csvTable(text) {
  const rows = parseCsv(text, PREVIEW_ROWS + 1);
  if (!rows.length) return h("p", { class: "muted" }, "An empty file.");
  const [head, ...body] = rows;
  const total = text.split("\n").filter((l) => l.trim()).length - 1;
  return h("div", { class: "csv" },
    table(head, body.slice(0, PREVIEW_ROWS).map((r) => h("tr", {}, r.map((c) => h("td", {}, c))))),
    total > PREVIEW_ROWS ? h("p", { class: "muted" }, `First ${PREVIEW_ROWS} of ${total} rows.`) : null);
}

/** RFC 4180 CSV: quoted fields, doubled quotes, CRLF. */
function parseCsv(text, maxRows) {
  const rows = [];
  let row = [], field = "", quoted = false;
  for (let i = 0; i < text.length && rows.length < maxRows; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { field += '"'; i++; }
      else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ",") { row.push(field); field = ""; }
    else if (c === "\n" || c === "\r") {
      if (c === "\r" && text[i + 1] === "\n") i++;
      row.push(field); field = "";
      if (row.length > 1 || row[0] !== "") rows.push(row);
      row = [];
    } else field += c;
  }
  if ((field || row.length) && rows.length < maxRows) { row.push(field); rows.push(row); }
  return rows;
}
