import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { pilResizedCrop } from "./pil-resize.js";
import { cropBox, type Pixels } from "./rgb.js";
import { ViewRandom } from "./seed.js";

/** A size x size x 3 image with its rows reversed, pixel by pixel. */
function mirrored(data: Uint8Array, size: number): Uint8Array {
  const out = new Uint8Array(data.length);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      out.set(data.subarray((y * size + x) * 3, (y * size + x + 1) * 3), (y * size + size - 1 - x) * 3);
    }
  }
  return out;
}

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
          const flipped = pilResizedCrop(src, box, size, undefined, true, true);
          const plainFlipped = pilResizedCrop(src, box, size, undefined, false, true);
          assert.deepEqual(flipped, plainFlipped, `flipped, box ${JSON.stringify(box)} -> ${size}`);
          assert.deepEqual(flipped, mirrored(plain, size), `flipped, box ${JSON.stringify(box)} -> ${size}`);
        }
      }
    }
  });
});
