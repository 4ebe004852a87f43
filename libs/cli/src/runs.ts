// The run commands' work, shared by the CLI and `npm start`: start and watch a run with a progress
// line, evaluate an encoder, export a checkpoint's encoder to local files.
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import type { Accuracy } from "@adco/proto/common";
import {
  EvaluatorClient,
  type EvaluateEvent,
  type EvaluateRequest,
  type EvaluationResult,
} from "@adco/proto/evaluator";
import { type Run, type RunEvent, RunState, TrainerClient } from "@adco/proto/trainer";
import { channelOptions, unaryCall } from "@adco/service-kit";
import { followRun } from "./follow.js";
import {
  checkpointManifestKey,
  type ObjectStore,
  openBundle,
  readLatestPointer,
  StorageError,
} from "@adco/storage";

/**
 * Options of a channel to `identity`: over TLS the handshake names it (SNI) rather than the host,
 * which is often an address (and node warns when SNI is one); the certificate is checked by that
 * identity anyway.
 */
const optionsFor = (identity: string) => ({
  ...channelOptions(),
  "grpc.ssl_target_name_override": identity,
});

/** A trainer client; plaintext unless given credentials (see credentials.ts for the CLI's). */
export const trainerAt = (address: string, credentials = grpc.credentials.createInsecure()) =>
  new TrainerClient(address, credentials, optionsFor("trainer"));
export const evaluatorAt = (address: string, credentials = grpc.credentials.createInsecure()) =>
  new EvaluatorClient(address, credentials, optionsFor("evaluator"));

const seconds = (s: number) =>
  s >= 3600 ? `${(s / 3600).toFixed(1)} h` : s >= 90 ? `${(s / 60).toFixed(1)} min` : `${s.toFixed(0)} s`;

export interface WatchSummary {
  readonly run: Run;
  /** Mean of the interval statistics over the training steps seen. */
  readonly imagesPerSecond: number;
  readonly computeMs: number;
  readonly bankCallMs: number;
  readonly dataWaitFraction: number;
  readonly steps: number;
}

/**
 * Streams a run's events as progress lines until it ends; resolves with the final run. A rollout
 * does not end it: it follows the run to the next trainer at the same address (follow.ts).
 */
export async function watchRun(
  client: TrainerClient,
  runId: string,
  out: NodeJS.WriteStream = process.stderr,
): Promise<WatchSummary> {
  const totals = { images: 0, compute: 0, bank: 0, wait: 0, steps: 0 };
  const view = new WatchView(runId, out, totals);
  // A run that is still starting does not know its step count yet; ask again once it trains.
  view.totalSteps = (await unaryCall(client.getRun.bind(client), { runId })).totalSteps;
  const refreshTotal = () => {
    if (view.totalSteps === 0)
      void unaryCall(client.getRun.bind(client), { runId }).then(
        (r) => (view.totalSteps = r.totalSteps),
        () => {},
      );
  };
  const run = await followRun(client, runId, {
    event: (event) => {
      if (event.step) refreshTotal();
      view.show(event);
    },
    waiting: () =>
      view.print(
        `run ${runId}: no trainer holds it after step ${view.lastStep}; waiting for the next one to resume it`,
      ),
  });
  const n = Math.max(1, totals.steps);
  return {
    run,
    steps: totals.steps,
    imagesPerSecond: totals.images / n,
    computeMs: totals.compute / n,
    bankCallMs: totals.bank / n,
    dataWaitFraction: totals.wait / n,
  };
}

/** The progress line and the event lines of one watched run, over every trainer that holds it. */
class WatchView {
  totalSteps = 0;
  /** The newest step shown. */
  lastStep = 0;
  private lastDraw = 0;

  constructor(
    private readonly runId: string,
    private readonly out: NodeJS.WriteStream,
    private readonly totals: { images: number; compute: number; bank: number; wait: number; steps: number },
  ) {}

  print(line: string): void {
    if (this.out.isTTY) this.out.write(`\r\x1b[K${line}\n`);
    else this.out.write(`${line}\n`);
  }

  show(event: RunEvent): void {
    const { out, totals, totalSteps } = this;
    if (event.step) {
      const s = event.step;
      this.lastStep = s.step;
      totals.images += s.imagesPerSecond;
      totals.compute += s.computeMs;
      totals.bank += s.bankCallMs;
      totals.wait += s.dataWaitFraction;
      totals.steps++;
      const now = Date.now();
      if (now - this.lastDraw < (out.isTTY ? 200 : 15_000) && s.step !== totalSteps) return;
      this.lastDraw = now;
      // The step count is known once the run has read its dataset; until then it shows as "?".
      const bar = totalSteps
        ? "#".repeat(Math.round((s.step / totalSteps) * 24)).padEnd(24, ".")
        : ".".repeat(24);
      const line =
        `step ${s.step}/${totalSteps || "?"} [${bar}] epoch ${s.epoch} loss ${s.loss.toFixed(3)} lr ${s.lr.toFixed(4)} ` +
        `${s.imagesPerSecond.toFixed(0)} img/s, data wait ${(100 * s.dataWaitFraction).toFixed(0)}%, ` +
        `bank ${s.bankCallMs.toFixed(0)} ms, contrast acc ${(100 * (s.bank?.contrastAccuracy ?? 0)).toFixed(0)}%, eta ${seconds(s.etaSeconds)}`;
      if (out.isTTY) out.write(`\r\x1b[K${line}`);
      else out.write(`${line}\n`);
    } else if (event.epoch) {
      this.print(
        `epoch ${event.epoch.epoch} done: ${event.epoch.samples} samples, mean loss ${event.epoch.meanLoss.toFixed(3)}, ${seconds(event.epoch.seconds)}`,
      );
    } else if (event.checkpoint) {
      const c = event.checkpoint.checkpoint!;
      if (out.isTTY) this.print(`checkpoint at step ${c.step}: ${c.manifest?.bucket}/${c.manifest?.key}`);
    } else if (event.eval) {
      const knn = event.eval.knn;
      if (knn) this.print(`eval at step ${event.eval.checkpoint?.step}: ${formatAccuracy("kNN", knn)}`);
    } else if (event.state) {
      const state = RunState[event.state.state].replace("RUN_STATE_", "").toLowerCase();
      this.print(`run ${this.runId}: ${state}${event.state.message ? ` (${event.state.message})` : ""}`);
    }
  }
}

/** Runs one evaluation, reporting progress phases; resolves with its result. */
export async function evaluate(
  client: EvaluatorClient,
  request: EvaluateRequest,
  onProgress: (event: EvaluateEvent) => void = () => {},
): Promise<EvaluationResult> {
  const call = client.evaluate(request);
  let result: EvaluationResult | undefined;
  await new Promise<void>((resolve, reject) => {
    call.on("data", (event: EvaluateEvent) => {
      if (event.result) result = event.result;
      else onProgress(event);
    });
    call.on("error", reject);
    call.on("end", () => resolve());
  });
  if (!result) throw new Error("the evaluator ended without a result");
  return result;
}

export function formatAccuracy(name: string, a: Accuracy | undefined): string {
  if (!a) return `${name}: not run`;
  return `${name}: top-1 ${(100 * a.top1).toFixed(1)}%${a.top5 ? `, top-5 ${(100 * a.top5).toFixed(1)}%` : ""} (${a.samples} test images)`;
}

/** Top-1 of a, less top-1 of b, in points ("+5.9", "-11.5"); undefined when either is missing. */
export function pointsBetween(a?: Accuracy, b?: Accuracy): string | undefined {
  if (!a || !b) return undefined;
  const d = Math.round(1000 * (a.top1 - b.top1)) / 10;
  return `${d >= 0 ? "+" : "-"}${Math.abs(d).toFixed(1)}`;
}

/**
 * "vs raw pixels: -11.5 / -4.0 points (kNN / linear)": the top-1 differences of an encoder's scores
 * to a baseline's, for the classifiers both have; undefined when they share none.
 */
export function formatVersus(
  name: string,
  scores: { knn?: Accuracy; linear?: Accuracy },
  baseline: { knn?: Accuracy; linear?: Accuracy } | undefined,
): string | undefined {
  const parts: [string, string][] = [];
  for (const [what, a, b] of [
    ["kNN", scores.knn, baseline?.knn],
    ["linear", scores.linear, baseline?.linear],
  ] as const) {
    const points = pointsBetween(a, b);
    if (points !== undefined) parts.push([what, points]);
  }
  if (parts.length === 0) return undefined;
  return `vs ${name}: ${parts.map((p) => p[1]).join(" / ")} points (${parts.map((p) => p[0]).join(" / ")})`;
}

/** Per-class top-1 as "name 91.0%" pairs, worst first. */
export function formatPerClass(a: Accuracy, classNames: readonly string[]): string {
  return a.perClassTop1
    .map((v, i) => ({ name: classNames[i] ?? String(i), v }))
    .sort((x, y) => x.v - y.v)
    .map((c) => `${c.name} ${(100 * c.v).toFixed(0)}%`)
    .join(", ");
}

/**
 * Writes a checkpoint's query encoder (model.json + weight shards, the standard tfjs LayersModel
 * format: tf.loadLayersModel("file://DIR/model.json")) to a directory. step undefined: the latest.
 */
export async function exportEncoder(
  store: ObjectStore,
  bucket: string,
  runId: string,
  step: number | undefined,
  outDir: string,
): Promise<{ step: number; files: string[] }> {
  let manifestKey: string;
  if (step === undefined) {
    const latest = await readLatestPointer(store, bucket, runId);
    if (!latest)
      throw new StorageError(
        "not-found",
        `run ${runId} has no checkpoint in ${bucket} (adco runs lists them)`,
      );
    manifestKey = latest.manifest;
  } else {
    manifestKey = checkpointManifestKey(runId, step);
  }
  const bundle = await openBundle<{ step: number }>(store, bucket, manifestKey);
  const files: string[] = [];
  for (const name of Object.keys(bundle.manifest.files).filter((f) => f.startsWith("query/"))) {
    const path = join(outDir, name.slice("query/".length));
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, await bundle.read(name));
    files.push(path);
  }
  return { step: bundle.meta.step, files };
}
