// ColorJitter and RandomGrayscale on RGB uint8 pixels, as torchvision applies them to PIL images
// (Pillow's C code: ImageEnhance blends in float32 truncated to uint8 after every adjustment, luma
// L = (19595 R + 38470 G + 7471 B + 2^15) >> 16, hue shifted in Pillow's 8-bit HSV). Each op clips
// before the next, so the ops cannot be folded into one 3x4 matrix without leaving torchvision: a
// YIQ rotation for hue (DALI's) measured 10-25 grey levels from Pillow's HSV shift on saturated
// colours. The ops run in one wasm SIMD module (../wasm/colour.wat), one pass each over the view,
// which is copied into the module's memory once and out once and stays in cache between the passes
// (contrast adds one pass for its mean luma); the TypeScript ops below are its reference in the
// tests.
import { COLOUR_WASM } from "./colour-wasm.js";
import type { ColourOp } from "./rgb.js";
import { instantiate, memoryOf, type WasmMemory } from "./wasm.js";

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

const INV_255 = 1 / 255;

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
  // x / 255 as x * (1 / 255): equal over every v, s and f * s that can occur (checked exhaustively,
  // 33.6M cases), and cheaper.
  const p = Math.floor(v * (255.0 - us) * INV_255 + 0.5);
  const q = Math.floor(v * (255.0 - fs) * INV_255 + 0.5);
  const u = Math.floor(v * (255.0 - us + fs) * INV_255 + 0.5);
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

/** Brightness or contrast as a table of its 256 results (each channel value alone decides). */
function blendTable(pivot: number, factor: number): Uint8Array {
  const alpha = f32(factor);
  return Uint8Array.from({ length: 256 }, (_, x) => blend(pivot, x, alpha));
}

function applyTable(data: Uint8Array, table: Uint8Array): void {
  for (let i = 0; i < data.length; i++) data[i] = table[data[i]!]!;
}

function lumaSumOf(data: Uint8Array): number {
  let sum = 0;
  for (let p = 0; p < data.length; p += 3) sum += luma(data[p]!, data[p + 1]!, data[p + 2]!);
  return sum;
}

function applySaturation(data: Uint8Array, factor: number): void {
  const alpha = f32(factor);
  for (let p = 0; p < data.length; p += 3) {
    const r = data[p]!;
    const g = data[p + 1]!;
    const b = data[p + 2]!;
    const l = luma(r, g, b);
    data[p] = blend(l, r, alpha);
    data[p + 1] = blend(l, g, alpha);
    data[p + 2] = blend(l, b, alpha);
  }
}

function applyHue(data: Uint8Array, factor: number): void {
  const shift = hueShift(factor);
  const t = tables();
  for (let p = 0; p < data.length; p += 3) {
    const rgb = shiftHue(data[p]!, data[p + 1]!, data[p + 2]!, shift, t);
    data[p] = rgb >> 16;
    data[p + 1] = (rgb >> 8) & 255;
    data[p + 2] = rgb & 255;
  }
}

function applyGrayscale(data: Uint8Array): void {
  for (let p = 0; p < data.length; p += 3)
    data[p] = data[p + 1] = data[p + 2] = luma(data[p]!, data[p + 1]!, data[p + 2]!);
}

/** Copies src into dst with each row of `width` pixels mirrored. */
function flipRows(src: Uint8Array, dst: Uint8Array, width: number): void {
  const rowBytes = width * 3;
  for (let row = 0; row < src.length; row += rowBytes) {
    for (let x = 0; x < width; x++) {
      const from = row + 3 * x;
      const to = row + rowBytes - 3 - 3 * x;
      dst[to] = src[from]!;
      dst[to + 1] = src[from + 1]!;
      dst[to + 2] = src[from + 2]!;
    }
  }
}

interface ColourKernel {
  readonly memory: WasmMemory;
  blend(data: number, bytes: number, pivot: number, factor: number): void;
  luma_sum(data: number, pixels: number): number;
  saturation(data: number, pixels: number, factor: number): void;
  grayscale(data: number, pixels: number): void;
  hue(data: number, pixels: number, shift: number): void;
}
let colourKernel: ColourKernel | undefined;
/** Where ../wasm/colour.wat expects each hue table, and where the pixels go after them. */
const COLOUR_AT = { hue: 0, sat: 196608, fs: 262400, data: 524544 };
/** Bytes after the pixels that the 16-byte and 4-pixel steps may read and write. */
const SLACK = 16;

function kernel(): ColourKernel {
  if (colourKernel) return colourKernel;
  const k = instantiate<ColourKernel>(COLOUR_WASM);
  const memory = memoryOf(k.memory, COLOUR_AT.data);
  const t = tables();
  memory.set(t.hue, COLOUR_AT.hue);
  memory.set(t.sat, COLOUR_AT.sat);
  memory.set(new Uint8Array(t.fs.buffer, t.fs.byteOffset, t.fs.byteLength), COLOUR_AT.fs);
  return (colourKernel = k);
}

/** Contrast's pivot: ImageEnhance's int(mean + 0.5) of the luma of the image as it is now. */
function contrastPivot(lumaSum: number, pixels: number): number {
  return Math.trunc(lumaSum / pixels + 0.5);
}

/** applyColour through the wasm kernels: the pixels copied into the kernel's memory once, out once. */
function applyColourWasm(
  src: Uint8Array,
  dst: Uint8Array,
  ops: readonly ColourOp[],
  grayscale: boolean,
  flipWidth: number,
): void {
  const k = kernel();
  const at = COLOUR_AT.data;
  const pixels = src.length / 3;
  const memory = memoryOf(k.memory, at + src.length + SLACK);
  memory.set(src, at);
  for (const op of ops) {
    const factor = f32(op.factor);
    if (op.kind === "brightness") k.blend(at, src.length, 0, factor);
    else if (op.kind === "contrast")
      k.blend(at, src.length, contrastPivot(k.luma_sum(at, pixels), pixels), factor);
    else if (op.kind === "saturation") k.saturation(at, pixels, factor);
    else k.hue(at, pixels, hueShift(op.factor));
  }
  if (grayscale) k.grayscale(at, pixels);
  const result = memory.subarray(at, at + src.length);
  if (flipWidth > 0) flipRows(result, dst, flipWidth);
  else dst.set(result);
}

/**
 * ColorJitter (its ops in the drawn order), then RandomGrayscale (replicated to three channels),
 * then a horizontal flip if `flipWidth` (the row length in pixels) is set, from src (rows of
 * width x 3 bytes) into dst. src and dst may be the same array only without a flip. Matches
 * torchvision 0.14 on PIL images exactly (libs/augment/fixtures/torchvision). `simd` false runs the
 * ops in TypeScript instead of the wasm kernels (the kernels' reference in the tests): one tight
 * loop per op, adjacent brightness and contrast sharing one table.
 */
export function applyColour(
  src: Uint8Array,
  dst: Uint8Array,
  jitter: readonly ColourOp[] | undefined,
  grayscale: boolean,
  flipWidth = 0,
  simd = true,
): void {
  const ops = jitter ?? [];
  if (simd) return applyColourWasm(src, dst, ops, grayscale, flipWidth);
  const work = flipWidth > 0 ? new Uint8Array(src.length) : dst;
  if (work !== src) work.set(src);
  for (let k = 0; k < ops.length; k++) {
    const op = ops[k]!;
    if (op.kind === "saturation") applySaturation(work, op.factor);
    else if (op.kind === "hue") applyHue(work, op.factor);
    else {
      // Contrast blends with the mean luma of the image as it is when contrast runs;
      // brightness and contrast that follow each other compose into one table.
      let table = identity;
      for (; k < ops.length && (ops[k]!.kind === "brightness" || ops[k]!.kind === "contrast"); k++) {
        const next = ops[k]!;
        const pivot =
          next.kind === "brightness" ? 0 : contrastPivot(lumaSumOfMapped(work, table), work.length / 3);
        const step = blendTable(pivot, next.factor);
        table = table.map((x) => step[x]!);
      }
      k--;
      applyTable(work, table);
    }
  }
  if (grayscale) applyGrayscale(work);
  if (flipWidth > 0) flipRows(work, dst, flipWidth);
}

const identity = Uint8Array.from({ length: 256 }, (_, x) => x);

/** The luma sum of data as `table` would map it, without writing it. */
function lumaSumOfMapped(data: Uint8Array, table: Uint8Array): number {
  if (table === identity) return lumaSumOf(data);
  let sum = 0;
  for (let p = 0; p < data.length; p += 3)
    sum += luma(table[data[p]!]!, table[data[p + 1]!]!, table[data[p + 2]!]!);
  return sum;
}
