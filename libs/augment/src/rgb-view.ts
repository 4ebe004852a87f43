// One MoCo v2 / AdCo view of a decoded photo, op for op as torchvision 0.14 makes it from a PIL
// image (libs/augment/fixtures/torchvision): RandomResizedCrop, ColorJitter in its random order,
// RandomGrayscale, PIL's GaussianBlur, horizontal flip. All of it runs on this thread, on the small
// output view, in wasm SIMD kernels (../wasm); sharp (libvips) only decodes. A sharp call per view cost 8.5-10 ms of CPU, most of it
// in float LCh conversions for modulate() and in fixed per-call costs, and its resize and blur are
// not torchvision's (`npm run -s bench:data` measures each op).
import { applyColour } from "./colour.js";
import { pilGaussianBlur } from "./pil-blur.js";
import { pilResizedCrop } from "./pil-resize.js";
import { type ColorOptions, type CropOptions, type Pixels, rgbViewParams } from "./rgb.js";
import type { ViewRandom } from "./seed.js";

/**
 * One augmented view (crop.size x crop.size x 3 uint8) into `out` (a new array when omitted), every
 * choice drawn from `random`.
 */
export function augmentRgb(
  src: Pixels,
  crop: CropOptions,
  color: ColorOptions,
  random: ViewRandom,
  out: Uint8Array = new Uint8Array(crop.size * crop.size * 3),
): Uint8Array {
  const v = rgbViewParams(src.height, src.width, crop, color, random);
  // The flip is torchvision's last step, but the colour ops are per pixel (contrast's mean is a
  // sum) and the blur is mirror-symmetric, so flipping right after the resample is the same image.
  pilResizedCrop(src, v.box, crop.size, out, true, v.flip);
  if (v.jitter || v.grayscale) applyColour(out, out, v.jitter, v.grayscale);
  if (v.blurSigma !== undefined) pilGaussianBlur(out, crop.size, crop.size, v.blurSigma);
  return out;
}
