import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { gzipSync } from "node:zlib";
import { BUNDLED_FASHION_MNIST, readFashionMnist } from "./fashion-mnist.js";
import { encodeIdx, everyNthImage, firstImages, idxPair, imagesBetween, parseIdx } from "./idx.js";

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

  it("cut a set into ranges and samples that keep each image with its label", () => {
    // 7 images of 2 x 1 pixels: image i is [i, 100 + i], labelled i.
    const set = {
      count: 7,
      height: 2,
      width: 1,
      images: Uint8Array.from({ length: 14 }, (_, j) => (j % 2 === 0 ? j / 2 : 100 + (j - 1) / 2)),
      labels: Uint8Array.from({ length: 7 }, (_, i) => i),
    };
    const middle = imagesBetween(set, 2, 5);
    assert.equal(middle.count, 3);
    assert.deepEqual(Array.from(middle.images), [2, 102, 3, 103, 4, 104]);
    assert.deepEqual(Array.from(middle.labels), [2, 3, 4]);
    assert.equal(imagesBetween(set, 7, 7).count, 0);
    assert.throws(() => imagesBetween(set, 5, 8), /images \[5, 8\): not a range of the set's 7 images/);
    assert.throws(() => imagesBetween(set, 3, 2), /not a range/);
    assert.deepEqual(Array.from(firstImages(set, 2).labels), [0, 1]);
    assert.equal(firstImages(set), set);

    const sample = everyNthImage(set, 3);
    assert.deepEqual(Array.from(sample.labels), [0, 3, 6]);
    assert.deepEqual(Array.from(sample.images), [0, 100, 3, 103, 6, 106]);
    assert.throws(() => everyNthImage(set, 0), /stride: a positive integer, got 0/);
  });
});
