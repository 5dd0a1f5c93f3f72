// The Experiments pages in headless Chromium, against a live `weft server`
// where a training script logged runs with the official mlflow client.
// Driven by tests/mlflow/test_dashboard.py, which passes:
//   WEFT_URL          the server's base URL
//   WEFT_EXPERIMENT   the id of the experiment the script logged into
//   WEFT_RUN          the id of its training run
//   WEFT_TRACE        the id of a trace made in that run (predict > features > scale)
//   WEFT_PIPELINE_EXPERIMENT  the experiment of the iris pipeline, run once by `weft run`
//   WEFT_SCREENSHOTS  where to write a screenshot of each page
// Every test also fails on any error the page logs or throws.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { openPage, need as needOf, visit as visitOn } from "./browser.mjs";

const need = (name) => needOf(name, "tests/mlflow/test_dashboard.py");
const base = need("WEFT_URL");
const experiment = need("WEFT_EXPERIMENT");
const runId = need("WEFT_RUN");
const traceId = need("WEFT_TRACE");
const pipelineExperiment = need("WEFT_PIPELINE_EXPERIMENT");
const shots = need("WEFT_SCREENSHOTS");
mkdirSync(shots, { recursive: true });

let browser;
let page;
let pageErrors = [];

before(async () => {
  ({ browser, page, errors: pageErrors } = await openPage());
});

after(async () => { await browser?.close(); });

const visit = (hash) => visitOn(page, pageErrors, base, hash);

test("the experiments page lists client experiments beside pipelines, deleted ones on request, and restores them", async () => {
  await visit("#/experiments");
  await page.locator('tr[data-experiment="iris-sklearn"]').waitFor();
  await page.locator('tr[data-experiment="iris"]').waitFor();
  assert.equal(await page.locator('tr[data-experiment="old-trials"]').count(), 0, "deleted: hidden");
  await page.screenshot({ path: join(shots, "experiments.png"), fullPage: true });
  await page.check("input[data-show-deleted]");
  await page.waitForFunction(() => location.hash.includes("deleted=1"));
  const old = page.locator('tr[data-experiment="old-trials"]');
  await old.waitFor();
  assert.match(await old.innerText(), /deleted/);
  await old.locator("button[data-restore]").click();
  await page.waitForFunction(() => !document.querySelector('tr[data-experiment="old-trials"] button[data-restore]'));
  assert.doesNotMatch(await page.locator('tr[data-experiment="old-trials"]').innerText(), /deleted/);
  assert.deepEqual(pageErrors, []);
});

test("an experiment lists its client-logged runs with params and metrics", async () => {
  await visit(`#/experiments/${experiment}`);
  const row = page.locator('tr[data-run="logreg-c1"]');
  await row.waitFor();
  assert.match(await row.innerText(), /FINISHED/);
  assert.match(await row.innerText(), /0\.9/, "its accuracy");
  assert.equal(await page.locator("tr[data-run]").count(), 2);
  await page.screenshot({ path: join(shots, "experiment.png"), fullPage: true });
  assert.deepEqual(pageErrors, []);
});

test("a client-logged run shows its params, metric chart, tags, dataset and artifacts", async () => {
  await visit(`#/experiments/${experiment}/runs/${runId}`);
  await page.locator('tr[data-param="C"]').waitFor();
  assert.match(await page.locator('tr[data-param="C"]').innerText(), /1\.0/);
  assert.match(await page.locator('tr[data-metric="loss"]').innerText(), /loss/);
  const points = await page.locator('figure.chart[data-key="loss"] svg').getAttribute("aria-label");
  assert.equal(points, "loss");
  assert.match(await page.locator('tr[data-tag="team"]').innerText(), /vision/);
  assert.match(await page.locator('tr[data-dataset="iris"]').innerText(), /training/);
  await page.locator('tr[data-artifact="report.txt"]').waitFor();
  await page.locator('tr[data-artifact="model"]').waitFor();
  await page.screenshot({ path: join(shots, "experiment-run.png"), fullPage: true });
  assert.deepEqual(pageErrors, []);
});

test("an experiment lists its traces, and a trace shows its spans as a tree with timings", async () => {
  await visit(`#/experiments/${experiment}`);
  const row = page.locator(`tr[data-trace="${traceId}"]`);
  await row.waitFor();
  assert.match(await row.innerText(), /predict/);
  assert.match(await row.innerText(), /OK/);
  assert.match(await row.innerText(), /"rows": 3/, "the request preview");
  await row.locator("a").first().click();
  await page.waitForFunction((id) => location.hash.endsWith(`/traces/${id}`) && document.getElementById("view")?.dataset.ready === location.hash, traceId);
  const spans = page.locator("tr[data-span]");
  assert.deepEqual(await spans.evaluateAll((rows) => rows.map((r) => [r.dataset.span, r.dataset.depth])),
    [["predict", "0"], ["features", "1"], ["scale", "2"]], "the tree, in order, with depths");
  assert.match(await page.locator('tr[data-span="features"]').innerText(), /PARSER/);
  const bar = await page.locator('tr[data-span="scale"] td.timeline svg').getAttribute("aria-label");
  assert.match(bar, /^[0-9.]+ ms \+ [0-9.]+ ms$/, "a timing bar: its start and length");
  await page.locator('tr[data-span="features"] summary').click();
  assert.match(await page.locator('tr[data-span="features"]').innerText(), /"rows": 3/, "the span's inputs");
  assert.match(await page.locator('tr[data-span="scale"]').innerText(), /scale/);
  await page.locator('tr[data-span="scale"] summary').click();
  assert.match(await page.locator('tr[data-span="scale"]').innerText(), /standard/, "its attribute");
  await page.screenshot({ path: join(shots, "trace.png"), fullPage: true });
  assert.deepEqual(pageErrors, []);
});

test("a client-logged run and a pipeline's step run are compared side by side", async () => {
  await visit(`#/experiments/${experiment}`);
  await page.locator('tr[data-run="logreg-c1"] input[data-pick]').check();
  assert.match(await page.locator("a[data-compare]").innerText(), /Compare \(1\)/);
  // The pick is kept while another experiment is open.
  await visit(`#/experiments/${pipelineExperiment}`);
  await page.locator('tr[data-run="iris #1"]').waitFor();
  await page.locator('tr[data-run="evaluate"] input[data-pick]').check();
  assert.match(await page.locator("a[data-compare]").innerText(), /Compare \(2\)/);
  await page.locator("a[data-compare]").click();
  await page.waitForFunction(() => location.hash.startsWith("#/experiments/compare") && document.getElementById("view")?.dataset.ready === location.hash);
  const heads = await page.locator("table.compare").first().locator("thead th").allInnerTexts();
  assert.match(heads[1], /logreg-c1/);
  assert.match(heads[2], /iris #1 · evaluate/, "a step run names its pipeline run");
  const accuracy = await page.locator('table.compare tr[data-row="accuracy"] td').allInnerTexts();
  assert.equal(accuracy.length, 2);
  assert.equal(accuracy[0], "0.93");
  assert.ok(Number(accuracy[1]) > 0.8, `the pipeline's accuracy: ${accuracy[1]}`);
  const c = await page.locator('table.compare tr[data-row="C"] td').allInnerTexts();
  assert.deepEqual(c, ["1.0", "—"], "a param one run has and the other lacks");
  assert.equal(await page.locator('table.compare tr[data-row="C"]').getAttribute("class"), "differs");
  await page.locator('figure.chart[data-key="accuracy"]').waitFor();
  await page.screenshot({ path: join(shots, "experiments-compare.png"), fullPage: true });
  assert.deepEqual(pageErrors, []);
});
