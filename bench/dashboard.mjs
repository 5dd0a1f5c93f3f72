#!/usr/bin/env node
// Benchmark: the dashboard in headless Chromium over a large store.
//
// Seeds a store with 10,000 runs and one run whose `loss` has 100,000
// points (host/store/examples/seed.rs), starts `weft server` on it, then
// measures, as a user sees it (navigation to page drawn):
//   - the runs page (first page of 50, total count, filters) cold and warm,
//     sorting by duration, and paging;
//   - the run page of the 100,000-point run (its chart downsampled on the
//     server to at most 1,000 points), and hover latency on that chart;
//   - the API answers behind them.
// Run from the repository root after a release build and `npm ci` in tests/ui:
//   node bench/dashboard.mjs [--runs 10000] [--points 100000] [--repeat 7]
// The seeded store is kept in target/bench-dashboard-<runs>-<points>.

import { spawn, execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const RUNS = arg("runs", 10_000), POINTS = arg("points", 100_000), REPEAT = arg("repeat", 7);
const playwright = join(root, "tests/ui/node_modules/playwright-core/index.mjs");
if (!existsSync(playwright)) {
  console.error("playwright-core is missing: run `npm ci --prefix tests/ui` (tests/run.sh does) and install chromium");
  process.exit(2);
}
const { chromium } = await import(playwright);
const weft = join(root, "target/release/weft");
if (!existsSync(weft)) {
  console.error("target/release/weft is missing: run `cargo build --release -p weft-cli`");
  process.exit(2);
}

// 1. The store.
const state = join(root, `target/bench-dashboard-${RUNS}-${POINTS}`);
const idFile = join(state, "long-run-id");
if (!existsSync(idFile)) {
  mkdirSync(state, { recursive: true });
  console.error(`seeding ${RUNS} runs and a ${POINTS}-point history into ${state} ...`);
  const id = execFileSync("cargo", ["run", "--release", "-q", "-p", "weft-store", "--example", "seed", "--",
    `sqlite://${join(state, "weft.db")}`, String(RUNS), String(POINTS)], { cwd: root, stdio: ["ignore", "pipe", "inherit"] }).toString().trim();
  writeFileSync(idFile, id);
}
const longRun = readFileSync(idFile, "utf8").trim();

// 2. The server.
const server = spawn(weft, ["--state-dir", state, "server", "--port", "0"], { stdio: ["ignore", "ignore", "pipe"] });
const base = await new Promise((ok, fail) => {
  createInterface({ input: server.stderr }).once("line", (line) => {
    const url = line.split(/\s+/).find((w) => w.startsWith("http://"));
    url ? ok(url) : fail(new Error(line));
  });
});

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const results = {};
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  // 3. API answers.
  const timeApi = async (path) => {
    const times = [];
    let bytes = 0;
    for (let i = 0; i < REPEAT; i++) {
      const t = performance.now();
      const r = await fetch(`${base}/api/v1${path}`);
      bytes = (await r.arrayBuffer()).byteLength;
      times.push(performance.now() - t);
    }
    return { ms: median(times), bytes };
  };
  results.api = {
    runs_page: await timeApi("/runs?limit=50"),
    runs_page_by_duration: await timeApi("/runs?limit=50&sort=duration"),
    runs_page_9000_filtered: await timeApi("/runs?limit=50&q=synth&offset=9000"),
    series_100k_points: await timeApi(`/runs/${longRun}/series/loss`),
    metric_summaries_100k_points: await timeApi(`/runs/${longRun}/metrics`),
  };

  // 4. Pages: navigation to drawn, each load in a fresh page (no warm JS).
  const load = async (hash, context) => {
    const page = await context.newPage();
    const t = performance.now();
    await page.goto(`${base}/${hash}`);
    await page.waitForFunction(() => document.getElementById("view")?.dataset.ready === location.hash, null, { timeout: 30_000 });
    const ms = performance.now() - t;
    return { page, ms };
  };
  const pageTimes = async (hash) => {
    const times = [];
    for (let i = 0; i < REPEAT; i++) {
      const context = await browser.newContext({ viewport: { width: 1360, height: 900 } });
      const { ms } = await load(hash, context);
      times.push(ms);
      await context.close();
    }
    return { median_ms: median(times), max_ms: Math.max(...times) };
  };
  results.pages = {
    runs: await pageTimes("#/runs"),
    runs_by_duration: await pageTimes("#/runs?sort=duration&order=desc"),
    runs_page_100: await pageTimes("#/runs?offset=5000"),
    run_with_100k_point_chart: await pageTimes(`#/runs/${longRun}`),
  };

  // 5. The chart: what it drew, and how long a hover read-out takes.
  const context = await browser.newContext({ viewport: { width: 1360, height: 900 } });
  const { page } = await load(`#/runs/${longRun}`, context);
  const chart = await page.evaluate(async () => {
    const path = document.querySelector('figure.chart[data-key="loss"] path.series');
    const svg = path.closest("svg");
    const rect = svg.getBoundingClientRect();
    const times = [];
    for (let i = 0; i < 200; i++) {
      const t = performance.now();
      svg.dispatchEvent(new MouseEvent("mousemove", { clientX: rect.left + (rect.width * i) / 200, clientY: rect.top + 20, bubbles: true }));
      document.body.getBoundingClientRect(); // force layout of the read-out
      times.push(performance.now() - t);
    }
    times.sort((a, b) => a - b);
    return { total_points: Number(path.dataset.total), drawn_points: Number(path.dataset.points), hover_median_ms: times[100], hover_p99_ms: times[197] };
  });
  results.chart = chart;
  await context.close();
} finally {
  await browser.close();
  server.kill();
}

results.setup = { runs: RUNS, points: POINTS, repeat: REPEAT, chromium: execFileSync(process.env.CHROMIUM || "/usr/bin/chromium", ["--version"]).toString().trim() };
const f = (x) => x.toFixed(1);
console.log(`dashboard over ${RUNS.toLocaleString("en-US")} runs and a ${POINTS.toLocaleString("en-US")}-point metric (median of ${REPEAT})`);
console.log("page (navigation to drawn)            median    max");
for (const [k, v] of Object.entries(results.pages)) console.log(`  ${k.padEnd(34)} ${f(v.median_ms).padStart(7)} ms ${f(v.max_ms).padStart(7)} ms`);
console.log("API                                   median   bytes");
for (const [k, v] of Object.entries(results.api)) console.log(`  ${k.padEnd(34)} ${f(v.ms).padStart(7)} ms ${String(v.bytes).padStart(7)}`);
console.log(`chart: ${results.chart.drawn_points} of ${results.chart.total_points} points drawn; hover read-out median ${results.chart.hover_median_ms.toFixed(2)} ms, p99 ${results.chart.hover_p99_ms.toFixed(2)} ms`);
writeFileSync(join(root, "target/bench-dashboard.json"), JSON.stringify(results, null, 2));
