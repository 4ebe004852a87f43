import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import * as tf from "@tensorflow/tfjs-core";
import { initBackend } from "./backend.js";
import { pretrainerFiles, restorePretrainer } from "./checkpoint.js";
import { CoreInputError } from "./checks.js";
import { l2Normalize } from "./encoder.js";
import { AdversaryNegatives, QueueNegatives } from "./methods.js";
import {
  bnGroupsFor,
  checkPretrainConfig,
  PAPER_CONFIG,
  Pretrainer,
  type PretrainConfig,
} from "./pretrainer.js";

before(async () => {
  await initBackend("auto");
});

const SMALL: PretrainConfig = {
  ...PAPER_CONFIG,
  arch: "resnet-mini",
  batchSize: 8,
  negatives: 32,
  bnGroups: 2,
  projectionDim: 16,
};

function views(n: number, count = 2, seed = 1): tf.Tensor4D[] {
  return Array.from(
    { length: count },
    (_, i) => tf.randomUniform([n, 28, 28, 1], 0, 1, "float32", seed + i) as tf.Tensor4D,
  );
}

function unit(n: number, d: number, seed: number): tf.Tensor2D {
  return l2Normalize(tf.randomNormal([n, d], 0, 1, "float32", seed) as tf.Tensor2D);
}

describe("MoCo v2 queue negatives", () => {
  it("dLoss/dq equals autodiff of the MoCo loss, and the keys enter the queue in FIFO order", () => {
    const queue = new QueueNegatives(8, 12, 0.2, 1);
    const q = unit(4, 8, 2);
    const k = unit(4, 8, 3);
    const before = queue.state().weights;
    const expected = tf.grad((x: tf.Tensor) => {
      const logits = tf.div(tf.concat([tf.sum(tf.mul(x, k), 1, true), tf.matMul(x, before)], 1), 0.2);
      return tf.mean(tf.neg(tf.slice(tf.logSoftmax(logits), [0, 0], [4, 1])));
    })(q);
    const outcome = queue.contrast([{ query: q, key: k }], "mean");
    const diff = tf.max(tf.abs(tf.sub(outcome.queryGrads[0]!, expected))).dataSync()[0]!;
    assert.ok(diff < 1e-5, `dq differs by ${diff}`);
    const after = queue.state().weights;
    assert.ok(tf.max(tf.abs(tf.sub(tf.slice(after, [0, 0], [8, 4]), tf.transpose(k)))).dataSync()[0]! < 1e-7);
    assert.ok(
      tf
        .max(tf.abs(tf.sub(tf.slice(after, [0, 4], [8, 8]), tf.slice(before, [0, 4], [8, 8]))))
        .dataSync()[0]! === 0,
    );
    // Three more batches of 4 wrap around: columns 0..3 now hold the last batch.
    let last = k;
    for (let i = 0; i < 3; i++) {
      last = unit(4, 8, 10 + i);
      queue.contrast([{ query: q, key: last }], "mean");
    }
    const wrapped = queue.state().weights;
    assert.ok(
      tf.max(tf.abs(tf.sub(tf.slice(wrapped, [0, 0], [8, 4]), tf.transpose(last)))).dataSync()[0]! < 1e-7,
    );
    queue.dispose();
  });
});

describe("adversary negatives", () => {
  it("scale each pair's dLoss/dq by the reduction and leave the bank alone when told not to update", () => {
    const bank = new AdversaryNegatives(8, 16, PAPER_CONFIG.adco, 1);
    const q = unit(4, 8, 2);
    const k = unit(4, 8, 3);
    const start = bank.state().weights;
    const one = bank.contrast([{ query: q, key: k }], "mean", false);
    const twoMean = bank.contrast(
      [
        { query: q, key: k },
        { query: q, key: k },
      ],
      "mean",
      false,
    );
    const twoSum = bank.contrast(
      [
        { query: q, key: k },
        { query: q, key: k },
      ],
      "sum",
      false,
    );
    const g = one.queryGrads[0]!;
    assert.ok(tf.max(tf.abs(tf.sub(tf.mul(twoMean.queryGrads[0]!, 2), g))).dataSync()[0]! < 1e-7);
    assert.ok(tf.max(tf.abs(tf.sub(twoSum.queryGrads[1]!, g))).dataSync()[0]! < 1e-7);
    assert.ok(Math.abs(twoSum.loss - 2 * one.loss) < 1e-5);
    assert.equal(tf.max(tf.abs(tf.sub(bank.state().weights, start))).dataSync()[0], 0);
    bank.contrast([{ query: q, key: k }], "mean");
    assert.ok(
      tf.max(tf.abs(tf.sub(bank.state().weights, start))).dataSync()[0]! > 0,
      "an update moves the adversaries",
    );
    bank.dispose();
  });

  it("write keys into bank columns, wrapping at K", () => {
    const bank = new AdversaryNegatives(4, 6, PAPER_CONFIG.adco, 1);
    const keys = unit(4, 4, 5);
    bank.write(keys, 4);
    const w = bank.state().weights;
    const kt = tf.transpose(keys);
    assert.ok(
      tf.max(tf.abs(tf.sub(tf.slice(w, [0, 4], [4, 2]), tf.slice(kt, [0, 0], [4, 2])))).dataSync()[0]! === 0,
    );
    assert.ok(
      tf.max(tf.abs(tf.sub(tf.slice(w, [0, 0], [4, 2]), tf.slice(kt, [0, 2], [4, 2])))).dataSync()[0]! === 0,
    );
    bank.dispose();
  });
});

describe("pretrainer", () => {
  it("trains a batch the BN groups do not divide with the largest count that does, 2+ samples each", () => {
    assert.equal(bnGroupsFor(8, 256), 8);
    assert.equal(bnGroupsFor(8, 100), 5);
    assert.equal(bnGroupsFor(8, 10), 5);
    assert.equal(bnGroupsFor(8, 7), 1);
    assert.equal(bnGroupsFor(8, 3), 1);
  });

  it("an AdCo step updates f_q by SGD and f_k by the momentum rule", () => {
    const trainer = new Pretrainer(SMALL);
    const name = "stem_conv/kernel";
    const q0 = trainer.query.params.get(name)!.clone();
    const k0 = trainer.key.params.get(name)!.clone();
    const stats = trainer.trainStep(views(8), 0.1);
    assert.ok(Number.isFinite(stats.loss) && stats.loss > 0);
    assert.ok(stats.accuracy >= 0 && stats.accuracy <= 1);
    const q1 = trainer.query.params.get(name)!;
    const k1 = trainer.key.params.get(name)!;
    assert.ok(tf.max(tf.abs(tf.sub(q1, q0))).dataSync()[0]! > 0, "f_q moved");
    const expectedKey = tf.add(tf.mul(k0, SMALL.encoderMomentum), tf.mul(q1, 1 - SMALL.encoderMomentum));
    assert.ok(tf.max(tf.abs(tf.sub(k1, expectedKey))).dataSync()[0]! < 1e-7);
    trainer.dispose();
  });

  it("symmetric, multi-crop and MoCo steps run without leaking tensors", () => {
    for (const config of [
      { ...SMALL, symmetric: true },
      { ...SMALL, method: "moco" as const },
    ]) {
      const trainer = new Pretrainer(config);
      const batch = views(8);
      trainer.trainStep(batch, 0.05);
      const count = tf.memory().numTensors;
      for (let i = 0; i < 5; i++) trainer.trainStep(batch, 0.05);
      assert.equal(tf.memory().numTensors, count, `${config.method} symmetric=${config.symmetric}`);
      trainer.dispose();
      tf.dispose(batch);
    }
    const trainer = new Pretrainer(SMALL);
    const crops = [...views(8), tf.randomUniform([8, 16, 16, 1]) as tf.Tensor4D];
    const stats = trainer.trainStep(crops, 0.05);
    assert.ok(Number.isFinite(stats.loss));
    trainer.dispose();
  });

  it("init_memory steps write the keys into the bank and leave the rest of it as it was", () => {
    const trainer = new Pretrainer(SMALL);
    const before = trainer.negatives.state().weights;
    trainer.initStep(views(8), 0.05, 8);
    const after = trainer.negatives.state().weights;
    const unchanged = tf.concat([tf.slice(after, [0, 0], [16, 8]), tf.slice(after, [0, 16], [16, 16])], 1);
    const was = tf.concat([tf.slice(before, [0, 0], [16, 8]), tf.slice(before, [0, 16], [16, 16])], 1);
    assert.equal(tf.max(tf.abs(tf.sub(unchanged, was))).dataSync()[0], 0);
    const written = tf.slice(after, [0, 8], [16, 8]);
    const norms = tf.norm(written, 2, 0).dataSync();
    for (const n of norms) assert.ok(Math.abs(n - 1) < 1e-5, "keys are unit vectors");
    assert.ok(tf.max(tf.abs(tf.sub(written, tf.slice(before, [0, 8], [16, 8])))).dataSync()[0]! > 0);
    trainer.finishInit();
    const name = "stage2_block1_a_conv/kernel";
    assert.equal(
      tf.max(tf.abs(tf.sub(trainer.key.params.get(name)!, trainer.query.params.get(name)!))).dataSync()[0],
      0,
    );
    trainer.dispose();
  });

  it("rejects bad configs and inputs with errors that name the argument", () => {
    const bad: [Partial<PretrainConfig>, string][] = [
      [{ negatives: 4 }, "negatives"],
      [{ bnGroups: 3 }, "bnGroups"],
      [{ lr: 0 }, "lr"],
      [{ encoderMomentum: 1 }, "encoderMomentum"],
      [{ method: "simclr" as "adco" }, "method"],
    ];
    for (const [patch, argument] of bad) {
      assert.throws(
        () => checkPretrainConfig({ ...SMALL, ...patch }),
        (e: Error) => e instanceof CoreInputError && e.argument === argument,
        argument,
      );
    }
    const trainer = new Pretrainer(SMALL);
    assert.throws(() => trainer.trainStep(views(8, 1), 0.1), /views/);
    assert.throws(() => trainer.trainStep([...views(8, 1), ...views(4, 1)], 0.1), /views\[1\]/);
    trainer.dispose();
  });

  it("a step with the contrast done elsewhere (async) equals a local step, for every parameter", async () => {
    for (const config of [SMALL, { ...SMALL, symmetric: true }]) {
      const local = new Pretrainer(config);
      const remote = new Pretrainer(config, { localNegatives: false });
      const bank = new AdversaryNegatives(
        config.projectionDim,
        config.negatives,
        config.adco,
        config.seed + 1,
      );
      for (let i = 0; i < 2; i++) {
        const batch = views(8, 2, 10 + i);
        const a = local.trainStep(batch, 0.1);
        const b = await remote.stepWith(batch, 0.1, async (pairs, reduction) => {
          await new Promise((r) => setTimeout(r, 1));
          return bank.contrast(pairs, reduction);
        });
        assert.ok(Math.abs(a.loss - b.loss) < 1e-6, `loss ${a.loss} vs ${b.loss}`);
        assert.ok(b.computeMs > 0 && b.contrastMs > 0);
        tf.dispose(batch);
      }
      for (const [name, p] of local.query.params) {
        const diff = tf.max(tf.abs(tf.sub(p, remote.query.params.get(name)!))).dataSync()[0]!;
        assert.ok(diff < 1e-5, `${name} differs by ${diff} (symmetric ${config.symmetric})`);
      }
      const count = tf.memory().numTensors;
      await remote.stepWith(views(8), 0.1, async (pairs, reduction) => bank.contrast(pairs, reduction));
      assert.equal(tf.memory().numTensors, count + 2, "only the two input views remain");
      assert.throws(() => remote.negatives, /remote/);
      local.dispose();
      remote.dispose();
      bank.dispose();
    }
  });

  it("a contrast service that throws leaves no tensor and the trainer as it was", async () => {
    const trainer = new Pretrainer({ ...SMALL, symmetric: true }, { localNegatives: false });
    const batch = views(8);
    const name = "stem_conv/kernel";
    const before = trainer.query.params.get(name)!.clone();
    const count = tf.memory().numTensors;
    let sent = 0;
    await assert.rejects(
      trainer.stepWith(batch, 0.1, async (pairs) => {
        sent = pairs.length;
        assert.ok(tf.memory().numTensors > count + 4, "the recorded forward is alive during the call");
        await new Promise((r) => setTimeout(r, 1));
        throw new Error("bank unavailable");
      }),
      /bank unavailable/,
    );
    assert.equal(sent, 2);
    assert.equal(
      tf.memory().numTensors,
      count,
      "the recording, queries, keys and batch statistics are freed",
    );
    assert.equal(trainer.step, 0);
    assert.equal(tf.max(tf.abs(tf.sub(trainer.query.params.get(name)!, before))).dataSync()[0], 0);
    // The same trainer steps normally afterwards.
    const bank = new AdversaryNegatives(SMALL.projectionDim, SMALL.negatives, SMALL.adco, SMALL.seed + 1);
    const stats = await trainer.stepWith(batch, 0.1, async (pairs, reduction) =>
      bank.contrast(pairs, reduction),
    );
    assert.ok(Number.isFinite(stats.loss));
    assert.equal(trainer.step, 1);
    tf.dispose([before, ...batch]);
    trainer.dispose();
    bank.dispose();
  });

  it("a short last batch trains with fewer BN groups", () => {
    const trainer = new Pretrainer(SMALL);
    assert.equal(trainer.bnGroupsFor(8), 2);
    assert.equal(trainer.bnGroupsFor(7), 1);
    assert.ok(Number.isFinite(trainer.trainStep(views(7), 0.1).loss));
    assert.throws(() => trainer.trainStep(views(1), 0.1), /at least 2 images/);
    trainer.dispose();
  });

  it("restored from its files, a trainer continues exactly as the original", async () => {
    const original = new Pretrainer(SMALL);
    original.trainStep(views(8, 2, 3), 0.1);
    const files = await pretrainerFiles(original);
    assert.ok(files.has("query/model.json") && files.has("key/model.json") && files.has("optimizer.bin"));
    // Same config (the seed also drives the key shuffle), but moved away by steps on other data.
    const restored = new Pretrainer(SMALL);
    restored.trainStep(views(8, 2, 50), 0.1);
    restored.trainStep(views(8, 2, 51), 0.1);
    await restorePretrainer(restored, async (path) => files.get(path)!, original.step);
    restored.negatives.restore(original.negatives.state());
    const batch = views(8, 2, 4);
    const a = original.trainStep(batch, 0.1);
    const b = restored.trainStep(batch, 0.1);
    assert.ok(Math.abs(a.loss - b.loss) < 1e-6, `loss ${a.loss} vs ${b.loss}`);
    for (const [name, p] of original.query.params) {
      const diff = tf.max(tf.abs(tf.sub(p, restored.query.params.get(name)!))).dataSync()[0]!;
      assert.ok(diff < 1e-6, `${name} differs by ${diff}`);
    }
    original.dispose();
    restored.dispose();
  });
});
