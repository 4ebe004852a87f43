import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import * as tf from "@tensorflow/tfjs-core";
import { initBackend } from "./backend.js";
import { featureMoments, linearProbe, scoreClassifier } from "./linear-probe.js";

before(async () => {
  await initBackend("auto");
});

/** Gaussian clusters around random class centres: linearly separable up to the noise. */
function clusters(n: number, classes: number, dim: number, noise: number, seed: number) {
  const centres = tf.randomNormal([classes, dim], 0, 1, "float32", 1);
  const labels = new Int32Array(n).map((_, i) => i % classes);
  const features = tf.tidy(() =>
    tf.add(
      tf.gather(centres, tf.tensor1d(labels, "int32")),
      tf.randomNormal([n, dim], 0, noise, "float32", seed),
    ),
  ) as tf.Tensor2D;
  centres.dispose();
  return { features, labels };
}

describe("linear probe", () => {
  it("separates separable classes, and its training loss has flattened by the last epochs", () => {
    const train = clusters(1000, 10, 32, 0.5, 2);
    const test = clusters(500, 10, 32, 0.5, 3);
    const losses: number[] = [];
    const result = linearProbe(train.features, train.labels, test.features, test.labels, {
      classes: 10,
      onEpoch: (_, loss) => losses.push(loss),
    });
    assert.equal(losses.length, 100);
    assert.ok(result.top1 > 0.95, `top-1 ${result.top1}`);
    assert.ok(result.top5 >= result.top1);
    assert.equal(result.perClass.length, 10);
    const late = losses[89]! - losses[99]!;
    assert.ok(late < 0.01 * losses[0]!, `loss still falling: ${losses[89]} -> ${losses[99]}`);
  });

  it("is at chance on labels unrelated to the features", () => {
    const train = clusters(1000, 10, 32, 0.5, 2);
    const noise = tf.randomNormal([500, 32], 0, 1, "float32", 9) as tf.Tensor2D;
    const labels = new Int32Array(500).map((_, i) => i % 10);
    const result = linearProbe(train.features, train.labels, noise, labels, { classes: 10, epochs: 10 });
    assert.ok(result.top1 < 0.25, `top-1 ${result.top1}`);
  });

  it("scores top-1, top-5 and per class", () => {
    const scores = tf.tensor2d([
      [0.9, 0.1, 0, 0, 0, 0],
      [0.1, 0.2, 0.7, 0, 0, 0],
    ]);
    const s = scoreClassifier(scores, new Int32Array([0, 1]), 6);
    assert.equal(s.top1, 0.5);
    assert.equal(s.top5, 1);
    assert.deepEqual(s.perClass, [1, 0, 0, 0, 0, 0]);
  });

  it("standardises a split of many rows in blocks, with tf.moments' statistics", () => {
    // 20,000 rows: three blocks of MOMENT_ROWS (8,192), the last one short.
    const { features, labels } = clusters(20_000, 4, 6, 0.5, 7);
    const reference = tf.tidy(() => {
      const m = tf.moments(features, 0);
      return { mean: m.mean.dataSync(), std: tf.add(tf.sqrt(m.variance), 1e-6).dataSync() };
    });
    const blocks = featureMoments(features);
    const [mean, std] = [blocks.mean.dataSync(), blocks.std.dataSync()];
    reference.mean.forEach((m, i) =>
      assert.ok(Math.abs(mean[i]! - m) < 1e-5, `mean ${i}: ${mean[i]} vs ${m}`),
    );
    reference.std.forEach((s, i) =>
      assert.ok(Math.abs(std[i]! / s - 1) < 1e-5, `std ${i}: ${std[i]} vs ${s}`),
    );
    tf.dispose([blocks.mean, blocks.std]);
    const result = linearProbe(features, labels, features, labels, { classes: 4, epochs: 2 });
    assert.ok(result.top1 > 0.95, `top-1 ${result.top1}`);
    features.dispose();
  });
});
