// weft's dashboard in headless Chromium, against a live `weft server` after
// real pipeline runs. Driven by tests/e2e/dashboard.rs, which prepares the
// runs and passes:
//   WEFT_URL          the server's base URL
//   WEFT_FIRST_RUN    an iris run that executed every step
//   WEFT_SECOND_RUN   an iris run with train.epochs changed (load, split cached)
//   WEFT_LIVE_RUN     a run still going (its `slow` step naps for seconds)
//   WEFT_SCREENSHOTS  where to write a screenshot of each page
// Every test also fails on any error the page logs or throws.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { openPage, need as needOf, visit as visitOn, drawn as drawnOn } from "./browser.mjs";

const base = need("WEFT_URL");
const firstRun = need("WEFT_FIRST_RUN");
const secondRun = need("WEFT_SECOND_RUN");
const liveRun = need("WEFT_LIVE_RUN");
const shots = need("WEFT_SCREENSHOTS");
mkdirSync(shots, { recursive: true });

function need(name) {
  return needOf(name, "tests/e2e/dashboard.rs (cargo test)");
}

let browser;
let page;
let pageErrors = [];

before(async () => {
  ({ browser, page, errors: pageErrors } = await openPage());
});

after(async () => { await browser?.close(); });

/** Opens a page of the dashboard and waits until it is drawn. */
const visit = (hash) => visitOn(page, pageErrors, base, hash);

/** Waits until the page of the current route is drawn. */
const drawn = () => drawnOn(page);

async function shoot(name) {
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
  assert.deepEqual(pageErrors, [], "the page logged no error");
}

async function api(path) {
  const response = await fetch(`${base}/api/v1${path}`);
  assert.equal(response.status, 200, `GET ${path}`);
  return response.json();
}

test("a run in progress updates live: its slow step goes from running to succeeded without a reload", async () => {
  await visit(`#/runs/${liveRun}`);
  const slow = page.locator('g.node[data-name="slow"]');
  await slow.waitFor();
  assert.equal(await slow.getAttribute("data-state"), "running", "the slow step is running when the page opens");
  await shoot("run-live");
  await page.locator('g.node[data-name="slow"][data-state="succeeded"]').waitFor({ timeout: 30_000 });
  await page.locator("h1 .badge.st-succeeded").waitFor({ timeout: 5_000 });
  assert.deepEqual(pageErrors, []);
});

test("the runs list shows the runs with status, duration and cache hits, and filters and sorts on the server", async () => {
  await visit("#/runs");
  const row = page.locator(`tr[data-run="${secondRun}"]`);
  await row.waitFor();
  assert.match(await row.innerText(), /iris #2/);
  assert.match(await row.innerText(), /succeeded/);
  assert.match(await row.innerText(), /2 cached/);
  assert.match(await row.locator("td.num").first().innerText(), /\d+(\.\d+)? (ms|s)/, "a duration");
  await page.locator(`tr[data-run="${firstRun}"]`).waitFor();
  await shoot("runs");

  // The filter goes to the server: only the live pipeline's run is left.
  await page.fill('input[aria-label="filter runs"]', "naps");
  await page.waitForFunction(() => location.hash.includes("q=naps"));
  await drawn();
  assert.equal(await page.locator("tr[data-run]").getAttribute("data-run"), liveRun);
  assert.equal(await page.locator("[data-total]").getAttribute("data-total"), "1");

  // Sorting by duration, longest first: the live run (seconds) on top.
  await visit("#/runs?sort=duration&order=desc");
  await page.locator("tr[data-run]").first().waitFor();
  assert.equal(await page.locator("tr[data-run]").first().getAttribute("data-run"), liveRun);
  await page.selectOption('select[name="status"]', "succeeded");
  await page.waitForFunction(() => location.hash.includes("status=succeeded"));
  await drawn();
  await page.locator(`tr[data-run="${firstRun}"]`).waitFor();
  assert.equal(await page.locator("tr[data-run]").count(), 3, "three succeeded runs");
});

test("the run page draws the DAG with every step in its state, and a step's logs and artifacts", async () => {
  const detail = await api(`/runs/${secondRun}?metrics=none`);
  await visit(`#/runs/${secondRun}`);
  await page.locator("svg.dag g.node").first().waitFor();
  const want = Object.fromEntries(detail.steps.map((s) => [s.step_name, s.status]));
  assert.deepEqual(want, { load: "cached", split: "cached", train: "succeeded", evaluate: "succeeded" });
  for (const [name, state] of Object.entries(want)) {
    assert.equal(await page.locator(`g.node.kind-step[data-name="${name}"]`).getAttribute("data-state"), state, name);
  }
  await page.locator('g.node.kind-data[data-name="iris"]').waitFor();
  assert.equal(await page.locator("svg.dag path.edge").count(), 5, "iris→load→split→train→evaluate, split→evaluate");

  await page.click('g.node[data-name="train"]');
  await page.waitForFunction(() => location.hash.includes("step=train"));
  await drawn();
  const panel = page.locator('section.step-panel[data-step="train"]');
  await panel.waitFor();
  assert.match(await panel.innerText(), /epochs/);
  assert.match(await panel.innerText(), /iris\/train\.model/);
  assert.match(await panel.innerText(), /Verified\s+match/, "weft verify re-executed it");
  const verifications = page.locator("tr[data-verification]");
  assert.equal(await verifications.count(), detail.verifications.length);
  assert.deepEqual(detail.verifications.map((v) => v.outcome), ["match", "match", "match", "match"]);
  assert.match(await page.locator('tr[data-verification="train"]').innerText(), /match/);
  await shoot("run");
});

test("a metric chart renders the step-indexed history's points", async () => {
  const { series } = await api(`/runs/${firstRun}/series/loss`);
  assert.equal(series.length, 1);
  const expected = series[0].points.filter((p) => p[1] !== null).length;
  assert.ok(expected > 10, `loss has ${expected} points`);
  await visit(`#/runs/${firstRun}`);
  const path = page.locator('figure.chart[data-key="loss"] path.series');
  await path.waitFor();
  assert.equal(Number(await path.getAttribute("data-points")), expected);
  const d = await path.getAttribute("d");
  assert.equal((d.match(/[ML]/g) || []).length, expected, "one segment per point");
  await page.locator('figure.chart[data-key="loss"]').scrollIntoViewIfNeeded();
  await page.locator('figure.chart[data-key="loss"] svg').hover();
  assert.match(await page.locator('figure.chart[data-key="loss"] .readout').innerText(), /train: \d/);
  await shoot("run-metrics");
});

test("comparing two runs overlays their histories and marks the params that differ", async () => {
  await visit(`#/compare?runs=${firstRun},${secondRun}`);
  const chart = page.locator('figure.chart[data-key="loss"]');
  await chart.waitFor();
  assert.equal(await chart.locator("path.series").count(), 2, "one line per run");
  const row = page.locator("tr.differs", { hasText: "train.epochs" });
  await row.waitFor();
  assert.match(await row.innerText(), /300[\s\S]*200/);
  assert.equal(await page.locator("tr.differs", { hasText: "split.seed" }).count(), 0, "equal params are not marked");
  await shoot("compare");
});

test("the lineage view walks from the model back to the source data by clicking", async () => {
  const model = await api("/artifacts/iris%2Ftrain.model");
  await visit(`#/artifacts/${model.artifact.id}`);
  const graph = page.locator('svg.dag[aria-label="lineage"]');
  await graph.waitFor();
  for (const name of ["iris/train.model", "train", "iris/split.train", "split", "iris/load.dataset", "load", "iris/inputs.iris"]) {
    assert.equal(await graph.locator(`g.node[data-name="${name}"]`).count(), 1, name);
  }
  await shoot("lineage");
  await graph.locator('g.node[data-name="iris/inputs.iris"]').click();
  await page.waitForFunction(() => document.querySelector("h1")?.textContent.startsWith("iris/inputs.iris"));
  await drawn();
  assert.match(await page.locator("dl.facts").innerText(), /Source/);
  // The CSV preview: a table with the file's first rows.
  await page.locator(".csv table tbody tr").first().waitFor();
  assert.equal(await page.locator(".csv table tbody tr").count(), 100);
  const download = await page.locator("a.button", { hasText: "Download" }).getAttribute("href");
  const response = await fetch(`${base}${download}`);
  assert.match(response.headers.get("content-disposition"), /attachment; filename="inputs.iris-v1"/);
  await shoot("source-data");
});

test("the model page shows the alias and links each version to its lineage", async () => {
  await visit("#/models");
  await page.locator('tr[data-model="iris-softmax"]').waitFor();
  assert.match(await page.locator('tr[data-model="iris-softmax"]').innerText(), /champion → v1/);
  await page.click('tr[data-model="iris-softmax"] a');
  await page.waitForFunction(() => location.hash.startsWith("#/models/"));
  await drawn();
  const v1 = page.locator('tr[data-version="1"]');
  await v1.waitFor();
  assert.match(await v1.innerText(), /champion/);
  await shoot("model");
  await v1.locator("a.lineage-link").click();
  await page.waitForFunction(() => location.hash.startsWith("#/artifacts/"));
  await drawn();
  await page.locator('svg.dag[aria-label="lineage"] g.node[data-name="iris/inputs.iris"]').waitFor();
  assert.deepEqual(pageErrors, []);
});

test("the schedules page lists a schedule with its pipeline, cron and next due time", async () => {
  await visit("#/schedules");
  const row = page.locator('tr[data-schedule="nightly"]');
  await row.waitFor();
  const text = await row.innerText();
  assert.match(text, /iris/);
  assert.match(text, /0 3 \* \* \*/);
  assert.match(text, /active/);
  assert.match(text, /never/);
  await row.locator("a").first().click();
  await page.waitForFunction(() => location.hash === "#/schedules/nightly");
  await drawn();
  assert.match(await page.locator("dl.facts").innerText(), /train\.epochs=50/);
  await shoot("schedules");
  assert.deepEqual(pageErrors, []);
});
