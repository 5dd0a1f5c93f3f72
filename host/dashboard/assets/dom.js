// Building the page. Text always goes in as text (never as HTML): logs,
// names and artifact contents come from steps nobody here wrote.

/** An element: h("a", {href: "#/runs", class: "x"}, "text", child, [more]). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

/** An SVG element, likewise. */
export function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

function setAttrs(el, attrs) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "dataset") {
      Object.assign(el.dataset, value);
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces the content of `el`. */
export function mount(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A table: columns [{label, sort?}] and rows of cells. */
export function table(columns, rows, opts = {}) {
  const head = h("tr", {}, columns.map((c) => {
    const label = typeof c === "string" || c instanceof Node ? c : c.label;
    if (!c.sort) return h("th", {}, label);
    const active = opts.sort === c.sort;
    const arrow = active ? (opts.order === "asc" ? " ▲" : " ▼") : "";
    return h("th", { class: "sortable" + (active ? " active" : "") },
      h("a", { href: opts.sortHref(c.sort), "data-sort": c.sort }, label + arrow));
  }));
  return h("table", { class: opts.class || "grid" }, h("thead", {}, head),
    h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: columns.length, class: "muted" }, opts.empty || "Nothing yet."))));
}

/** A status badge. */
export function badge(status, label = status) {
  return h("span", { class: `badge st-${status}` }, label);
}

/** "1.2 s", "340 ms", "2 min 5 s". */
export function duration(ms) {
  if (ms === null || ms === undefined) return "—";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
  const min = Math.floor(ms / 60_000);
  if (min < 60) return `${min} min ${Math.round((ms % 60_000) / 1000)} s`;
  return `${Math.floor(min / 60)} h ${min % 60} min`;
}

/** A local date and time. */
export function when(ms) {
  if (!ms) return "—";
  const d = new Date(ms);
  return d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" });
}

/** 1.5 KiB, 3.2 MiB. */
export function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}

/** A number as a table shows it: up to 6 significant digits. */
export function num(x) {
  if (x === null || x === undefined) return "—";
  if (typeof x !== "number") return String(x);
  if (Number.isInteger(x)) return x.toLocaleString("en-US").replaceAll(",", " ");
  return Number(x.toPrecision(6)).toString();
}

/** The first characters of an id. */
export function short(id) {
  return id ? id.slice(0, 8) : "";
}
