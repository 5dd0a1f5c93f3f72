// Line charts of metric histories, as SVG. The server downsamples long
// histories (each bucket keeps its lowest and highest point), so a chart
// never draws more than about a thousand points per series.

import { h, s, num } from "./dom.js";

const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777"];
const M = { top: 12, right: 16, bottom: 30, left: 56 };

/**
 * series: [{label, points: [[x, y|null]], total}]
 * Returns an element with the chart, its legend and a hover read-out.
 */
export function lineChart(series, { title = "", width = 640, height = 260, xLabel = "step" } = {}) {
  const all = series.flatMap((s) => s.points.filter((p) => p[1] !== null));
  const box = h("figure", { class: "chart", "data-key": title });
  box.append(h("figcaption", {}, title));
  if (!all.length) {
    box.append(h("p", { class: "muted" }, "No finite values to draw."));
    return box;
  }
  const [x0, x1] = extent(all.map((p) => p[0]));
  const [y0, y1] = extent(all.map((p) => p[1]));
  const iw = width - M.left - M.right, ih = height - M.top - M.bottom;
  const sx = (x) => M.left + ((x - x0) / (x1 - x0 || 1)) * iw;
  const sy = (y) => M.top + ih - ((y - y0) / (y1 - y0 || 1)) * ih;

  const svg = s("svg", { class: "line-chart", viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-label": title });
  for (const t of ticks(y0, y1)) {
    svg.append(s("line", { class: "grid", x1: M.left, x2: width - M.right, y1: sy(t), y2: sy(t) }),
      s("text", { class: "tick", x: M.left - 6, y: sy(t) + 4, "text-anchor": "end" }, num(t)));
  }
  for (const t of ticks(x0, x1)) {
    svg.append(s("text", { class: "tick", x: sx(t), y: height - M.bottom + 16, "text-anchor": "middle" }, num(t)));
  }
  svg.append(s("line", { class: "axis", x1: M.left, x2: width - M.right, y1: M.top + ih, y2: M.top + ih }),
    s("text", { class: "axis-label", x: width - M.right, y: height - 2, "text-anchor": "end" }, xLabel));
  series.forEach((ser, i) => {
    let d = "", pen = false, drawn = 0;
    for (const [x, y] of ser.points) {
      if (y === null) { pen = false; continue; }
      d += `${pen ? "L" : "M"}${sx(x).toFixed(1)} ${sy(y).toFixed(1)}`;
      pen = true; drawn++;
    }
    const color = COLORS[i % COLORS.length];
    svg.append(s("path", { class: "series", d, stroke: color, "data-points": drawn, "data-total": ser.total, "data-label": ser.label }));
    if (drawn === 1) {
      const [x, y] = ser.points.find((p) => p[1] !== null);
      svg.append(s("circle", { class: "dot", cx: sx(x), cy: sy(y), r: 3, fill: color }));
    }
  });
  const cursor = s("line", { class: "cursor", y1: M.top, y2: M.top + ih, visibility: "hidden" });
  svg.append(cursor);
  const readout = h("div", { class: "readout muted" }, "Hover the chart to read values.");
  svg.addEventListener("mousemove", (e) => {
    const rect = svg.getBoundingClientRect();
    const px = ((e.clientX - rect.left) / rect.width) * width;
    const x = x0 + ((px - M.left) / iw) * (x1 - x0);
    cursor.setAttribute("x1", px); cursor.setAttribute("x2", px); cursor.setAttribute("visibility", "visible");
    readout.replaceChildren(...series.map((ser, i) => {
      const p = nearest(ser.points, x);
      return h("span", { class: "read" }, h("i", { class: `swatch c${i % COLORS.length}` }),
        `${ser.label}: ${p ? `${num(p[1])} @ ${num(p[0])}` : "—"}`);
    }));
  });
  svg.addEventListener("mouseleave", () => cursor.setAttribute("visibility", "hidden"));
  box.append(svg);
  box.append(h("div", { class: "legend" }, series.map((ser, i) => h("span", { class: "read" },
    h("i", { class: `swatch c${i % COLORS.length}` }),
    `${ser.label} (${ser.total.toLocaleString("en-US")} points${ser.points.length < ser.total ? `, ${ser.points.length} drawn` : ""})`))));
  box.append(readout);
  return box;
}

function extent(values) {
  let lo = Infinity, hi = -Infinity;
  for (const v of values) { if (v < lo) lo = v; if (v > hi) hi = v; }
  if (lo === hi) { lo -= Math.abs(lo) * 0.05 || 1; hi += Math.abs(hi) * 0.05 || 1; }
  return [lo, hi];
}

/** About five round tick values between lo and hi. */
function ticks(lo, hi) {
  const step0 = (hi - lo) / 5;
  const mag = 10 ** Math.floor(Math.log10(step0));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((st) => st >= step0) || step0;
  const out = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) out.push(Number(t.toPrecision(12)));
  return out;
}

/** The point whose x is closest to `x` (points sorted by x). */
function nearest(points, x) {
  let lo = 0, hi = points.length - 1;
  if (hi < 0) return null;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (points[mid][0] < x) lo = mid + 1; else hi = mid;
  }
  const candidates = [points[lo - 1], points[lo]].filter((p) => p && p[1] !== null);
  candidates.sort((a, b) => Math.abs(a[0] - x) - Math.abs(b[0] - x));
  return candidates[0] || null;
}
