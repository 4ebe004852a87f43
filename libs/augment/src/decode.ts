// Decoding photos (JPEG, PNG, WebP, ...) to RGB pixels with sharp (libvips, prebuilt in its npm
// package). A corrupt or truncated file is an error, never a silently grey image.
import sharp from "sharp";
import type { Pixels } from "./rgb.js";

export class DecodeError extends Error {
  override name = "DecodeError";
}

export async function decodeRgb(bytes: Uint8Array, label = "image"): Promise<Pixels> {
  try {
    const { data, info } = await sharp(bytes, { failOn: "truncated" })
      .rotate() // honour EXIF orientation, as PIL's loader does not but users expect
      .removeAlpha()
      .toColourspace("srgb")
      .raw()
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`${info.channels} channels after conversion`);
    return {
      data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
      height: info.height,
      width: info.width,
    };
  } catch (e) {
    throw new DecodeError(`${label}: cannot decode (${(e as Error).message})`);
  }
}
