// Where the dashboard is: `#/page/arg?query`.

/** The current route: its path parts and query. */
export function route() {
  const hash = location.hash.replace(/^#\/?/, "") || "runs";
  const [path, query = ""] = hash.split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  return { parts, query: new URLSearchParams(query) };
}

/** Changes the query of the current route (keeps the path). */
export function setQuery(changes) {
  const { parts, query } = route();
  for (const [k, v] of Object.entries(changes)) {
    if (v === undefined || v === null || v === "") query.delete(k); else query.set(k, v);
  }
  location.hash = link(parts, query);
}

/** `#/a/b?query` with each part encoded. */
export function link(parts, query) {
  const q = query ? new URLSearchParams(query).toString() : "";
  return `#/${parts.map(encodeURIComponent).join("/")}${q ? "?" + q : ""}`;
}
