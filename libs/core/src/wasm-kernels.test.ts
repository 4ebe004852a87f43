import assert from "node:assert/strict";
import { describe, it } from "node:test";
import "@tensorflow/tfjs";
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import "@tensorflow/tfjs-backend-wasm";
import { scaledError } from "./agreement.js";
import { registerWasmConvGradients } from "./wasm-kernels.js";

type Pad = "same" | "valid" | number;
type Shape4 = [number, number, number, number];
const CASES: [string, Shape4, Shape4, number, Pad][] = [
  ["3x3 stride 1 same, 1 input channel", [3, 12, 12, 1], [3, 3, 1, 8], 1, "same"],
  ["3x3 stride 2 same, even size", [2, 14, 14, 6], [3, 3, 6, 10], 2, "same"],
  ["1x1 stride 2 projection", [2, 14, 14, 6], [1, 1, 6, 10], 2, "same"],
  ["3x3 stride 2 valid, odd size", [3, 9, 9, 5], [3, 3, 5, 7], 2, "valid"],
  ["7x7 stride 2 same (ResNet-50 stem)", [2, 17, 17, 3], [7, 7, 3, 8], 2, "same"],
  ["explicit padding 1, stride 2, odd size", [2, 11, 11, 4], [3, 3, 4, 6], 2, 1],
  ["3x3 stride 3 same, a size not a multiple of 3", [2, 13, 13, 3], [3, 3, 3, 5], 3, "same"],
  ["2x2 stride 2 valid", [2, 10, 10, 3], [2, 2, 3, 4], 2, "valid"],
  ["5x5 stride 2 same, even size", [2, 12, 12, 2], [5, 5, 2, 3], 2, "same"],
  ["1x1 stride 3 valid (taps skip two phases)", [2, 10, 10, 4], [1, 1, 4, 4], 3, "valid"],
  ["3x3 stride 2 explicit padding 2", [2, 9, 9, 3], [3, 3, 3, 4], 2, 2],
  ["1x1 stride 1 (a plain product)", [2, 5, 5, 3], [1, 1, 3, 4], 1, "valid"],
  ["1x1 stride 2, odd size (the grid padded)", [2, 7, 7, 3], [1, 1, 3, 4], 2, "same"],
  ["1x1 stride 2 explicit padding 1", [2, 9, 9, 3], [1, 1, 3, 4], 2, 1],
];

/** dL/dx and dL/dW of L = sum(conv(x, W) * dy) on the current backend. */
function convGrads(xShape: Shape4, wShape: Shape4, stride: number, pad: Pad) {
  return tf.tidy(() => {
    const x = tf.randomNormal(xShape, 0, 1, "float32", 1) as tf.Tensor4D;
    const w = tf.randomNormal(wShape, 0, 0.3, "float32", 2) as tf.Tensor4D;
    const dy = tf.randomNormal(tf.conv2d(x, w, stride, pad).shape, 0, 1, "float32", 3);
    const [dx, dw] = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
      tf.sum(tf.mul(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, stride, pad), dy)),
    )([x, w]);
    return { dx: dx!.dataSync() as Float32Array, dw: dw!.dataSync() as Float32Array };
  });
}

describe("wasm convolution gradients", () => {
  it("agree with the cpu backend's kernels to float32 precision", async () => {
    await tf.setBackend("cpu");
    const expected = CASES.map(([, x, w, s, p]) => convGrads(x, w, s, p));
    await tf.setBackend("wasm");
    await tf.ready();
    assert.throws(() => convGrads([1, 5, 5, 1], [3, 3, 1, 1], 1, "same"), /Conv2DBackpropFilter/);
    registerWasmConvGradients();
    CASES.forEach(([label, x, w, s, p], i) => {
      const actual = convGrads(x, w, s, p);
      assert.equal(actual.dx.length, expected[i]!.dx.length, label);
      assert.ok(scaledError(actual.dx, expected[i]!.dx) < 1e-5, `${label}: dx`);
      assert.ok(scaledError(actual.dw, expected[i]!.dw) < 1e-5, `${label}: dW`);
    });
  });

  it("leave no tensors behind", async () => {
    await tf.setBackend("wasm");
    registerWasmConvGradients();
    convGrads([2, 8, 8, 3], [3, 3, 3, 4], 2, "same");
    const before = tf.memory().numTensors;
    for (let i = 0; i < 5; i++) {
      convGrads([2, 8, 8, 3], [3, 3, 3, 4], 2, "same");
      convGrads([2, 8, 8, 3], [1, 1, 3, 4], 2, "same");
    }
    assert.equal(tf.memory().numTensors, before);
  });
});
