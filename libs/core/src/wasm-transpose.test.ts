import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import "@tensorflow/tfjs";
import * as tf from "@tensorflow/tfjs-core";
import "@tensorflow/tfjs-backend-cpu";
import "@tensorflow/tfjs-backend-wasm";
import { TRANSPOSE_WAT_SHA256 } from "./transpose-wasm.js";
import { outerInnerSwap, registerWasmTranspose } from "./wasm-transpose.js";

type Case = [string, number[], number[], tf.DataType?];
const CASES: Case[] = [
  ["the conv filter gradient's x (b h w c -> c h w b)", [8, 6, 5, 16], [3, 1, 2, 0]],
  ["a matrix", [12, 20], [1, 0]],
  ["outer x middle x inner", [4, 3, 8], [2, 1, 0]],
  ["unit axes dropped, neighbours merged", [4, 1, 3, 2, 8], [3, 4, 2, 1, 0]],
  ["a row count not a multiple of 16 (a short tile)", [20, 3, 4], [2, 1, 0]],
  ["the first conv's x (one channel: a matrix)", [8, 5, 6, 1], [3, 1, 2, 0]],
  // tfjs's own kernel: not a multiple of 4, another permutation, another dtype.
  ["sizes not multiples of 4", [6, 5, 7], [2, 1, 0]],
  ["a permutation that keeps the inner axis", [8, 6, 4], [1, 0, 2]],
  ["int32", [8, 3, 4], [2, 1, 0], "int32"],
];

function transposed([, shape, perm, dtype]: Case): number[] {
  return tf.tidy(() => {
    const size = shape.reduce((a, b) => a * b, 1);
    const x = tf.tensor(
      Array.from({ length: size }, (_, i) => i),
      shape,
      dtype ?? "float32",
    );
    return Array.from(tf.transpose(x, perm).dataSync());
  });
}

describe("wasm Transpose", () => {
  it("agrees with the cpu backend exactly, through our module or tfjs's kernel", async () => {
    await tf.setBackend("cpu");
    const expected = CASES.map(transposed);
    await tf.setBackend("wasm");
    await tf.ready();
    registerWasmTranspose();
    CASES.forEach((c, i) => assert.deepEqual(transposed(c), expected[i], c[0]));
  });

  it("finds the outer/inner swap in a permutation, and nothing in the others", () => {
    assert.deepEqual(outerInnerSwap([256, 30, 30, 16], [3, 1, 2, 0]), { outer: 256, middle: 900, inner: 16 });
    assert.deepEqual(outerInnerSwap([50, 16], [1, 0]), { outer: 50, middle: 1, inner: 16 });
    assert.deepEqual(outerInnerSwap([4, 1, 3, 2, 8], [3, 4, 2, 1, 0]), { outer: 4, middle: 3, inner: 16 });
    assert.equal(outerInnerSwap([8, 6, 4], [1, 0, 2]), null);
    assert.equal(outerInnerSwap([8, 6, 4], [0, 2, 1]), null);
    assert.equal(outerInnerSwap([2, 3, 4, 5], [3, 2, 1, 0]), null);
  });

  it("is built from the .wat source beside it", () => {
    const source = readFileSync(new URL("../wasm/transpose.wat", import.meta.url), "utf8");
    assert.equal(createHash("sha256").update(source).digest("hex"), TRANSPOSE_WAT_SHA256, "rebuild");
  });
});
