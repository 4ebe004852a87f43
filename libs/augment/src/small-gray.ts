// The two-view pipeline for small grayscale images (28x28 Fashion-MNIST / MNIST), the MoCo v2 recipe
// cut down to what a one-channel image has: RandomResizedCrop, horizontal flip, brightness/contrast
// jitter (p 0.8), and Gaussian blur (p 0.5). Plain TypeScript on Uint8Array: on 28x28 images sharp's
// per-call overhead costs ~70x more than the work (TOOLCHAIN.md).
import { ViewRandom, viewSeed } from "./seed.js";

export interface SmallGrayOptions {
  /** Output side (square). */
  readonly size: number;
  /** RandomResizedCrop area range as a fraction of the image. */
  readonly scale: readonly [number, number];
  /** Aspect ratio range of the crop. */
  readonly ratio: readonly [number, number];
  readonly flip: number;
  /** Brightness and contrast jitter strength, applied with probability jitterP. */
  readonly brightness: number;
  readonly contrast: number;
  readonly jitterP: number;
  /** Gaussian blur: probability and sigma range in pixels of the output. */
  readonly blurP: number;
  readonly blurSigma: readonly [number, number];
}

export const SMALL_GRAY_DEFAULTS: SmallGrayOptions = {
  size: 28,
  scale: [0.2, 1],
  ratio: [3 / 4, 4 / 3],
  flip: 0.5,
  brightness: 0.4,
  contrast: 0.4,
  jitterP: 0.8,
  blurP: 0.5,
  blurSigma: [0.1, 1],
};

/** Fashion-MNIST pixel statistics over the training set (of x / 255). */
export const FASHION_MNIST_MEAN = 0.286;
export const FASHION_MNIST_STD = 0.353;

/**
 * Writes one augmented view of a height x width uint8 image into out (size x size floats, normalised
 * with mean/std), every random choice drawn from `random`.
 */
export function augmentSmallGray(
  image: Uint8Array,
  height: number,
  width: number,
  random: ViewRandom,
  out: Float32Array,
  options: SmallGrayOptions = SMALL_GRAY_DEFAULTS,
  mean = FASHION_MNIST_MEAN,
  std = FASHION_MNIST_STD,
): void {
  const size = options.size;
  // RandomResizedCrop (torchvision: 10 tries, then the whole image).
  let [cy, cx, ch, cw] = [0, 0, height, width];
  for (let attempt = 0; attempt < 10; attempt++) {
    const area = height * width * random.uniform(options.scale[0], options.scale[1]);
    const logRatio = random.uniform(Math.log(options.ratio[0]), Math.log(options.ratio[1]));
    const aspect = Math.exp(logRatio);
    const w = Math.sqrt(area * aspect);
    const h = Math.sqrt(area / aspect);
    if (w <= width && h <= height) {
      [ch, cw] = [h, w];
      cy = random.uniform(0, height - h);
      cx = random.uniform(0, width - w);
      break;
    }
  }
  const flip = random.chance(options.flip);
  const jitter = random.chance(options.jitterP);
  const brightness = jitter ? random.uniform(1 - options.brightness, 1 + options.brightness) : 1;
  const contrast = jitter ? random.uniform(1 - options.contrast, 1 + options.contrast) : 1;
  const blur = random.chance(options.blurP);
  const sigma = blur ? random.uniform(options.blurSigma[0], options.blurSigma[1]) : 0;

  // Bilinear resample of the crop to size x size, in [0, 1].
  const sy = ch / size;
  const sx = cw / size;
  let sum = 0;
  for (let y = 0; y < size; y++) {
    const fy = Math.min(height - 1, Math.max(0, cy + (y + 0.5) * sy - 0.5));
    const y0 = Math.floor(fy);
    const y1 = Math.min(height - 1, y0 + 1);
    const wy = fy - y0;
    for (let x = 0; x < size; x++) {
      const xx = flip ? size - 1 - x : x;
      const fx = Math.min(width - 1, Math.max(0, cx + (xx + 0.5) * sx - 0.5));
      const x0 = Math.floor(fx);
      const x1 = Math.min(width - 1, x0 + 1);
      const wx = fx - x0;
      const top = image[y0 * width + x0]! * (1 - wx) + image[y0 * width + x1]! * wx;
      const bottom = image[y1 * width + x0]! * (1 - wx) + image[y1 * width + x1]! * wx;
      const v = ((top * (1 - wy) + bottom * wy) / 255) * brightness;
      out[y * size + x] = v;
      sum += v;
    }
  }
  // Contrast: blend with the mean grey level, as torchvision's adjust_contrast.
  const grey = sum / (size * size);
  for (let i = 0; i < size * size; i++) {
    out[i] = Math.min(1, Math.max(0, (out[i]! - grey) * contrast + grey));
  }
  if (blur) gaussianBlur(out, size, sigma);
  for (let i = 0; i < size * size; i++) out[i] = (out[i]! - mean) / std;
}

/** Separable Gaussian blur in place, radius 2 sigma (at least 1), edges clamped. */
function gaussianBlur(pixels: Float32Array, size: number, sigma: number): void {
  const radius = Math.max(1, Math.ceil(2 * sigma));
  const kernel = new Float32Array(2 * radius + 1);
  let total = 0;
  for (let i = -radius; i <= radius; i++)
    total += kernel[i + radius] = Math.exp(-(i * i) / (2 * sigma * sigma));
  for (let i = 0; i < kernel.length; i++) kernel[i]! /= total;
  const tmp = new Float32Array(size * size);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      let v = 0;
      for (let k = -radius; k <= radius; k++)
        v += kernel[k + radius]! * pixels[y * size + Math.min(size - 1, Math.max(0, x + k))]!;
      tmp[y * size + x] = v;
    }
  }
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      let v = 0;
      for (let k = -radius; k <= radius; k++)
        v += kernel[k + radius]! * tmp[Math.min(size - 1, Math.max(0, y + k)) * size + x]!;
      pixels[y * size + x] = v;
    }
  }
}

/** Normalises an image without augmentation (evaluation input). */
export function normalizeSmallGray(
  image: Uint8Array,
  out: Float32Array,
  mean = FASHION_MNIST_MEAN,
  std = FASHION_MNIST_STD,
): void {
  for (let i = 0; i < image.length; i++) out[i] = (image[i]! / 255 - mean) / std;
}

/**
 * `views` augmented views of each listed sample of a uint8 N x H x W array: result[v] is a
 * batch x size x size float array, seeded by (runSeed, epoch, sample id, view).
 */
export function twoViewBatch(
  images: Uint8Array,
  height: number,
  width: number,
  sampleIds: readonly number[],
  runSeed: number,
  epoch: number,
  views = 2,
  options: SmallGrayOptions = SMALL_GRAY_DEFAULTS,
): Float32Array[] {
  const pixels = height * width;
  const outSize = options.size * options.size;
  return Array.from({ length: views }, (_, view) => {
    const out = new Float32Array(sampleIds.length * outSize);
    sampleIds.forEach((id, i) => {
      const random = new ViewRandom(viewSeed(runSeed, epoch, id, view));
      augmentSmallGray(
        images.subarray(id * pixels, (id + 1) * pixels),
        height,
        width,
        random,
        out.subarray(i * outSize, (i + 1) * outSize),
        options,
      );
    });
    return out;
  });
}

/**
 * One augmented view as uint8 pixels (0..255, not normalised): what a data worker sends on the wire;
 * the trainer normalises. Same random choices as augmentSmallGray for the same `random`.
 */
export function augmentSmallGrayBytes(
  image: Uint8Array,
  height: number,
  width: number,
  random: ViewRandom,
  out: Uint8Array,
  options: SmallGrayOptions = SMALL_GRAY_DEFAULTS,
): void {
  const floats = new Float32Array(options.size * options.size);
  augmentSmallGray(image, height, width, random, floats, options, 0, 1);
  for (let i = 0; i < floats.length; i++) out[i] = Math.round(floats[i]! * 255);
}
