// An example pipeline of weft's step library in the dashboard: its run page
// (every step succeeded, the metrics listed) and the preview of one of its
// tables, each with a screenshot. Driven by tests/e2e/library.rs, which runs
// the example and passes:
//   WEFT_URL          the server's base URL
//   WEFT_EXAMPLE      the example's name (the screenshots' prefix)
//   WEFT_RUN          the run to show
//   WEFT_STEPS        how many steps it has
//   WEFT_METRIC       a metric its run page must list
//   WEFT_TABLE        the name of a CSV artifact to preview (pipeline/step.output)
//   WEFT_SCREENSHOTS  where to write the screenshots
// Every test also fails on any error the page logs or throws.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { openPage, need as needOf, visit as visitOn } from "./browser.mjs";

const base = need("WEFT_URL");
const example = need("WEFT_EXAMPLE");
const run = need("WEFT_RUN");
const steps = Number(need("WEFT_STEPS"));
const metric = need("WEFT_METRIC");
const tableName = need("WEFT_TABLE");
const shots = need("WEFT_SCREENSHOTS");
mkdirSync(shots, { recursive: true });

function need(name) {
  return needOf(name, "tests/e2e/library.rs (cargo test)");
}

let browser;
let page;
let pageErrors = [];

before(async () => {
  ({ browser, page, errors: pageErrors } = await openPage());
});

after(async () => { await browser?.close(); });

const visit = (hash) => visitOn(page, pageErrors, base, hash);

async function shoot(name) {
  await page.screenshot({ path: join(shots, `${example}-${name}.png`), fullPage: true });
  assert.deepEqual(pageErrors, [], "the page logged no error");
}

test("the run page shows every step succeeded and the run's metrics", async () => {
  await visit(`#/runs/${run}`);
  await page.locator("h1 .badge.st-succeeded").waitFor();
  // The graph: a node per step (and one for the run's input), each succeeded.
  await page.locator("g.node").first().waitFor();
  assert.equal(await page.locator('g.node[data-state="succeeded"]').count(), steps, "every step succeeded");
  const text = await page.locator("#view").innerText();
  assert.ok(text.includes(metric), `the metrics list ${metric}`);
  await shoot("run");
});

test("a table the run wrote is previewed as a table", async () => {
  const response = await fetch(`${base}/api/v1/artifacts/${encodeURIComponent(tableName)}`);
  assert.equal(response.status, 200, `GET artifact ${tableName}`);
  const { artifact } = await response.json();
  await visit(`#/artifacts/${artifact.id}`);
  const table = page.locator(".csv table");
  await table.waitFor();
  assert.ok(await table.locator("tbody tr").count() > 0, "the preview has rows");
  assert.ok((await table.locator("th").count()) >= 1, "the preview names its columns");
  await shoot("table");
});
