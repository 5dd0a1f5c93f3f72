// The Experiments pages in headless Chromium, against a live `weft server`
// where a training script logged runs with the official mlflow client.
// Driven by tests/mlflow/test_dashboard.py, which passes:
//   WEFT_URL          the server's base URL
//   WEFT_EXPERIMENT   the id of the experiment the script logged into
//   WEFT_RUN          the id of its training run
//   WEFT_SCREENSHOTS  where to write a screenshot of each page
// Every test also fails on any error the page logs or throws.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { openPage } from "./browser.mjs";

const need = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run this through tests/mlflow/test_dashboard.py`);
  return value;
};
const base = need("WEFT_URL");
const experiment = need("WEFT_EXPERIMENT");
const runId = need("WEFT_RUN");
const shots = need("WEFT_SCREENSHOTS");
mkdirSync(shots, { recursive: true });

let browser;
let page;
let pageErrors = [];

before(async () => {
  ({ browser, page, errors: pageErrors } = await openPage());
});

after(async () => { await browser?.close(); });

async function visit(hash) {
  pageErrors.length = 0;
  await page.goto(`${base}/${hash}`);
  await page.waitForFunction(() => document.getElementById("view")?.dataset.ready === location.hash);
}

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
