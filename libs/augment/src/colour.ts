// ColorJitter and RandomGrayscale on RGB uint8 pixels, as torchvision applies them to PIL images
// (Pillow's C code: ImageEnhance blends in float32 truncated to uint8 after every adjustment, luma
// L = (19595 R + 38470 G + 7471 B + 2^15) >> 16, hue shifted in Pillow's 8-bit HSV). Each op clips
// before the next, so the ops cannot be folded into one 3x4 matrix without leaving torchvision: a
// YIQ rotation for hue (DALI's) measured 10-25 grey levels from Pillow's HSV shift on saturated
// colours. What can be shared is shared: all the ops of a view run per pixel in at most two passes,
// split at the one op that needs a whole-image statistic (contrast's mean luma).
import type { ColourOp } from "./rgb.js";

const f32 = Math.fround;

/** Pillow's RGB -> L. */
export function luma(r: number, g: number, b: number): number {
  return (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16;
}

/** Pillow's Image.blend of one uint8 value: in1 + alpha (in2 - in1) in float32, clipped, truncated. */
function blend(in1: number, in2: number, alpha: number): number {
  const t = f32(in1 + f32(alpha * (in2 - in1)));
  return t <= 0 ? 0 : t >= 255 ? 255 : Math.trunc(t);
}

/**
 * Pillow's rgb2hsv_row (float32 and double steps as in its C code) for a pixel whose largest channel
 * is `maxc` at `which` (0 red, 1 green, 2 blue), the other two `da` and `db` below it in channel
 * order: hue and saturation bytes.
 */
function pillowHueSat(which: number, da: number, db: number, maxc: number): [number, number] {
  const cr = f32(Math.max(da, db));
  const s = f32(cr / maxc);
  let h: number;
  if (which === 0)
    h = f32(f32(db / cr) - f32(da / cr)); // bc - gc
  else if (which === 1)
    h = f32(2.0 + f32(da / cr) - f32(db / cr)); // 2 + rc - bc
  else h = f32(4.0 + f32(db / cr) - f32(da / cr)); // 4 + gc - rc
  // fmod(h / 6 + 1, 1): the sum lies in [5/6, 11/6), so one exact subtraction does it.
  const turn = h / 6.0 + 1.0;
  h = f32(turn >= 1.0 ? turn - 1.0 : turn);
  return [Math.trunc(h * 255.0), Math.trunc(s * 255.0)];
}

/**
 * Tables of every exact intermediate of Pillow's HSV round trip that depends on two bytes, built
 * once: hue bytes by (max channel, its two distances below the max), saturation bytes by (range,
 * max), and hsv2rgb's sector and f * s by (hue, saturation). What is left per pixel is a few
 * lookups and hsv2rgb's two divisions.
 */
interface HueTables {
  readonly hue: Uint8Array; // [which][da][db]
  readonly sat: Uint8Array; // [range][max]
  readonly sector: Uint8Array; // [hue]
  readonly fs: Float32Array; // [hue][sat]
}
let hueTables: HueTables | undefined;

function tables(): HueTables {
  if (hueTables) return hueTables;
  const hue = new Uint8Array(3 * 65536);
  const sat = new Uint8Array(65536);
  for (let which = 0; which < 3; which++) {
    for (let da = 0; da < 256; da++) {
      for (let db = 0; db < 256; db++) {
        if (da === 0 && db === 0) continue; // grey, handled before any lookup
        hue[(which << 16) | (da << 8) | db] = pillowHueSat(which, da, db, 255)[0];
      }
    }
  }
  for (let range = 1; range < 256; range++) {
    for (let maxc = range; maxc < 256; maxc++) sat[(range << 8) | maxc] = pillowHueSat(0, range, 0, maxc)[1];
  }
  const sector = new Uint8Array(256);
  const fs = new Float32Array(65536);
  for (let h = 0; h < 256; h++) {
    const i = Math.floor((h * 6.0) / 255.0);
    sector[h] = i % 6;
    const f = f32((h * 6.0) / 255.0 - i);
    for (let us = 0; us < 256; us++) fs[(h << 8) | us] = f32(f * us);
  }
  return (hueTables = { hue, sat, sector, fs });
}

/** One pixel's Pillow HSV hue shift (torchvision's adjust_hue), packed as r << 16 | g << 8 | b. */
function shiftHue(r: number, g: number, b: number, shift: number, t: HueTables): number {
  // The hue table's index: which channel is largest, and the other two's distances below it.
  let maxc: number;
  let index: number;
  if (r >= g && r >= b) {
    maxc = r;
    index = ((r - g) << 8) | (r - b);
  } else if (g >= b) {
    maxc = g;
    index = (1 << 16) | ((g - r) << 8) | (g - b);
  } else {
    maxc = b;
    index = (2 << 16) | ((b - r) << 8) | (b - g);
  }
  const minc = r < g ? (r < b ? r : b) : g < b ? g : b;
  // Grey: hue 0 and saturation 0, which hsv2rgb returns unchanged whatever the shift.
  if (maxc === minc) return (r << 16) | (g << 8) | b;
  const us = t.sat[((maxc - minc) << 8) | maxc]!;
  const v = maxc;
  if (us === 0) return (v << 16) | (v << 8) | v;
  // numpy's uint8 addition wraps around; then hsv2rgb. Rounded halves go up (C's round() on
  // positive values); all three stay within 0..v.
  const hue = (t.hue[index]! + shift) & 255;
  const fs = t.fs[(hue << 8) | us]!;
  const p = Math.floor((v * (255.0 - us)) / 255.0 + 0.5);
  const q = Math.floor((v * (255.0 - fs)) / 255.0 + 0.5);
  const u = Math.floor((v * (255.0 - us + fs)) / 255.0 + 0.5);
  switch (t.sector[hue]) {
    case 0:
      return (v << 16) | (u << 8) | p;
    case 1:
      return (q << 16) | (v << 8) | p;
    case 2:
      return (p << 16) | (v << 8) | u;
    case 3:
      return (p << 16) | (q << 8) | v;
    case 4:
      return (u << 16) | (p << 8) | v;
    default:
      return (v << 16) | (p << 8) | q;
  }
}

/** numpy's np.uint8(hue_factor * 255): truncated towards zero, then wrapped. */
function hueShift(factor: number): number {
  return Math.trunc(factor * 255) & 255;
}

const TABLE = 0;
const SATURATION = 1;
const HUE = 2;

/**
 * A run of ops compiled for the per-pixel loop: brightness and contrast act on each channel value
 * alone, so consecutive ones become one exact 256-entry table; saturation and hue stay per pixel.
 */
interface Steps {
  readonly codes: number[];
  readonly tables: Uint8Array[];
  readonly values: number[];
}

function compile(ops: readonly ColourOp[], mean: number): Steps {
  const steps: Steps = { codes: [], tables: [], values: [] };
  for (const op of ops) {
    const alpha = f32(op.factor);
    if (op.kind === "brightness" || op.kind === "contrast") {
      const pivot = op.kind === "brightness" ? 0 : mean;
      const last = steps.codes.length - 1;
      let table = steps.codes[last] === TABLE ? steps.tables[last]! : undefined;
      if (!table) {
        table = Uint8Array.from({ length: 256 }, (_, x) => x);
        steps.codes.push(TABLE);
        steps.tables.push(table);
        steps.values.push(0);
      }
      for (let x = 0; x < 256; x++) table[x] = blend(pivot, table[x]!, alpha);
    } else {
      steps.codes.push(op.kind === "saturation" ? SATURATION : HUE);
      steps.tables.push(new Uint8Array(0));
      steps.values.push(op.kind === "saturation" ? alpha : hueShift(op.factor));
    }
  }
  return steps;
}

/**
 * Applies `ops` (in order), then grayscale, to src, writing dst, each row mirrored when `flip`.
 * `mean` is the contrast pivot. Returns the sum of the result's luma, for a contrast that follows.
 */
function pass(
  src: Uint8Array,
  dst: Uint8Array,
  width: number,
  ops: readonly ColourOp[],
  mean: number,
  grayscale: boolean,
  flip: boolean,
): number {
  const { codes, tables: luts, values } = compile(ops, mean);
  const hue = codes.includes(HUE) ? tables() : undefined;
  const n = codes.length;
  const height = src.length / (3 * width);
  let lumaSum = 0;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const at = 3 * (y * width + x);
      let r = src[at]!;
      let g = src[at + 1]!;
      let b = src[at + 2]!;
      for (let k = 0; k < n; k++) {
        const code = codes[k];
        if (code === TABLE) {
          const table = luts[k]!;
          r = table[r]!;
          g = table[g]!;
          b = table[b]!;
        } else if (code === SATURATION) {
          const a = values[k]!;
          const l = luma(r, g, b);
          r = blend(l, r, a);
          g = blend(l, g, a);
          b = blend(l, b, a);
        } else {
          const rgb = shiftHue(r, g, b, values[k]!, hue!);
          r = rgb >> 16;
          g = (rgb >> 8) & 255;
          b = rgb & 255;
        }
      }
      const l = luma(r, g, b);
      lumaSum += l;
      if (grayscale) r = g = b = l;
      const o = flip ? 3 * (y * width + width - 1 - x) : at;
      dst[o] = r;
      dst[o + 1] = g;
      dst[o + 2] = b;
    }
  }
  return lumaSum;
}

function lumaSumOf(src: Uint8Array): number {
  let sum = 0;
  for (let p = 0; p < src.length; p += 3) sum += luma(src[p]!, src[p + 1]!, src[p + 2]!);
  return sum;
}

/**
 * ColorJitter (its ops in the drawn order), then RandomGrayscale (replicated to three channels),
 * then a horizontal flip if `flipWidth` (the row length in pixels) is set, from src (rows of
 * width x 3 bytes) into dst. src and dst may be the same array only without a flip. Matches
 * torchvision 0.14 on PIL images exactly (libs/augment/fixtures/torchvision).
 */
export function applyColour(
  src: Uint8Array,
  dst: Uint8Array,
  jitter: readonly ColourOp[] | undefined,
  grayscale: boolean,
  flipWidth = 0,
): void {
  const width = flipWidth > 0 ? flipWidth : src.length / 3;
  const flip = flipWidth > 0;
  const ops = jitter ?? [];
  const at = ops.findIndex((op) => op.kind === "contrast");
  if (at < 0) {
    pass(src, dst, width, ops, 0, grayscale, flip);
    return;
  }
  // Contrast blends with the mean luma of the image as it is when contrast runs (ImageEnhance:
  // int(mean + 0.5)), so the ops before it run as a first pass.
  let input = src;
  let sum: number;
  if (at === 0) {
    sum = lumaSumOf(src);
  } else {
    input = new Uint8Array(src.length);
    sum = pass(src, input, width, ops.slice(0, at), 0, false, false);
  }
  const mean = Math.trunc(sum / (src.length / 3) + 0.5);
  pass(input, dst, width, ops.slice(at), mean, grayscale, flip);
}
