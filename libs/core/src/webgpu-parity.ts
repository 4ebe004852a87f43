// One full AdCo step recorded whole, and two such records compared: the WebGPU backend's parity with
// a CPU backend (webgpu.test.ts, and tools/gpu-check.ts on a real GPU). Each side runs in its own
// process (a backend initialises once per process) and sends its record as JSON: the production
// trainer's step (keys, queries, the contrast with its ascent, dLoss/dq pulled back through f_q,
// SGD, the key encoder's EMA) from the same seed, with every parameter read before and after.
import * as tf from "@tensorflow/tfjs-core";
import { PRESETS } from "./presets.js";
import { Pretrainer } from "./pretrainer.js";

/** What one side of the comparison sends: plain numbers only. */
export interface ParityStep {
  readonly backend: string;
  readonly batch: number;
  /** Wall time of the step (the first on this backend: its shaders compile in it). */
  readonly stepMs: number;
  readonly stats: { loss: number; accuracy: number; adversaryProbability: number };
  readonly names: string[];
  readonly before: number[][];
  readonly after: number[][];
  readonly velocity: number[][];
  readonly key: number[][];
  readonly runningStats: number[][];
  readonly bankBefore: number[][];
  readonly bank: number[][];
}

/** The agreement asked of the issue: loss to 1e-5, every tensor to 1e-4 of its own scale. */
export const PARITY_TOLERANCE = { loss: 1e-5, relative: 1e-4, adversaryProbability: 1e-5 } as const;
/** The SGD weight decay of the fashion-mnist preset, to recover the gradient from the velocity. */
const WEIGHT_DECAY = PRESETS["fashion-mnist"].weightDecay;

/** Every read is asynchronous: dataSync is the step's own business. */
async function read(tensors: Iterable<tf.Tensor>): Promise<number[][]> {
  return Promise.all([...tensors].map(async (t) => Array.from(await t.data())));
}

/**
 * One AdCo step of the fashion-mnist preset (resnet-mini, 28x28x1) on the active backend, from seed
 * 7, with 2 BN groups and K 64 so a CPU backend finishes it in seconds.
 */
export async function recordParityStep(backend: string, batch = 16): Promise<ParityStep> {
  const trainer = new Pretrainer({
    ...PRESETS["fashion-mnist"],
    batchSize: batch,
    bnGroups: 2,
    negatives: 64,
    seed: 7,
  });
  const views = [1, 2].map((s) => tf.randomUniform([batch, 28, 28, 1], 0, 1, "float32", s) as tf.Tensor4D);
  const names = [...trainer.query.params.keys()];
  const before = await read(trainer.query.params.values());
  const bankBefore = trainer.negatives.state();
  const started = performance.now();
  const stats = trainer.trainStep(views, 0.06);
  const stepMs = performance.now() - started;
  const bank = trainer.negatives.state();
  const record: ParityStep = {
    backend,
    batch,
    stepMs,
    stats: {
      loss: stats.loss,
      accuracy: stats.accuracy,
      adversaryProbability: stats.adversaryProbability,
    },
    names,
    before,
    after: await read(trainer.query.params.values()),
    velocity: await read(names.map((n) => trainer.optimizer.velocity.get(n)!)),
    key: await read(trainer.key.params.values()),
    runningStats: await read(trainer.query.runningStats.values()),
    bankBefore: await read([bankBefore.weights]),
    // AdCo's bank has a momentum (MoCo's queue has none).
    bank: await read(bank.velocity ? [bank.weights, bank.velocity] : [bank.weights]),
  };
  trainer.dispose();
  tf.dispose(views);
  return record;
}

/** max |a - b| / max |b| over one tensor: its error relative to its own scale. */
export function relativeError(a: readonly number[], b: readonly number[]): number {
  if (a.length !== b.length) return Infinity;
  let error = 0;
  let scale = 0;
  for (let i = 0; i < b.length; i++) {
    error = Math.max(error, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  return scale === 0 ? error : error / scale;
}

export interface ParityReport {
  /** |loss - reference loss| / |reference loss|. */
  readonly lossRelative: number;
  /** The worst relative error of each kind, over every parameter (or bank tensor). */
  readonly worst: {
    readonly gradient: number;
    readonly updated: number;
    readonly key: number;
    readonly runningStats: number;
    readonly bank: number;
  };
  readonly parameters: number;
  /** One line per disagreement beyond PARITY_TOLERANCE; empty when the steps agree. */
  readonly failures: string[];
}

/** Compares a step (the GPU's) with the reference one (a CPU backend's), tensor by tensor. */
export function compareParitySteps(got: ParityStep, reference: ParityStep): ParityReport {
  const failures: string[] = [];
  const check = (what: string, error: number, tolerance: number) => {
    if (!(error <= tolerance)) failures.push(`${what} differs by ${error.toExponential(2)} (relative)`);
    return error;
  };
  if (JSON.stringify(got.names) !== JSON.stringify(reference.names)) failures.push("parameter names differ");
  if (JSON.stringify(got.before) !== JSON.stringify(reference.before))
    failures.push("the two sides did not start from the same parameters");
  const lossRelative = check(
    `loss ${got.stats.loss} vs ${reference.stats.loss}:`,
    Math.abs(got.stats.loss - reference.stats.loss) / Math.abs(reference.stats.loss),
    PARITY_TOLERANCE.loss,
  );
  const probability = Math.abs(got.stats.adversaryProbability - reference.stats.adversaryProbability);
  if (!(probability <= PARITY_TOLERANCE.adversaryProbability))
    failures.push(`adversary probability differs by ${probability.toExponential(2)}`);
  const worst = { gradient: 0, updated: 0, key: 0, runningStats: 0, bank: 0 };
  // SGD from zero velocity: v = grad + wd p, so the gradient is v - wd p (no cancellation in it).
  const gradient = (r: ParityStep, i: number) =>
    r.velocity[i]!.map((v, j) => v - WEIGHT_DECAY * r.before[i]![j]!);
  got.names.forEach((name, i) => {
    if (!reference.velocity[i]) return;
    const errors = {
      gradient: relativeError(gradient(got, i), gradient(reference, i)),
      updated: relativeError(got.after[i]!, reference.after[i]!),
      key: relativeError(got.key[i]!, reference.key[i]!),
    };
    for (const [what, error] of Object.entries(errors) as [keyof typeof errors, number][])
      worst[what] = Math.max(worst[what], check(`${name}: ${what}`, error, PARITY_TOLERANCE.relative));
  });
  got.runningStats.forEach((s, i) => {
    const error = relativeError(s, reference.runningStats[i] ?? []);
    worst.runningStats = Math.max(
      worst.runningStats,
      check(`running statistics ${i}`, error, PARITY_TOLERANCE.relative),
    );
  });
  // The adversaries ascended on both: the bank and its momentum agree too.
  if (JSON.stringify(got.bank[0]) === JSON.stringify(got.bankBefore[0]))
    failures.push("the bank did not move");
  got.bank.forEach((b, i) => {
    const error = relativeError(b, reference.bank[i] ?? []);
    const what = `bank ${i === 0 ? "weights" : "momentum"}`;
    worst.bank = Math.max(worst.bank, check(what, error, PARITY_TOLERANCE.relative));
  });
  return { lossRelative, worst, parameters: got.names.length, failures };
}

/** The report in one line: the worst errors, and the verdict. */
export function parityLine(report: ParityReport): string {
  const w = report.worst;
  const e = (x: number) => x.toExponential(2);
  return (
    `${report.failures.length === 0 ? "parity ok" : `parity FAILED (${report.failures.length})`}: ` +
    `loss ${e(report.lossRelative)}, worst over ${report.parameters} parameters: gradient ${e(w.gradient)}, ` +
    `updated ${e(w.updated)}, key encoder ${e(w.key)}; running statistics ${e(w.runningStats)}, bank ${e(w.bank)} ` +
    `(relative; tolerance loss ${PARITY_TOLERANCE.loss}, tensors ${PARITY_TOLERANCE.relative})`
  );
}
