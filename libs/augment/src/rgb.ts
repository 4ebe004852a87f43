// The AdCo / MoCo v2 augmentation of RGB photos, on decoded pixels (H x W x 3 uint8):
//   RandomResizedCrop(size, scale) -> ColorJitter(0.4, 0.4, 0.4, 0.1) p 0.8 -> RandomGrayscale p 0.2
//   -> GaussianBlur(sigma 0.1-2.0) p 0.5 -> RandomHorizontalFlip
// and its multi-crop variant (several crop sizes and scale ranges). Decoding is sharp's job
// (decode.ts); this file is plain TypeScript so a view depends only on its seed.
import type { ViewRandom } from "./seed.js";

export interface CropOptions {
  readonly size: number;
  readonly scale: readonly [number, number];
}

export interface ColorOptions {
  readonly jitter: readonly [number, number, number, number]; // brightness, contrast, saturation, hue
  readonly jitterP: number;
  readonly grayscaleP: number;
  readonly blurP: number;
  readonly blurSigma: readonly [number, number];
  readonly flipP: number;
}

export const MOCO_V2_COLOR: ColorOptions = {
  jitter: [0.4, 0.4, 0.4, 0.1],
  jitterP: 0.8,
  grayscaleP: 0.2,
  blurP: 0.5,
  blurSigma: [0.1, 2.0],
  flipP: 0.5,
};

/** The two-view crop: 224 pixels, scale 0.2-1.0. */
export const MOCO_V2_CROP: CropOptions = { size: 224, scale: [0.2, 1.0] };

/** AdCo's multi-crop: sizes 224/192/160/128/96 with these scale ranges (one view each). */
export const ADCO_MULTI_CROP: readonly CropOptions[] = [
  { size: 224, scale: [0.2, 1.0] },
  { size: 192, scale: [0.172, 0.86] },
  { size: 160, scale: [0.143, 0.715] },
  { size: 128, scale: [0.114, 0.571] },
  { size: 96, scale: [0.086, 0.429] },
];

export interface Pixels {
  readonly data: Uint8Array;
  readonly height: number;
  readonly width: number;
}

/** torchvision's RandomResizedCrop parameters (10 tries, then a centred crop of clamped ratio). */
export function cropBox(height: number, width: number, scale: readonly [number, number], random: ViewRandom) {
  const area = height * width;
  for (let attempt = 0; attempt < 10; attempt++) {
    const target = area * random.uniform(scale[0], scale[1]);
    const aspect = Math.exp(random.uniform(Math.log(3 / 4), Math.log(4 / 3)));
    const w = Math.round(Math.sqrt(target * aspect));
    const h = Math.round(Math.sqrt(target / aspect));
    if (w > 0 && h > 0 && w <= width && h <= height) {
      return {
        top: Math.floor(random.next() * (height - h + 1)),
        left: Math.floor(random.next() * (width - w + 1)),
        h,
        w,
      };
    }
  }
  const side = Math.min(height, width);
  return { top: Math.floor((height - side) / 2), left: Math.floor((width - side) / 2), h: side, w: side };
}

/** One augmented RGB view (size x size x 3 uint8) of src. */
export function augmentRgb(
  src: Pixels,
  crop: CropOptions,
  color: ColorOptions,
  random: ViewRandom,
): Uint8Array {
  const { top, left, h, w } = cropBox(src.height, src.width, crop.scale, random);
  const size = crop.size;
  const flip = random.chance(color.flipP);
  const out = new Float32Array(size * size * 3);
  // Bilinear resize of the box to size x size (pixel centres aligned, as PIL/torchvision).
  for (let y = 0; y < size; y++) {
    const fy = Math.min(src.height - 1, Math.max(0, top + ((y + 0.5) * h) / size - 0.5));
    const y0 = Math.floor(fy);
    const y1 = Math.min(src.height - 1, y0 + 1);
    const wy = fy - y0;
    for (let x = 0; x < size; x++) {
      const xs = flip ? size - 1 - x : x;
      const fx = Math.min(src.width - 1, Math.max(0, left + ((xs + 0.5) * w) / size - 0.5));
      const x0 = Math.floor(fx);
      const x1 = Math.min(src.width - 1, x0 + 1);
      const wx = fx - x0;
      for (let c = 0; c < 3; c++) {
        const a =
          src.data[(y0 * src.width + x0) * 3 + c]! * (1 - wx) + src.data[(y0 * src.width + x1) * 3 + c]! * wx;
        const b =
          src.data[(y1 * src.width + x0) * 3 + c]! * (1 - wx) + src.data[(y1 * src.width + x1) * 3 + c]! * wx;
        out[(y * size + x) * 3 + c] = (a * (1 - wy) + b * wy) / 255;
      }
    }
  }
  if (random.chance(color.jitterP)) colorJitter(out, color.jitter, random);
  if (random.chance(color.grayscaleP)) grayscale(out);
  if (random.chance(color.blurP)) blurRgb(out, size, random.uniform(color.blurSigma[0], color.blurSigma[1]));
  const bytes = new Uint8Array(out.length);
  for (let i = 0; i < out.length; i++) bytes[i] = Math.round(Math.min(1, Math.max(0, out[i]!)) * 255);
  return bytes;
}

function luma(p: Float32Array, i: number): number {
  return 0.299 * p[i]! + 0.587 * p[i + 1]! + 0.114 * p[i + 2]!;
}

/** Brightness, contrast, saturation, hue, in that order (torchvision shuffles the order; we keep one). */
function colorJitter(p: Float32Array, [b, c, s, hue]: readonly number[], random: ViewRandom): void {
  const brightness = random.uniform(Math.max(0, 1 - b!), 1 + b!);
  const contrast = random.uniform(Math.max(0, 1 - c!), 1 + c!);
  const saturation = random.uniform(Math.max(0, 1 - s!), 1 + s!);
  const hueShift = random.uniform(-hue!, hue!);
  let mean = 0;
  for (let i = 0; i < p.length; i += 3) {
    for (let k = 0; k < 3; k++) p[i + k] = Math.min(1, p[i + k]! * brightness);
    mean += luma(p, i);
  }
  mean /= p.length / 3;
  for (let i = 0; i < p.length; i += 3) {
    for (let k = 0; k < 3; k++) p[i + k] = clamp01((p[i + k]! - mean) * contrast + mean);
    const g = luma(p, i);
    for (let k = 0; k < 3; k++) p[i + k] = clamp01((p[i + k]! - g) * saturation + g);
    if (hueShift !== 0) shiftHue(p, i, hueShift);
  }
}

function clamp01(v: number): number {
  return v < 0 ? 0 : v > 1 ? 1 : v;
}

function shiftHue(p: Float32Array, i: number, shift: number): void {
  const [r, g, b] = [p[i]!, p[i + 1]!, p[i + 2]!];
  const max = Math.max(r, g, b);
  const min = Math.min(r, g, b);
  const delta = max - min;
  if (delta === 0) return;
  let h = max === r ? ((g - b) / delta) % 6 : max === g ? (b - r) / delta + 2 : (r - g) / delta + 4;
  h = (((h / 6 + shift) % 1) + 1) % 1;
  const s = delta / max;
  const v = max;
  const sector = Math.floor(h * 6);
  const f = h * 6 - sector;
  const [pp, q, t] = [v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)];
  const rgb = [
    [v, t, pp],
    [q, v, pp],
    [pp, v, t],
    [pp, q, v],
    [t, pp, v],
    [v, pp, q],
  ][sector % 6]!;
  p[i] = rgb[0]!;
  p[i + 1] = rgb[1]!;
  p[i + 2] = rgb[2]!;
}

function grayscale(p: Float32Array): void {
  for (let i = 0; i < p.length; i += 3) {
    const g = luma(p, i);
    p[i] = p[i + 1] = p[i + 2] = g;
  }
}

/** Separable Gaussian blur of an RGB image in place, radius ceil(2 sigma), edges clamped. */
function blurRgb(p: Float32Array, size: number, sigma: number): void {
  const radius = Math.max(1, Math.ceil(2 * sigma));
  const kernel = new Float32Array(2 * radius + 1);
  let total = 0;
  for (let i = -radius; i <= radius; i++)
    total += kernel[i + radius] = Math.exp(-(i * i) / (2 * sigma * sigma));
  for (let i = 0; i < kernel.length; i++) kernel[i]! /= total;
  const tmp = new Float32Array(p.length);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      for (let c = 0; c < 3; c++) {
        let v = 0;
        for (let k = -radius; k <= radius; k++) {
          const xx = Math.min(size - 1, Math.max(0, x + k));
          v += kernel[k + radius]! * p[(y * size + xx) * 3 + c]!;
        }
        tmp[(y * size + x) * 3 + c] = v;
      }
    }
  }
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      for (let c = 0; c < 3; c++) {
        let v = 0;
        for (let k = -radius; k <= radius; k++) {
          const yy = Math.min(size - 1, Math.max(0, y + k));
          v += kernel[k + radius]! * tmp[(yy * size + x) * 3 + c]!;
        }
        p[(y * size + x) * 3 + c] = v;
      }
    }
  }
}
