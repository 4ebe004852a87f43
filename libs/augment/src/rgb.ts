// The AdCo / MoCo v2 augmentation of RGB photos, on decoded pixels (H x W x 3 uint8):
//   RandomResizedCrop(size, scale) -> ColorJitter(0.4, 0.4, 0.4, 0.1) p 0.8 -> RandomGrayscale p 0.2
//   -> GaussianBlur(sigma 0.1-2.0) p 0.5 -> RandomHorizontalFlip
// and its multi-crop variant (several crop sizes and scale ranges). This file draws every random
// choice of a view from its seed; rgb-sharp.ts applies them with libvips.
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

/** The random choices of one RGB view, drawn in a fixed order from the view's generator. */
export interface RgbViewParams {
  readonly box: { top: number; left: number; h: number; w: number };
  readonly flip: boolean;
  /** Brightness, contrast, saturation factors and hue shift (fraction of a turn); undefined = no jitter. */
  readonly jitter?: readonly [number, number, number, number];
  readonly grayscale: boolean;
  /** Blur sigma in output pixels; undefined = no blur. */
  readonly blurSigma?: number;
}

export function rgbViewParams(
  height: number,
  width: number,
  crop: CropOptions,
  color: ColorOptions,
  random: ViewRandom,
): RgbViewParams {
  const box = cropBox(height, width, crop.scale, random);
  const flip = random.chance(color.flipP);
  const [b, c, s, h] = color.jitter;
  const jitter = random.chance(color.jitterP)
    ? ([
        random.uniform(Math.max(0, 1 - b), 1 + b),
        random.uniform(Math.max(0, 1 - c), 1 + c),
        random.uniform(Math.max(0, 1 - s), 1 + s),
        random.uniform(-h, h),
      ] as const)
    : undefined;
  const grayscale = random.chance(color.grayscaleP);
  const blurSigma = random.chance(color.blurP)
    ? random.uniform(color.blurSigma[0], color.blurSigma[1])
    : undefined;
  return { box, flip, jitter, grayscale, blurSigma };
}
