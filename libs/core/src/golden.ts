// Golden cases of one AdCo step (format adco-golden/1, libs/core/fixtures/golden/FORMAT.md): run the
// production step on a case and measure its agreement with the float64 expectations. Pure: the caller
// reads the file.
import * as tf from "@tensorflow/tfjs-core";
import { adcoStep, stepInProcess } from "./adco.js";
import type { AdcoHyperparameters } from "./hyperparameters.js";
import { AdversaryShard, type ShardSlice, shardSlices } from "./shard.js";

export interface GoldenCase {
  readonly format: "adco-golden/1";
  readonly hyper: { t: number; mem_t: number; mem_lr: number; momentum: number; wd: number };
  readonly q: number[][];
  readonly k: number[][];
  /** K x D rows. */
  readonly bank: number[][];
  readonly velocity: number[][];
  readonly expected: {
    loss: number;
    dq: number[][];
    bank_grad: number[][];
    velocity_next: number[][];
    bank_next: number[][];
  };
}

/** float32 agreement: relative 1e-4 where |expected| > 1e-3, absolute 1e-5 elsewhere. */
export const TOLERANCE = { relative: 1e-4, absolute: 1e-5, relativeAbove: 1e-3 };

export interface OutputAgreement {
  readonly output: string;
  /** Largest relative error over elements with |expected| > 1e-3. */
  readonly worstRelative: number;
  /** Largest absolute error over the other elements. */
  readonly worstAbsolute: number;
  readonly ok: boolean;
}

export function compare(
  output: string,
  got: ArrayLike<number>,
  expected: readonly number[],
): OutputAgreement {
  if (got.length !== expected.length) {
    throw new Error(`${output}: ${got.length} values, expected ${expected.length}`);
  }
  let worstRelative = 0;
  let worstAbsolute = 0;
  for (let i = 0; i < expected.length; i++) {
    const e = expected[i]!;
    const error = Math.abs(got[i]! - e);
    if (Math.abs(e) > TOLERANCE.relativeAbove) worstRelative = Math.max(worstRelative, error / Math.abs(e));
    else worstAbsolute = Math.max(worstAbsolute, error);
    if (Number.isNaN(got[i]!)) worstRelative = Infinity;
  }
  const ok = worstRelative <= TOLERANCE.relative && worstAbsolute <= TOLERANCE.absolute;
  return { output, worstRelative, worstAbsolute, ok };
}

export function parseGoldenCase(value: unknown, source: string): GoldenCase {
  const c = value as Partial<GoldenCase>;
  if (c?.format !== "adco-golden/1") throw new Error(`${source}: not an adco-golden/1 case`);
  for (const key of ["hyper", "q", "k", "bank", "velocity", "expected"] as const) {
    if (c[key] === undefined) throw new Error(`${source}: missing "${key}"`);
  }
  return c as GoldenCase;
}

/**
 * Runs one step of the production code on the case, the bank split over `shards` shards (1: a whole
 * bank, as AdversaryNegatives holds it), and compares every output. Production never forms the bank
 * gradient on its own, so it is read off the update: g = momentum v + wd W - v_next, in float64
 * from the float32 outputs (exact to their rounding, which the tolerance covers).
 */
export function runGoldenCase(c: GoldenCase, shards = 1): OutputAgreement[] {
  const h: AdcoHyperparameters = {
    temperature: c.hyper.t,
    memoryTemperature: c.hyper.mem_t,
    memoryLr: c.hyper.mem_lr,
    memoryMomentum: c.hyper.momentum,
    memoryWeightDecay: c.hyper.wd,
  };
  const dim = c.q[0]!.length;
  const slices = shardSlices(c.bank.length, shards);
  const bank = slices.map((slice) => new AdversaryShard(dim, slice, h));
  const pair = { query: tf.tensor2d(c.q), key: tf.tensor2d(c.k) };
  // Golden banks are K x D rows; a shard holds D x count.
  const columns = (rows: number[][], s: ShardSlice) =>
    tf.tidy(() => tf.transpose(tf.tensor2d(rows.slice(s.offset, s.offset + s.count))) as tf.Tensor2D);
  slices.forEach((s, i) => {
    const state = { weights: columns(c.bank, s), velocity: columns(c.velocity, s) };
    bank[i]!.restore(state);
    tf.dispose([state.weights, state.velocity]);
  });
  try {
    const outcome = stepInProcess(adcoStep([pair], slices, h, "mean", true), bank);
    const dq = outcome.queryGrads[0]!.dataSync();
    tf.dispose(outcome.queryGrads);
    // Rows (K x D, flat) of the bank and its momentum after the step, shard after shard.
    const after = (which: "weights" | "velocity") =>
      bank.flatMap((shard) => {
        const state = shard.state();
        const rows = tf.tidy(() => tf.transpose(state[which]!).dataSync());
        tf.dispose([state.weights, state.velocity!]);
        return [...rows];
      });
    const weightsNext = after("weights");
    const velocityNext = after("velocity");
    const w = c.bank.flat();
    const v = c.velocity.flat();
    const bankGrad = velocityNext.map((vn, i) => c.hyper.momentum * v[i]! + c.hyper.wd * w[i]! - vn);
    return [
      compare("loss", [outcome.loss], [c.expected.loss]),
      compare("dq", dq, c.expected.dq.flat()),
      compare("bank_grad", bankGrad, c.expected.bank_grad.flat()),
      compare("velocity_next", velocityNext, c.expected.velocity_next.flat()),
      compare("bank_next", weightsNext, c.expected.bank_next.flat()),
    ];
  } finally {
    tf.dispose([pair.query, pair.key]);
    bank.forEach((shard) => shard.dispose());
  }
}
