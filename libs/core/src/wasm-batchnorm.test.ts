import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { before, describe, it } from "node:test";
import "@tensorflow/tfjs";
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-wasm";
import { scaledError } from "./agreement.js";
import { BATCH_NORM_WAT_SHA256 } from "./batch-norm-wasm.js";
import { groupBatchNorm, groupBatchNormKernels, groupBatchNormOps } from "./encoder.js";
import { GROUP_BATCH_NORM, GROUP_BATCH_NORM_GRAD, registerWasmBatchNorm } from "./wasm-batchnorm.js";

type Op = typeof groupBatchNormOps;

/** y, mean, variance and the gradients of sum(y * dy) for x, gamma and beta, as arrays. */
function run(op: Op, shape: [number, number, number]): Float32Array[] {
  return tf.tidy(() => {
    const c = shape[2];
    const x = tf.randomNormal(shape, 0.5, 2, "float32", 11) as tf.Tensor3D;
    const gamma = tf.randomNormal([c], 1, 0.2, "float32", 12);
    const beta = tf.randomNormal([c], 0, 0.2, "float32", 13);
    const dy = tf.randomNormal(shape, 0, 1, "float32", 14);
    const { y, mean, variance } = op(x, gamma, beta);
    const grads = tf.grads((a: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => {
      const out = op(a as tf.Tensor3D, g, b);
      tf.dispose([out.mean, out.variance]);
      return tf.sum(tf.mul(out.y, dy));
    })([x, gamma, beta]);
    const arrays = [y, mean, variance, ...grads].map((t) => t.dataSync() as Float32Array);
    tf.dispose([mean, variance]);
    return arrays;
  });
}

const NAMES = ["y", "mean", "variance", "dx", "dgamma", "dbeta"];

before(async () => {
  await tf.setBackend("wasm");
  await tf.ready();
  registerWasmBatchNorm();
});

describe("split-batch BatchNorm kernels on wasm", () => {
  it("are the module built from the committed .wat file (node tools/wasm-gen.mjs)", () => {
    const source = readFileSync(new URL("../wasm/batch-norm.wat", import.meta.url));
    assert.equal(createHash("sha256").update(source).digest("hex"), BATCH_NORM_WAT_SHA256, "rebuild");
  });

  it("equal the op built from tfjs ops, forward and backward, to float32 precision", () => {
    // Channels in blocks of 16, of 4, and both (20 = 16 + 4); groups of one and several; rows of
    // resnet-mini's three stages at batch 4, and an odd count.
    for (const shape of [
      [2, 4 * 28 * 28, 16],
      [3, 4 * 14 * 14, 32],
      [1, 4 * 7 * 7, 64],
      [2, 37, 20],
      [4, 9, 4],
    ] as [number, number, number][]) {
      const expected = run(groupBatchNormOps, shape);
      const actual = run(groupBatchNormKernels, shape);
      NAMES.forEach((name, i) => {
        const error = scaledError(actual[i]!, expected[i]!);
        assert.ok(error < 1e-5, `[${shape}] ${name}: relative error ${error}`);
      });
    }
  });

  it("are what groupBatchNorm runs when C is a multiple of 4, and the ops otherwise", async () => {
    const kernelsRun = async (c: number) =>
      (
        await tf.profile(() => {
          const x = tf.randomNormal([2, 10, c]) as tf.Tensor3D;
          const { y, mean, variance } = groupBatchNorm(x, tf.ones([c]), tf.zeros([c]));
          tf.dispose([x, mean, variance]);
          return y;
        })
      ).kernelNames;
    const [eight, six] = [await kernelsRun(8), await kernelsRun(6)];
    assert.ok(eight.includes(GROUP_BATCH_NORM), `C = 8 ran ${eight}`);
    assert.ok(!six.includes(GROUP_BATCH_NORM), `C = 6 ran ${six}`);
  });

  it("leave no tensors and no heap buffers behind", () => {
    const backend = tf.engine().backend;
    run(groupBatchNormKernels, [2, 50, 8]);
    const tensors = tf.memory().numTensors;
    const buffers = backend.numDataIds();
    run(groupBatchNormKernels, [2, 50, 8]);
    assert.equal(tf.memory().numTensors, tensors);
    assert.equal(backend.numDataIds(), buffers);
  });

  it("refuse inputs they cannot compute, naming the kernel and the input", () => {
    tf.tidy(() => {
      const x = tf.zeros([1, 5, 6]);
      const c6 = { x, gamma: tf.ones([6]), beta: tf.zeros([6]) };
      assert.throws(
        () => tf.engine().runKernel(GROUP_BATCH_NORM, c6, { epsilon: 1e-5 }),
        /AdcoGroupBatchNorm: x must be G x M x C with C a multiple of 4, got \[1,5,6\]/,
      );
      const ints = { x: tf.zeros([1, 5, 8], "int32"), gamma: tf.ones([8]), beta: tf.zeros([8]) };
      assert.throws(
        () => tf.engine().runKernel(GROUP_BATCH_NORM, ints, { epsilon: 1e-5 }),
        /AdcoGroupBatchNorm: x must be float32, got int32/,
      );
      const flat = { dy: tf.zeros([40]), xhat: tf.zeros([40]), rstd: tf.ones([8]), gamma: tf.ones([8]) };
      assert.throws(() => tf.engine().runKernel(GROUP_BATCH_NORM_GRAD, flat, {}), /got \[40\]/);
    });
  });
});
