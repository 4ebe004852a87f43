// Our RGB ops against torchvision 0.14 + Pillow 9.4 on fixed parameters, and our random parameters'
// distributions against torchvision's own draws. The fixtures are written by
// `/usr/bin/python3 tools/reference/augment_fixtures.py` (Debian's python3-torchvision).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import sharp from "sharp";
import { applyColour } from "./colour.js";
import { pilGaussianBlur } from "./pil-blur.js";
import { type ColourOp, cropBox, MOCO_V2_COLOR, MOCO_V2_CROP, type Pixels, rgbViewParams } from "./rgb.js";
import { pilResizedCrop } from "./pil-resize.js";
import { ViewRandom, viewSeed } from "./seed.js";

const dir = fileURLToPath(new URL("../fixtures/torchvision/", import.meta.url));
interface Case {
  name: string;
  op: string;
  params: Record<string, number & number[] & Record<string, number>>;
  input: "source" | "base";
  file: string;
}
const fixtures = JSON.parse(readFileSync(dir + "cases.json", "utf8")) as {
  size: number;
  cases: Case[];
  distributions: {
    resizedCrop: {
      height: number;
      width: number;
      scale: [number, number];
      quantiles: number[];
      areaFraction: number[];
      aspect: number[];
    };
  };
};

async function png(file: string): Promise<Pixels> {
  const { data, info } = await sharp(dir + file)
    .removeAlpha()
    .toColourspace("srgb")
    .raw()
    .toBuffer({ resolveWithObject: true });
  assert.equal(info.channels, 3);
  return { data: new Uint8Array(data), height: info.height, width: info.width };
}

function errors(a: Uint8Array, b: Uint8Array): { mean: number; max: number } {
  assert.equal(a.length, b.length);
  let sum = 0;
  let max = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    sum += d;
    max = Math.max(max, d);
  }
  return { mean: sum / a.length, max };
}

const JITTER_KINDS = ["brightness", "contrast", "saturation", "hue"] as const;

async function ours(c: Case, source: Pixels, base: Pixels): Promise<Uint8Array> {
  const size = fixtures.size;
  const input = c.input === "source" ? source : base;
  const out = new Uint8Array(size * size * 3);
  switch (c.op) {
    case "resizedCrop":
      return pilResizedCrop(input, c.params.box as unknown as Parameters<typeof pilResizedCrop>[1], size);
    case "brightness":
    case "contrast":
    case "saturation":
    case "hue":
      applyColour(input.data, out, [{ kind: c.op, factor: c.params.factor as number }], false);
      return out;
    case "grayscale":
      applyColour(input.data, out, undefined, true);
      return out;
    case "flip":
      applyColour(input.data, out, undefined, false, size);
      return out;
    case "blur":
      out.set(input.data);
      pilGaussianBlur(out, size, size, c.params.sigma as number);
      return out;
    case "jitter": {
      const ops: ColourOp[] = (c.params.order as number[]).map((i) => ({
        kind: JITTER_KINDS[i]!,
        factor: c.params[JITTER_KINDS[i]!] as number,
      }));
      applyColour(input.data, out, ops, false);
      return out;
    }
  }
  throw new Error(`unknown op ${c.op}`);
}

/** The q-quantile of sorted values (linear interpolation, as numpy's default). */
function quantile(sorted: readonly number[], q: number): number {
  const at = q * (sorted.length - 1);
  const lo = Math.floor(at);
  return sorted[lo]! + (sorted[Math.min(sorted.length - 1, lo + 1)]! - sorted[lo]!) * (at - lo);
}

/** Kolmogorov-Smirnov distance between draws and the uniform distribution on [min, max]. */
function ksUniform(values: number[], min: number, max: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  let d = 0;
  sorted.forEach((v, i) => {
    const cdf = (v - min) / (max - min);
    d = Math.max(d, Math.abs(cdf - i / sorted.length), Math.abs(cdf - (i + 1) / sorted.length));
  });
  return d;
}

describe("RGB ops against torchvision 0.14 + Pillow 9.4 on fixed parameters", () => {
  // Each op is Pillow's C code transcribed, so the bound is rounding noise: mean absolute error
  // at most 0.05 grey levels and no pixel off by more than 1 (measured: 0 and 0, bit-exact).
  for (const c of fixtures.cases) {
    it(`${c.name}: ${c.op} ${JSON.stringify(c.params)}`, async () => {
      const [source, base, expected] = await Promise.all([png("source.png"), png("base.png"), png(c.file)]);
      const e = errors(await ours(c, source, base), expected.data);
      assert.ok(e.mean <= 0.05 && e.max <= 1, `${c.name}: mean error ${e.mean.toFixed(3)}, max ${e.max}`);
    });
  }

  it("differs from torchvision when a parameter is off, so the comparison can fail", async () => {
    const [base, expected] = await Promise.all([png("base.png"), png("hue-0.08.png")]);
    const out = new Uint8Array(base.data.length);
    applyColour(base.data, out, [{ kind: "hue", factor: 0.06 }], false);
    assert.ok(errors(out, expected.data).mean > 2);
  });
});

describe("random parameters against torchvision's distributions", () => {
  const draws = 20000;

  it("RandomResizedCrop: area fraction and aspect ratio quantiles match torchvision's draws", () => {
    const d = fixtures.distributions.resizedCrop;
    const areas: number[] = [];
    const aspects: number[] = [];
    for (let i = 0; i < draws; i++) {
      const box = cropBox(d.height, d.width, d.scale, new ViewRandom(viewSeed(5, 0, i, 0)));
      assert.ok(box.top >= 0 && box.left >= 0 && box.top + box.h <= d.height && box.left + box.w <= d.width);
      areas.push((box.h * box.w) / (d.height * d.width));
      aspects.push(box.w / box.h);
    }
    areas.sort((a, b) => a - b);
    aspects.sort((a, b) => a - b);
    // Sampling noise of a quantile over 20000 draws is ~0.004 here; both sides draw, so allow 0.015.
    d.quantiles.forEach((q, i) => {
      const area = quantile(areas, q);
      const aspect = quantile(aspects, q);
      assert.ok(Math.abs(area - d.areaFraction[i]!) < 0.015, `area q${q}: ${area} vs ${d.areaFraction[i]}`);
      assert.ok(Math.abs(aspect - d.aspect[i]!) < 0.02, `aspect q${q}: ${aspect} vs ${d.aspect[i]}`);
    });
  });

  it("RandomResizedCrop falls back to torchvision's centred crop of clamped ratio", () => {
    // An image too narrow for any try at scale 1: the fallback keeps the width, ratio 3/4.
    const random = new ViewRandom(1);
    assert.deepEqual(cropBox(400, 100, [1, 1], random), {
      top: Math.floor((400 - 133) / 2),
      left: 0,
      h: 133,
      w: 100,
    });
    assert.deepEqual(cropBox(100, 100, [2, 2], random), { top: 0, left: 0, h: 100, w: 100 });
  });

  it("ColorJitter, RandomGrayscale, blur and flip: probabilities, factor ranges and random order", () => {
    const counts = { jitter: 0, grayscale: 0, blur: 0, flip: 0 };
    const factors: Record<string, number[]> = { brightness: [], contrast: [], saturation: [], hue: [] };
    const sigmas: number[] = [];
    const orders = new Map<string, number>();
    for (let i = 0; i < draws; i++) {
      const v = rgbViewParams(
        300,
        256,
        MOCO_V2_CROP,
        MOCO_V2_COLOR,
        new ViewRandom(viewSeed(5, 1, i, i % 2)),
      );
      if (v.jitter) {
        counts.jitter++;
        assert.equal(v.jitter.length, 4);
        for (const op of v.jitter) factors[op.kind]!.push(op.factor);
        const order = v.jitter.map((op) => op.kind[0]).join("");
        orders.set(order, (orders.get(order) ?? 0) + 1);
      }
      if (v.grayscale) counts.grayscale++;
      if (v.flip) counts.flip++;
      if (v.blurSigma !== undefined) {
        counts.blur++;
        sigmas.push(v.blurSigma);
      }
    }
    // Standard error of a proportion over 20000 draws is under 0.004: allow 0.015.
    const near = (count: number, p: number, what: string) =>
      assert.ok(Math.abs(count / draws - p) < 0.015, `${what}: ${count / draws} vs ${p}`);
    near(counts.jitter, 0.8, "jitter");
    near(counts.grayscale, 0.2, "grayscale");
    near(counts.blur, 0.5, "blur");
    near(counts.flip, 0.5, "flip");
    // torchvision: factors uniform in [max(0, 1 - 0.4), 1.4], hue uniform in [-0.1, 0.1].
    for (const kind of ["brightness", "contrast", "saturation"]) {
      assert.ok(ksUniform(factors[kind]!, 0.6, 1.4) < 0.02, `${kind} is not uniform on [0.6, 1.4]`);
    }
    assert.ok(ksUniform(factors.hue!, -0.1, 0.1) < 0.02, "hue is not uniform on [-0.1, 0.1]");
    assert.ok(ksUniform(sigmas, 0.1, 2.0) < 0.02, "sigma is not uniform on [0.1, 2]");
    // torch.randperm(4): all 24 orders, each about 1/24 of the jittered views.
    assert.equal(orders.size, 24);
    for (const [order, n] of orders) {
      assert.ok(Math.abs(n / counts.jitter - 1 / 24) < 0.012, `order ${order}: ${n / counts.jitter}`);
    }
  });
});
