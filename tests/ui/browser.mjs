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
