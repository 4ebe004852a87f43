import assert from "node:assert/strict";
import { describe, it } from "node:test";
import "@tensorflow/tfjs";
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import "@tensorflow/tfjs-backend-wasm";
import { registerWasmGather } from "./wasm-gather.js";

type Case = [string, number[], number[], number[], number, tf.DataType?];
const CASES: Case[] = [
  ["images by a permutation (the key shuffle)", [6, 4, 4, 1], [3, 0, 5, 1, 4, 2], [6], 0],
  ["rows, repeated and dropped", [5, 32], [4, 4, 0], [3], 0],
  ["a middle axis", [3, 7, 16], [6, 0, 2], [3], 1],
  ["a negative axis, 2-d indices", [2, 5, 4, 8], [1, 4, 0, 2], [2, 2], -3],
  ["int32 rows", [4, 20], [2, 3, 1], [3], 0, "int32"],
  ["slices too small for a copy each (tfjs's kernel)", [5, 3], [4, 1], [2], 0],
];

function gathered([, shape, picks, pickShape, axis, dtype]: Case): number[] {
  return tf.tidy(() => {
    const size = shape.reduce((a, b) => a * b, 1);
    const x = tf.tensor(
      Array.from({ length: size }, (_, i) => i * 0.5),
      shape,
      dtype ?? "float32",
    );
    const out = tf.gather(x, tf.tensor(picks, pickShape, "int32"), axis);
    return [...out.shape, ...out.dataSync()];
  });
}

describe("wasm GatherV2", () => {
  it("agrees with the cpu backend exactly, shapes and values", async () => {
    await tf.setBackend("cpu");
    const expected = CASES.map(gathered);
    await tf.setBackend("wasm");
    await tf.ready();
    registerWasmGather();
    CASES.forEach((c, i) => assert.deepEqual(gathered(c), expected[i], c[0]));
  });

  it("refuses an index out of range", async () => {
    await tf.setBackend("wasm");
    registerWasmGather();
    const x = tf.zeros([3, 16]);
    assert.throws(() => tf.gather(x, tf.tensor1d([0, 3], "int32")), /index value 3 is not in \[0, 2\]/);
    x.dispose();
  });
});
