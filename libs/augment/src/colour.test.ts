import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { applyColour } from "./colour.js";
import { ViewRandom } from "./seed.js";

describe("colour ops", () => {
  it("saturate the same bytes in the wasm SIMD kernel as in TypeScript", () => {
    const random = new ViewRandom(8);
    // An odd pixel count, so the kernel's last group of 4 runs past the end.
    const src = Uint8Array.from({ length: 3 * 100_003 }, () => Math.floor(random.next() * 256));
    for (const factor of [0, 0.3, 0.6, 0.999, 1, 1.0001, 1.4, 2, 5]) {
      const simd = new Uint8Array(src.length);
      const plain = new Uint8Array(src.length);
      applyColour(src, simd, [{ kind: "saturation", factor }], false, 0, true);
      applyColour(src, plain, [{ kind: "saturation", factor }], false, 0, false);
      assert.deepEqual(simd, plain, `factor ${factor}`);
      if (factor !== 1) assert.notDeepEqual(plain, src);
    }
  });

  it("shift hue the same in the wasm kernel as in TypeScript, at every shift byte", () => {
    const random = new ViewRandom(9);
    const src = Uint8Array.from({ length: 3 * 65_536 }, () => Math.floor(random.next() * 256));
    // Greys and near-greys, where hsv2rgb's branches change.
    for (let i = 0; i < 256; i++) src.set([i, i, i, i, Math.max(0, i - 1), i], 6 * i);
    for (let shift = -128; shift < 128; shift += 3) {
      const factor = shift / 255;
      const simd = new Uint8Array(src.length);
      const plain = new Uint8Array(src.length);
      applyColour(src, simd, [{ kind: "hue", factor }], false, 0, true);
      applyColour(src, plain, [{ kind: "hue", factor }], false, 0, false);
      assert.deepEqual(simd, plain, `factor ${factor}`);
    }
  });
});
