// The web dashboard in a real browser: Debian's Chromium, headless, driven by playwright-core,
// against the services as processes on loopback (S3 server, a data worker, the bank, the trainer,
// the evaluator). A short run is started over gRPC; the page must show it, receive its curves
// through server-sent events, and stop it with its Stop button, which the trainer then reports;
// then its Evaluate button scores the last checkpoint (kNN and linear probe) and lists the result.
// The screenshot is kept as a test artifact (its path is printed). Without Chromium the test skips,
// except under CI=true, where it fails.
import assert from "node:assert/strict";
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { chromium, type Browser } from "playwright-core";
import { type Dashboard, evaluatorAt, startDashboard, trainerAt } from "@adco/cli";
import type { EvaluatorClient } from "@adco/proto/evaluator";
import { RunConfig, RunState, type TrainerClient } from "@adco/proto/trainer";
import { ObjectStore } from "@adco/storage";
import { startS3Server, type S3ServerProcess } from "@adco/storage/testing";
import { importTinyDataset } from "./lib/tiny-dataset.js";
import { ROOT, s3Env, startService, type ServiceName, type ServiceProcess } from "./lib/service-process.js";
import { ended, getRun, startRun, waitFor, watch } from "./lib/trainer-run.js";

const CHROMIUM = process.env.ADCO_CHROMIUM ?? "/usr/bin/chromium";
const ARTIFACTS = process.env.ADCO_TEST_ARTIFACTS ?? join(ROOT, "test/artifacts");
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium && process.env.CI === "true")
  throw new Error(
    `${CHROMIUM} is missing: CI must run the dashboard's browser test (apt-get install chromium)`,
  );
const skip = haveChromium ? false : `no Chromium at ${CHROMIUM} (apt-get install chromium)`;

let s3: S3ServerProcess;
let trainer: ServiceProcess;
let trainerEnv: Record<string, string>;
let worker: ServiceProcess;
let trainerClient: TrainerClient;
let evaluatorClient: EvaluatorClient;
let dashboard: Dashboard;
let browser: Browser;
const processes: ServiceProcess[] = [];

/** A run of the 512 tiny images: 16 steps an epoch at batch 32. */
const tinyRun = (patch: Partial<RunConfig>) =>
  RunConfig.fromPartial({
    preset: "fashion-mnist",
    dataset: { bucket: "adco-datasets", name: "tiny" },
    batchSize: 32,
    bankSize: 64,
    ...patch,
  });

async function start(name: ServiceName, env: Record<string, string> = {}): Promise<ServiceProcess> {
  const p = await startService(name, { ...s3Env(s3.settings), ...env });
  processes.push(p);
  return p;
}

describe("the dashboard in Chromium", { skip }, () => {
  before(async () => {
    s3 = await startS3Server();
    const store = new ObjectStore(s3.settings);
    await importTinyDataset(store, "tiny", { train: 512, test: 64 });
    // All settled before a failure is thrown, so that after() stops every process that started.
    const started = await Promise.allSettled([
      start("adversary-bank"),
      start("data-worker"),
      start("evaluator"),
    ]);
    const failed = started.find((s) => s.status === "rejected");
    if (failed) throw failed.reason;
    let bank: ServiceProcess, evaluator: ServiceProcess;
    [bank, worker, evaluator] = started.map((s) => (s as PromiseFulfilledResult<ServiceProcess>).value) as [
      ServiceProcess,
      ServiceProcess,
      ServiceProcess,
    ];
    trainerEnv = {
      ADCO_BANK_ADDRESS: bank.grpcAddress,
      ADCO_DATA_WORKERS: worker.grpcAddress,
      // kNN of each epoch's checkpoint, with its results and plots stored, as under `adco up`.
      ADCO_EVALUATOR_ADDRESS: evaluator.grpcAddress,
    };
    trainer = await start("trainer", trainerEnv);
    trainerClient = trainerAt(trainer.grpcAddress);
    evaluatorClient = evaluatorAt(evaluator.grpcAddress);
    dashboard = await startDashboard({
      trainer: trainerClient,
      evaluator: evaluatorClient,
      store: { store },
      datasetsBucket: "adco-datasets",
      port: 0,
    });
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true });
  });

  after(async () => {
    await browser?.close();
    await dashboard?.close();
    trainerClient?.close();
    evaluatorClient?.close();
    await Promise.all(processes.map((p) => p.stop("SIGKILL")));
    await s3?.stop();
  });

  it("shows a run's live curves and stops it with its Stop button", async () => {
    // 16 steps an epoch, 40 epochs: the run is still training when the page stops it.
    const runId = "dashboard-run";
    await startRun(trainer, {
      runId,
      config: tinyRun({ epochs: 40, checkpointEverySteps: 16 }),
    });
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    const pageErrors: string[] = [];
    page.on("pageerror", (e) => pageErrors.push(e.message));
    await page.goto(`${dashboard.url}#run=${runId}`);

    // The run list arrives by its event stream, and the run is selected.
    await page.locator(`#runs tr[data-run="${runId}"]`).waitFor({ timeout: 20_000 });
    await page.locator("#run-title", { hasText: runId }).waitFor();
    // Curves drawn from pushed step events: at least 3 points on the loss, throughput and contrast
    // charts. The page keeps each chart's point count in data-points.
    const points = async (chart: string) =>
      Number(await page.locator(`[data-chart="${chart}"]`).getAttribute("data-points"));
    const pointsAtLeast = (chart: string, n: number, timeoutMs: number) =>
      waitFor(
        `${n} points on the ${chart} chart`,
        async () => ((await points(chart)) >= n ? true : undefined),
        timeoutMs,
      );
    for (const chart of ["loss", "throughput", "contrast"]) await pointsAtLeast(chart, 3, 40_000);
    // Live, not a reload: more points come while the page stays open.
    await pointsAtLeast("loss", (await points("loss")) + 1, 20_000);
    await page.locator("#run-state", { hasText: "running" }).waitFor({ timeout: 10_000 });
    // The run's data worker, from the trainer's WorkerEvent.
    await page
      .locator(`#workers li[data-worker="${worker.grpcAddress}"].serving`)
      .waitFor({ timeout: 10_000 });
    // The first epoch's evaluation: a point on the kNN chart, then its stored results and plots.
    await pointsAtLeast("knn", 1, 60_000);
    await page.locator(".evaluation .per-class").first().waitFor({ timeout: 20_000 });
    await waitFor(
      "the evaluation's plots to load",
      async () => {
        const loaded = await page
          .locator(".evaluation img")
          .evaluateAll((images) =>
            images.map((i) => (i as unknown as { naturalWidth: number }).naturalWidth > 0),
          );
        return loaded.length > 0 && loaded.every(Boolean) ? true : undefined;
      },
      20_000,
    );

    await page.locator("#stop").click();
    await watch(trainer, runId, ended);
    const run = await getRun(trainer, runId);
    assert.equal(run.state, RunState.RUN_STATE_STOPPED, `the run is ${RunState[run.state]}: ${run.error}`);
    // The page learns it from the run list's stream, and offers to resume.
    await page.locator("#run-state", { hasText: "stopped" }).waitFor({ timeout: 10_000 });
    await page.locator(`#runs tr[data-run="${runId}"]`, { hasText: "stopped" }).waitFor({ timeout: 10_000 });
    assert.equal(await page.locator("#resume").isDisabled(), false);
    assert.ok((await page.locator("#checkpoints li").count()) >= 1, "the run's checkpoints are listed");

    // Evaluate the stopped run's last checkpoint from the page: kNN and the linear probe, stored and
    // listed with the first epoch's evaluation.
    await page.locator("#evaluate").click();
    await page.locator("#message", { hasText: `step ${run.step}: kNN` }).waitFor({ timeout: 60_000 });
    const evaluated = page.locator(".evaluation", { hasText: `step ${run.step}: kNN` });
    await evaluated.waitFor({ timeout: 10_000 });
    assert.doesNotMatch((await evaluated.locator("div").first().textContent()) ?? "", /linear –/);
    await pointsAtLeast("knn", 2, 5_000);

    mkdirSync(ARTIFACTS, { recursive: true });
    const screenshot = join(ARTIFACTS, "dashboard.png");
    await page.screenshot({ path: screenshot, fullPage: true });
    console.log(`# dashboard screenshot: ${screenshot}`);
    assert.deepEqual(pageErrors, []);
  });

  it("follows a run through a rollout to the next trainer at the same address", async () => {
    const runId = "dashboard-rollout";
    await startRun(trainer, {
      runId,
      config: tinyRun({ epochs: 4, checkpointEverySteps: 4 }),
    });
    const page = await browser.newPage();
    const pageErrors: string[] = [];
    page.on("pageerror", (e) => pageErrors.push(e.message));
    await page.goto(`${dashboard.url}#run=${runId}`);
    await page.locator("#run-title", { hasText: runId }).waitFor({ timeout: 20_000 });
    const events = page.locator("#events li");
    await events.filter({ hasText: "epoch 0 done" }).waitFor({ timeout: 60_000 });

    const port = String(trainer.grpcPort);
    assert.equal((await trainer.stop("SIGTERM")).code, 0);
    await events
      .filter({ hasText: "waiting for the next one" })
      .waitFor({ timeout: 30_000 })
      .catch(async (e: Error) => {
        throw new Error(`${e.message}; the page's events: ${(await events.allTextContents()).join(" | ")}`);
      });
    trainer = await start("trainer", { ...trainerEnv, ADCO_GRPC_PORT: port });
    await page.locator("#run-state", { hasText: "completed" }).waitFor({ timeout: 120_000 });
    const texts = await events.allTextContents();
    for (const said of [/the trainer is shutting down at step \d+/, /resumed at step \d+/, /completed/])
      assert.ok(
        texts.some((t) => said.test(t)),
        `${said} in the page's events: ${texts.join(" | ")}`,
      );
    assert.deepEqual(
      texts.flatMap((t) => /epoch (\d) done/.exec(t)?.[1] ?? []).sort(),
      ["0", "1", "2", "3"],
      "each epoch listed once",
    );
    assert.deepEqual(pageErrors, []);
  });
});
