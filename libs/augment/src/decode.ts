// Decoding photos (JPEG, PNG, WebP, ...) to RGB pixels with sharp (libvips, prebuilt in its npm
// package). A corrupt or truncated file is an error, never a silently grey image.
import sharp from "sharp";
import type { Pixels } from "./rgb.js";

export class DecodeError extends Error {
  override name = "DecodeError";
}

/**
 * Decodes to upright sRGB pixels. `label` (a path, a sample id) prefixes the error; callers that
 * print their own label (the importer lists skipped paths) leave it out.
 */
export async function decodeRgb(bytes: Uint8Array, label?: string): Promise<Pixels> {
  try {
    const { data, info } = await sharp(bytes, { failOn: "truncated" })
      .rotate() // no angle: turn upright by the EXIF orientation, which PIL's loader ignores
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
    const reason = `cannot decode (${(e as Error).message})`;
    throw new DecodeError(label === undefined ? reason : `${label}: ${reason}`);
  }
}
