// Input checks of the core: a wrong shape, a NaN or an impossible hyperparameter throws an error that
// names the argument, instead of broadcasting silently or training on garbage.
import type * as tf from "@tensorflow/tfjs-core";

export class CoreInputError extends Error {
  constructor(
    readonly argument: string,
    message: string,
  ) {
    super(`${argument}: ${message}`);
    this.name = "CoreInputError";
  }
}

export function checkRank2(t: tf.Tensor, argument: string, rows?: number, cols?: number): void {
  if (t.rank !== 2)
    throw new CoreInputError(argument, `expected a matrix, got shape [${t.shape.join(", ")}]`);
  const [r, c] = t.shape as [number, number];
  if ((rows !== undefined && r !== rows) || (cols !== undefined && c !== cols)) {
    throw new CoreInputError(argument, `shape [${r}, ${c}] does not match [${rows ?? "*"}, ${cols ?? "*"}]`);
  }
  if (t.dtype !== "float32") throw new CoreInputError(argument, `dtype ${t.dtype}, expected float32`);
}

/** Reads the tensor back to check for NaN/Inf: one pass over the data, cheap next to a step. */
export function checkFinite(t: tf.Tensor, argument: string): void {
  const data = t.dataSync();
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i]!)) {
      throw new CoreInputError(argument, `element ${i} is ${data[i]}; features must be finite`);
    }
  }
}

export function checkPositive(value: number, argument: string): void {
  if (!(value > 0) || !Number.isFinite(value))
    throw new CoreInputError(argument, `must be > 0, got ${value}`);
}

export function checkInRange(value: number, argument: string, min: number, maxExclusive: number): void {
  if (!(value >= min && value < maxExclusive)) {
    throw new CoreInputError(argument, `must be in [${min}, ${maxExclusive}), got ${value}`);
  }
}
