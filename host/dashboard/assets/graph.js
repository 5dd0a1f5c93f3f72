// Directed acyclic graphs drawn as SVG: pipelines (inputs and steps) and
// lineage (artifacts and the steps that made them). Sources on the left.

import { h, s } from "./dom.js";

const W = 184, H = 54, GAP_X = 64, GAP_Y = 18, PAD = 12;

/**
 * nodes: [{id, label, sub?, kind: "step"|"data", state?, href?, selected?}]
 * edges: [[fromId, toId]]
 * Returns a scrollable element holding the SVG.
 */
export function dag(nodes, edges, { label = "graph" } = {}) {
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const preds = new Map(nodes.map((n) => [n.id, []]));
  for (const [from, to] of edges) {
    if (byId.has(from) && byId.has(to)) preds.get(to).push(from);
  }
  // Layer: the longest path from a source (a cycle, which a pipeline cannot
  // have, would stop at the node count).
  const layer = new Map();
  const depth = (id, seen = 0) => {
    if (layer.has(id)) return layer.get(id);
    if (seen > nodes.length) return 0;
    const d = Math.max(-1, ...preds.get(id).map((p) => depth(p, seen + 1))) + 1;
    layer.set(id, d);
    return d;
  };
  nodes.forEach((n) => depth(n.id));
  const columns = [];
  for (const n of nodes) (columns[layer.get(n.id)] ||= []).push(n);
  // Order each column by the mean row of its predecessors: fewer crossings.
  const row = new Map();
  columns.forEach((col) => {
    col.forEach((n, i) => {
      const ps = preds.get(n.id).filter((p) => row.has(p));
      n._key = ps.length ? ps.reduce((a, p) => a + row.get(p), 0) / ps.length : i;
    });
    col.sort((a, b) => a._key - b._key);
    col.forEach((n, i) => row.set(n.id, i));
  });
  const tallest = Math.max(1, ...columns.map((c) => c.length));
  // Edges that skip a column arc over the nodes between: room for them on top.
  const skips = edges.some(([from, to]) => layer.has(from) && layer.has(to) && layer.get(to) - layer.get(from) > 1);
  const top = skips ? PAD + 34 : PAD;
  const height = tallest * (H + GAP_Y) - GAP_Y + top + PAD;
  const width = columns.length * (W + GAP_X) - GAP_X + 2 * PAD;
  const pos = new Map();
  columns.forEach((col, c) => {
    const offset = ((tallest - col.length) * (H + GAP_Y)) / 2;
    col.forEach((n, i) => pos.set(n.id, { x: PAD + c * (W + GAP_X), y: top + offset + i * (H + GAP_Y) }));
  });

  const svg = s("svg", { class: "dag", width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": label });
  svg.append(s("defs", {}, s("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
    s("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "arrowhead" }))));
  for (const [from, to] of edges) {
    const a = pos.get(from), b = pos.get(to);
    if (!a || !b) continue;
    const x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x, y2 = b.y + H / 2, mx = (x1 + x2) / 2;
    const d = layer.get(to) - layer.get(from) > 1
      ? `M ${a.x + W / 2} ${a.y} C ${a.x + W / 2} ${top - 40}, ${b.x + W / 2} ${top - 40}, ${b.x + W / 2} ${b.y - 2}`
      : `M ${x1} ${y1} C ${mx} ${y1}, ${mx} ${y2}, ${x2 - 2} ${y2}`;
    svg.append(s("path", { class: "edge", d, "marker-end": "url(#arrow)", "data-from": from, "data-to": to }));
  }
  for (const n of nodes) {
    const { x, y } = pos.get(n.id);
    const g = s("g", {
      class: `node kind-${n.kind} ${n.state ? "st-" + n.state : ""} ${n.selected ? "selected" : ""}`,
      transform: `translate(${x} ${y})`, "data-id": n.id, "data-name": n.label, "data-state": n.state || "",
    },
      s("title", {}, n.title || n.label),
      s("rect", { width: W, height: H, rx: n.kind === "data" ? 26 : 8 }),
      s("text", { x: 12, y: 22, class: "label" }, clip(n.label, 24)),
      n.sub ? s("text", { x: 12, y: 40, class: "sub" }, clip(n.sub, 28)) : null);
    svg.append(n.href ? s("a", { href: n.href, class: "node-link" }, g) : g);
  }
  return h("div", { class: "graph-scroll" }, svg);
}

function clip(text, n) {
  return text.length > n ? text.slice(0, n - 1) + "…" : text;
}
