// Headless Chromium for the dashboard tests: one page, and the errors it
// logs or throws (each test asserts there were none).

import { chromium } from "playwright-core";

/** Launches Chromium with one page; `errors` collects what the page reports. */
export async function openPage() {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync"],
  });
  const page = await browser.newPage({ viewport: { width: 1360, height: 900 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  page.setDefaultTimeout(10_000);
  return { browser, page, errors };
}

/** The value of environment variable `name`, which `driver` (the test that
 * runs this file) sets; a clear error when it is not set. */
export function need(name, driver) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run this through ${driver}`);
  return value;
}

/** Opens route `hash` (e.g. `#/runs`) of the dashboard at `base` and waits
 * until its page is drawn; `errors` starts empty for the new page. */
export async function visit(page, errors, base, hash) {
  errors.length = 0;
  await page.goto(`${base}/${hash}`);
  await drawn(page);
}

/** Waits until the page of the current route is drawn (the dashboard sets
 * `data-ready` on #view to the route once it is). */
export async function drawn(page) {
  await page.waitForFunction(() => document.getElementById("view")?.dataset.ready === location.hash);
}
