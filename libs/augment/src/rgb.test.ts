import assert from "node:assert/strict";
import { describe, it } from "node:test";
import sharp from "sharp";
import { decodeRgb, DecodeError } from "./decode.js";
import { ADCO_MULTI_CROP, cropBox, MOCO_V2_COLOR, MOCO_V2_CROP } from "./rgb.js";
import { augmentRgb } from "./rgb-view.js";
import { ViewRandom, viewSeed } from "./seed.js";

async function jpeg(width: number, height: number): Promise<Uint8Array> {
  const raw = Buffer.alloc(width * height * 3);
  for (let i = 0; i < raw.length; i++) raw[i] = (i * 7) % 251;
  return new Uint8Array(
    await sharp(raw, { raw: { width, height, channels: 3 } })
      .jpeg()
      .toBuffer(),
  );
}

describe("RGB augmentation", () => {
  it("decodes a JPEG and makes views of the asked size, the same for the same seed", async () => {
    const pixels = await decodeRgb(await jpeg(320, 240));
    assert.equal(pixels.width, 320);
    assert.equal(pixels.data.length, 320 * 240 * 3);
    const seed = viewSeed(1, 0, 42, 0);
    const a = augmentRgb(pixels, MOCO_V2_CROP, MOCO_V2_COLOR, new ViewRandom(seed));
    const b = augmentRgb(pixels, MOCO_V2_CROP, MOCO_V2_COLOR, new ViewRandom(seed));
    assert.equal(a.length, 224 * 224 * 3);
    assert.deepEqual(a, b);
    const other = augmentRgb(pixels, MOCO_V2_CROP, MOCO_V2_COLOR, new ViewRandom(viewSeed(1, 0, 42, 1)));
    assert.notDeepEqual(a, other);
    for (const crop of ADCO_MULTI_CROP) {
      assert.equal(
        augmentRgb(pixels, crop, MOCO_V2_COLOR, new ViewRandom(3)).length,
        crop.size * crop.size * 3,
      );
    }
  });

  it("crops within the image and the scale range", () => {
    const random = new ViewRandom(9);
    for (let i = 0; i < 200; i++) {
      const box = cropBox(100, 150, [0.2, 1], random);
      assert.ok(box.top >= 0 && box.left >= 0 && box.top + box.h <= 100 && box.left + box.w <= 150);
      const fraction = (box.h * box.w) / (100 * 150);
      assert.ok(fraction > 0.18 && fraction <= 1.02, `area fraction ${fraction}`);
    }
  });

  it("refuses a JPEG of random bytes and a truncated one with a clear error", async () => {
    const garbage = new Uint8Array(2000).map((_, i) => (i * 31) % 256);
    garbage.set([0xff, 0xd8, 0xff, 0xe0]);
    await assert.rejects(
      decodeRgb(garbage, "bad.jpg"),
      (e: unknown) => e instanceof DecodeError && /bad\.jpg: cannot decode/.test((e as Error).message),
    );
    const good = await jpeg(64, 64);
    await assert.rejects(decodeRgb(good.subarray(0, good.length / 2), "cut.jpg"), DecodeError);
  });

  it("decodes an EXIF-rotated JPEG upright (orientation 6: stored turned a quarter left)", async () => {
    // Left half red, right half blue, top rows green: every orientation looks different.
    const [width, height] = [48, 32];
    const raw = Buffer.alloc(width * height * 3);
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const colour = y < 8 ? [0, 200, 0] : x < width / 2 ? [220, 0, 0] : [0, 0, 220];
        raw.set(colour, (y * width + x) * 3);
      }
    }
    const upright = sharp(raw, { raw: { width, height, channels: 3 } });
    const stored = await upright
      .clone()
      .rotate(-90)
      .withMetadata({ orientation: 6 })
      .jpeg({ quality: 95 })
      .toBuffer();
    assert.equal((await sharp(stored).metadata()).width, height, "stored sideways");
    const pixels = await decodeRgb(new Uint8Array(stored));
    assert.deepEqual([pixels.width, pixels.height], [width, height]);
    let error = 0;
    for (let i = 0; i < raw.length; i++) error += Math.abs(pixels.data[i]! - raw[i]!);
    assert.ok(error / raw.length < 6, `mean error ${error / raw.length} against the upright image`);
  });

  it("says what failed without repeating the label when there is none", async () => {
    const garbage = new Uint8Array(100).fill(7);
    await assert.rejects(decodeRgb(garbage), (e: unknown) => /^cannot decode \(/.test((e as Error).message));
  });
});
