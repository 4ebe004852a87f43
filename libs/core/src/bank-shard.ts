// A sharded adversary bank: the K columns split over S shards, one AdCo step computed as a distributed
// softmax. The loss and both gradients depend on the columns outside a shard only through each query's
// normaliser log sum_j exp(logit_ij), at the encoder temperature t and at the memory temperature t_mem.
// So a step is two rounds:
//   1. every shard returns, per query, the max and the sum of exp(logit - max) over its columns
//      (`AdversaryShard.partials`); the coordinator merges them with the in-batch keys' logits into
//      the exact global normalisers (`mergeNormalizers`);
//   2. every shard takes the normalisers, returns sum_j p_ij d_j over its columns and applies the
//      ascent to its own columns (`AdversaryShard.apply`); the coordinator adds the keys' terms and
//      forms the loss, dLoss/dq and the statistics (`finishPair`).
// Up to float32 rounding of the merge this is the one-bank step of adco.ts, which a test pins.
import * as tf from "@tensorflow/tfjs-core";
import {
  type AdcoHyperparameters,
  ascend,
  bankGradientFromProbs,
  checkHyperparameters,
  normalizeColumns,
} from "./adco.js";
import { checkPositive, checkRank2, CoreInputError } from "./checks.js";
import type { ContrastOutcome, ContrastPair, NegativesState, PairReduction } from "./methods.js";
import { randomUnitColumns, writeColumns } from "./methods.js";

/** Per query (length N): the max of some logits and the sum of exp(logit - max) over them. */
export interface LogSumExpPart {
  readonly max: tf.Tensor1D;
  readonly sumExp: tf.Tensor1D;
}

/** What one shard reports for one pair in round 1. */
export interface ShardPartial {
  readonly encoder: LogSumExpPart;
  readonly memory: LogSumExpPart;
  /** Per query: sum over the shard's columns of cos(q_i, d_j), for the mean-similarity statistic. */
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

/** The global normalisers of one pair, per query. */
export interface Normalizers {
  readonly encoder: tf.Tensor1D;
  readonly memory: tf.Tensor1D;
}

export interface ShardSlice {
  /** First column of the bank that this shard holds. */
  readonly offset: number;
  /** Number of columns it holds. */
  readonly columns: number;
  /** K, the whole bank's size. */
  readonly size: number;
}

/** The slices of a K-column bank over `count` shards: as equal as can be, the first ones one larger. */
export function shardSlices(size: number, count: number): ShardSlice[] {
  checkPositive(count, "shardCount");
  if (count > size) throw new CoreInputError("shardCount", `${count} shards for a bank of ${size} columns`);
  const base = Math.floor(size / count);
  const larger = size % count;
  const slices: ShardSlice[] = [];
  let offset = 0;
  for (let i = 0; i < count; i++) {
    const columns = base + (i < larger ? 1 : 0);
    slices.push({ offset, columns, size });
    offset += columns;
  }
  return slices;
}

function logSumExpPart(logits: tf.Tensor2D): LogSumExpPart {
  return tf.tidy(() => {
    const max = tf.max(logits, 1);
    const sumExp = tf.sum(tf.exp(tf.sub(logits, tf.expandDims(max, 1))), 1);
    return { max: max as tf.Tensor1D, sumExp: sumExp as tf.Tensor1D };
  });
}

/** log sum exp over the union of the parts' logits, per query. */
export function mergeLogSumExp(parts: readonly LogSumExpPart[]): tf.Tensor1D {
  return tf.tidy(() => {
    const max = parts.map((p) => p.max).reduce((a, b) => tf.maximum(a, b));
    const sum = parts.map((p) => tf.mul(p.sumExp, tf.exp(tf.sub(p.max, max)))).reduce((a, b) => tf.add(a, b));
    return tf.add(max, tf.log(sum)) as tf.Tensor1D;
  });
}

/** Round 1 on the coordinator: the global normalisers of one pair from the keys' logits and the shards' parts. */
export function mergeNormalizers(
  pair: ContrastPair,
  partials: readonly ShardPartial[],
  hyper: AdcoHyperparameters,
): Normalizers {
  return tf.tidy(() => {
    const keyCosines = tf.matMul(pair.query, pair.key, false, true) as tf.Tensor2D;
    const keysAt = (t: number) => logSumExpPart(tf.div(keyCosines, t) as tf.Tensor2D);
    return {
      encoder: mergeLogSumExp([keysAt(hyper.temperature), ...partials.map((p) => p.encoder)]),
      memory: mergeLogSumExp([keysAt(hyper.memoryTemperature), ...partials.map((p) => p.memory)]),
    };
  });
}

export interface PairResult {
  /** Mean cross-entropy at t. */
  readonly loss: number;
  /** dLoss/dq (N x D), not yet scaled by the pair's weight. */
  readonly queryGrad: tf.Tensor2D;
  readonly accuracy: number;
  /** Mean softmax mass on the adversaries. */
  readonly adversaryProbability: number;
  /** Mean over queries of the largest cosine similarity to an adversary. */
  readonly maxAdversarySimilarity: number;
  /** Mean cosine similarity of queries and adversaries (over all N x K). */
  readonly meanAdversarySimilarity: number;
  /** Mean cosine similarity of each query to its positive key. */
  readonly meanPositiveSimilarity: number;
}

/**
 * Round 2 on the coordinator: loss, dLoss/dq and statistics of one pair from its normaliser, the
 * shards' round-1 parts and their sums sum_j p_ij d_j. As in contrastLoss, the gradient is
 * sum over negatives v of p_iv (v - k_i) / (N t), without the positive's nearly cancelling term.
 */
export function finishPair(
  pair: ContrastPair,
  normalizers: Normalizers,
  partials: readonly ShardPartial[],
  gradParts: readonly tf.Tensor2D[],
  hyper: AdcoHyperparameters,
  bankSize: number,
): PairResult {
  const t = hyper.temperature;
  const [batch] = pair.query.shape;
  const scalars = tf.tidy(() => {
    const logZ = tf.expandDims(normalizers.encoder, 1);
    const keyLogits = tf.div(tf.matMul(pair.query, pair.key, false, true), t);
    const positives = tf.div(tf.sum(tf.mul(pair.query, pair.key), 1), t);
    const loss = tf.mean(tf.sub(normalizers.encoder, positives));
    const negativeKeyProbs = tf.mul(tf.exp(tf.sub(keyLogits, logZ)), tf.sub(1, tf.eye(batch)));
    const bankMass = partials
      .map((p) => tf.mul(p.encoder.sumExp, tf.exp(tf.sub(p.encoder.max, normalizers.encoder))))
      .reduce((a, b) => tf.add(a, b));
    const negativeMass = tf.add(tf.sum(negativeKeyProbs, 1), bankMass);
    const bankSum = gradParts.reduce((a, b) => tf.add(a, b));
    const queryGrad = tf.div(
      tf.sub(
        tf.add(tf.matMul(negativeKeyProbs, pair.key), bankSum),
        tf.mul(tf.expandDims(negativeMass, 1), pair.key),
      ),
      batch * t,
    );
    // The positive wins when it leads the keys (argMax picks the first of equals, as in one bank)
    // and no adversary beats it.
    const bankMax = partials.map((p) => p.encoder.max).reduce((a, b) => tf.maximum(a, b));
    const leadsKeys = tf.equal(tf.argMax(keyLogits, 1), tf.range(0, batch, 1, "int32"));
    const beatsBank = tf.greaterEqual(positives, bankMax);
    const accuracy = tf.mean(tf.cast(tf.logicalAnd(leadsKeys, beatsBank), "float32"));
    const similaritySum = partials.map((p) => p.similaritySum).reduce((a, b) => tf.add(a, b));
    return {
      queryGrad: queryGrad as tf.Tensor2D,
      values: tf.stack([
        loss,
        accuracy,
        tf.mean(bankMass),
        tf.mul(tf.mean(bankMax), t),
        tf.sum(similaritySum),
        tf.mean(tf.sum(tf.mul(pair.query, pair.key), 1)),
      ]),
    };
  });
  const [loss, accuracy, adversaryProbability, maxSimilarity, similarityTotal, positive] =
    scalars.values.dataSync();
  scalars.values.dispose();
  return {
    loss: loss!,
    queryGrad: scalars.queryGrad,
    accuracy: accuracy!,
    adversaryProbability: adversaryProbability!,
    maxAdversarySimilarity: maxSimilarity!,
    meanAdversarySimilarity: similarityTotal! / (batch * bankSize),
    meanPositiveSimilarity: positive!,
  };
}

export interface ShardApplied {
  /** Per pair, sum_j p_ij d_j over this shard's columns (N x D); the caller owns them. */
  readonly gradParts: tf.Tensor2D[];
  /** Sum of the raw column norms as the step found them (for the mean-norm statistic). */
  readonly normSum: number;
}

/** Rows to write into a shard after its round 2 (AdCo's init_memory), at a column of the shard. */
export interface ShardWrite {
  readonly keys: tf.Tensor2D;
  readonly start: number;
}

/** A shard as the coordinator sees it: this process's own slice, or a peer over the network. */
export interface ShardPeer {
  partials(queries: readonly tf.Tensor2D[]): Promise<ShardPartial[]>;
  apply(
    queries: readonly tf.Tensor2D[],
    normalizers: readonly Normalizers[],
    pairWeights: readonly number[],
    update: boolean,
    write?: ShardWrite,
  ): Promise<ShardApplied>;
}

/**
 * Where keys written at bank column `start` (wrapping at K) land: per shard, the rows of `keys` for it
 * and the column within it. Shards the write misses get nothing.
 */
export function splitWrite(
  keys: tf.Tensor2D,
  start: number,
  slices: readonly ShardSlice[],
): (ShardWrite | undefined)[] {
  const size = slices[0]!.size;
  const rows = Math.min(keys.shape[0], size);
  const writes: (ShardWrite | undefined)[] = slices.map(() => undefined);
  // Each key row r goes to column (start + r) mod K; consecutive columns of one shard form runs.
  const runs: { shard: number; row: number; column: number; length: number }[] = [];
  for (let r = 0; r < rows; r++) {
    const column = (start + r) % size;
    const shard = slices.findIndex((s) => column >= s.offset && column < s.offset + s.columns);
    const last = runs.at(-1);
    if (last && last.shard === shard && last.column + last.length === column - slices[shard]!.offset) {
      last.length++;
    } else {
      runs.push({ shard, row: r, column: column - slices[shard]!.offset, length: 1 });
    }
  }
  // Within a shard the runs are contiguous modulo its columns: a write that wraps at K back into the
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

/**
 * One AdCo step over shards: round 1 on every shard, the exact normalisers, round 2 on every shard,
 * then the loss, dLoss/dq and statistics, in the form `Negatives.contrast` returns them. `write`
 * (init_memory) writes keys into the bank at a column after the step's computation.
 */
export async function shardedContrast(
  pairs: readonly ContrastPair[],
  shards: readonly ShardPeer[],
  slices: readonly ShardSlice[],
  hyper: AdcoHyperparameters,
  reduction: PairReduction,
  update: boolean,
  write?: { keys: tf.Tensor2D; start: number },
): Promise<ContrastOutcome> {
  if (pairs.length === 0) throw new CoreInputError("pairs", "at least one (query, key) pair is needed");
  const size = slices[0]!.size;
  const queries = pairs.map((p) => p.query);
  const weight = reduction === "mean" ? 1 / pairs.length : 1;
  const writes = write ? splitWrite(write.keys, write.start, slices) : slices.map(() => undefined);
  const byShard = await Promise.all(shards.map((s) => s.partials(queries)));
  const partialsOf = (pair: number) => byShard.map((shardPartials) => shardPartials[pair]!);
  const normalizers = pairs.map((pair, i) => mergeNormalizers(pair, partialsOf(i), hyper));
  const applied = await Promise.all(
    shards.map((s, i) =>
      s.apply(
        queries,
        normalizers,
        pairs.map(() => weight),
        update,
        writes[i],
      ),
    ),
  );
  try {
    const results = pairs.map((pair, i) =>
      finishPair(
        pair,
        normalizers[i]!,
        partialsOf(i),
        applied.map((a) => a.gradParts[i]!),
        hyper,
        size,
      ),
    );
    const first = results[0]!;
    const mean = (f: (r: PairResult) => number) => results.reduce((sum, r) => sum + f(r), 0) / results.length;
    return {
      loss: results.reduce((sum, r) => sum + r.loss * weight, 0),
      accuracy: mean((r) => r.accuracy),
      negativeProbability: mean((r) => r.adversaryProbability),
      similarity: {
        meanNegative: first.meanAdversarySimilarity,
        maxNegative: first.maxAdversarySimilarity,
        meanPositive: first.meanPositiveSimilarity,
        meanNegativeNorm: applied.reduce((sum, a) => sum + a.normSum, 0) / size,
      },
      queryGrads: results.map((r) => {
        const scaled = tf.mul(r.queryGrad, weight) as tf.Tensor2D;
        r.queryGrad.dispose();
        return scaled;
      }),
    };
  } finally {
    disposePartials(byShard.flat());
    tf.dispose([
      ...normalizers.flatMap((n) => [n.encoder, n.memory]),
      ...applied.flatMap((a) => a.gradParts),
      ...writes.flatMap((w) => (w ? [w.keys] : [])),
    ]);
  }
}

interface ShiftedExp {
  /** Per query, the max logit. */
  readonly max: tf.Tensor1D;
  /** exp(logit - max), N x columns. */
  readonly exp: tf.Tensor2D;
}

interface KeptRound {
  readonly round: number;
  readonly directions: tf.Tensor2D;
  readonly norms: tf.Tensor2D;
  readonly pairs: readonly { encoder: ShiftedExp; memory: ShiftedExp }[];
}

/** One shard's columns of the adversaries and their momentum (D x columns), and its two rounds. */
export class AdversaryShard implements ShardPeer {
  private readonly weights: tf.Variable<tf.Rank.R2>;
  private readonly velocity: tf.Variable<tf.Rank.R2>;
  /** Round 1's work that round 2 of the same round key reuses. */
  private kept: KeptRound | undefined;
  /** Round keys of the in-process ShardPeer calls (partials then apply, one step at a time). */
  private inProcessRound = 0;

  constructor(
    readonly dim: number,
    readonly slice: ShardSlice,
    readonly hyper: AdcoHyperparameters,
    seed = 0,
  ) {
    checkHyperparameters(hyper);
    checkPositive(slice.columns, "shard columns");
    this.weights = tf.variable(randomUnitColumns(dim, slice.size, seed, slice.offset, slice.columns), false);
    this.velocity = tf.variable(tf.zeros([dim, slice.columns]), false);
  }

  private checkQueries(queries: readonly tf.Tensor2D[]): void {
    if (queries.length === 0) throw new CoreInputError("queries", "at least one pair is needed");
    for (const q of queries) checkRank2(q, "queries", queries[0]!.shape[0], this.dim);
  }

  partials(queries: readonly tf.Tensor2D[]): Promise<ShardPartial[]> {
    return Promise.resolve(this.partialsNow(queries, ++this.inProcessRound));
  }

  apply(
    queries: readonly tf.Tensor2D[],
    normalizers: readonly Normalizers[],
    pairWeights: readonly number[],
    update: boolean,
    write?: ShardWrite,
  ): Promise<ShardApplied> {
    const applied = this.applyNow(queries, normalizers, pairWeights, update, this.inProcessRound);
    if (write) this.write(write.keys, write.start);
    return Promise.resolve(applied);
  }

  /**
   * Round 1: per pair, the log-sum-exp parts over this shard's columns at t and t_mem. With a `round`
   * key, the exponentials are kept for round 2 of the same key, which then needs neither the q.d
   * product nor an exp again (they are most of a step's work).
   */
  partialsNow(queries: readonly tf.Tensor2D[], round?: number): ShardPartial[] {
    this.checkQueries(queries);
    this.dropKept();
    const { partials, kept } = tf.tidy(() => {
      const { directions, norms } = normalizeColumns(this.weights);
      const shifted = (cosines: tf.Tensor2D, t: number) => {
        const logits = tf.div(cosines, t);
        const max = tf.max(logits, 1) as tf.Tensor1D;
        return { max, exp: tf.exp(tf.sub(logits, tf.expandDims(max, 1))) as tf.Tensor2D };
      };
      const pairs = queries.map((q) => {
        const cosines = tf.matMul(q, directions) as tf.Tensor2D;
        return {
          encoder: shifted(cosines, this.hyper.temperature),
          memory: shifted(cosines, this.hyper.memoryTemperature),
          similaritySum: tf.sum(cosines, 1) as tf.Tensor1D,
        };
      });
      const partials: ShardPartial[] = pairs.map((p) => ({
        encoder: { max: tf.clone(p.encoder.max), sumExp: tf.sum(p.encoder.exp, 1) as tf.Tensor1D },
        memory: { max: tf.clone(p.memory.max), sumExp: tf.sum(p.memory.exp, 1) as tf.Tensor1D },
        similaritySum: p.similaritySum,
      }));
      const kept =
        round === undefined
          ? undefined
          : { directions, norms, pairs: pairs.map((p) => ({ encoder: p.encoder, memory: p.memory })) };
      return { partials, kept } as unknown as tf.TensorContainer;
    }) as unknown as { partials: ShardPartial[]; kept?: Omit<KeptRound, "round"> };
    if (kept) this.kept = { round: round!, ...kept };
    return partials;
  }

  /**
   * Round 2: per pair, sum_j p_ij d_j at t over this shard's columns; with `update`, the ascent of
   * these columns on the pairs' weighted loss at t_mem (the bank as the step found it).
   */
  applyNow(
    queries: readonly tf.Tensor2D[],
    normalizers: readonly Normalizers[],
    pairWeights: readonly number[],
    update: boolean,
    round?: number,
  ): ShardApplied {
    this.checkQueries(queries);
    if (normalizers.length !== queries.length || pairWeights.length !== queries.length) {
      throw new CoreInputError("normalizers", "one normaliser and one weight per pair are needed");
    }
    const kept = round !== undefined && this.kept?.round === round ? this.kept : undefined;
    let normSum = 0;
    const [next, gradParts] = tf.tidy(() => {
      const { directions, norms } = kept ?? normalizeColumns(this.weights);
      normSum = tf.sum(norms).dataSync()[0]!;
      const transposed = tf.transpose(directions);
      const parts: tf.Tensor2D[] = [];
      let gradient: tf.Tensor2D | undefined;
      queries.forEach((q, i) => {
        // p_ij = exp(logit_ij - logZ_i): from round 1's exp(logit_ij - max_i) when kept.
        const cosines = kept ? undefined : tf.matMul(q, directions);
        const probsAt = (which: "encoder" | "memory", t: number, logZ: tf.Tensor1D) => {
          const pair = kept?.pairs[i];
          if (pair) return tf.mul(pair[which].exp, tf.expandDims(tf.exp(tf.sub(pair[which].max, logZ)), 1));
          return tf.exp(tf.sub(tf.div(cosines!, t), tf.expandDims(logZ, 1)));
        };
        const encoderProbs = probsAt("encoder", this.hyper.temperature, normalizers[i]!.encoder);
        parts.push(tf.matMul(encoderProbs, transposed));
        if (!update) return;
        const memoryProbs = probsAt(
          "memory",
          this.hyper.memoryTemperature,
          normalizers[i]!.memory,
        ) as tf.Tensor2D;
        const g = tf.mul(
          bankGradientFromProbs(q, directions, norms, memoryProbs, this.hyper.memoryTemperature),
          pairWeights[i]!,
        ) as tf.Tensor2D;
        gradient = gradient ? (tf.add(gradient, g) as tf.Tensor2D) : g;
      });
      if (!gradient) return [[], parts];
      const bank = ascend({ weights: this.weights, velocity: this.velocity }, gradient, this.hyper);
      return [[bank.weights, bank.velocity], parts];
    });
    this.dropKept();
    if (next.length === 2) {
      this.weights.assign(next[0]!);
      this.velocity.assign(next[1]!);
      tf.dispose(next);
    }
    return { gradParts, normSum };
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

  /** Overwrites R <= columns columns of this shard with keys (R x D) from column `start`, wrapping at its end. */
  write(keys: tf.Tensor2D, start: number): void {
    checkRank2(keys, "keys", undefined, this.dim);
    if (!(start >= 0 && start < this.slice.columns) || keys.shape[0] > this.slice.columns) {
      throw new CoreInputError(
        "keys",
        `${keys.shape[0]} rows at column ${start} do not fit the shard's ${this.slice.columns} columns`,
      );
    }
    this.dropKept();
    writeColumns(this.weights, keys, start);
  }

  state(): NegativesState {
    return { weights: this.weights.clone() as tf.Tensor2D, velocity: this.velocity.clone() as tf.Tensor2D };
  }

  restore(state: NegativesState): void {
    const [d, k] = this.weights.shape;
    const got = state.weights.shape;
    if (got[0] !== d || got[1] !== k)
      throw new CoreInputError("shard", `snapshot is ${got[0]} x ${got[1]}, the shard is ${d} x ${k}`);
    if (!state.velocity) throw new CoreInputError("shard", "snapshot has no momentum");
    this.dropKept();
    this.weights.assign(state.weights);
    this.velocity.assign(state.velocity);
  }

  dispose(): void {
    this.dropKept();
    tf.dispose([this.weights, this.velocity]);
  }
}
