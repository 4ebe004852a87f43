// The negatives a query is contrasted against, one small class per method over a shared trainer:
//   AdversaryNegatives (AdCo): K learned adversaries that ascend the loss;
//   QueueNegatives (MoCo v2): a FIFO queue of the K most recent keys.
// Each `contrast` takes the step's (query, key) pairs, returns the encoder's loss and dLoss/dq for
// every pair, and then updates the negatives from what they were at the start of the step.
import * as tf from "@tensorflow/tfjs-core";
import {
  type AdcoHyperparameters,
  type AdversaryBank,
  ascend,
  bankGradient,
  checkContrastInputs,
  checkHyperparameters,
  contrastLoss,
  normalizeColumns,
  similarities,
} from "./adco.js";
import { checkPositive, CoreInputError } from "./checks.js";
import { l2Normalize } from "./encoder.js";
import { SeededRandom } from "./random.js";

export interface ContrastPair {
  readonly query: tf.Tensor2D;
  readonly key: tf.Tensor2D;
}

/**
 * How the losses of several pairs combine: "mean" for the symmetric loss (both views as queries),
 * "sum" for multi-crop (several query crops against one key), as in the official code.
 */
export type PairReduction = "mean" | "sum";

export interface ContrastStats {
  readonly loss: number;
  /** Fraction of queries whose positive scores highest (AdCo: ~0.8-0.9 is healthy, ~0.99 means weak adversaries). */
  readonly accuracy: number;
  /** Mean softmax mass on the negatives that are not batch keys (adversaries or queue). */
  readonly negativeProbability: number;
  /** Geometry of the first pair against the negatives as the step found them, for people watching a run. */
  readonly similarity: SimilarityStats;
}

export interface SimilarityStats {
  /** Mean cosine similarity of queries and normalised negatives. */
  readonly meanNegative: number;
  /** Mean over queries of the largest cosine similarity to any negative. */
  readonly maxNegative: number;
  /** Mean cosine similarity of each query to its positive key. */
  readonly meanPositive: number;
  /** Mean L2 norm of the raw negatives. */
  readonly meanNegativeNorm: number;
}

/** SimilarityStats from the cosines (N x K) of queries to the normalised negatives and their norms (1 x K). */
function similarityStats(cosines: tf.Tensor2D, norms: tf.Tensor2D, pair: ContrastPair): SimilarityStats {
  return tf.tidy(() => ({
    meanNegative: tf.mean(cosines).dataSync()[0]!,
    maxNegative: tf.mean(tf.max(cosines, 1)).dataSync()[0]!,
    meanPositive: tf.mean(tf.sum(tf.mul(pair.query, pair.key), 1)).dataSync()[0]!,
    meanNegativeNorm: tf.mean(norms).dataSync()[0]!,
  }));
}

export interface ContrastOutcome extends ContrastStats {
  /** dLoss/dq of each pair, already scaled by the reduction; the caller owns them. */
  readonly queryGrads: tf.Tensor2D[];
}

export interface NegativesState {
  readonly weights: tf.Tensor2D;
  readonly velocity?: tf.Tensor2D;
  readonly pointer?: number;
}

function checkRestore(state: NegativesState, target: tf.Variable, what: string): void {
  const [d, k] = target.shape;
  const got = state.weights.shape;
  if (got[0] !== d || got[1] !== k)
    throw new CoreInputError(what, `snapshot is ${got[0]} x ${got[1]}, the bank is ${d} x ${k}`);
}

export interface Negatives {
  readonly method: "adco" | "moco";
  readonly size: number;
  /** With update false the negatives stay as they are (AdCo's init_memory steps). */
  contrast(pairs: readonly ContrastPair[], reduction: PairReduction, update?: boolean): ContrastOutcome;
  /** Overwrites negatives with keys, starting at column `start` (AdCo's init_memory; MoCo's queue). */
  write(keys: tf.Tensor2D, start: number): void;
  /** The negatives as a D x K matrix, momentum (AdCo) and write position (MoCo), for snapshots. */
  state(): NegativesState;
  /** Replaces the negatives with a snapshot's state (same D and K). */
  restore(state: NegativesState): void;
  dispose(): void;
}

function scaleFor(reduction: PairReduction, pairs: number): number {
  return reduction === "mean" ? 1 / pairs : 1;
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

function checkPairs(pairs: readonly ContrastPair[]): void {
  if (pairs.length === 0) throw new CoreInputError("pairs", "at least one (query, key) pair is needed");
}

/** AdCo: adversaries ascend the loss at t_mem with momentum; the encoder descends it at t. */
export class AdversaryNegatives implements Negatives {
  readonly method = "adco";
  private readonly weights: tf.Variable<tf.Rank.R2>;
  private readonly velocity: tf.Variable<tf.Rank.R2>;

  constructor(
    dim: number,
    readonly size: number,
    readonly hyper: AdcoHyperparameters,
    seed = 0,
  ) {
    checkHyperparameters(hyper);
    checkPositive(size, "bankSize");
    this.weights = tf.variable(randomUnitColumns(dim, size, seed), false);
    this.velocity = tf.variable(tf.zeros([dim, size]), false);
  }

  contrast(pairs: readonly ContrastPair[], reduction: PairReduction, update = true): ContrastOutcome {
    checkPairs(pairs);
    const bank: AdversaryBank = { weights: this.weights, velocity: this.velocity };
    for (const { query, key } of pairs) checkContrastInputs(query, key, bank);
    const scale = scaleFor(reduction, pairs.length);
    let loss = 0;
    let accuracy = 0;
    let negativeProbability = 0;
    let similarity: SimilarityStats | undefined;
    const [next, queryGrads] = tf.tidy(() => {
      const grads: tf.Tensor2D[] = [];
      const { directions, norms } = normalizeColumns(this.weights);
      let gradient: tf.Tensor2D | undefined;
      for (const { query, key } of pairs) {
        const cosines = similarities(query, key, directions);
        const batch = query.shape[0];
        similarity ??= similarityStats(tf.slice(cosines, [0, batch], [batch, this.size]), norms, {
          query,
          key,
        });
        const result = contrastLoss(query, key, directions, cosines, this.hyper.temperature);
        const g = bankGradient(query, directions, norms, cosines, this.hyper.memoryTemperature);
        gradient = gradient ? (tf.add(gradient, g) as tf.Tensor2D) : g;
        grads.push(tf.mul(result.queryGrad, scale) as tf.Tensor2D);
        loss += result.loss.dataSync()[0]! * scale;
        accuracy += result.accuracy.dataSync()[0]! / pairs.length;
        negativeProbability += result.adversaryProbability.dataSync()[0]! / pairs.length;
      }
      if (!update) return [[], grads];
      const { weights, velocity } = ascend(bank, tf.mul(gradient!, scale) as tf.Tensor2D, this.hyper);
      return [[weights, velocity], grads];
    });
    if (next.length === 2) {
      this.weights.assign(next[0]!);
      this.velocity.assign(next[1]!);
      tf.dispose(next);
    }
    return { loss, accuracy, negativeProbability, similarity: similarity!, queryGrads };
  }

  write(keys: tf.Tensor2D, start: number): void {
    writeColumns(this.weights, keys, start);
  }

  state(): NegativesState {
    return { weights: this.weights.clone() as tf.Tensor2D, velocity: this.velocity.clone() as tf.Tensor2D };
  }

  restore(state: NegativesState): void {
    checkRestore(state, this.weights, "adversaries");
    if (!state.velocity) throw new CoreInputError("adversaries", "snapshot has no momentum");
    this.weights.assign(state.weights);
    this.velocity.assign(state.velocity);
  }

  dispose(): void {
    tf.dispose([this.weights, this.velocity]);
  }
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

/**
 * MoCo v2: logits [q.k_own, q.queue] / t, label 0; afterwards the keys replace the oldest queue
 * entries. The gradient is written out like AdCo's: sum over the queue of p_j (v_j - k) / (N t).
 */
export class QueueNegatives implements Negatives {
  readonly method = "moco";
  private readonly queue: tf.Variable<tf.Rank.R2>;
  private pointer = 0;

  constructor(
    dim: number,
    readonly size: number,
    readonly temperature: number,
    seed = 0,
  ) {
    checkPositive(size, "queueSize");
    checkPositive(temperature, "temperature");
    this.queue = tf.variable(randomUnitColumns(dim, size, seed), false);
  }

  contrast(pairs: readonly ContrastPair[], reduction: PairReduction, update = true): ContrastOutcome {
    checkPairs(pairs);
    const scale = scaleFor(reduction, pairs.length);
    let loss = 0;
    let accuracy = 0;
    let negativeProbability = 0;
    const queryGrads = pairs.map(({ query, key }) =>
      tf.tidy(() => {
        checkContrastInputs(query, key, { weights: this.queue, velocity: this.queue });
        const batch = query.shape[0];
        const t = this.temperature;
        const positive = tf.sum(tf.mul(query, key), 1, true);
        const logits = tf.div(tf.concat([positive, tf.matMul(query, this.queue)], 1), t);
        const logNormalizer = tf.logSumExp(logits, 1, true);
        const probs = tf.exp(tf.sub(logits, logNormalizer));
        const queueProbs = tf.slice(probs, [0, 1], [batch, this.size]);
        const queueMass = tf.sum(queueProbs, 1, true);
        const grad = tf.div(
          tf.sub(tf.matMul(queueProbs, tf.transpose(this.queue)), tf.mul(queueMass, key)),
          batch * t,
        );
        loss += tf.mean(tf.sub(logNormalizer, tf.div(positive, t))).dataSync()[0]! * scale;
        accuracy +=
          tf.mean(tf.cast(tf.equal(tf.argMax(logits, 1), 0), "float32")).dataSync()[0]! / pairs.length;
        negativeProbability += tf.mean(queueMass).dataSync()[0]! / pairs.length;
        return tf.mul(grad, scale) as tf.Tensor2D;
      }),
    );
    // Statistics of the queue as the step found it (the queries were checked above).
    const { directions, norms } = normalizeColumns(this.queue);
    const cosines = tf.matMul(pairs[0]!.query, directions) as tf.Tensor2D;
    const similarity = similarityStats(cosines, norms, pairs[0]!);
    tf.dispose([directions, norms, cosines]);
    // The keys of the step enter the queue once each (a symmetric step has two key sets).
    const seen = new Set<tf.Tensor>();
    for (const { key } of update ? pairs : []) {
      if (seen.has(key)) continue;
      seen.add(key);
      this.write(key, this.pointer);
    }
    return { loss, accuracy, negativeProbability, similarity, queryGrads };
  }

  write(keys: tf.Tensor2D, start: number): void {
    writeColumns(this.queue, keys, start % this.size);
    this.pointer = (start + keys.shape[0]) % this.size;
  }

  state(): NegativesState {
    return { weights: this.queue.clone() as tf.Tensor2D, pointer: this.pointer };
  }

  restore(state: NegativesState): void {
    checkRestore(state, this.queue, "queue");
    this.queue.assign(state.weights);
    this.pointer = state.pointer ?? 0;
  }

  dispose(): void {
    this.queue.dispose();
  }
}
