// What the web dashboard costs a run: the whole system on loopback (as `npm start` runs it, mutual
// TLS included) trains one long run while a headless Chromium (Debian's, through playwright-core)
// has the dashboard open on it in every other window of time, and is closed in the others. The
// trainer's step rate in a window with the page open, over the mean of the two closed windows beside
// it, is the dashboard's cost (1.0: none); the median of those ratios is reported. Windows alternate
// (closed, open, closed, ..., closed) so that a drift of this shared machine's load over the run
// falls on both sides of each ratio. Each window starts after a settling time, so that Chromium's
// start (before an open window) and its exit (before a closed one) are in neither.
//
//   npm run -s bench:dashboard                   7 windows of 30 s, Fashion-MNIST subset, batch 64, K 4096
//   npm run -s bench:dashboard -- --smoke        3 windows of 4 s (a minute)
//   npm run -s bench:dashboard -- --windows 11 --seconds 60
//
// Writes docs/results/bench-dashboard.json (a smoke run: a temporary directory).
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { chromium } from "playwright-core";
import {
  importDataset,
  npmCommand,
  roundTo,
  startLocalSystem,
  startSystemDashboard,
  trainerAt,
  writeResults,
} from "@adco/cli";
import { BUNDLED_FASHION_MNIST } from "@adco/datasets";
import { RunConfig, type RunEvent } from "@adco/proto/trainer";
import { unaryCall } from "@adco/service-kit";
import { ObjectStore } from "@adco/storage";

const { values } = parseArgs({
  options: {
    smoke: { type: "boolean", default: false },
    windows: { type: "string", default: "7" },
    seconds: { type: "string", default: "30" },
  },
});
const smoke = values.smoke;
const WINDOWS = smoke ? 3 : Number(values.windows);
const SECONDS = smoke ? 4 : Number(values.seconds);
const SETTLE_MS = smoke ? 1000 : 5000;
if (!(WINDOWS >= 3 && WINDOWS % 2 === 1)) throw new Error("--windows: an odd number >= 3");
const CHROMIUM = process.env.ADCO_CHROMIUM ?? "/usr/bin/chromium";
if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM} (apt-get install chromium)`);

const directory = mkdtempSync(join(tmpdir(), "adco-bench-dashboard-"));
const system = await startLocalSystem({ directory, freePorts: true });
const trainer = trainerAt(system.services.trainer.address, system.credentials("trainer"));
const dashboard = await startSystemDashboard(system, 0);
try {
  await importDataset(new ObjectStore(system.s3), {
    format: "idx",
    source: BUNDLED_FASHION_MNIST,
    name: "fashion-mnist",
    bucket: "adco-datasets",
    quiet: true,
  });
  const runId = "bench-dashboard";
  await unaryCall(trainer.startRun.bind(trainer), {
    runId,
    config: RunConfig.fromPartial({
      preset: "fashion-mnist",
      dataset: { bucket: "adco-datasets", name: "fashion-mnist" },
      epochs: 100,
      batchSize: 64,
      bankSize: 4096,
    }),
  });
  // Every step event the trainer sends, with the time it arrived here.
  const steps: { step: number; at: number }[] = [];
  const watch = trainer.watchRun({ runId, replay: false });
  watch.on("data", (e: RunEvent) => {
    if (e.step) steps.push({ step: e.step.step, at: performance.now() });
  });
  watch.on("error", () => {});
  const stepAfter = async (min: number) => {
    while (!steps.length || steps[steps.length - 1]!.step < min) await new Promise((r) => setTimeout(r, 100));
  };
  await stepAfter(3); // past init_memory and the first, slower, steps
  console.log(`run ${runId} training; ${WINDOWS} windows of ${SECONDS} s, the dashboard open in every other`);

  /** Steps per second over the next SECONDS, from the step events that arrive in them. */
  const measure = async () => {
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    const start = performance.now();
    await new Promise((r) => setTimeout(r, SECONDS * 1000));
    const inside = steps.filter((s) => s.at >= start);
    if (inside.length < 2) return 0;
    const first = inside[0]!;
    const last = inside[inside.length - 1]!;
    return (last.step - first.step) / ((last.at - first.at) / 1000);
  };
  const windows: { open: boolean; stepsPerSecond: number }[] = [];
  for (let w = 0; w < WINDOWS; w++) {
    const open = w % 2 === 1;
    if (!open) {
      windows.push({ open, stepsPerSecond: await measure() });
    } else {
      const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true });
      const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
      await page.goto(`${dashboard.url}#run=${runId}`);
      // Measured once the page draws live points: its start-up is not the steady cost.
      await page.locator('[data-chart="loss"]:not([data-points="0"])').waitFor({ timeout: 60_000 });
      windows.push({ open, stepsPerSecond: await measure() });
      await browser.close();
    }
    const last = windows[windows.length - 1]!;
    console.log(
      `window ${w + 1}: dashboard ${open ? "open  " : "closed"} ${last.stepsPerSecond.toFixed(3)} steps/s`,
    );
  }
  await unaryCall(trainer.stopRun.bind(trainer), { runId });
  watch.cancel();

  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const closed = mean(windows.filter((w) => !w.open).map((w) => w.stepsPerSecond));
  const open = mean(windows.filter((w) => w.open).map((w) => w.stepsPerSecond));
  // Each open window against its two closed neighbours: a steady drift cancels.
  const ratios = windows.flatMap((w, i) =>
    w.open ? [w.stepsPerSecond / mean([windows[i - 1]!.stepsPerSecond, windows[i + 1]!.stepsPerSecond])] : [],
  );
  const sorted = [...ratios].sort((a, b) => a - b);
  const half = Math.floor(sorted.length / 2);
  const median = sorted.length % 2 ? sorted[half]! : mean([sorted[half - 1]!, sorted[half]!]);
  console.log(
    `step rate, dashboard open / closed beside it: median ${median.toFixed(3)} (${ratios.map((r) => r.toFixed(3)).join(", ")}); means ${open.toFixed(3)} / ${closed.toFixed(3)} steps/s`,
  );
  const file = writeResults({
    name: "bench-dashboard",
    command: npmCommand("bench:dashboard"),
    smoke,
    results: {
      windows: WINDOWS,
      windowSeconds: SECONDS,
      batch: 64,
      negatives: 4096,
      stepsPerSecondClosed: roundTo(closed, 3),
      stepsPerSecondOpen: roundTo(open, 3),
      // Median over the open windows of open / mean(closed before, closed after).
      openOverClosed: roundTo(median, 3),
      openOverClosedByWindow: ratios.map((r) => roundTo(r, 3)),
      byWindow: windows.map((w) => ({ dashboardOpen: w.open, stepsPerSecond: roundTo(w.stepsPerSecond, 3) })),
    },
  });
  console.log(`results: ${file}`);
} finally {
  trainer.close();
  await dashboard.close();
  await system.stop();
  rmSync(directory, { recursive: true, force: true });
}
process.exit(0);
