import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { applyColour } from "./colour.js";
import type { ColourOp } from "./rgb.js";
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

  it("shift hue the same in the wasm kernel as in TypeScript for every 24-bit colour", () => {
    const src = new Uint8Array(3 << 24);
    for (let i = 0; i < 1 << 24; i++) src.set([i >> 16, (i >> 8) & 255, i & 255], 3 * i);
    const simd = new Uint8Array(src.length);
    const plain = new Uint8Array(src.length);
    for (const shift of [0, 77, -56]) {
      applyColour(src, simd, [{ kind: "hue", factor: shift / 255 }], false, 0, true);
      applyColour(src, plain, [{ kind: "hue", factor: shift / 255 }], false, 0, false);
      // One assertion over 50 MB: deepEqual's report of a difference would be unreadable.
      const first = simd.findIndex((x, i) => x !== plain[i]);
      assert.equal(first, -1, `shift ${shift}: first difference at pixel ${Math.floor(first / 3)}`);
    }
  });

  it("run every order of the four jitters, grayscale and flip with the same bytes as TypeScript", () => {
    const random = new ViewRandom(10);
    // 37 x 27 pixels: neither the pixels a multiple of 4 nor the bytes of 16, so every kernel's
    // last step runs past the end (and contrast's mean must not count what lies there).
    const [width, height] = [37, 27];
    const src = Uint8Array.from({ length: 3 * width * height }, () => Math.floor(random.next() * 256));
    const kinds = ["brightness", "contrast", "saturation", "hue"] as const;
    let changed = 0;
    for (let order = 0; order < 24; order++) {
      const permutation = random.permutation(4);
      const jitter: ColourOp[] = permutation.map((i) => ({
        kind: kinds[i]!,
        factor: i === 3 ? random.uniform(-0.5, 0.5) : random.uniform(0, 2.5),
      }));
      for (const grayscale of [false, true]) {
        for (const flip of [0, width]) {
          const simd = new Uint8Array(src.length);
          const plain = new Uint8Array(src.length);
          applyColour(src, simd, jitter, grayscale, flip, true);
          applyColour(src, plain, jitter, grayscale, flip, false);
          assert.deepEqual(simd, plain, `${JSON.stringify(jitter)} grayscale ${grayscale} flip ${flip}`);
          if (!simd.every((x, i) => x === src[i])) changed++;
        }
      }
    }
    assert.equal(changed, 24 * 4);
  });

  it("take contrast's mean from the image as the ops before it left it", () => {
    // A dark image brightened: contrast around the new mean keeps the mean grey level where it is,
    // around the old one it would darken everything.
    const src = new Uint8Array(3 * 64).fill(40);
    for (let i = 0; i < src.length; i += 6) src[i] = 80;
    const out = new Uint8Array(src.length);
    for (const simd of [true, false]) {
      applyColour(
        src,
        out,
        [
          { kind: "brightness", factor: 2 },
          { kind: "contrast", factor: 0.5 },
        ],
        false,
        0,
        simd,
      );
      const bright = new Uint8Array(src.length);
      applyColour(src, bright, [{ kind: "brightness", factor: 2 }], false, 0, simd);
      const mean = (a: Uint8Array) => a.reduce((s, x) => s + x, 0) / a.length;
      assert.ok(Math.abs(mean(out) - mean(bright)) < 2, `simd ${simd}: ${mean(out)} vs ${mean(bright)}`);
    }
  });
});
