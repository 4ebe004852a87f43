// The embedding plot's 2-D views of feature rows: PCA and UMAP. umap-js (the JS port of McInnes'
// UMAP) draws its random numbers from the function it is given: the project's seeded generator here,
// so one checkpoint's plot is the same every time it is drawn.
//
// Both run in small pieces that yield to the event loop: the evaluator's gRPC server answers
// keepalive pings between them (a client drops a connection whose ping waits 10 s: "Connection
// dropped"). On 2,000 rows of 3,136 features, PCA's 3,136 x 3,136 covariance was one wasm call of
// 39 s and umap-js's neighbour search (NN-descent, in JS) 15 s of CPU in one piece; PCA now never
// forms the covariance, and the neighbours are found here with tfjs, exactly, a block at a time.
import { Mulberry32 } from "@adco/random";
import * as tf from "@tensorflow/tfjs-core";
import { UMAP } from "umap-js";

export interface UmapOptions {
  /** Seeds the initial layout and the negative samples (default 0). */
  readonly seed?: number;
  /** Neighbours each point is joined to (default 15, umap-js's; fewer when there are fewer points). */
  readonly neighbors?: number;
  /** Layout epochs; umap-js picks 500 under 10,000 points by default, 200 keeps it to seconds. */
  readonly epochs?: number;
}

/** Power iterations per principal component, and how many run between yields to the event loop. */
const PCA_ITERATIONS = 100;
const ITERATIONS_PER_YIELD = 10;
/** Epochs run between yields to the event loop, so a long layout does not stall the gRPC server. */
const EPOCHS_PER_YIELD = 10;
/**
 * The rows of x projected on their first two principal components (power iteration with deflation):
 * x0, y0, x1, y1, ... The covariance is applied as centredᵀ (centred v) / n, never formed.
 */
export async function pca2(x: tf.Tensor2D): Promise<Float32Array> {
  const [n, d] = x.shape;
  const centred = tf.tidy(() => tf.sub(x, tf.mean(x, 0))); //          [n, d]
  // Transposed once: wasm's matMul with a transposed operand is 10x slower or more.
  const centredT = tf.transpose(centred); //                            [d, n]
  const found: { v: tf.Tensor2D; lambda: tf.Scalar }[] = [];
  /** cov v, less what the components found so far explain (deflation). */
  const covTimes = (v: tf.Tensor2D) =>
    tf.tidy(() => {
      let cv = tf.div(tf.matMul(centredT, tf.matMul(centred, v)), n) as tf.Tensor2D; // [d, 1]
      for (const c of found) cv = tf.sub(cv, tf.mul(tf.mul(c.lambda, tf.sum(tf.mul(c.v, v))), c.v));
      return cv;
    });
  try {
    for (let c = 0; c < 2; c++) {
      let v = tf.randomNormal([d, 1], 0, 1, "float32", 7 + c) as tf.Tensor2D; // [d, 1]
      for (let i = 0; i < PCA_ITERATIONS; i++) {
        const next = tf.tidy(() => {
          const cv = covTimes(v);
          return tf.div(cv, tf.norm(cv)) as tf.Tensor2D;
        });
        v.dispose();
        v = next;
        if (i % ITERATIONS_PER_YIELD === ITERATIONS_PER_YIELD - 1) await new Promise((r) => setImmediate(r));
      }
      found.push({ v, lambda: tf.tidy(() => tf.sum(tf.mul(v, covTimes(v)))) });
    }
    const points = tf.tidy(() =>
      tf.matMul(
        centred,
        tf.concat(
          found.map((c) => c.v),
          1,
        ),
      ),
    ); // [n, 2]
    try {
      return (await points.data()) as Float32Array;
    } finally {
      points.dispose();
    }
  } finally {
    tf.dispose([centred, centredT, ...found.flatMap((c) => [c.v, c.lambda])]);
  }
}

/** Rows whose neighbours one tfjs call finds (a [256, rows] block of distances). */
const NEIGHBOUR_BLOCK = 256;

/**
 * Each row's `k` nearest rows by euclidean distance, nearest first, itself first (at 0), as umap-js
 * takes them (setPrecomputedKNN); exact, one block of rows per turn of the event loop.
 */
export async function nearestRows(
  features: Float32Array,
  rows: number,
  dim: number,
  k: number,
): Promise<{ indices: number[][]; distances: number[][] }> {
  const indices: number[][] = [];
  const distances: number[][] = [];
  const all = tf.tensor2d(features, [rows, dim]); //                  [n, d]
  const squares = tf.tidy(() => tf.sum(tf.square(all), 1)); //         [n]
  // Transposed once: wasm's matMul with transposeB is 10x slower (3.3 s against 0.3 s a block).
  const allT = tf.transpose(all); //                                    [d, n]
  try {
    for (let start = 0; start < rows; start += NEIGHBOUR_BLOCK) {
      const size = Math.min(NEIGHBOUR_BLOCK, rows - start);
      const top = tf.tidy(() => {
        const block = tf.slice(all, [start, 0], [size, dim]); //       [b, d]
        const blockSquares = tf.slice(squares, [start], [size]); //    [b]
        // |a - b|^2 = |a|^2 + |b|^2 - 2 a.b, negated: the largest are the nearest.
        const products = tf.matMul(block, allT); //                    [b, n]
        const near = tf.sub(tf.mul(products, 2), tf.add(tf.expandDims(blockSquares, 1), squares));
        return tf.topk(near, k); //                                    [b, k] each
      });
      const [values, at] = await Promise.all([top.values.data(), top.indices.data()]);
      tf.dispose([top.values, top.indices]);
      for (let r = 0; r < size; r++) {
        const row = start + r;
        const ids = Array.from(at.subarray(r * k, (r + 1) * k));
        // Rounding leaves a row a hair from itself; UMAP reads its nearest other row off a true 0.
        const ds = ids.map((id, j) => (id === row ? 0 : Math.sqrt(Math.max(0, -values[r * k + j]!))));
        const self = ids.indexOf(row);
        if (self > 0) {
          ids.unshift(...ids.splice(self, 1));
          ds.unshift(...ds.splice(self, 1));
        }
        indices.push(ids);
        distances.push(ds);
      }
      await new Promise((resolve) => setImmediate(resolve));
    }
  } finally {
    tf.dispose([all, squares, allT]);
  }
  return { indices, distances };
}

/**
 * UMAP of `rows` rows of `dim` floats (row-major) into 2-D: x0, y0, x1, y1, ... like pca2's output.
 * The neighbour search and the layout epochs yield to the event loop between blocks.
 */
export async function umap2(
  features: Float32Array,
  rows: number,
  dim: number,
  options: UmapOptions = {},
): Promise<Float32Array> {
  if (features.length !== rows * dim)
    throw new Error(`umap2: ${features.length} floats is not ${rows} rows of ${dim}`);
  const out = new Float32Array(2 * rows);
  // UMAP needs neighbours; with 2 points or fewer any layout is as good as another.
  if (rows <= 2) {
    for (let i = 0; i < rows; i++) out[2 * i] = i;
    return out;
  }
  const random = new Mulberry32(options.seed ?? 0);
  const neighbors = Math.min(options.neighbors ?? 15, rows - 1);
  const umap = new UMAP({
    nComponents: 2,
    nNeighbors: neighbors,
    nEpochs: options.epochs ?? 200,
    random: () => random.next(),
  });
  const near = await nearestRows(features, rows, dim, neighbors);
  umap.setPrecomputedKNN(near.indices, near.distances);
  const data: number[][] = [];
  for (let i = 0; i < rows; i++) data.push(Array.from(features.subarray(i * dim, (i + 1) * dim)));
  const epochs = umap.initializeFit(data);
  for (let epoch = 0; epoch < epochs; epoch++) {
    umap.step();
    if (epoch % EPOCHS_PER_YIELD === EPOCHS_PER_YIELD - 1) await new Promise((r) => setImmediate(r));
  }
  umap.getEmbedding().forEach(([x, y], i) => {
    out[2 * i] = x!;
    out[2 * i + 1] = y!;
  });
  return out;
}
