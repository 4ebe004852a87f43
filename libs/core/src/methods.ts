// The negatives a query is contrasted against, one small class per method over a shared trainer:
//   AdversaryNegatives (AdCo): K learned adversaries that ascend the loss (the step of adco.ts);
//   QueueNegatives (MoCo v2): a FIFO queue of the K most recent keys.
// Each `contrast` takes the step's (query, key) pairs, returns the encoder's loss and dLoss/dq for
// every pair, and then updates the negatives from what they were at the start of the step.
import * as tf from "@tensorflow/tfjs-core";
import {
  adcoStep,
  type ContrastOutcome,
  type ContrastPair,
  contrastGradient,
  type PairReduction,
  type SimilarityStats,
  stepInProcess,
} from "./adco.js";
import { checkFinite, checkPositive, checkRank2, CoreInputError } from "./checks.js";
import { type AdcoHyperparameters } from "./hyperparameters.js";
import {
  AdversaryShard,
  type NegativesState,
  normalizeColumns,
  randomUnitColumns,
  type ShardSlice,
  variableOf,
  writeColumns,
} from "./shard.js";

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

/** AdCo: the whole bank as one shard of the step in adco.ts. */
export class AdversaryNegatives implements Negatives {
  readonly method = "adco";
  private readonly slice: ShardSlice;
  private readonly shard: AdversaryShard;

  constructor(
    dim: number,
    readonly size: number,
    readonly hyper: AdcoHyperparameters,
    seed = 0,
  ) {
    checkPositive(size, "bankSize");
    this.slice = { offset: 0, count: size, size };
    this.shard = new AdversaryShard(dim, this.slice, hyper, seed);
  }

  contrast(pairs: readonly ContrastPair[], reduction: PairReduction, update = true): ContrastOutcome {
    return stepInProcess(adcoStep(pairs, [this.slice], this.hyper, reduction, update), [this.shard]);
  }

  write(keys: tf.Tensor2D, start: number): void {
    this.shard.write(keys, start);
  }

  state(): NegativesState {
    return this.shard.state();
  }

  restore(state: NegativesState): void {
    this.shard.restore(state);
  }

  dispose(): void {
    this.shard.dispose();
  }
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
    this.queue = variableOf(randomUnitColumns(dim, size, seed));
  }

  contrast(pairs: readonly ContrastPair[], reduction: PairReduction, update = true): ContrastOutcome {
    if (pairs.length === 0) throw new CoreInputError("pairs", "at least one (query, key) pair is needed");
    const scale = reduction === "mean" ? 1 / pairs.length : 1;
    let loss = 0;
    let accuracy = 0;
    let adversaryProbability = 0;
    const queryGrads = pairs.map(({ query, key }) =>
      tf.tidy(() => {
        this.checkPair(query, key);
        const t = this.temperature;
        const positives = tf.div(tf.sum(tf.mul(query, key), 1), t) as tf.Tensor1D; //           N
        const queueLogits = tf.div(tf.matMul(query, this.queue), t); //                      N x K
        const logits = tf.concat([tf.expandDims(positives, 1), queueLogits], 1); //         N x (1 + K)
        const logZ = tf.logSumExp(logits, 1) as tf.Tensor1D; //                                  N
        const queueProbs = tf.exp(tf.sub(queueLogits, tf.expandDims(logZ, 1))); //           N x K
        const queueMass = tf.sum(queueProbs, 1) as tf.Tensor1D; //                               N
        const contrast = contrastGradient({
          key,
          positives,
          logZ,
          negativeSum: tf.matMul(queueProbs, tf.transpose(this.queue)) as tf.Tensor2D, //     N x D
          negativeMass: queueMass,
          temperature: t,
        });
        loss += contrast.loss.dataSync()[0]! * scale;
        accuracy +=
          tf.mean(tf.cast(tf.equal(tf.argMax(logits, 1), 0), "float32")).dataSync()[0]! / pairs.length;
        adversaryProbability += tf.mean(queueMass).dataSync()[0]! / pairs.length;
        return tf.mul(contrast.queryGrad, scale) as tf.Tensor2D;
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
    return { loss, accuracy, adversaryProbability, similarity, queryGrads };
  }

  private checkPair(query: tf.Tensor2D, key: tf.Tensor2D): void {
    const [dim] = this.queue.shape;
    checkRank2(query, "q", undefined, dim);
    const batch = query.shape[0];
    if (batch < 1) throw new CoreInputError("q", "the batch is empty");
    checkRank2(key, "k", batch, dim);
    if (this.size < batch) {
      throw new CoreInputError("queue", `K = ${this.size} keys is smaller than the batch N = ${batch}`);
    }
    checkFinite(query, "q");
    checkFinite(key, "k");
  }

  write(keys: tf.Tensor2D, start: number): void {
    writeColumns(this.queue, keys, start % this.size);
    this.pointer = (start + keys.shape[0]) % this.size;
  }

  state(): NegativesState {
    return { weights: this.queue.clone() as tf.Tensor2D, pointer: this.pointer };
  }

  restore(state: NegativesState): void {
    const [d, k] = this.queue.shape;
    const got = state.weights.shape;
    if (got[0] !== d || got[1] !== k)
      throw new CoreInputError("queue", `snapshot is ${got[0]} x ${got[1]}, the queue is ${d} x ${k}`);
    this.queue.assign(state.weights);
    this.pointer = state.pointer ?? 0;
  }

  dispose(): void {
    this.queue.dispose();
  }
}

/** SimilarityStats from the cosines (N x K) of queries to the normalised negatives and their norms (1 x K). */
function similarityStats(cosines: tf.Tensor2D, norms: tf.Tensor2D, pair: ContrastPair): SimilarityStats {
  return tf.tidy(() => ({
    meanAdversary: tf.mean(cosines).dataSync()[0]!,
    maxAdversary: tf.mean(tf.max(cosines, 1)).dataSync()[0]!,
    meanPositive: tf.mean(tf.sum(tf.mul(pair.query, pair.key), 1)).dataSync()[0]!,
    meanAdversaryNorm: tf.mean(norms).dataSync()[0]!,
  }));
}
