// The model registry: models, and one model's versions with their aliases,
// tags and the lineage each version came from.

import { api } from "../api.js";
import { h, mount, table, when, short } from "../dom.js";
import { link } from "../nav.js";

export async function render(view, parts, _query, current) {
  return parts[0] ? one(view, parts[0], current) : list(view, current);
}

async function list(view, current) {
  const { models } = await api.models();
  if (!current()) return;
  mount(view,
    h("h1", {}, "Models"),
    table(["Model", "Latest version", "Aliases", "Updated", "Description"], models.map((m) => h("tr", { "data-model": m.name },
      h("td", {}, h("a", { href: link(["models", m.name]) }, m.name)),
      h("td", { class: "num" }, m.latest_versions[0] ? `v${m.latest_versions[0].version}` : "—"),
      h("td", {}, aliases(m.aliases.map(([alias, version]) => `${alias} → v${version}`))),
      h("td", {}, when(m.last_updated_timestamp)),
      h("td", {}, m.description || ""))),
    { empty: "No registered model yet. Add [models] to a weft.toml, run `weft models register`, or register one with the MLflow client." }));
}

async function one(view, name, current) {
  const { model, versions } = await api.model(name);
  if (!current()) return;
  const aliasesOf = new Map();
  for (const [alias, version] of model.aliases) (aliasesOf.get(version) || aliasesOf.set(version, []).get(version)).push(alias);
  mount(view,
    h("div", { class: "page-head" }, h("h1", {}, model.name), h("a", { class: "button", href: "#/models" }, "← Models")),
    model.description ? h("p", {}, model.description) : null,
    h("dl", { class: "facts" },
      h("dt", {}, "Aliases"), h("dd", {}, model.aliases.length ? aliases(model.aliases.map(([a, v]) => `${a} → v${v}`)) : "none"),
      h("dt", {}, "Created"), h("dd", {}, when(model.creation_timestamp)),
      model.tags.length ? [h("dt", {}, "Tags"), h("dd", {}, model.tags.map(([k, v]) => h("span", { class: "tag" }, `${k}=${v}`)))] : null),
    h("h2", {}, "Versions"),
    table(["Version", "Aliases", "Created", "Came from", "Source", "Tags"], versions.map((v) => {
      const tags = new Map(v.tags);
      const artifact = tags.get("weft.artifact_id");
      const run = tags.get("weft.run_id") || v.run_id;
      const step = tags.get("weft.step");
      return h("tr", { "data-version": v.version },
        h("td", { class: "num" }, `v${v.version}`),
        h("td", {}, aliases(aliasesOf.get(v.version) || [])),
        h("td", {}, when(v.creation_timestamp)),
        h("td", {},
          artifact ? h("a", { href: `#/artifacts/${artifact}`, class: "lineage-link" }, "lineage of ", tags.get("weft.artifact") || short(artifact)) : null,
          artifact && run ? h("br") : null,
          run && step ? h("a", { href: link(["runs", run], { step }) }, `step ${step} of run ${short(run)}`) : null,
          !artifact && !step && run ? h("span", {}, "MLflow run ", h("code", {}, short(run))) : null),
        h("td", {}, h("code", {}, v.source)),
        h("td", {}, v.tags.filter(([k]) => !k.startsWith("weft.")).map(([k, val]) => h("span", { class: "tag" }, `${k}=${val}`))));
    }), { empty: "No version yet." }));
}

function aliases(list) {
  return list.map((a) => h("span", { class: "alias" }, a));
}
