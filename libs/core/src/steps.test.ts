import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import * as tf from "@tensorflow/tfjs-core";
import { initBackend } from "./backend.js";
import { knnClassify, knnClassifyAsync } from "./knn.js";
import { linearProbe, linearProbeAsync } from "./linear-probe.js";
import { runSteps, runStepsYielding } from "./steps.js";

before(async () => {
  await initBackend("auto");
});

function* counting(log: string[], n: number): Generator<void, number> {
  for (let i = 0; i < n; i++) {
    log.push(`step ${i}`);
    yield;
  }
  return n;
}

describe("steps", () => {
  it("runs a generator to the end at once, or with the event loop let in between", async () => {
    const log: string[] = [];
    assert.equal(runSteps(counting(log, 3)), 3);
    assert.deepEqual(log, ["step 0", "step 1", "step 2"]);
    log.length = 0;
    const done = runStepsYielding(counting(log, 3), 0);
    setImmediate(() => log.push("event loop"));
    assert.equal(await done, 3);
    assert.ok(log.indexOf("event loop") > 0 && log.indexOf("event loop") < log.length - 1, log.join(", "));
  });

  it("gives the same kNN and linear probe results either way", async () => {
    const labels = new Int32Array(600).map((_, i) => i % 5);
    const centres = tf.randomNormal([5, 16], 0, 1, "float32", 1);
    const features = tf.tidy(() =>
      tf.add(
        tf.gather(centres, tf.tensor1d(labels, "int32")),
        tf.randomNormal([600, 16], 0, 1, "float32", 2),
      ),
    ) as tf.Tensor2D;
    const train = tf.slice(features, [0, 0], [400, -1]) as tf.Tensor2D;
    const test = tf.slice(features, [400, 0], [200, -1]) as tf.Tensor2D;
    const [trainLabels, testLabels] = [labels.slice(0, 400), labels.slice(400)];
    const knnOptions = { k: 20, temperature: 0.1, classes: 5, batchSize: 50 };
    assert.deepEqual(
      await knnClassifyAsync(train, trainLabels, test, testLabels, knnOptions),
      knnClassify(train, trainLabels, test, testLabels, knnOptions),
    );
    const probeOptions = { classes: 5, epochs: 5, batchSize: 64 };
    assert.deepEqual(
      await linearProbeAsync(train, trainLabels, test, testLabels, probeOptions),
      linearProbe(train, trainLabels, test, testLabels, probeOptions),
    );
    tf.dispose([centres, features, train, test]);
  });
});
