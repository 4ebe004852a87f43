import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { boxBlurRadius, pilGaussianBlur } from "./pil-blur.js";
import { ViewRandom } from "./seed.js";

describe("PIL's Gaussian blur", () => {
  it("gives the same bytes through the wasm SIMD kernel as through the TypeScript passes", () => {
    const random = new ViewRandom(4);
    for (const [width, height] of [
      [224, 224],
      [96, 96],
      [37, 5],
      [3, 41],
    ] as const) {
      const image = Uint8Array.from({ length: width * height * 3 }, () => Math.floor(random.next() * 256));
      for (const sigma of [0.1, 0.57, 1.0, 1.42, 2.0]) {
        const simd = image.slice();
        const plain = image.slice();
        pilGaussianBlur(simd, width, height, sigma, true);
        pilGaussianBlur(plain, width, height, sigma, false);
        assert.deepEqual(simd, plain, `${width}x${height}, sigma ${sigma}`);
        assert.notDeepEqual(plain, image, `sigma ${sigma} blurred nothing`);
      }
    }
  });

  it("has integer radius 0 or 1 over MoCo v2's sigmas 0.1-2, the two the kernel handles", () => {
    for (let sigma = 0.1; sigma <= 2.0; sigma += 0.01) assert.ok(Math.trunc(boxBlurRadius(sigma)) <= 1);
    assert.equal(Math.trunc(boxBlurRadius(3)), 2);
  });
});
