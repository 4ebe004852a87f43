import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import "@tensorflow/tfjs";
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-wasm";
import { registerWasmIdentity } from "./wasm-identity.js";
import { replacedWasmKernels } from "./wasm-replace.js";

before(async () => {
  await tf.setBackend("wasm");
  await tf.ready();
  registerWasmIdentity();
});

describe("wasm Identity", () => {
  it("shares the input's data: a clone allocates nothing and outlives its source", () => {
    const x = tf.tensor2d([
      [1, 2],
      [3, 4],
    ]);
    const backend = tf.engine().backend;
    const before = backend.numDataIds();
    const y = tf.clone(x);
    assert.equal(backend.numDataIds(), before, "a copy would add a data id");
    x.dispose();
    assert.deepEqual(Array.from(y.dataSync()), [1, 2, 3, 4]);
    y.dispose();
    assert.equal(backend.numDataIds(), before - 1);
  });

  it("leaves the gradients a saved tensor feeds unchanged", () => {
    const x = tf.tensor1d([0.5, -1, 2]);
    // exp saves its output and mul its inputs for the backward: Identity through tfjs's tape.
    const dx = tf.grad((a: tf.Tensor) => tf.sum(tf.mul(tf.exp(a), a)))(x);
    const expected = [0.5, -1, 2].map((v) => Math.exp(v) * (1 + v));
    for (const [i, v] of Array.from(dx.dataSync()).entries()) assert.ok(Math.abs(v - expected[i]!) < 1e-5);
    tf.dispose([x, dx]);
  });

  it("is registered once in tfjs's place, with tfjs's kernel kept for bench:core", () => {
    const tfjs = replacedWasmKernels().get("Identity");
    assert.ok(tfjs, "tfjs's Identity is kept");
    const ours = tf.getKernel("Identity", "wasm")!;
    assert.notEqual(ours.kernelFunc, tfjs.kernelFunc);
    assert.equal(ours.setupFunc, tfjs.setupFunc, "tfjs's setup stays");
    registerWasmIdentity();
    assert.equal(
      tf.getKernel("Identity", "wasm")!.kernelFunc,
      ours.kernelFunc,
      "a second call changes nothing",
    );
  });
});
