import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { DataType, Tensor } from "./gen/adco/v1/common.js";
import { decodeTensor, encodeTensor, TensorError } from "./tensor.js";

describe("tensor codec", () => {
  it("round-trips float32 through the wire encoding", () => {
    const data = new Float32Array([1.5, -2, 3.25, Number.MIN_VALUE, 1e30, -0]);
    const wire = Tensor.encode(encodeTensor(data, [2, 3])).finish();
    const back = decodeTensor(Tensor.decode(wire), "q", { dtype: DataType.DATA_TYPE_FLOAT32, shape: [2, 3] });
    assert.deepEqual(back.shape, [2, 3]);
    assert.deepEqual(Array.from(back.data), Array.from(data));
  });

  it("round-trips uint8 and int32", () => {
    const pixels = new Uint8Array([0, 255, 7]);
    assert.deepEqual(
      Array.from(decodeTensor(encodeTensor(pixels, [3]), "p", { dtype: DataType.DATA_TYPE_UINT8 }).data),
      [0, 255, 7],
    );
    const labels = new Int32Array([-1, 2 ** 31 - 1]);
    assert.deepEqual(
      Array.from(decodeTensor(encodeTensor(labels, [2]), "l", { dtype: DataType.DATA_TYPE_INT32 }).data),
      [-1, 2 ** 31 - 1],
    );
  });

  it("accepts any size where the expected shape has a wildcard", () => {
    const t = encodeTensor(new Float32Array(12), [3, 4]);
    assert.deepEqual(
      decodeTensor(t, "q", { dtype: DataType.DATA_TYPE_FLOAT32, shape: [undefined, 4] }).shape,
      [3, 4],
    );
  });

  it("names the field on a wrong dtype", () => {
    const t = encodeTensor(new Uint8Array(4), [4]);
    assert.throws(
      () => decodeTensor(t, "pairs[0].queries", { dtype: DataType.DATA_TYPE_FLOAT32 }),
      (e: unknown) =>
        e instanceof TensorError && /pairs\[0\]\.queries: dtype is DATA_TYPE_UINT8/.test(e.message),
    );
  });

  it("rejects a shape of the wrong rank or size", () => {
    const t = encodeTensor(new Float32Array(12), [3, 4]);
    assert.throws(() => decodeTensor(t, "k", { dtype: DataType.DATA_TYPE_FLOAT32, shape: [12] }), /rank 2/);
    assert.throws(
      () => decodeTensor(t, "k", { dtype: DataType.DATA_TYPE_FLOAT32, shape: [undefined, 128] }),
      /does not match \[\*, 128\] at dimension 1/,
    );
  });

  it("rejects data whose length does not match the shape", () => {
    const t: Tensor = { dtype: DataType.DATA_TYPE_FLOAT32, shape: [2, 2], data: Buffer.alloc(15) };
    assert.throws(
      () => decodeTensor(t, "q", { dtype: DataType.DATA_TYPE_FLOAT32 }),
      /15 bytes, shape \[2, 2\] needs 16/,
    );
  });

  it("rejects a missing tensor", () => {
    assert.throws(
      () => decodeTensor(undefined, "keys", { dtype: DataType.DATA_TYPE_FLOAT32 }),
      /keys: is required/,
    );
  });

  it("refuses to encode data that does not fill the shape", () => {
    assert.throws(() => encodeTensor(new Float32Array(5), [2, 3]), /holds 6 elements, data has 5/);
  });
});
