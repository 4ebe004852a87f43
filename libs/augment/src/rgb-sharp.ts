// The MoCo v2 view of a photo made by libvips through sharp: crop, resize, jitter, grayscale, blur
// and flip in one native pipeline per view (SIMD, off the JS thread). On 224x224 views this is
// several times faster than the same steps in TypeScript (`npm run -s bench:data`); on 28x28 images
// sharp's per-call overhead loses, which is why small grayscale images stay in small-gray.ts.
import sharp from "sharp";
import { type ColorOptions, type CropOptions, type Pixels, rgbViewParams } from "./rgb.js";
import type { ViewRandom } from "./seed.js";

/** Mean grey level (0..255) of an RGB image, the pivot of the contrast jitter (as torchvision). */
export function meanGrey(p: Pixels): number {
  let sum = 0;
  for (let i = 0; i < p.data.length; i += 3)
    sum += 0.299 * p.data[i]! + 0.587 * p.data[i + 1]! + 0.114 * p.data[i + 2]!;
  return sum / (p.data.length / 3);
}

export async function augmentRgbSharp(
  src: Pixels,
  grey: number,
  crop: CropOptions,
  color: ColorOptions,
  random: ViewRandom,
): Promise<Uint8Array> {
  const v = rgbViewParams(src.height, src.width, crop, color, random);
  let pipeline = sharp(src.data, { raw: { width: src.width, height: src.height, channels: 3 } })
    .extract({ left: v.box.left, top: v.box.top, width: v.box.w, height: v.box.h })
    .resize(crop.size, crop.size, { fit: "fill", kernel: "linear" });
  if (v.flip) pipeline = pipeline.flop();
  if (v.jitter) {
    const [brightness, contrast, saturation, hue] = v.jitter;
    // Contrast blends towards the mean grey: x' = c x + (1 - c) mean.
    pipeline = pipeline
      .modulate({ brightness, saturation, hue: Math.round(hue * 360) })
      .linear(contrast, (1 - contrast) * grey * brightness);
  }
  if (v.grayscale) pipeline = pipeline.grayscale().toColourspace("srgb");
  if (v.blurSigma !== undefined) pipeline = pipeline.blur(Math.max(0.3, v.blurSigma));
  const { data, info } = await pipeline.raw().toBuffer({ resolveWithObject: true });
  if (info.channels !== 3) {
    // grayscale() yields one channel on some paths: replicate it.
    const rgb = new Uint8Array(info.width * info.height * 3);
    for (let i = 0; i < info.width * info.height; i++)
      rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = data[i * info.channels]!;
    return rgb;
  }
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}
