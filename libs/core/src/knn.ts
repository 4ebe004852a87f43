// The weighted kNN classifier of the MoCo / InstDisc monitor: cosine similarity of L2-normalised
// features, the k most similar training samples vote for their class with weight exp(sim / t).
import * as tf from "@tensorflow/tfjs-core";
import { CoreInputError } from "./checks.js";
import { l2Normalize } from "./encoder.js";
import { runSteps, runStepsYielding } from "./steps.js";

export interface KnnOptions {
  /** Neighbours (MoCo monitor: 200). */
  readonly k: number;
  /** Temperature of the vote weights (0.1). */
  readonly temperature: number;
  readonly classes: number;
  /** Test samples per similarity batch. */
  readonly batchSize?: number;
}

export const KNN_DEFAULTS = { k: 200, temperature: 0.1 } as const;

export interface KnnResult {
  readonly top1: number;
  readonly perClass: number[];
  readonly predictions: Int32Array;
}

/** Classifies test features by the labelled train features; features are N x D (normalised here). */
export function knnClassify(
  trainFeatures: tf.Tensor2D,
  trainLabels: Int32Array,
  testFeatures: tf.Tensor2D,
  testLabels: Int32Array,
  options: KnnOptions,
): KnnResult {
  return runSteps(knnSteps(trainFeatures, trainLabels, testFeatures, testLabels, options));
}

/** The same classifier, the same result, with the event loop let run between test batches (services). */
export function knnClassifyAsync(
  trainFeatures: tf.Tensor2D,
  trainLabels: Int32Array,
  testFeatures: tf.Tensor2D,
  testLabels: Int32Array,
  options: KnnOptions,
): Promise<KnnResult> {
  return runStepsYielding(knnSteps(trainFeatures, trainLabels, testFeatures, testLabels, options));
}

/** kNN as a generator that yields after each batch of test samples (steps.ts runs it). */
function* knnSteps(
  trainFeatures: tf.Tensor2D,
  trainLabels: Int32Array,
  testFeatures: tf.Tensor2D,
  testLabels: Int32Array,
  options: KnnOptions,
): Generator<void, KnnResult> {
  const [trainCount, dim] = trainFeatures.shape;
  if (trainLabels.length !== trainCount)
    throw new CoreInputError("trainLabels", `${trainLabels.length} labels for ${trainCount} features`);
  if (testFeatures.shape[1] !== dim)
    throw new CoreInputError("testFeatures", `dimension ${testFeatures.shape[1]} differs from ${dim}`);
  if (testLabels.length !== testFeatures.shape[0])
    throw new CoreInputError(
      "testLabels",
      `${testLabels.length} labels for ${testFeatures.shape[0]} features`,
    );
  const k = Math.min(options.k, trainCount);
  const batchSize = options.batchSize ?? 256;
  const predictions = new Int32Array(testLabels.length);
  // Bank stored D x N so similarities are a plain A.B (fast on wasm).
  const bank = tf.tidy(() => tf.transpose(l2Normalize(trainFeatures)));
  const labels = tf.tensor1d(trainLabels, "int32");
  try {
    for (let start = 0; start < testLabels.length; start += batchSize) {
      const size = Math.min(batchSize, testLabels.length - start);
      const predicted = tf.tidy(() => {
        const queries = l2Normalize(tf.slice(testFeatures, [start, 0], [size, dim]));
        const { values, indices } = tf.topk(tf.matMul(queries, bank), k);
        const weights = tf.exp(tf.div(values, options.temperature)); // size x k
        const votes = tf.oneHot(tf.gather(labels, indices), options.classes); // size x k x C
        const scores = tf.sum(tf.mul(votes, tf.expandDims(weights, 2)), 1);
        return tf.argMax(scores, 1).dataSync() as Int32Array;
      });
      predictions.set(predicted, start);
      yield;
    }
  } finally {
    tf.dispose([bank, labels]);
  }
  return knnScores(predictions, testLabels, options.classes);
}

/** Rows of a feature matrix (rows x dim float32, row-major) with the rows' labels. */
export interface FeatureBlock {
  readonly features: Float32Array;
  readonly labels: Int32Array;
}

/** A feature matrix that can be read in blocks, in order, any number of times (memory or a file). */
export interface FeatureBlocks {
  readonly rows: number;
  readonly dim: number;
  /** The rows in order, in blocks of `rows` rows (the last one may be smaller). */
  blocks(rows: number): AsyncIterable<FeatureBlock>;
}

export interface ChunkedKnnOptions extends KnnOptions {
  /** Training rows per similarity block: the memory is batchSize x trainBlock floats, not the split. */
  readonly trainBlock?: number;
  /** Called after each batch of test samples. */
  readonly onProgress?: (done: number, total: number) => void;
}

/** Longest the chunked kNN runs without letting the event loop run (as steps.ts's runStepsYielding). */
const YIELD_EVERY_MS = 50;

/** Test samples per vote: batch x k x classes floats of one-hot votes at once. */
const VOTE_ELEMENTS = 1 << 24;

/**
 * The kNN of knnClassify over feature matrices that need not fit in memory: each batch of test
 * samples meets the training features block by block, and each block's top k joins a running top k
 * (ties to the lower training index, as tf.topk breaks them). The vote then runs the same tensor ops
 * on the same neighbours in the same order, so the result equals knnClassify's exactly.
 */
export async function knnClassifyChunked(
  train: FeatureBlocks,
  test: FeatureBlocks,
  options: ChunkedKnnOptions,
): Promise<KnnResult> {
  if (test.dim !== train.dim)
    throw new CoreInputError("testFeatures", `dimension ${test.dim} differs from ${train.dim}`);
  const dim = train.dim;
  const k = Math.min(options.k, train.rows);
  const batchSize = options.batchSize ?? 256;
  const trainBlock = options.trainBlock ?? 8192;
  const predictions = new Int32Array(test.rows);
  const testLabels = new Int32Array(test.rows);
  let start = 0;
  let lastYield = performance.now();
  for await (const batch of test.blocks(batchSize)) {
    const size = batch.labels.length;
    testLabels.set(batch.labels, start);
    const queries = tf.tidy(() => l2Normalize(tf.tensor2d(batch.features, [size, dim])));
    const top = new RunningTopK(size, k);
    try {
      let base = 0;
      for await (const block of train.blocks(trainBlock)) {
        const rows = block.labels.length;
        const blockK = Math.min(k, rows);
        const { values, indices } = tf.tidy(() => {
          const bank = tf.transpose(l2Normalize(tf.tensor2d(block.features, [rows, dim])));
          return tf.topk(tf.matMul(queries, bank), blockK);
        });
        const [v, i] = await Promise.all([values.data(), indices.data()]);
        tf.dispose([values, indices]);
        top.merge(v as Float32Array, i as Int32Array, blockK, base, block.labels);
        base += rows;
        // Blocks of a large split take a while: give the event loop a turn now and then.
        if (performance.now() - lastYield >= YIELD_EVERY_MS) {
          await new Promise((resolve) => setImmediate(resolve));
          lastYield = performance.now();
        }
      }
      if (base !== train.rows)
        throw new CoreInputError("trainFeatures", `${base} rows read, ${train.rows} expected`);
    } finally {
      queries.dispose();
    }
    predictions.set(await top.vote(options.temperature, options.classes), start);
    start += size;
    options.onProgress?.(start, test.rows);
    // Let the event loop run (keepalives, progress events) between test batches.
    await new Promise((resolve) => setImmediate(resolve));
    lastYield = performance.now();
  }
  if (start !== test.rows)
    throw new CoreInputError("testFeatures", `${start} rows read, ${test.rows} expected`);
  return knnScores(predictions, testLabels, options.classes);
}

/** Top-1 and per-class accuracy of the predictions against the test labels. */
function knnScores(predictions: Int32Array, testLabels: Int32Array, classes: number): KnnResult {
  const correct = new Array<number>(classes).fill(0);
  const total = new Array<number>(classes).fill(0);
  testLabels.forEach((label, i) => {
    total[label]!++;
    if (predictions[i] === label) correct[label]!++;
  });
  const hits = correct.reduce((a, b) => a + b, 0);
  return {
    top1: hits / testLabels.length,
    perClass: correct.map((c, i) => (total[i] ? c / total[i]! : 0)),
    predictions,
  };
}

/** A feature matrix held in memory, as FeatureBlocks (tests, small splits). */
export function featureBlocksOf(features: Float32Array, labels: Int32Array): FeatureBlocks {
  const rows = labels.length;
  const dim = rows ? features.length / rows : 0;
  if (!Number.isInteger(dim))
    throw new CoreInputError("features", `${features.length} floats for ${rows} rows`);
  return {
    rows,
    dim,
    async *blocks(size: number) {
      for (let r = 0; r < rows; r += size) {
        const end = Math.min(rows, r + size);
        yield { features: features.subarray(r * dim, end * dim), labels: labels.subarray(r, end) };
      }
    },
  };
}

/** The k best neighbours so far of each query in a batch, best first, ties to the lower index. */
class RunningTopK {
  private values: Float32Array;
  private indices: Int32Array;
  private labels: Int32Array;
  private filled = 0;

  constructor(
    private readonly size: number,
    private readonly k: number,
  ) {
    this.values = new Float32Array(size * k);
    this.indices = new Int32Array(size * k);
    this.labels = new Int32Array(size * k);
  }

  /** Merges a block's sorted top `blockK` (indices within the block, the block starting at `base`). */
  merge(
    values: Float32Array,
    indices: Int32Array,
    blockK: number,
    base: number,
    blockLabels: Int32Array,
  ): void {
    const { k, size } = this;
    const kept = Math.min(k, this.filled + blockK);
    const outValues = new Float32Array(size * k);
    const outIndices = new Int32Array(size * k);
    const outLabels = new Int32Array(size * k);
    for (let q = 0; q < size; q++) {
      let a = 0; // in the running list (all earlier blocks: lower indices, so it wins ties)
      let b = 0; // in the block's list
      for (let o = 0; o < kept; o++) {
        const fromRunning =
          b >= blockK || (a < this.filled && this.values[q * k + a]! >= values[q * blockK + b]!);
        const out = q * k + o;
        if (fromRunning) {
          outValues[out] = this.values[q * k + a]!;
          outIndices[out] = this.indices[q * k + a]!;
          outLabels[out] = this.labels[q * k + a]!;
          a++;
        } else {
          const local = indices[q * blockK + b]!;
          outValues[out] = values[q * blockK + b]!;
          outIndices[out] = base + local;
          outLabels[out] = blockLabels[local]!;
          b++;
        }
      }
    }
    this.values = outValues;
    this.indices = outIndices;
    this.labels = outLabels;
    this.filled = kept;
  }

  /** knnSteps' vote on the neighbours found: exp(sim / t) per neighbour, summed per class. */
  async vote(temperature: number, classes: number): Promise<Int32Array> {
    const { k, size } = this;
    const predictions = new Int32Array(size);
    const step = Math.max(1, Math.floor(VOTE_ELEMENTS / (k * classes)));
    for (let s = 0; s < size; s += step) {
      const n = Math.min(step, size - s);
      const predicted = tf.tidy(() => {
        const values = tf.tensor2d(this.values.subarray(s * k, (s + n) * k), [n, k]);
        const labels = tf.tensor2d(this.labels.subarray(s * k, (s + n) * k), [n, k], "int32");
        const weights = tf.exp(tf.div(values, temperature));
        const votes = tf.oneHot(labels, classes);
        return tf.argMax(tf.sum(tf.mul(votes, tf.expandDims(weights, 2)), 1), 1);
      });
      predictions.set((await predicted.data()) as Int32Array, s);
      predicted.dispose();
    }
    return predictions;
  }
}
