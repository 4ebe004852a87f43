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

/** Writes one pixel's Pillow HSV hue shift (torchvision's adjust_hue) into out[0..2]. */
function shiftHue(r: number, g: number, b: number, shift: number, out: Int32Array): void {
  const maxc = Math.max(r, g, b);
  const minc = Math.min(r, g, b);
  if (maxc === minc) {
    // Grey: hue 0 and saturation 0, which hsv2rgb returns unchanged whatever the shift.
    out[0] = r;
    out[1] = g;
    out[2] = b;
    return;
  }
  // rgb2hsv_row, with Pillow's float32 and double steps.
  const cr = f32(maxc - minc);
  const s = f32(cr / maxc);
  const rc = f32((maxc - r) / cr);
  const gc = f32((maxc - g) / cr);
  const bc = f32((maxc - b) / cr);
  let h: number;
  if (r === maxc) h = f32(bc - gc);
  else if (g === maxc) h = f32(2.0 + rc - bc);
  else h = f32(4.0 + gc - rc);
  h = f32((h / 6.0 + 1.0) % 1.0);
  const uh = Math.min(255, Math.max(0, Math.trunc(h * 255.0)));
  const us = Math.min(255, Math.max(0, Math.trunc(s * 255.0)));
  // numpy's uint8 addition wraps around.
  const hue = (uh + shift) & 255;
  // hsv2rgb.
  const v = maxc;
  if (us === 0) {
    out[0] = out[1] = out[2] = v;
    return;
  }
  const i = Math.floor((hue * 6.0) / 255.0);
  const f = f32((hue * 6.0) / 255.0 - i);
  const fs = f32(f * us);
  const clip = (x: number) => Math.min(255, Math.max(0, x));
  const p = clip(Math.round((v * (255.0 - us)) / 255.0));
  const q = clip(Math.round((v * (255.0 - fs)) / 255.0));
  const t = clip(Math.round((v * (255.0 - us + fs)) / 255.0));
  switch (i % 6) {
    case 0:
      [out[0], out[1], out[2]] = [v, t, p];
      break;
    case 1:
      [out[0], out[1], out[2]] = [q, v, p];
      break;
    case 2:
      [out[0], out[1], out[2]] = [p, v, t];
      break;
    case 3:
      [out[0], out[1], out[2]] = [p, q, v];
      break;
    case 4:
      [out[0], out[1], out[2]] = [t, p, v];
      break;
    default:
      [out[0], out[1], out[2]] = [v, p, q];
  }
}

/** numpy's np.uint8(hue_factor * 255): truncated towards zero, then wrapped. */
function hueShift(factor: number): number {
  return Math.trunc(factor * 255) & 255;
}

/**
 * Applies `ops` (in order), then grayscale, to pixels [start, end) of src, writing dst. `mean` is
 * the contrast pivot (ignored when no op is contrast). Returns the sum of the result's luma, for a
 * contrast that follows. `flipWidth` > 0 mirrors each row of that many pixels while writing.
 */
function pass(
  src: Uint8Array,
  dst: Uint8Array,
  pixels: number,
  ops: readonly ColourOp[],
  mean: number,
  grayscale: boolean,
  flipWidth: number,
): number {
  const rgb = new Int32Array(3);
  const alphas = ops.map((op) => f32(op.factor));
  const kinds = ops.map((op) => op.kind);
  const shifts = ops.map((op) => (op.kind === "hue" ? hueShift(op.factor) : 0));
  let lumaSum = 0;
  for (let p = 0; p < pixels; p++) {
    let r = src[3 * p]!;
    let g = src[3 * p + 1]!;
    let b = src[3 * p + 2]!;
    for (let k = 0; k < kinds.length; k++) {
      const a = alphas[k]!;
      switch (kinds[k]) {
        case "brightness":
          [r, g, b] = [blend(0, r, a), blend(0, g, a), blend(0, b, a)];
          break;
        case "contrast":
          [r, g, b] = [blend(mean, r, a), blend(mean, g, a), blend(mean, b, a)];
          break;
        case "saturation": {
          const l = luma(r, g, b);
          [r, g, b] = [blend(l, r, a), blend(l, g, a), blend(l, b, a)];
          break;
        }
        case "hue":
          shiftHue(r, g, b, shifts[k]!, rgb);
          [r, g, b] = [rgb[0]!, rgb[1]!, rgb[2]!];
          break;
      }
    }
    if (grayscale) r = g = b = luma(r, g, b);
    else lumaSum += luma(r, g, b);
    let o = 3 * p;
    if (flipWidth > 0) {
      const x = p % flipWidth;
      o = 3 * (p - x + flipWidth - 1 - x);
    }
    dst[o] = r;
    dst[o + 1] = g;
    dst[o + 2] = b;
  }
  return lumaSum;
}

function lumaSumOf(src: Uint8Array, pixels: number): number {
  let sum = 0;
  for (let p = 0; p < pixels; p++) sum += luma(src[3 * p]!, src[3 * p + 1]!, src[3 * p + 2]!);
  return sum;
}

/**
 * ColorJitter (its ops in the drawn order), then RandomGrayscale (replicated to three channels),
 * then, if `flipWidth` is set, a horizontal flip, from src (width x height x 3) into dst. src and
 * dst may be the same array only without a flip. Matches torchvision 0.14 on PIL images exactly
 * (libs/augment/fixtures/torchvision).
 */
export function applyColour(
  src: Uint8Array,
  dst: Uint8Array,
  jitter: readonly ColourOp[] | undefined,
  grayscale: boolean,
  flipWidth = 0,
): void {
  const pixels = src.length / 3;
  const ops = jitter ?? [];
  const at = ops.findIndex((op) => op.kind === "contrast");
  if (at < 0) {
    pass(src, dst, pixels, ops, 0, grayscale, flipWidth);
    return;
  }
  // Contrast blends with the mean luma of the image as it is when contrast runs (ImageEnhance:
  // int(mean + 0.5)), so the ops before it run as a first pass.
  let input = src;
  let sum: number;
  if (at === 0) {
    sum = lumaSumOf(src, pixels);
  } else {
    input = new Uint8Array(src.length);
    sum = pass(src, input, pixels, ops.slice(0, at), 0, false, 0);
  }
  const mean = Math.trunc(sum / pixels + 0.5);
  pass(input, dst, pixels, ops.slice(at), mean, grayscale, flipWidth);
}
