// Golden cases of one AdCo step (format adco-golden/1, ../shared/golden/FORMAT.md): run the core on a
// case and measure its agreement with the float64 expectations. Pure: the caller reads the file.
import * as tf from "@tensorflow/tfjs-core";
import { adcoStep, type AdcoHyperparameters } from "./adco.js";

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

/** Runs one step of the core on the case and compares every output. */
export function runGoldenCase(c: GoldenCase): OutputAgreement[] {
  const h: AdcoHyperparameters = {
    temperature: c.hyper.t,
    memoryTemperature: c.hyper.mem_t,
    memoryLr: c.hyper.mem_lr,
    memoryMomentum: c.hyper.momentum,
    memoryWeightDecay: c.hyper.wd,
  };
  const q = tf.tensor2d(c.q);
  const k = tf.tensor2d(c.k);
  // Golden banks are K x D rows; the core keeps D x K columns.
  const bank = {
    weights: tf.transpose(tf.tensor2d(c.bank)),
    velocity: tf.transpose(tf.tensor2d(c.velocity)),
  };
  const step = adcoStep(q, k, bank, h);
  const rows = (t: tf.Tensor2D) => tf.tidy(() => tf.transpose(t).dataSync());
  try {
    return [
      compare("loss", step.loss.dataSync(), [c.expected.loss]),
      compare("dq", step.queryGrad.dataSync(), c.expected.dq.flat()),
      compare("bank_grad", rows(step.bankGrad), c.expected.bank_grad.flat()),
      compare("velocity_next", rows(step.bank.velocity), c.expected.velocity_next.flat()),
      compare("bank_next", rows(step.bank.weights), c.expected.bank_next.flat()),
    ];
  } finally {
    tf.dispose([q, k, bank.weights, bank.velocity, step.loss, step.queryGrad, step.bankGrad, step.accuracy]);
    tf.dispose([step.adversaryProbability, step.bank.weights, step.bank.velocity]);
  }
}
