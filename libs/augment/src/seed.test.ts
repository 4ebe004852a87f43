// Pins the views' random draws: a run's augmentations are a function of (run seed, epoch, sample id,
// view), so these numbers must not move when the generator's code does. Unlike the core's generator,
// seed 0 here starts from state 0.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ADCO_MULTI_CROP, cropBox, MOCO_V2_COLOR, MOCO_V2_CROP, rgbViewParams } from "./rgb.js";
import { augmentRgb } from "./rgb-view.js";
import { ViewRandom, viewSeed } from "./seed.js";
import { twoViewBatch } from "./small-gray.js";

const u32 = (x: number) => x * 4294967296;
const first = (seed: number, n = 4) => {
  const r = new ViewRandom(seed);
  return Array.from({ length: n }, () => u32(r.next()));
};
const fnv = (a: Float32Array) => {
  let h = 0x811c9dc5;
  for (const b of new Uint8Array(a.buffer, a.byteOffset, a.byteLength))
    h = Math.imul(h ^ b, 0x01000193) >>> 0;
  return h;
};

describe("view seeds and draws (pinned)", () => {
  it("hashes (run seed, epoch, sample id, view) to the same seeds", () => {
    assert.equal(viewSeed(0, 0, 0, 0), 2281939273);
    assert.equal(viewSeed(1, 0, 42, 0), 892723408);
    assert.equal(viewSeed(1, 0, 42, 1), 3914982274);
    assert.equal(viewSeed(42, 3, 7, 1), 2635983591);
    assert.equal(viewSeed(7, 1, 2 ** 32 + 3, 0), 3672849479);
    assert.equal(viewSeed(-1, 2, 5, 1), 67800965);
  });

  it("draws the same first values for seeds 0, 1, 42, -1 (seed 0 is state 0)", () => {
    assert.deepEqual(first(0), [1144304738, 1416247, 958946056, 627933444]);
    assert.deepEqual(first(1), [2693262067, 11749833, 2265367787, 4213581821]);
    assert.deepEqual(first(42), [2581720956, 1925393290, 3661312704, 2876485805]);
    assert.deepEqual(first(-1), [3850105811, 813802916, 3073704848, 4054706436]);
  });

  it("makes the same small grayscale views", () => {
    const images = Uint8Array.from({ length: 28 * 28 * 3 }, (_, i) => (i * 37 + (i >> 5)) & 255);
    const hashes = [0, 1, 42].map((seed) => twoViewBatch(images, 28, 28, [0, 1, 2], seed, 1).map(fnv));
    assert.deepEqual(hashes, [
      [1005332124, 1694126226],
      [2855547300, 223053114],
      [1501886269, 12749583],
    ]);
  });

  it("draws the same RGB crop and colour parameters", () => {
    const box = (seed: number) => cropBox(300, 256, [0.08, 1], new ViewRandom(viewSeed(seed, 0, 9, 1)));
    assert.deepEqual(box(0), { top: 76, left: 91, h: 171, w: 154 });
    assert.deepEqual(box(1), { top: 104, left: 123, h: 126, w: 119 });
    assert.deepEqual(box(42), { top: 14, left: 20, h: 227, w: 194 });
    const params = (seed: number) =>
      rgbViewParams(300, 256, MOCO_V2_CROP, MOCO_V2_COLOR, new ViewRandom(viewSeed(seed, 0, 9, 0)));
    const jitter = (kinds: string[], factors: number[]) =>
      kinds.map((kind, i) => ({ kind, factor: factors[i] }));
    assert.deepEqual(params(0), {
      box: { top: 33, left: 8, h: 197, w: 221 },
      flip: false,
      jitter: jitter(
        ["contrast", "hue", "brightness", "saturation"],
        [0.9335144130513071, 0.018310231016948814, 0.6278719378635287, 1.386885298229754],
      ),
      grayscale: false,
      blurSigma: 1.145655544451438,
    });
    assert.deepEqual(params(42), {
      box: { top: 50, left: 34, h: 182, w: 204 },
      flip: true,
      jitter: jitter(
        ["contrast", "hue", "brightness", "saturation"],
        [0.753096248023212, 0.003184775868430731, 1.3066753430292009, 1.1263881448656319],
      ),
      grayscale: false,
    });
  });

  it("makes the same RGB views, byte for byte", () => {
    // Pinned from the TypeScript ops before the wasm kernels replaced them: eight samples that
    // cover flips, blurs, jitter orders and a grayscale view (96, sample 4), at 224 and 96.
    const [width, height] = [300, 256];
    const data = Uint8Array.from(
      { length: width * height * 3 },
      (_, i) => (i * 37 + (i >> 7) * 11 + ((i * i) >> 13)) & 255,
    );
    const fnv8 = (a: Uint8Array) => {
      let h = 0x811c9dc5;
      for (const b of a) h = Math.imul(h ^ b, 0x01000193) >>> 0;
      return h;
    };
    const hashes = [MOCO_V2_CROP, ADCO_MULTI_CROP[4]!].map((crop) =>
      Array.from({ length: 8 }, (_, sample) =>
        fnv8(
          augmentRgb({ data, width, height }, crop, MOCO_V2_COLOR, new ViewRandom(viewSeed(5, 1, sample, 0))),
        ),
      ),
    );
    assert.deepEqual(hashes, [
      [2720529651, 957393736, 3185753918, 1456444211, 1880602606, 359395055, 995045181, 55524966],
      [1932475505, 2160960408, 3782057880, 1807137044, 3838374951, 3592198391, 818292823, 3819878675],
    ]);
  });
});
