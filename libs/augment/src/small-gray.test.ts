import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { viewSeed, ViewRandom } from "./seed.js";
import { augmentSmallGray, FASHION_MNIST_MEAN, FASHION_MNIST_STD, twoViewBatch } from "./small-gray.js";

function image(seed: number): Uint8Array {
  const random = new ViewRandom(seed);
  return Uint8Array.from({ length: 28 * 28 }, () => Math.floor(random.next() * 256));
}

describe("small grayscale augmentation", () => {
  it("re-creates the same view from (run seed, epoch, sample id, view), whatever the batch around it", () => {
    const images = new Uint8Array(28 * 28 * 4);
    for (let i = 0; i < 4; i++) images.set(image(i), i * 784);
    const [a] = twoViewBatch(images, 28, 28, [0, 1, 2, 3], 7, 3);
    const [b] = twoViewBatch(images, 28, 28, [3, 2], 7, 3);
    assert.deepEqual(b!.subarray(0, 784), a!.subarray(3 * 784, 4 * 784));
    const [otherEpoch] = twoViewBatch(images, 28, 28, [3], 7, 4);
    assert.notDeepEqual(otherEpoch, a!.subarray(3 * 784, 4 * 784));
  });

  it("makes two different views of one image, within the normalised pixel range", () => {
    const views = twoViewBatch(image(1), 28, 28, [0], 1, 0);
    assert.equal(views.length, 2);
    assert.notDeepEqual(views[0], views[1]);
    const low = (0 - FASHION_MNIST_MEAN) / FASHION_MNIST_STD - 1e-5;
    const high = (1 - FASHION_MNIST_MEAN) / FASHION_MNIST_STD + 1e-5;
    for (const v of views) for (const x of v) assert.ok(x >= low && x <= high);
  });

  it("with every random choice off, returns the normalised image itself", () => {
    const src = image(2);
    const out = new Float32Array(784);
    const off = {
      size: 28,
      scale: [1, 1],
      ratio: [1, 1],
      flip: 0,
      brightness: 0,
      contrast: 0,
      jitterP: 0,
      blurP: 0,
      blurSigma: [1, 1],
    } as const;
    augmentSmallGray(src, 28, 28, new ViewRandom(1), out, off);
    for (let i = 0; i < 784; i++)
      assert.ok(Math.abs(out[i]! - (src[i]! / 255 - FASHION_MNIST_MEAN) / FASHION_MNIST_STD) < 1e-4);
  });

  it("view seeds differ across each coordinate", () => {
    const base = viewSeed(1, 2, 3, 0);
    assert.notEqual(viewSeed(2, 2, 3, 0), base);
    assert.notEqual(viewSeed(1, 3, 3, 0), base);
    assert.notEqual(viewSeed(1, 2, 4, 0), base);
    assert.notEqual(viewSeed(1, 2, 3, 1), base);
  });
});
