// Opens the Shoal web console in Debian's headless Chromium and reports what it shows, as
// JSON on stdout: node check.mjs HTTP_ADDR GROUP TOPIC
// Used by tests/compat/test_console.py, which asserts on the report.
import { chromium } from "playwright-core";

const [http, group, topic] = process.argv.slice(2);
const base = `http://${http}`;
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  // launch() gives Chromium a fresh, empty profile directory of its own.
});
const report = {};
try {
  const page = await browser.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  // Group page: wait until the live group shows three members and its lag rows.
  await page.goto(`${base}/#/groups/${encodeURIComponent(group)}`);
  await page.waitForFunction(() => document.querySelectorAll("[data-test=member-row]").length === 3,
                             null, { timeout: 30000 });
  await page.waitForFunction(() => Number(document.querySelector("[data-test=lag-chart]")?.dataset.samples || 0) >= 2,
                             null, { timeout: 30000 });
  report.state = await page.textContent("[data-test=group-state]");
  report.members = await page.$$eval("[data-test=member-row]", (rows) => rows.map((r) => r.dataset.member));
  report.cells = await page.$$eval("[data-test=partition-cell]", (cells) => cells.map((c) => ({
    partition: Number(c.textContent), owner: c.dataset.owner })));
  report.total_lag = Number(await page.textContent("[data-test=total-lag]"));
  report.lag_rows = await page.$$eval("[data-test=lag-row]", (rows) => rows.map((r) => ({
    records: Number(r.querySelector("[data-test=lag-records]").textContent),
    seconds: Number(r.querySelector("[data-test=lag-seconds]").textContent) })));
  report.chart_samples = Number(await page.getAttribute("[data-test=lag-chart]", "data-samples"));
  report.rebalances = await page.$$eval("[data-test=rebalance]", (items) => items.length);
  // Groups list and the message browser.
  await page.goto(`${base}/#/groups`);
  await page.waitForSelector("[data-test=group-row]", { timeout: 10000 });
  report.group_rows = await page.$$eval("[data-test=group-row]", (rows) => rows.map((r) => r.textContent));
  await page.goto(`${base}/#/topics/${encodeURIComponent(topic)}`);
  await page.waitForSelector("[data-test=message-row]", { timeout: 10000 });
  report.messages = await page.$$eval("[data-test=message-row]", (rows) => rows.length);
  report.page_errors = errors;
} finally {
  await browser.close();
}
console.log(JSON.stringify(report));
