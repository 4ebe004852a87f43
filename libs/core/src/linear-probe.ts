// The linear probe: a softmax classifier trained on frozen features (the classic protocol of MoCo and
// AdCo, there on ImageNet with SGD for 100 epochs). Features are standardised with the training
// set's statistics; mini-batch SGD with momentum 0.9 and a cosine learning rate, a fixed seed for
// the sample order. On our data sizes (thousands of samples, D <= 2048) 100 epochs reach a flat
// training loss (the test pins that the loss stops falling).
import * as tf from "@tensorflow/tfjs-core";
import { CoreInputError } from "./checks.js";
import { SeededRandom } from "./random.js";
import { runSteps, runStepsYielding } from "./steps.js";

export interface LinearProbeOptions {
  readonly classes: number;
  readonly epochs?: number;
  readonly lr?: number;
  readonly weightDecay?: number;
  readonly batchSize?: number;
  readonly seed?: number;
  /** Called after each epoch with the mean training loss. */
  readonly onEpoch?: (epoch: number, loss: number) => void;
}

export const LINEAR_PROBE_DEFAULTS = { epochs: 100, lr: 0.1, weightDecay: 1e-4, batchSize: 256 } as const;

export interface ClassifierScores {
  readonly top1: number;
  readonly top5: number;
  readonly perClass: number[];
  readonly predictions: Int32Array;
}

/** Top-1, top-5 and per-class accuracy of scores (N x C) against labels. */
export function scoreClassifier(scores: tf.Tensor2D, labels: Int32Array, classes: number): ClassifierScores {
  const n = labels.length;
  const k = Math.min(5, classes);
  const { predictions, top } = tf.tidy(() => ({
    predictions: tf.argMax(scores, 1).dataSync() as Int32Array,
    top: tf.topk(scores, k).indices.dataSync() as Int32Array,
  }));
  const correct = new Array<number>(classes).fill(0);
  const total = new Array<number>(classes).fill(0);
  let top5 = 0;
  labels.forEach((label, i) => {
    total[label]!++;
    if (predictions[i] === label) correct[label]!++;
    for (let j = 0; j < k; j++) if (top[i * k + j] === label) top5++;
  });
  return {
    top1: correct.reduce((a, b) => a + b, 0) / n,
    top5: top5 / n,
    perClass: correct.map((c, i) => (total[i] ? c / total[i]! : 0)),
    predictions,
  };
}

export interface LinearProbeResult extends ClassifierScores {
  readonly trainLoss: number;
}

/** Trains the probe on the train features and scores it on the test features, in one call. */
export function linearProbe(
  trainFeatures: tf.Tensor2D,
  trainLabels: Int32Array,
  testFeatures: tf.Tensor2D,
  testLabels: Int32Array,
  options: LinearProbeOptions,
): LinearProbeResult {
  return runSteps(linearProbeSteps(trainFeatures, trainLabels, testFeatures, testLabels, options));
}

/** The same probe, the same result, with the event loop let run between SGD steps (services). */
export function linearProbeAsync(
  trainFeatures: tf.Tensor2D,
  trainLabels: Int32Array,
  testFeatures: tf.Tensor2D,
  testLabels: Int32Array,
  options: LinearProbeOptions,
): Promise<LinearProbeResult> {
  return runStepsYielding(linearProbeSteps(trainFeatures, trainLabels, testFeatures, testLabels, options));
}

/**
 * Rows per block when the probe reads the training features. tfjs-wasm's mean over rows transposes
 * its input, and the standardisation makes two intermediates the size of the split: for 60,000 x
 * 3,136 floats (753 MB each) the heap passed 3.4 GiB and the backend failed ("memory access out of
 * bounds"). In blocks, the heap holds one block (~100 MB at 3,136 features) besides the split.
 */
const MOMENT_ROWS = 8192;

/**
 * Each feature's mean and standard deviation (+1e-6) over the rows: tf.moments when the split is
 * one block (so a small split's numbers are exactly those of tf.moments); else two passes over
 * blocks of rows (sums, then squared deviations from the mean), in float32 as tf.moments.
 */
export function featureMoments(x: tf.Tensor2D): { mean: tf.Tensor1D; std: tf.Tensor1D } {
  const [n, dim] = x.shape;
  if (n <= MOMENT_ROWS)
    return tf.tidy(() => {
      const m = tf.moments(x, 0);
      return { mean: m.mean as tf.Tensor1D, std: tf.add(tf.sqrt(m.variance), 1e-6) as tf.Tensor1D };
    });
  const sumOver = (f: (block: tf.Tensor2D) => tf.Tensor2D): tf.Tensor1D => {
    let total = tf.zeros([dim]) as tf.Tensor1D;
    for (let r = 0; r < n; r += MOMENT_ROWS) {
      const count = Math.min(MOMENT_ROWS, n - r);
      const next = tf.tidy(
        () => tf.add(total, tf.sum(f(tf.slice(x, [r, 0], [count, dim])), 0)) as tf.Tensor1D,
      );
      total.dispose();
      total = next;
    }
    return total;
  };
  const sums = sumOver((block) => block);
  const mean = tf.div(sums, n) as tf.Tensor1D;
  sums.dispose();
  const squares = sumOver((block) => tf.square(tf.sub(block, mean)) as tf.Tensor2D);
  const std = tf.tidy(() => tf.add(tf.sqrt(tf.div(squares, n)), 1e-6) as tf.Tensor1D);
  squares.dispose();
  return { mean, std };
}

/** out (cols x rows) = the transpose of a (rows x cols), in 16 x 16 tiles to stay in cache. */
function transposeInto(a: Float32Array, rows: number, cols: number, out: Float32Array): void {
  const tile = 16;
  for (let r0 = 0; r0 < rows; r0 += tile) {
    const r1 = Math.min(rows, r0 + tile);
    for (let c0 = 0; c0 < cols; c0 += tile) {
      const c1 = Math.min(cols, c0 + tile);
      for (let r = r0; r < r1; r++) for (let c = c0; c < c1; c++) out[c * rows + r] = a[r * cols + c]!;
    }
  }
}

/** The probe as a generator that yields after each SGD step (steps.ts runs it). */
function* linearProbeSteps(
  trainFeatures: tf.Tensor2D,
  trainLabels: Int32Array,
  testFeatures: tf.Tensor2D,
  testLabels: Int32Array,
  options: LinearProbeOptions,
): Generator<void, LinearProbeResult> {
  const [n, dim] = trainFeatures.shape;
  if (trainLabels.length !== n)
    throw new CoreInputError("trainLabels", `${trainLabels.length} labels for ${n} features`);
  if (testFeatures.shape[1] !== dim)
    throw new CoreInputError("testFeatures", `dimension ${testFeatures.shape[1]} differs from ${dim}`);
  const epochs = options.epochs ?? LINEAR_PROBE_DEFAULTS.epochs;
  const peakLr = options.lr ?? LINEAR_PROBE_DEFAULTS.lr;
  const wd = options.weightDecay ?? LINEAR_PROBE_DEFAULTS.weightDecay;
  const batchSize = Math.min(n, options.batchSize ?? LINEAR_PROBE_DEFAULTS.batchSize);
  const classes = options.classes;
  const random = new SeededRandom(options.seed ?? 0);

  const { mean, std } = featureMoments(trainFeatures);
  const standardize = (x: tf.Tensor2D) => tf.div(tf.sub(x, mean), std) as tf.Tensor2D;
  // The standardised rows live on the JS side, and each batch is copied out of them twice: as rows
  // (m x dim) and transposed (dim x m, in tiles). Both products are then plain (m x dim)(dim x C)
  // and (dim x m)(m x C): tfjs-wasm repacks a transposed or wide right operand on every call, and
  // its gather and transpose took ~20 and ~7 ms for a batch of 256 x 3136, each product ~0.9 ms.
  // Standardised a block of rows at a time (the same values as all at once: the ops are elementwise).
  const rows = new Float32Array(n * dim);
  for (let r = 0; r < n; r += MOMENT_ROWS) {
    const count = Math.min(MOMENT_ROWS, n - r);
    const block = tf.tidy(() => standardize(tf.slice(trainFeatures, [r, 0], [count, dim])));
    rows.set(block.dataSync() as Float32Array, r * dim);
    block.dispose();
  }
  const w = tf.variable(tf.zeros([dim, classes]));
  const b = tf.variable(tf.zeros([classes]));
  const vw = tf.variable(tf.zeros([dim, classes]));
  const vb = tf.variable(tf.zeros([classes]));
  const stepsPerEpoch = Math.ceil(n / batchSize);
  // One set of batch buffers for every step (the last batch of an epoch uses their start).
  const batchBuffer = new Float32Array(batchSize * dim);
  const batchTBuffer = new Float32Array(dim * batchSize);
  const labelBuffer = new Int32Array(batchSize);
  const totalSteps = epochs * stepsPerEpoch;
  let trainLoss = NaN;
  try {
    let step = 0;
    for (let epoch = 0; epoch < epochs; epoch++) {
      const order = random.permutation(n);
      let lossSum = 0;
      for (let s = 0; s < stepsPerEpoch; s++) {
        const lr = 0.5 * peakLr * (1 + Math.cos((Math.PI * step++) / totalSteps));
        const ids = order.slice(s * batchSize, (s + 1) * batchSize);
        const m = ids.length;
        const batch = batchBuffer.subarray(0, m * dim);
        const batchT = batchTBuffer.subarray(0, dim * m);
        const labels = labelBuffer.subarray(0, m);
        ids.forEach((id, r) => {
          batch.set(rows.subarray(id * dim, (id + 1) * dim), r * dim);
          labels[r] = trainLabels[id]!;
        });
        transposeInto(batch, m, dim, batchT);
        const loss = tf.tidy(() => {
          const xb = tf.tensor2d(batch, [m, dim]); // m x dim
          const xbT = tf.tensor2d(batchT, [dim, m]); // dim x m
          const yb = tf.oneHot(tf.tensor1d(labels, "int32"), classes).toFloat(); // m x classes
          const logits = tf.add(tf.matMul(xb, w), b); // m x classes
          const probs = tf.softmax(logits);
          const loss = tf.neg(tf.mean(tf.sum(tf.mul(yb, tf.logSoftmax(logits)), 1)));
          // Softmax cross-entropy gradient, written out: (p - y) / m.
          const dLogits = tf.div(tf.sub(probs, yb), m); // m x classes
          const gw = tf.add(tf.matMul(xbT, dLogits), tf.mul(w, wd)); // dim x classes
          const gb = tf.sum(dLogits, 0);
          vw.assign(tf.add(tf.mul(vw, 0.9), gw));
          vb.assign(tf.add(tf.mul(vb, 0.9), gb));
          w.assign(tf.sub(w, tf.mul(vw, lr)));
          b.assign(tf.sub(b, tf.mul(vb, lr)));
          return loss.dataSync()[0]!;
        });
        lossSum += loss;
        yield;
      }
      trainLoss = lossSum / stepsPerEpoch;
      options.onEpoch?.(epoch, trainLoss);
    }
    const scores = tf.tidy(() => tf.add(tf.matMul(standardize(testFeatures), w), b) as tf.Tensor2D);
    try {
      return { ...scoreClassifier(scores, testLabels, classes), trainLoss };
    } finally {
      scores.dispose();
    }
  } finally {
    tf.dispose([mean, std, w, b, vw, vb]);
  }
}
