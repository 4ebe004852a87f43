import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import * as tfjs from "@tensorflow/tfjs";
import * as tf from "@tensorflow/tfjs-core";
import { initBackend } from "./backend.js";
import { CoreInputError } from "./checks.js";
import { Encoder, encoderSpec, gridWindow, groupBatchNorm } from "./encoder.js";
import { artifactsFromFiles, artifactsToFiles, encoderArtifacts, encoderFromArtifacts } from "./export.js";

before(async () => {
  await initBackend("auto");
});

function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!);
}

/** Random running statistics, so inference-mode BN is not the identity and the export must carry them. */
function randomizeRunningStats(encoder: Encoder): void {
  let seed = 10;
  for (const [name, v] of encoder.runningStats) {
    const values = tf.randomUniform(
      v.shape,
      name.endsWith("variance") ? 0.5 : -0.2,
      name.endsWith("variance") ? 1.5 : 0.2,
      "float32",
      seed++,
    );
    v.assign(values);
    values.dispose();
  }
}

describe("encoders", () => {
  it("ResNet-18 (CIFAR stem) and ResNet-50 have torchvision's parameter counts plus the MLP head", () => {
    // torchvision resnet18 without fc: 11,176,512 with its 7x7 stem; the CIFAR 3x3 stem has 7,680 fewer.
    // Head: d x d + d, then d x 128 + 128.
    const r18 = new Encoder(encoderSpec("resnet18-cifar"));
    assert.equal(r18.parameterCount, 11_176_512 - 7_680 + (512 * 512 + 512) + (512 * 128 + 128));
    r18.dispose();
    const r50 = new Encoder(encoderSpec("resnet50"));
    // torchvision resnet50 without fc: 23,508,032.
    assert.equal(r50.parameterCount, 23_508_032 + (2048 * 2048 + 2048) + (2048 * 128 + 128));
    const features = tf.tidy(() => r50.features(tf.zeros([1, 64, 64, 3])));
    assert.deepEqual(features.shape, [1, 2048]);
    features.dispose();
    r50.dispose();
  });

  it("resnet-mini and resnet-mini-wide have their hand-counted parameters and 7x7 maps as features", () => {
    // Per block: two 3x3 convs and their BN (gamma, beta); a stage that changes width adds a 1x1
    // projection and its BN. resnet-mini (16, 32, 64): stem 176, stages 4,672 + 14,528 + 57,728,
    // head 4,160 + 8,320. resnet-mini-wide (32, 64, 128): stem 352, stages 18,560 + 57,728 +
    // 230,144, head 16,512 + 16,512.
    for (const [arch, parameters, channels] of [
      ["resnet-mini", 89_584, 64],
      ["resnet-mini-wide", 339_808, 128],
    ] as const) {
      const encoder = new Encoder(encoderSpec(arch), 1);
      assert.equal(encoder.parameterCount, parameters, arch);
      assert.equal(encoder.spec.featureDim, 7 * 7 * channels, arch);
      const features = tf.tidy(() => encoder.features(tf.zeros([2, 28, 28, 1])));
      assert.deepEqual(features.shape, [2, 7 * 7 * channels], arch);
      features.dispose();
      encoder.dispose();
    }
  });

  it("split-batch BN normalises each group with its own statistics", () => {
    const encoder = new Encoder(encoderSpec("resnet-mini"), 3);
    tf.tidy(() => {
      const images = tf.randomUniform([8, 28, 28, 1], 0, 1, "float32", 4) as tf.Tensor4D;
      const split = encoder.embed(images, { training: true, bnGroups: 2 });
      const firstHalf = encoder.embed(tf.slice(images, 0, 4), { training: true, bnGroups: 1 });
      const whole = encoder.embed(images, { training: true, bnGroups: 1 });
      assert.ok(maxAbsDiff(tf.slice(split, 0, 4), firstHalf) < 1e-5);
      assert.ok(maxAbsDiff(tf.slice(whole, 0, 4), firstHalf) > 1e-3, "plain BN should differ");
      const norms = tf.norm(split, 2, 1).dataSync();
      for (const n of norms) assert.ok(Math.abs(n - 1) < 1e-5);
    });
    encoder.dispose();
  });

  it("split-batch BN's closed-form gradients equal autodiff of the plain formula", () => {
    tf.tidy(() => {
      const [groups, m, c] = [3, 50, 7];
      const x = tf.randomNormal([groups, m, c], 0.5, 2, "float32", 11) as tf.Tensor3D;
      const gamma = tf.randomNormal([c], 1, 0.2, "float32", 12);
      const beta = tf.randomNormal([c], 0, 0.2, "float32", 13);
      const dy = tf.randomNormal([groups, m, c], 0, 1, "float32", 14);
      const plain = (a: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => {
        const { mean, variance } = tf.moments(a, 1, true);
        return tf.add(tf.mul(tf.div(tf.sub(a, mean), tf.sqrt(tf.add(variance, 1e-5))), g), b);
      };
      const loss = (f: (a: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => tf.Tensor) =>
        tf.grads((a: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(f(a, g, b), dy)))([
          x,
          gamma,
          beta,
        ]);
      const custom = loss((a, g, b) => groupBatchNorm(a as tf.Tensor3D, g, b).y);
      const expected = loss(plain);
      ["dx", "dgamma", "dbeta"].forEach((name, i) => {
        const scale = tf.max(tf.abs(expected[i]!)).dataSync()[0]!;
        assert.ok(maxAbsDiff(custom[i]!, expected[i]!) < 1e-4 * scale, `${name}`);
      });
    });
  });

  it("pools a map to a grid with PyTorch's adaptive windows", () => {
    // AdaptiveAvgPool2d(2) on 7x7 averages rows/columns 0-3 and 3-6; (3) on 7x7: 0-2, 2-4, 4-6.
    assert.deepEqual(gridWindow(7, 7, 2), { size: 4, stride: 3 });
    assert.deepEqual(gridWindow(7, 7, 3), { size: 3, stride: 2 });
    assert.deepEqual(gridWindow(8, 8, 2), { size: 4, stride: 4 });
    assert.deepEqual(gridWindow(7, 7, 7), { size: 1, stride: 1 });
    assert.throws(() => gridWindow(5, 5, 3), /does not pool evenly/);
    assert.throws(() => gridWindow(4, 4, 7), /does not pool evenly/);
  });

  it("resnet-mini's features are its whole last map, the head reads the map's global mean", () => {
    const encoder = new Encoder(encoderSpec("resnet-mini"), 9);
    assert.equal(encoder.spec.featureDim, 7 * 7 * 64);
    tf.tidy(() => {
      const images = tf.randomUniform([3, 28, 28, 1], 0, 1, "float32", 8) as tf.Tensor4D;
      const [map, features, pooled] = encoder.run(images, ["stage3_block1_out", "features", "pooled"], {
        training: false,
      }) as [tf.Tensor4D, tf.Tensor2D, tf.Tensor2D];
      assert.deepEqual(map.shape, [3, 7, 7, 64]);
      // (row, column, channel) order, as the exported model's Flatten.
      assert.ok(maxAbsDiff(features, tf.reshape(map, [3, -1])) === 0);
      assert.ok(maxAbsDiff(pooled, tf.mean(map, [1, 2])) < 1e-6);
      assert.deepEqual(encoder.features(images).shape, [3, 3136]);
    });
    encoder.dispose();
  });

  it("rejects images with the wrong channel count and groups that do not divide the batch", () => {
    const encoder = new Encoder(encoderSpec("resnet-mini"));
    const rgb = tf.zeros([4, 28, 28, 3]) as tf.Tensor4D;
    assert.throws(
      () => encoder.embed(rgb, { training: false }),
      (e: Error) => e instanceof CoreInputError && e.message.startsWith("images:"),
    );
    const gray = tf.zeros([6, 28, 28, 1]) as tf.Tensor4D;
    assert.throws(() => encoder.embed(gray, { training: true, bnGroups: 4 }), /bnGroups/);
    tf.dispose([rgb, gray]);
    encoder.dispose();
  });

  it("exports to the standard tfjs format that tf.loadLayersModel reads, with equal outputs", async () => {
    const encoder = new Encoder(encoderSpec("resnet-mini"), 5);
    randomizeRunningStats(encoder);
    const images = tf.randomUniform([5, 28, 28, 1], 0, 1, "float32", 6) as tf.Tensor4D;
    const ours = encoder.features(images);

    const files = artifactsToFiles(await encoderArtifacts(encoder), 64 * 1024);
    const shards = [...files.keys()].filter((f) => f.endsWith(".bin"));
    assert.ok(shards.length >= 2, `expected several 64 KiB shards, got ${shards.join(", ")}`);
    for (const s of shards) assert.ok(files.get(s)!.byteLength <= 64 * 1024);
    const artifacts = await artifactsFromFiles(async (path) => files.get(path)!);

    const model = await tfjs.loadLayersModel(tf.io.fromMemory(artifacts));
    const theirs = model.predict(images) as tf.Tensor;
    assert.ok(maxAbsDiff(ours, theirs) < 1e-4, `tfjs model differs by ${maxAbsDiff(ours, theirs)}`);

    const reloaded = await encoderFromArtifacts(artifacts);
    const again = reloaded.features(images);
    assert.ok(maxAbsDiff(ours, again) < 1e-6);
    tf.dispose([images, ours, theirs, again]);
    model.dispose();
    encoder.dispose();
    reloaded.dispose();
  });

  it("exports the projection head as a second output on request", async () => {
    const encoder = new Encoder(encoderSpec("resnet-mini"), 7);
    const artifacts = await encoderArtifacts(encoder, true);
    const model = await tfjs.loadLayersModel(tf.io.fromMemory(artifacts));
    const images = tf.randomUniform([2, 28, 28, 1]) as tf.Tensor4D;
    const [, projection] = model.predict(images) as tf.Tensor[];
    const ours = tf.tidy(() => encoder.run(images, ["projection"], { training: false })[0]!);
    assert.ok(maxAbsDiff(ours, projection!) < 1e-4);
    tf.dispose([images, projection!, ours]);
    model.dispose();
    encoder.dispose();
  });

  it("refuses a model.json that is not an adco encoder", async () => {
    await assert.rejects(encoderFromArtifacts({ modelTopology: {} }), /not an adco encoder/);
  });
});
