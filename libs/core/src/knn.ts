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
  const correct = new Array<number>(options.classes).fill(0);
  const total = new Array<number>(options.classes).fill(0);
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
