import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import * as tf from "@tensorflow/tfjs-core";
import { initBackend } from "./backend.js";
import { featureBlocksOf, knnClassify, knnClassifyChunked } from "./knn.js";

before(async () => {
  await initBackend("auto");
});

/**
 * Noisy class clusters, with every fifth training row a copy of an earlier one under another label:
 * equal similarities, so the chunked top k must break ties as tf.topk does to find the same votes.
 */
function clusters(n: number, classes: number, dim: number, seed: number, duplicates: boolean) {
  const labels = new Int32Array(n).map((_, i) => (i * 7) % classes);
  const features = tf
    .tidy(() => {
      const centres = tf.randomNormal([classes, dim], 0, 1, "float32", 1);
      return tf.add(
        tf.gather(centres, tf.tensor1d(labels, "int32")),
        tf.randomNormal([n, dim], 0, 1.2, "float32", seed),
      );
    })
    .dataSync() as Float32Array;
  if (duplicates)
    for (let i = 5; i < n; i += 5) {
      features.copyWithin(i * dim, (i - 5) * dim, (i - 4) * dim);
      labels[i] = (labels[i - 5]! + 1) % classes;
    }
  return { features, labels };
}

describe("chunked kNN", () => {
  const classes = 6;
  const dim = 24;
  let train: ReturnType<typeof clusters>;
  let test: ReturnType<typeof clusters>;
  before(() => {
    train = clusters(700, classes, dim, 2, true);
    test = clusters(130, classes, dim, 3, false);
    // Test queries that equal training rows meet exact ties at the top.
    test.features.set(train.features.subarray(0, 10 * dim), 0);
  });

  const inMemory = (k: number) => {
    const [trainX, testX] = [tf.tensor2d(train.features, [700, dim]), tf.tensor2d(test.features, [130, dim])];
    try {
      return knnClassify(trainX, train.labels, testX, test.labels, { k, temperature: 0.1, classes });
    } finally {
      tf.dispose([trainX, testX]);
    }
  };

  for (const { k, trainBlock, batchSize } of [
    { k: 50, trainBlock: 64, batchSize: 256 },
    { k: 50, trainBlock: 7, batchSize: 256 },
    { k: 200, trainBlock: 97, batchSize: 33 },
    { k: 20, trainBlock: 8192, batchSize: 1 },
    { k: 1000, trainBlock: 300, batchSize: 64 },
  ])
    it(`equals the in-memory kNN exactly (k ${k}, blocks of ${trainBlock}, batches of ${batchSize})`, async () => {
      const expected = inMemory(k);
      const progress: number[] = [];
      const chunked = await knnClassifyChunked(
        featureBlocksOf(train.features, train.labels),
        featureBlocksOf(test.features, test.labels),
        { k, temperature: 0.1, classes, trainBlock, batchSize, onProgress: (done) => progress.push(done) },
      );
      assert.deepEqual(chunked.predictions, expected.predictions);
      assert.equal(chunked.top1, expected.top1);
      assert.deepEqual(chunked.perClass, expected.perClass);
      assert.equal(progress.at(-1), 130);
      // Not a vacuous match: the clusters are found, well above chance (1/6).
      assert.ok(chunked.top1 > 0.5, `top-1 ${chunked.top1}`);
    });

  it("breaks ties at the k-th neighbour as tf.topk does: the lower training index wins", async () => {
    // 30 equal training rows, the first 15 of class 0 and the rest of class 1, and a query equal to
    // them: the top 15 are rows 0-14, all class 0, however the rows are cut into blocks.
    const rows = 30;
    const features = new Float32Array(rows * dim).fill(1);
    const labels = new Int32Array(rows).map((_, i) => (i < 15 ? 0 : 1));
    const query = { features: new Float32Array(dim).fill(1), labels: new Int32Array([1]) };
    const [trainX, testX] = [tf.tensor2d(features, [rows, dim]), tf.tensor2d(query.features, [1, dim])];
    const expected = knnClassify(trainX, labels, testX, query.labels, {
      k: 15,
      temperature: 0.1,
      classes: 2,
    });
    tf.dispose([trainX, testX]);
    assert.deepEqual([...expected.predictions], [0]);
    for (const trainBlock of [4, 16, 29]) {
      const chunked = await knnClassifyChunked(
        featureBlocksOf(features, labels),
        featureBlocksOf(query.features, query.labels),
        { k: 15, temperature: 0.1, classes: 2, trainBlock },
      );
      assert.deepEqual([...chunked.predictions], [0], `blocks of ${trainBlock}`);
    }
  });

  it("refuses test features of another dimension", async () => {
    await assert.rejects(
      knnClassifyChunked(
        featureBlocksOf(train.features, train.labels),
        featureBlocksOf(new Float32Array(2 * (dim + 1)), new Int32Array(2)),
        { k: 5, temperature: 0.1, classes },
      ),
      /dimension 25 differs from 24/,
    );
  });
});
