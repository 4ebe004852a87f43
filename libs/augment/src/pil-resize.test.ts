import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { pilResizedCrop } from "./pil-resize.js";
import { cropBox, type Pixels } from "./rgb.js";
import { ViewRandom } from "./seed.js";

describe("Pillow's bilinear resized crop", () => {
  it("gives the same bytes through the wasm SIMD kernel as through the TypeScript passes", () => {
    const random = new ViewRandom(11);
    for (const [width, height] of [
      [320, 256],
      [97, 130],
      [30, 24],
    ] as const) {
      const src: Pixels = {
        data: Uint8Array.from({ length: width * height * 3 }, () => Math.floor(random.next() * 256)),
        height,
        width,
      };
      for (const size of [224, 96, 24]) {
        const boxes = [
          ...Array.from({ length: 12 }, () => cropBox(height, width, [0.05, 1], random)),
          { top: 0, left: 0, h: height, w: Math.min(width, size) }, // one axis at its size
          { top: 0, left: 0, h: Math.min(height, size), w: width },
        ];
        for (const box of boxes) {
          const simd = pilResizedCrop(src, box, size, undefined, true);
          const plain = pilResizedCrop(src, box, size, undefined, false);
          assert.deepEqual(simd, plain, `${width}x${height} box ${JSON.stringify(box)} -> ${size}`);
        }
      }
    }
  });
});
