import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import sharp from "sharp";
import { DecodeError } from "./decode.js";
import { evalGeometry, evalResizeSide, evalTransform } from "./eval-transform.js";

/** A width x height JPEG, left half red and right half blue, stored with an EXIF orientation. */
async function halves(width: number, height: number, orientation = 1): Promise<Uint8Array> {
  const raw = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) raw[(y * width + x) * 3 + (x < width / 2 ? 0 : 2)] = 255;
  return new Uint8Array(
    await sharp(raw, { raw: { width, height, channels: 3 } })
      .withMetadata({ orientation })
      .jpeg({ quality: 95 })
      .toBuffer(),
  );
}

const FIXTURES = join(import.meta.dirname, "../fixtures/eval-transform");

const pixel = (image: Uint8Array, size: number, x: number, y: number) =>
  Array.from(image.subarray((y * size + x) * 3, (y * size + x) * 3 + 3));

describe("evaluation transform", () => {
  it("resizes the short side to 256 for 224 inputs and to the input itself for small ones", () => {
    assert.equal(evalResizeSide(224), 256);
    assert.equal(evalResizeSide(32), 32);
    assert.equal(evalResizeSide(28), 28);
    // torchvision: Resize(256) keeps the aspect and truncates the long side, CenterCrop rounds half to even.
    assert.deepEqual(evalGeometry(500, 375, 224), {
      resized: { width: 341, height: 256 },
      crop: { left: 58, top: 16 },
    });
    assert.deepEqual(evalGeometry(375, 500, 224), {
      resized: { width: 256, height: 341 },
      crop: { left: 16, top: 58 },
    });
    assert.deepEqual(evalGeometry(33, 32, 32), {
      resized: { width: 33, height: 32 },
      crop: { left: 0, top: 0 },
    });
    assert.deepEqual(evalGeometry(35, 32, 32), {
      resized: { width: 35, height: 32 },
      crop: { left: 2, top: 0 },
    });
  });

  it("matches torchvision's Resize + CenterCrop within half a grey level on average (fixtures/eval-transform)", async () => {
    const { cases } = JSON.parse(readFileSync(join(FIXTURES, "cases.json"), "utf8")) as {
      cases: { input: string; size: number; expected: string }[];
    };
    for (const c of cases) {
      const ours = await evalTransform(readFileSync(join(FIXTURES, c.input)), c.size, 3);
      const expected = await sharp(readFileSync(join(FIXTURES, c.expected)))
        .raw()
        .toBuffer();
      assert.equal(ours.length, expected.length);
      let sum = 0;
      for (let i = 0; i < ours.length; i++) sum += Math.abs(ours[i]! - expected[i]!);
      const mae = sum / ours.length;
      // Measured: 0.09 (libvips and PIL round their bilinear reductions differently); lanczos3, 0.7-1.1.
      assert.ok(mae <= 0.5, `${c.input} at ${c.size}: mean absolute error ${mae.toFixed(3)} grey levels`);
      console.log(`${c.input} at ${c.size}: mean absolute error ${mae.toFixed(3)} vs torchvision`);
    }
  });

  it("crops the centre of the resized image", async () => {
    // 96 x 32 -> resized 96 x 32 for a 32 input: the centre third, whose left half is red and right blue.
    const out = await evalTransform(await halves(96, 32), 32, 3);
    assert.equal(out.length, 32 * 32 * 3);
    const [r1, , b1] = pixel(out, 32, 4, 16);
    const [r2, , b2] = pixel(out, 32, 27, 16);
    assert.ok(r1! > 200 && b1! < 60, `left ${pixel(out, 32, 4, 16)}`);
    assert.ok(r2! < 60 && b2! > 200, `right ${pixel(out, 32, 27, 16)}`);
  });

  it("turns an EXIF-rotated JPEG upright before cropping", async () => {
    // Stored 64 x 48 with orientation 6 (shown turned a quarter clockwise): upright it is 48 x 64,
    // red on top and blue below.
    const out = await evalTransform(await halves(64, 48, 6), 32, 3);
    const [rTop, , bTop] = pixel(out, 32, 16, 3);
    const [rBottom, , bBottom] = pixel(out, 32, 16, 28);
    assert.ok(rTop! > 200 && bTop! < 60, `top ${pixel(out, 32, 16, 3)}`);
    assert.ok(rBottom! < 60 && bBottom! > 200, `bottom ${pixel(out, 32, 16, 28)}`);
  });

  it("gives grey, CMYK and alpha images three sRGB channels, or one for a grey encoder", async () => {
    const grey = await sharp({ create: { width: 40, height: 30, channels: 3, background: "#808080" } })
      .grayscale()
      .png()
      .toBuffer();
    const cmyk = await sharp({ create: { width: 40, height: 30, channels: 3, background: "#ff0000" } })
      .toColourspace("cmyk")
      .jpeg()
      .toBuffer();
    const alpha = await sharp({
      create: { width: 30, height: 40, channels: 4, background: { r: 0, g: 255, b: 0, alpha: 0.5 } },
    })
      .png()
      .toBuffer();
    const g = await evalTransform(grey, 28, 3);
    assert.equal(g.length, 28 * 28 * 3);
    assert.ok(Math.abs(g[0]! - 128) <= 2 && g[0] === g[1] && g[1] === g[2], `${pixel(g, 28, 0, 0)}`);
    const c = await evalTransform(cmyk, 28, 3);
    const [r, gr, b] = pixel(c, 28, 10, 10);
    assert.ok(r! > 200 && gr! < 60 && b! < 60, `CMYK red reads ${pixel(c, 28, 10, 10)}`);
    assert.equal((await evalTransform(alpha, 28, 3)).length, 28 * 28 * 3);
    const one = await evalTransform(await halves(64, 64), 28, 1);
    assert.equal(one.length, 28 * 28);
  });

  it("fails on a broken file with the sample's label", async () => {
    const truncated = (await halves(64, 64)).subarray(0, 300);
    await assert.rejects(evalTransform(truncated, 32, 3, "sample 7"), (e: unknown) => {
      assert.ok(e instanceof DecodeError);
      assert.match(e.message, /^sample 7: cannot decode/);
      return true;
    });
    await assert.rejects(evalTransform(new Uint8Array([1, 2, 3]), 32, 3), DecodeError);
  });
});
