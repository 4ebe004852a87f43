// What the web dashboard costs a run: the whole system on loopback (as `npm start` runs it, mutual
// TLS included) trains one long run through windows of time that alternate between nobody watching
// ("closed") and, in turn, one of two clients of the dashboard on the run:
//   browser: a headless Chromium (Debian's, through playwright-core) with the page open, drawing;
//   events:  the page's two event streams (the run's events, the run list) read and thrown away:
//            the dashboard server's and the trainer's share of the cost, without a browser's.
// The step rate in a watched window, over the mean of the two closed windows beside it, is that
// client's cost (1.0: none); the median of those ratios is reported for each. Closed windows sit
// between all others, so a drift of this shared machine's load falls on both sides of each ratio,
// and each window starts after a settling time that keeps Chromium's start and exit out of it.
//
//   npm run -s bench:dashboard                   13 windows of 30 s, Fashion-MNIST subset, batch 64, K 4096
//   npm run -s bench:dashboard -- --smoke        5 windows of 6 s (a minute and a half)
//   npm run -s bench:dashboard -- --windows 17 --seconds 60
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
    windows: { type: "string", default: "13" },
    seconds: { type: "string", default: "30" },
  },
});
const smoke = values.smoke;
const WINDOWS = smoke ? 5 : Number(values.windows);
const SECONDS = smoke ? 6 : Number(values.seconds);
const SETTLE_MS = smoke ? 1000 : 5000;
if (!(WINDOWS >= 5 && WINDOWS % 4 === 1)) throw new Error("--windows: 5, 9, 13, ... (4n + 1)");
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
  console.log(`run ${runId} training; ${WINDOWS} windows of ${SECONDS} s, a dashboard client in every other`);

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
  type Kind = "closed" | "browser" | "events";
  const windows: { kind: Kind; stepsPerSecond: number }[] = [];
  const kindOf = (w: number): Kind => (w % 2 === 0 ? "closed" : w % 4 === 1 ? "browser" : "events");
  for (let w = 0; w < WINDOWS; w++) {
    const kind = kindOf(w);
    if (kind === "closed") {
      windows.push({ kind, stepsPerSecond: await measure() });
    } else if (kind === "browser") {
      const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true });
      const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
      await page.goto(`${dashboard.url}#run=${runId}`);
      // Measured once the page draws live points: its start-up is not the steady cost.
      await page.locator('[data-chart="loss"]:not([data-points="0"])').waitFor({ timeout: 60_000 });
      windows.push({ kind, stepsPerSecond: await measure() });
      await browser.close();
    } else {
      const abort = new AbortController();
      const drain = async (path: string) => {
        const response = await fetch(new URL(path, dashboard.url), { signal: abort.signal });
        const reader = response.body!.getReader();
        while (!(await reader.read()).done);
      };
      const streams = [`/api/runs/${runId}/events`, "/api/runs-stream"].map((p) => drain(p).catch(() => {}));
      windows.push({ kind, stepsPerSecond: await measure() });
      abort.abort();
      await Promise.all(streams);
    }
    console.log(`window ${w + 1}: ${kind.padEnd(7)} ${windows[w]!.stepsPerSecond.toFixed(3)} steps/s`);
  }
  await unaryCall(trainer.stopRun.bind(trainer), { runId });
  watch.cancel();

  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const median = (xs: number[]) => {
    const sorted = [...xs].sort((a, b) => a - b);
    const half = Math.floor(sorted.length / 2);
    return sorted.length % 2 ? sorted[half]! : mean([sorted[half - 1]!, sorted[half]!]);
  };
  const rateOf = (kind: Kind) => mean(windows.filter((w) => w.kind === kind).map((w) => w.stepsPerSecond));
  // Each watched window against its two closed neighbours: a steady drift cancels.
  const ratiosOf = (kind: Kind) =>
    windows.flatMap((w, i) =>
      w.kind === kind
        ? [w.stepsPerSecond / mean([windows[i - 1]!.stepsPerSecond, windows[i + 1]!.stepsPerSecond])]
        : [],
    );
  const summary = (kind: "browser" | "events") => ({
    stepsPerSecond: roundTo(rateOf(kind), 3),
    // Median over this client's windows of its rate / mean(closed window before, closed window after).
    overClosed: roundTo(median(ratiosOf(kind)), 3),
    overClosedByWindow: ratiosOf(kind).map((r) => roundTo(r, 3)),
  });
  const browser = summary("browser");
  const events = summary("events");
  for (const [name, s] of [
    ["browser", browser],
    ["events ", events],
  ] as const)
    console.log(
      `step rate, ${name} / closed beside it: median ${s.overClosed.toFixed(3)} (${s.overClosedByWindow.map((r) => r.toFixed(3)).join(", ")})`,
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
      stepsPerSecondClosed: roundTo(rateOf("closed"), 3),
      browser,
      events,
      byWindow: windows.map((w) => ({ client: w.kind, stepsPerSecond: roundTo(w.stepsPerSecond, 3) })),
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
