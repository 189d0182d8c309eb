// Opens the Shoal web console in Debian's headless Chromium and reports what it shows, as
// JSON on stdout: node check.mjs HTTP_ADDR GROUP TOPIC [SHARE_GROUP SHARE_TOPIC]
// Used by tests/compat/test_console.py, which asserts on the report.
import { chromium } from "playwright-core";

const [http, group, topic, shareGroup, shareTopic] = process.argv.slice(2);
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
  await page.waitForFunction(() => Number(document.querySelector("[data-test=group-throughput]")?.dataset.samples || 0) >= 1,
                             null, { timeout: 30000 });
  report.group_throughput_samples = Number(await page.getAttribute("[data-test=group-throughput]", "data-samples"));
  // Groups list and the message browser.
  await page.goto(`${base}/#/groups`);
  await page.waitForSelector("[data-test=group-row]", { timeout: 10000 });
  report.group_rows = await page.$$eval("[data-test=group-row]", (rows) => rows.map((r) => r.textContent));
  await page.goto(`${base}/#/topics/${encodeURIComponent(topic)}`);
  await page.waitForSelector("[data-test=message-row]", { timeout: 10000 });
  report.messages = await page.$$eval("[data-test=message-row]", (rows) => rows.length);
  await page.waitForFunction(() => Number(document.querySelector("[data-test=topic-throughput]")?.dataset.samples || 0) >= 1,
                             null, { timeout: 30000 });
  report.topic_throughput_samples = Number(await page.getAttribute("[data-test=topic-throughput]", "data-samples"));
  report.topic_compression_ratio = await page.getAttribute("[data-test=compression-ratio]", "data-ratio");
  if (shareGroup) {
    // The share-groups section of the groups page: members and each share-partition's window.
    const card = `[data-test=share-group][data-group="${shareGroup}"]`;
    await page.goto(`${base}/#/groups`);
    await page.waitForSelector(`${card} [data-test=share-partition]`, { timeout: 15000 });
    const sharePartitions = (root) => page.$$eval(`${root} [data-test=share-partition]`, (rows) => rows.map((r) => {
      const n = (t) => Number(r.querySelector(`[data-test=${t}]`).textContent);
      return { topic: r.dataset.topic, partition: Number(r.dataset.partition), start_offset: n("spso"),
               end_offset: n("speo"), lag: n("share-lag"), acquired: n("count-acquired"),
               available: n("count-available"), acknowledged: n("count-acknowledged"),
               archiving: n("count-archiving"), archived: n("count-archived") };
    }));
    report.share_list = {
      members: await page.$$eval(`${card} [data-test=share-member]`, (rows) => rows.map((r) => r.dataset.member)),
      partitions: await sharePartitions(card),
    };
    // The share group's own page: the same, the delivery-count histogram and rejections.
    await page.goto(`${base}/#/groups/${encodeURIComponent(shareGroup)}`);
    await page.waitForSelector("[data-test=share-detail] [data-test=share-partition]", { timeout: 15000 });
    report.share_detail = {
      state: await page.textContent("[data-test=group-state]"),
      members: await page.$$eval("[data-test=share-detail] [data-test=share-member]", (rows) => rows.map((r) => r.dataset.member)),
      partitions: await sharePartitions("[data-test=share-detail]"),
      histogram: await page.$$eval("[data-test=delivery-bar]", (bars) => bars.map((b) => ({
        delivery_count: Number(b.dataset.count), records: Number(b.dataset.records) }))),
      rejected: Number(await page.textContent("[data-test=archived-rejected]")),
      total_lag: Number(await page.textContent("[data-test=total-lag]")),
    };
    await page.goto(`${base}/#/topics/${encodeURIComponent(shareTopic)}`);
    await page.waitForFunction(() => (document.querySelector("[data-test=compression-ratio]")?.dataset.ratio || "") !== "",
                               null, { timeout: 30000 });
    report.share_topic_compression_ratio = Number(await page.getAttribute("[data-test=compression-ratio]", "data-ratio"));
  }
  report.page_errors = errors;
} finally {
  await browser.close();
}
console.log(JSON.stringify(report));
