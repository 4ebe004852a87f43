import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { gzipSync } from "node:zlib";
import { BUNDLED_FASHION_MNIST, readFashionMnist } from "./fashion-mnist.js";
import { encodeIdx, idxPair, parseIdx } from "./idx.js";

describe("IDX files", () => {
  it("round-trip, gzipped or not", () => {
    const data = Uint8Array.from({ length: 2 * 3 * 4 }, (_, i) => i);
    const file = encodeIdx([2, 3, 4], data);
    for (const bytes of [file, new Uint8Array(gzipSync(file))]) {
      const parsed = parseIdx(bytes);
      assert.deepEqual(parsed.shape, [2, 3, 4]);
      assert.deepEqual(parsed.data, data);
    }
  });

  it("name the file and the problem on bad input", () => {
    assert.throws(() => parseIdx(new Uint8Array([1, 2, 3, 4]), "x.idx"), /x\.idx: not an IDX file/);
    const truncated = encodeIdx([10], new Uint8Array(10)).subarray(0, 12);
    assert.throws(() => parseIdx(truncated, "y.idx"), /y\.idx: expected 10 data bytes/);
    const images = parseIdx(encodeIdx([2, 1, 1], new Uint8Array(2)));
    const labels = parseIdx(encodeIdx([3], new Uint8Array(3)));
    assert.throws(() => idxPair(images, labels, "set"), /2 images but 3 labels/);
  });

  it("the bundled Fashion-MNIST subset is stratified: 600 train and 100 test images per class", () => {
    for (const [split, perClass] of [
      ["train", 600],
      ["test", 100],
    ] as const) {
      const set = readFashionMnist(BUNDLED_FASHION_MNIST, split);
      assert.equal(set.height, 28);
      const counts = new Array<number>(10).fill(0);
      for (const l of set.labels) counts[l]!++;
      assert.deepEqual(counts, new Array<number>(10).fill(perClass));
    }
  });
});
