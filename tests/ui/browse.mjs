// Drives Debian's chromium through `lakebuild serve` like a user, for tests/web.rs:
// the asset graph → predictions (partitions, lineage) → the runs → the latest run's steps
// → a failed run's error → log in → launch a job → its run appears. A screenshot of every
// page goes to $SHOTS. Prints one JSON line of what it saw; exits 1 on the first failure.
import { chromium } from "playwright-core";

const base = process.env.LAKEBUILD_URL;
const token = process.env.LAKEBUILD_UI_TOKEN;
const shots = process.env.SHOTS;
const failedRun = process.env.FAILED_RUN;
const failedError = process.env.FAILED_ERROR;
const job = process.env.JOB;
const seen = {};

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const page = await browser.newPage({ viewport: { width: 1500, height: 1000 } });
const shot = (name) => page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });
const check = (ok, what) => { if (!ok) throw new Error(what); };

try {
  // The asset graph, each node coloured by its state.
  await page.goto(base + "/");
  await page.waitForSelector("#node-predictions");
  seen.graph_nodes = await page.locator("#graph g.node").count();
  seen.predictions_state = await page.getAttribute("#node-predictions", "data-state");
  await shot("graph");

  // Click through to predictions: its partitions strip and its lineage.
  await page.click("#node-predictions");
  await page.waitForSelector("#partitions rect.cell");
  await page.waitForSelector("#lineage li");
  check(page.url().endsWith("#/asset/predictions"), "the click did not open predictions: " + page.url());
  seen.partition_cells = await page.locator("#partitions rect.cell").count();
  seen.built_cells = await page.locator('#partitions rect.cell[data-state="built"]').count();
  seen.checked_cells = await page.locator("#partitions rect.check").count();
  seen.passed_cells = await page.locator('#partitions rect.check[data-checks="passed"]').count();
  seen.lineage = await page.locator("#lineage").innerText();
  seen.sample_rows = await page.locator("#sample tbody tr").count();
  await shot("asset-predictions");

  // The filter by selection syntax.
  await page.goto(base + "/#/?select=%2Bpredictions");
  await page.waitForSelector("#node-predictions");
  seen.filtered_nodes = await page.locator("#graph g.node").count();

  // The runs, and the latest run's steps on a Gantt chart.
  await page.goto(base + "/#/runs");
  await page.waitForSelector("#runs tbody tr");
  seen.runs = await page.locator("#runs tbody tr").count();
  await shot("runs");
  await page.locator("#runs tbody tr").first().locator("a").first().click();
  await page.waitForSelector("#steps tbody tr");
  seen.latest_run_steps = await page.locator("#steps tbody tr").count();
  seen.gantt_bars = await page.locator("#gantt rect.bar").count();
  await shot("run-latest");

  // A failed step shows its error.
  await page.goto(base + "/#/run/" + encodeURIComponent(failedRun));
  await page.waitForSelector("pre.error");
  seen.failed_error = await page.locator("pre.error").first().innerText();
  check(seen.failed_error.includes(failedError), "the failed run's page lacks its error: " + seen.failed_error);
  await shot("run-failed");

  // Not logged in: the launch button is disabled and a POST from the page is refused.
  await page.goto(base + "/#/schedules");
  await page.waitForSelector("#launch-" + job);
  seen.launch_disabled_before_login = await page.locator("#launch-" + job).isDisabled();
  seen.post_without_login = await page.evaluate(async (j) =>
    (await fetch(`/api/jobs/${j}/launch`, { method: "POST", headers: { "Content-Type": "application/json" }, body: "{}" })).status, job);

  // Log in with the token, then launch the job.
  await page.goto(base + "/login");
  await page.fill("#token", token);
  await shot("login");
  await Promise.all([page.waitForURL(base + "/"), page.click("#login")]);
  await page.waitForSelector("#session form");
  await page.goto(base + "/#/schedules");
  await page.waitForSelector(`#launch-${job}:not([disabled])`);
  await shot("schedules");
  const before = await page.evaluate(async () => (await (await fetch("/api/runs")).json()).length);
  await page.click("#launch-" + job);
  await page.waitForFunction((j) => document.querySelector("#launch-" + j).textContent === "Started", job);
  // Its run appears in the run list.
  const deadline = Date.now() + 240000;
  for (;;) {
    const runs = await page.evaluate(async () => (await fetch("/api/runs")).json());
    const mine = runs.find((r) => r.trigger === "job:" + job);
    if (mine && runs.length > before) { seen.launched_run = mine.run_id; break; }
    check(Date.now() < deadline, "the launched job's run never appeared");
    await page.waitForTimeout(1000);
  }
  await page.goto(base + "/#/runs");
  await page.waitForSelector("#runs tbody tr");
  seen.runs_after_launch = await page.locator("#runs tbody").innerText();
  await shot("runs-after-launch");

  // The models page: versions, CV per fold, live rolling IC charts.
  await page.goto(base + "/#/models");
  await page.waitForSelector("#versions tbody tr");
  seen.model_versions = await page.locator("#versions tbody tr").count();
  seen.fold_rows = await page.locator("#folds tbody tr").count();
  seen.performance_charts = await page.locator("#performance svg").count();
  await shot("models");

  console.log(JSON.stringify({ ok: true, seen }));
  await browser.close();
} catch (e) {
  await shot("failure").catch(() => {});
  console.log(JSON.stringify({ ok: false, error: String(e && e.stack || e), seen }));
  await browser.close();
  process.exit(1);
}
