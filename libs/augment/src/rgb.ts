// The AdCo / MoCo v2 augmentation of RGB photos, on decoded pixels (H x W x 3 uint8):
//   RandomResizedCrop(size, scale) -> ColorJitter(0.4, 0.4, 0.4, 0.1) p 0.8 -> RandomGrayscale p 0.2
//   -> GaussianBlur(sigma 0.1-2.0) p 0.5 -> RandomHorizontalFlip
// and its multi-crop variant (several crop sizes and scale ranges). This file draws every random
// choice of a view from its seed, as torchvision defines it; rgb-view.ts applies them.
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

/** Python's round(): halves go to the even neighbour, as torchvision's crop sizes do. */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

export interface CropBox {
  readonly top: number;
  readonly left: number;
  readonly h: number;
  readonly w: number;
}

/** The aspect ratio range (width / height) of torchvision's RandomResizedCrop. */
export const CROP_RATIO: readonly [number, number] = [3 / 4, 4 / 3];

/**
 * torchvision's RandomResizedCrop.get_params: 10 tries of an area fraction uniform in `scale` and a
 * log-uniform aspect ratio, then a centred crop of the whole image clamped to the ratio range.
 */
export function cropBox(
  height: number,
  width: number,
  scale: readonly [number, number],
  random: ViewRandom,
): CropBox {
  const area = height * width;
  const [minRatio, maxRatio] = CROP_RATIO;
  for (let attempt = 0; attempt < 10; attempt++) {
    const target = area * random.uniform(scale[0], scale[1]);
    const aspect = Math.exp(random.uniform(Math.log(minRatio), Math.log(maxRatio)));
    const w = roundHalfEven(Math.sqrt(target * aspect));
    const h = roundHalfEven(Math.sqrt(target / aspect));
    if (w > 0 && h > 0 && w <= width && h <= height) {
      return {
        top: Math.floor(random.next() * (height - h + 1)),
        left: Math.floor(random.next() * (width - w + 1)),
        h,
        w,
      };
    }
  }
  const inRatio = width / height;
  let [h, w] = [height, width];
  if (inRatio < minRatio) h = roundHalfEven(w / minRatio);
  else if (inRatio > maxRatio) w = roundHalfEven(h * maxRatio);
  return { top: Math.floor((height - h) / 2), left: Math.floor((width - w) / 2), h, w };
}

/** One of ColorJitter's four adjustments, with its factor (hue: a fraction of a turn, -0.5..0.5). */
export interface ColourOp {
  readonly kind: "brightness" | "contrast" | "saturation" | "hue";
  readonly factor: number;
}

/** ColorJitter's adjustments by torchvision's fn_idx: 0 brightness, 1 contrast, 2 saturation, 3 hue. */
const JITTER_KINDS = ["brightness", "contrast", "saturation", "hue"] as const;

/** The random choices of one RGB view, drawn in a fixed order from the view's generator. */
export interface RgbViewParams {
  readonly box: CropBox;
  readonly flip: boolean;
  /** ColorJitter's four adjustments in the random order they apply; undefined = no jitter. */
  readonly jitter?: readonly ColourOp[];
  readonly grayscale: boolean;
  /** Blur sigma in output pixels (PIL's GaussianBlur radius); undefined = no blur. */
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
  let jitter: ColourOp[] | undefined;
  if (random.chance(color.jitterP)) {
    // torchvision's ranges: [max(0, 1 - x), 1 + x] for the factors, [-h, h] for the hue.
    const factors = color.jitter.map((x, i) =>
      i === 3 ? random.uniform(-x, x) : random.uniform(Math.max(0, 1 - x), 1 + x),
    );
    jitter = random.permutation(4).map((i) => ({ kind: JITTER_KINDS[i]!, factor: factors[i]! }));
  }
  const grayscale = random.chance(color.grayscaleP);
  const blurSigma = random.chance(color.blurP)
    ? random.uniform(color.blurSigma[0], color.blurSigma[1])
    : undefined;
  return {
    box,
    flip,
    ...(jitter ? { jitter } : {}),
    grayscale,
    ...(blurSigma !== undefined ? { blurSigma } : {}),
  };
}
