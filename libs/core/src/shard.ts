// A shard's part of the AdCo step (adco.ts): a contiguous slice of the bank's adversaries, D x count,
// and its momentum. Round 1 reports, per query, the parts of the normalisers over its adversaries;
// round 2 takes the exact normalisers, returns sum_j p_ij d_j over its adversaries and ascends them.
// A whole bank is one shard holding all K.
//
// Layout: adversaries are the columns of a D x K matrix, as in the official code. On the wasm backend
// a product runs ~5x faster as A.B than as A.B^T and ~40x faster than as A^T.B, so every product of a
// step is a plain A.B: q.d (N x D . D x K), P.d^T (N x K . K x D, d transposed once per step) and
// q^T.P (D x N . N x K) for the bank gradient, which comes out D x K.
import * as tf from "@tensorflow/tfjs-core";
import { checkPositive, checkRank2, CoreInputError } from "./checks.js";
import { l2Normalize } from "./encoder.js";
import { type AdcoHyperparameters, checkHyperparameters } from "./hyperparameters.js";
import { SeededRandom } from "./random.js";

/** Per query (N): the max of some logits and the sum of exp(logit - max) over them. */
export interface LogSumExpPart {
  readonly max: tf.Tensor1D;
  readonly sumExp: tf.Tensor1D;
}

/** What one shard reports for one pair in round 1. */
export interface ShardPartial {
  readonly encoder: LogSumExpPart;
  readonly memory: LogSumExpPart;
  /** Per query: sum over the shard's adversaries of cos(q_i, d_j), for the mean-similarity statistic. */
  readonly similaritySum: tf.Tensor1D;
}

/** Frees round-1 answers (the coordinator's copies, or a shard's after it encoded them). */
export function disposePartials(partials: readonly ShardPartial[]): void {
  tf.dispose(
    partials.flatMap((p) => [
      p.encoder.max,
      p.encoder.sumExp,
      p.memory.max,
      p.memory.sumExp,
      p.similaritySum,
    ]),
  );
}

/** The exact normalisers log Z of one pair, per query (N), at t and at t_mem. */
export interface Normalizers {
  readonly encoder: tf.Tensor1D;
  readonly memory: tf.Tensor1D;
}

/** Keys to write into a shard after its round 2 (init_memory), from an adversary of the shard. */
export interface ShardWrite {
  readonly keys: tf.Tensor2D;
  readonly start: number;
}

/** What a shard gets in round 2. */
export interface ShardApply {
  readonly queries: readonly tf.Tensor2D[];
  readonly normalizers: readonly Normalizers[];
  /** Per pair, its weight in the step's loss (1/P for "mean", 1 for "sum"). */
  readonly pairWeights: readonly number[];
  /** Ascend the adversaries (false in init_memory steps). */
  readonly update: boolean;
  readonly write?: ShardWrite;
}

/** What a shard answers in round 2. */
export interface ShardApplied {
  /** Per pair, sum_j p_ij d_j over this shard's adversaries (N x D); the receiver owns them. */
  readonly gradParts: tf.Tensor2D[];
  /** Sum of the raw adversary norms as the step found them (for the mean-norm statistic). */
  readonly normSum: number;
}

export interface ShardSlice {
  /** First adversary of the bank that this shard holds. */
  readonly offset: number;
  /** Number of adversaries it holds. */
  readonly count: number;
  /** K, the whole bank's size. */
  readonly size: number;
}

/** The slices of a bank of K adversaries over `count` shards: as equal as can be, the first ones larger. */
export function shardSlices(size: number, count: number): ShardSlice[] {
  checkPositive(count, "shardCount");
  if (count > size)
    throw new CoreInputError("shardCount", `${count} shards for a bank of ${size} adversaries`);
  const base = Math.floor(size / count);
  const larger = size % count;
  const slices: ShardSlice[] = [];
  let offset = 0;
  for (let i = 0; i < count; i++) {
    const adversaries = base + (i < larger ? 1 : 0);
    slices.push({ offset, count: adversaries, size });
    offset += adversaries;
  }
  return slices;
}

/**
 * Where keys written at adversary `start` (wrapping at K) land: per shard, the rows of `keys` for it
 * and the adversary within it. Shards the write misses get nothing.
 */
export function splitWrite(
  keys: tf.Tensor2D,
  start: number,
  slices: readonly ShardSlice[],
): (ShardWrite | undefined)[] {
  const size = slices[0]!.size;
  const rows = Math.min(keys.shape[0], size);
  const writes: (ShardWrite | undefined)[] = slices.map(() => undefined);
  // Each key row r goes to adversary (start + r) mod K; consecutive adversaries of one shard form runs.
  const runs: { shard: number; row: number; column: number; length: number }[] = [];
  for (let r = 0; r < rows; r++) {
    const column = (start + r) % size;
    const shard = slices.findIndex((s) => column >= s.offset && column < s.offset + s.count);
    const last = runs.at(-1);
    if (last && last.shard === shard && last.column + last.length === column - slices[shard]!.offset) {
      last.length++;
    } else {
      runs.push({ shard, row: r, column: column - slices[shard]!.offset, length: 1 });
    }
  }
  // Within a shard the runs are contiguous modulo its size: a write that wraps at K back into the
  // shard it started in gives that shard its tail and then its head, which the shard writes as one
  // write wrapping at its own end.
  for (let shard = 0; shard < slices.length; shard++) {
    const own = runs.filter((run) => run.shard === shard);
    if (own.length === 0) continue;
    const pieces = own.map((run) => tf.slice(keys, [run.row, 0], [run.length, keys.shape[1]]));
    const joined = pieces.length === 1 ? pieces[0]! : tf.concat(pieces, 0);
    if (pieces.length > 1) tf.dispose(pieces);
    writes[shard] = { keys: joined as tf.Tensor2D, start: own[0]!.column };
  }
  return writes;
}

/** A bank's state for snapshots: the negatives as D x K, their momentum (AdCo), the write position (MoCo). */
export interface NegativesState {
  readonly weights: tf.Tensor2D;
  readonly velocity?: tf.Tensor2D;
  readonly pointer?: number;
}

interface ShiftedExp {
  /** Per query, the max logit (N). */
  readonly max: tf.Tensor1D;
  /** exp(logit - max), N x columns. */
  readonly exp: tf.Tensor2D;
}

/** Round 1's work that round 2 of the same key reuses: the q.d product and both exponentials. */
interface KeptRound {
  readonly key: number;
  readonly directions: tf.Tensor2D;
  readonly norms: tf.Tensor2D;
  readonly pairs: readonly { encoder: ShiftedExp; memory: ShiftedExp }[];
}

/** One shard's adversaries and their momentum (D x columns), and its two rounds of a step. */
export class AdversaryShard {
  private readonly weights: tf.Variable<tf.Rank.R2>;
  private readonly velocity: tf.Variable<tf.Rank.R2>;
  private kept: KeptRound | undefined;

  constructor(
    readonly dim: number,
    readonly slice: ShardSlice,
    readonly hyper: AdcoHyperparameters,
    seed = 0,
  ) {
    checkHyperparameters(hyper);
    checkPositive(slice.count, "shard adversaries");
    this.weights = variableOf(randomUnitColumns(dim, slice.size, seed, slice.offset, slice.count));
    this.velocity = variableOf(tf.zeros([dim, slice.count]));
  }

  private checkQueries(queries: readonly tf.Tensor2D[]): void {
    if (queries.length === 0) throw new CoreInputError("queries", "at least one pair is needed");
    for (const q of queries) checkRank2(q, "queries", queries[0]!.shape[0], this.dim);
  }

  /**
   * Round 1: per pair, the parts of log Z over this shard's adversaries at t and t_mem. The
   * exponentials are kept for round 2 of the same `key`, which then needs neither the q.d product nor
   * an exp again (they are most of a step's work).
   */
  partials(queries: readonly tf.Tensor2D[], key: number): ShardPartial[] {
    this.checkQueries(queries);
    this.dropKept();
    const { partials, kept } = tf.tidy(() => {
      const { directions, norms } = normalizeColumns(this.weights); //        D x C, 1 x C
      const shifted = (cosines: tf.Tensor2D, t: number): ShiftedExp => {
        const logits = tf.div(cosines, t); //                                   N x C
        const max = tf.max(logits, 1) as tf.Tensor1D; //                        N
        return { max, exp: tf.exp(tf.sub(logits, tf.expandDims(max, 1))) as tf.Tensor2D }; // N x C
      };
      const pairs = queries.map((q) => {
        const cosines = tf.matMul(q, directions) as tf.Tensor2D; //             N x C
        return {
          encoder: shifted(cosines, this.hyper.temperature),
          memory: shifted(cosines, this.hyper.memoryTemperature),
          similaritySum: tf.sum(cosines, 1) as tf.Tensor1D, //                  N
        };
      });
      const partials: ShardPartial[] = pairs.map((p) => ({
        encoder: { max: tf.clone(p.encoder.max), sumExp: blockedRowSum(p.encoder.exp) },
        memory: { max: tf.clone(p.memory.max), sumExp: blockedRowSum(p.memory.exp) },
        similaritySum: p.similaritySum,
      }));
      const kept = { directions, norms, pairs: pairs.map((p) => ({ encoder: p.encoder, memory: p.memory })) };
      return { partials, kept } as unknown as tf.TensorContainer;
    }) as unknown as { partials: ShardPartial[]; kept: Omit<KeptRound, "key"> };
    this.kept = { key, ...kept };
    return partials;
  }

  /**
   * Round 2: per pair, sum_j p_ij d_j at t over this shard's adversaries; with `update`, the ascent of
   * these adversaries on the pairs' weighted loss at t_mem (the bank as the step found it); then the
   * write, if any. Without round 1's exponentials for `key` (a retry after a restart), computes them.
   */
  apply(input: ShardApply, key: number): ShardApplied {
    const { queries, normalizers, pairWeights, update, write } = input;
    this.checkQueries(queries);
    if (normalizers.length !== queries.length || pairWeights.length !== queries.length) {
      throw new CoreInputError("normalizers", "one normaliser and one weight per pair are needed");
    }
    if (write) this.checkWrite(write);
    const kept = this.kept?.key === key ? this.kept : undefined;
    let normSum = 0;
    const { next, gradParts } = tf.tidy(() => {
      const { directions, norms } = kept ?? normalizeColumns(this.weights); //     D x C, 1 x C
      normSum = tf.sum(norms).dataSync()[0]!;
      const transposed = tf.transpose(directions); //                             C x D
      const gradParts: tf.Tensor2D[] = [];
      let gradient: tf.Tensor2D | undefined; //                                   D x C
      queries.forEach((q, i) => {
        const cosines = kept ? undefined : (tf.matMul(q, directions) as tf.Tensor2D);
        // p_ij = exp(logit_ij - log Z_i), from round 1's exp(logit_ij - max_i) when kept.
        const probsAt = (which: "encoder" | "memory", t: number): tf.Tensor2D => {
          const logZ = normalizers[i]![which]; //                                 N
          const shifted = kept?.pairs[i]?.[which];
          if (shifted) return tf.mul(shifted.exp, tf.expandDims(tf.exp(tf.sub(shifted.max, logZ)), 1));
          return tf.exp(tf.sub(tf.div(cosines!, t), tf.expandDims(logZ, 1))) as tf.Tensor2D;
        };
        const encoderProbs = probsAt("encoder", this.hyper.temperature); //         N x C
        gradParts.push(tf.matMul(encoderProbs, transposed) as tf.Tensor2D); //       N x D
        if (!update) return;
        const memoryProbs = probsAt("memory", this.hyper.memoryTemperature); //     N x C
        const g = tf.mul(
          adversaryGradient(q, directions, norms, memoryProbs, this.hyper.memoryTemperature),
          pairWeights[i]!,
        ) as tf.Tensor2D; //                                                        D x C
        gradient = gradient ? (tf.add(gradient, g) as tf.Tensor2D) : g;
      });
      const next = gradient ? ascend(this.weights, this.velocity, gradient, this.hyper) : undefined;
      return { next, gradParts } as unknown as tf.TensorContainer;
    }) as unknown as { next?: { weights: tf.Tensor2D; velocity: tf.Tensor2D }; gradParts: tf.Tensor2D[] };
    this.dropKept();
    if (next) {
      this.weights.assign(next.weights);
      this.velocity.assign(next.velocity);
      tf.dispose([next.weights, next.velocity]);
    }
    if (write) writeColumns(this.weights, write.keys, write.start);
    return { gradParts, normSum };
  }

  private checkWrite(write: ShardWrite): void {
    checkRank2(write.keys, "keys", undefined, this.dim);
    if (!(write.start >= 0 && write.start < this.slice.count) || write.keys.shape[0] > this.slice.count) {
      throw new CoreInputError(
        "keys",
        `${write.keys.shape[0]} keys at adversary ${write.start} do not fit the shard's ${this.slice.count}`,
      );
    }
  }

  private dropKept(): void {
    if (!this.kept) return;
    const { directions, norms, pairs } = this.kept;
    tf.dispose([
      directions,
      norms,
      ...pairs.flatMap((p) => [p.encoder.max, p.encoder.exp, p.memory.max, p.memory.exp]),
    ]);
    this.kept = undefined;
  }

  /** Overwrites R <= count adversaries of this shard with keys (R x D) from `start`, wrapping at its end. */
  write(keys: tf.Tensor2D, start: number): void {
    this.checkWrite({ keys, start });
    this.dropKept();
    writeColumns(this.weights, keys, start);
  }

  state(): NegativesState {
    return { weights: this.weights.clone() as tf.Tensor2D, velocity: this.velocity.clone() as tf.Tensor2D };
  }

  restore(state: NegativesState): void {
    const [d, k] = this.weights.shape;
    for (const [what, t] of [
      ["snapshot", state.weights],
      ["snapshot momentum", state.velocity],
    ] as const) {
      if (!t) throw new CoreInputError("shard", "snapshot has no momentum");
      const [rows, cols] = t.shape;
      if (rows !== d || cols !== k)
        throw new CoreInputError("shard", `${what} is ${rows} x ${cols}, the shard is ${d} x ${k}`);
    }
    this.dropKept();
    this.weights.assign(state.weights);
    this.velocity.assign(state.velocity!);
  }

  dispose(): void {
    this.dropKept();
    tf.dispose([this.weights, this.velocity]);
  }
}

// Sums over a shard's adversaries in blocks. The wasm backend's sum adds the terms one after another
// in float32: over 512 exponentials the relative error is ~1e-6, over 65,536 ~9e-6, and dLoss/dq, a
// small difference of the adversaries' probability mass and their weighted sum when adversaries align
// with the queries, inherits it (golden-style case N 32, D 64, K 512, t 0.07: 1.3e-4 worst relative,
// over the 1e-4 tolerance; 3.8e-5 with blocks). Blocks of ~sqrt(C) terms, then the sum of the blocks,
// cut the error ~10x at no measurable cost, as long as the blocks come from a reshape: slicing columns
// on wasm costs ~0.5 us per element of the whole tensor, each time (256 slices of a 256 x 65,536
// matrix: 8.7 s), which rules out blocking the P.d^T product the same way.

/** The largest divisor of n not above sqrt(n): the block of a reshape-only blocked sum (1: none). */
function blockOf(n: number): number {
  for (let b = Math.floor(Math.sqrt(n)); b > 1; b--) if (n % b === 0) return b;
  return 1;
}

/** Row sums of x (N x C), in blocks of ~sqrt(C) where C factors. */
export function blockedRowSum(x: tf.Tensor2D): tf.Tensor1D {
  return tf.tidy(() => {
    const [rows, columns] = x.shape;
    const block = blockOf(columns);
    if (block < 8) return tf.sum(x, 1) as tf.Tensor1D;
    return tf.sum(tf.sum(tf.reshape(x, [rows, columns / block, block]), 2), 1) as tf.Tensor1D; // N
  });
}

/**
 * Sums over the rows of a D x K matrix (1 x K), as a sum along the rows of its transpose: wasm's Sum
 * over axis 0 is a transpose and a slow loop inside one kernel (66 ms at 128 x 65536), and a
 * ones-vector product packs the whole matrix as XNNPACK weights each time (7.7 ms a step at K 4096,
 * against 0.6). Each adds a column's D terms in order: the float32 results are the same.
 */
export function columnSum(x: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => tf.reshape(tf.sum(tf.transpose(x), 1), [1, x.shape[1]]) as tf.Tensor2D);
}

/** Columns of the bank divided by their L2 norms, and the norms (1 x K). */
export function normalizeColumns(weights: tf.Tensor2D): { directions: tf.Tensor2D; norms: tf.Tensor2D } {
  return tf.tidy(() => {
    const norms = tf.sqrt(columnSum(tf.square(weights) as tf.Tensor2D)) as tf.Tensor2D; //  1 x K
    return { directions: tf.div(weights, norms), norms }; //                        D x K
  });
}

/**
 * dLoss_mem/dW (D x K) from the softmax probabilities (N x K) of the adversaries at t_mem, through the
 * normalisation d = w / |w|:  dL/dw = (g - (g.d) d) / |w|  with g = dL/dd.
 */
export function adversaryGradient(
  q: tf.Tensor2D,
  directions: tf.Tensor2D,
  norms: tf.Tensor2D,
  probs: tf.Tensor2D,
  memoryTemperature: number,
): tf.Tensor2D {
  return tf.tidy(() => {
    const batch = q.shape[0];
    // g = dL/dd = sum_i p_ij q_i / (N t_mem), as (P^T q)^T: q^T.P (M 128, K 256, N 65536) runs at
    // 40% of the other products on wasm, which with the two transposes is still 1.4x slower.
    const g = tf.div(
      tf.transpose(tf.matMul(tf.transpose(probs), q)),
      batch * memoryTemperature,
    ) as tf.Tensor2D; //                                                                      D x K
    // Project out the d component twice. When adversaries nearly equal queries, g is almost parallel
    // to d and the tangent is ~1e-3 of |g|: the first projection leaves a rounding residue along d
    // (float32 ulp of |g|) that the second removes (golden case-aligned: 1.0e-4 -> 7e-5 worst relative).
    const tangent = tf.sub(g, tf.mul(directions, columnSum(tf.mul(g, directions) as tf.Tensor2D))); // D x K
    const refined = tf.sub(
      tangent,
      tf.mul(directions, columnSum(tf.mul(tangent, directions) as tf.Tensor2D)),
    );
    return tf.div(refined, norms) as tf.Tensor2D; //                                          D x K
  });
}

/** The ascent: v <- momentum v - grad + wd W;  W <- W - lr v. Returns new tensors. */
export function ascend(
  weights: tf.Tensor2D,
  velocity: tf.Tensor2D,
  gradient: tf.Tensor2D,
  h: AdcoHyperparameters,
): { weights: tf.Tensor2D; velocity: tf.Tensor2D } {
  return tf.tidy(() => {
    const next = tf.add(
      tf.sub(tf.mul(velocity, h.memoryMomentum), gradient),
      tf.mul(weights, h.memoryWeightDecay),
    ) as tf.Tensor2D; //                                                              D x K
    return { weights: tf.sub(weights, tf.mul(next, h.memoryLr)) as tf.Tensor2D, velocity: next };
  });
}

/**
 * A seeded D x K bank of unit columns, or the columns first..first+count of it: a shard draws the
 * whole bank's random stream and keeps its slice, so S shards start exactly as one bank does.
 */
export function randomUnitColumns(
  dim: number,
  size: number,
  seed: number,
  first = 0,
  count = size - first,
): tf.Tensor2D {
  const random = new SeededRandom(seed);
  const values = new Float32Array(dim * count);
  for (let row = 0; row < dim; row++) {
    for (let column = 0; column < size; column++) {
      const value = random.normal();
      if (column >= first && column < first + count) values[row * count + column - first] = value;
    }
  }
  return tf.tidy(() =>
    tf.transpose(l2Normalize(tf.transpose(tf.tensor2d(values, [dim, count])))),
  ) as tf.Tensor2D;
}

/** A non-trainable variable holding `initial`'s data; `initial` itself is freed (it would count as a live tensor). */
export function variableOf(initial: tf.Tensor2D): tf.Variable<tf.Rank.R2> {
  const variable = tf.variable(initial, false);
  initial.dispose();
  return variable;
}

/** Writes keys (N x D) into the columns start.. of a D x K variable, wrapping around at K. */
export function writeColumns(target: tf.Variable<tf.Rank.R2>, keys: tf.Tensor2D, start: number): void {
  const [dim, size] = target.shape;
  const n = Math.min(keys.shape[0], size);
  const next = tf.tidy(() => {
    const columns = tf.transpose(tf.slice(keys, [0, 0], [n, dim]));
    const first = Math.min(n, size - start);
    const pieces: tf.Tensor[] = [];
    const wrapped = n - first;
    if (wrapped > 0) pieces.push(tf.slice(columns, [0, first], [dim, wrapped]));
    const keepBefore = start - wrapped;
    if (keepBefore > 0) pieces.push(tf.slice(target, [0, wrapped], [dim, keepBefore]));
    pieces.push(tf.slice(columns, [0, 0], [dim, first]));
    if (start + first < size) pieces.push(tf.slice(target, [0, start + first], [dim, size - start - first]));
    return tf.concat(pieces, 1) as tf.Tensor2D;
  });
  target.assign(next);
  next.dispose();
}
