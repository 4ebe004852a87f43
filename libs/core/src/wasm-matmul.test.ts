import assert from "node:assert/strict";
import { describe, it } from "node:test";
import "@tensorflow/tfjs";
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import "@tensorflow/tfjs-backend-wasm";
import { scaledError } from "./agreement.js";
import { registerWasmMatMul } from "./wasm-matmul.js";
import { registerWasmTranspose } from "./wasm-transpose.js";

type Case = [string, number[], number[], boolean, boolean];
const CASES: Case[] = [
  ["plain", [6, 8], [8, 5], false, false],
  ["b transposed (the key cosines)", [6, 8], [5, 8], false, true],
  ["a transposed", [8, 6], [8, 5], true, false],
  ["both transposed", [8, 6], [5, 8], true, true],
  ["batched, b transposed", [3, 6, 8], [3, 5, 8], false, true],
  ["batched, both transposed", [3, 8, 6], [3, 5, 8], true, true],
];

/** a . b with the flags, and the gradients of sum(a . b * dy) for a and b. */
function products([, aShape, bShape, ta, tb]: Case): Float32Array[] {
  return tf.tidy(() => {
    const a = tf.randomNormal(aShape, 0, 1, "float32", 1);
    const b = tf.randomNormal(bShape, 0, 1, "float32", 2);
    const y = tf.matMul(a, b, ta, tb);
    const dy = tf.randomNormal(y.shape, 0, 1, "float32", 3);
    const grads = tf.grads((p: tf.Tensor, q: tf.Tensor) => tf.sum(tf.mul(tf.matMul(p, q, ta, tb), dy)))([
      a,
      b,
    ]);
    return [y, ...grads].map((t) => t.dataSync() as Float32Array);
  });
}

describe("wasm BatchMatMul", () => {
  it("agrees with the cpu backend for every transpose, and its gradients too", async () => {
    await tf.setBackend("cpu");
    const expected = CASES.map(products);
    await tf.setBackend("wasm");
    await tf.ready();
    registerWasmTranspose();
    registerWasmMatMul();
    CASES.forEach((c, i) => {
      products(c).forEach((actual, k) => {
        assert.equal(actual.length, expected[i]![k]!.length, c[0]);
        assert.ok(scaledError(actual, expected[i]![k]!) < 1e-5, `${c[0]}: ${["y", "da", "db"][k]}`);
      });
    });
  });

  it("leaves no tensors behind", async () => {
    await tf.setBackend("wasm");
    registerWasmMatMul();
    products(CASES[3]!);
    const before = tf.memory().numTensors;
    for (const c of CASES) products(c);
    assert.equal(tf.memory().numTensors, before);
  });
});
