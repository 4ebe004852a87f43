// The standard evaluation transform of a photo, as torchvision's Resize + CenterCrop in the MoCo
// and AdCo evaluation code: honour the EXIF orientation, resize the short side (256 for a 224-pixel
// encoder, the input size itself for small ones), then crop the centre to the encoder's input. One
// sharp (libvips) call per image; a corrupt or truncated file is a DecodeError.
import sharp from "sharp";
import { DecodeError } from "./decode.js";

/** The short side an image is resized to before the centre crop of `size` (256 for 224). */
export function evalResizeSide(size: number): number {
  // ImageNet's 256/224 margin for 224-pixel (and larger) inputs; a small encoder (28, 32 pixels,
  // trained on whole images) sees the whole short side.
  return size >= 224 ? Math.round((size * 256) / 224) : size;
}

/** Python's round(): halves to the even neighbour (torchvision's CenterCrop offsets use it). */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

export interface EvalGeometry {
  /** Size after resizing the short side (torchvision truncates the long side). */
  readonly resized: { readonly width: number; readonly height: number };
  /** Top-left corner of the centred `size` x `size` crop in the resized image. */
  readonly crop: { readonly left: number; readonly top: number };
}

/** Where an upright width x height image is resized to and cropped, for an input of `size`. */
export function evalGeometry(width: number, height: number, size: number): EvalGeometry {
  const side = evalResizeSide(size);
  const resized =
    width <= height
      ? { width: side, height: Math.floor((side * height) / width) }
      : { width: Math.floor((side * width) / height), height: side };
  return {
    resized,
    crop: {
      left: roundHalfEven((resized.width - size) / 2),
      top: roundHalfEven((resized.height - size) / 2),
    },
  };
}

/**
 * An image file's bytes as the encoder's input: `size` x `size` x `channels` uint8 (3: sRGB,
 * CMYK and grey converted; 1: luminance), upright, short side resized and centre cropped.
 */
export async function evalTransform(
  bytes: Uint8Array,
  size: number,
  channels: 1 | 3,
  label = "image",
): Promise<Uint8Array> {
  try {
    const image = sharp(bytes, { failOn: "truncated" });
    const meta = await image.metadata();
    if (!meta.width || !meta.height) throw new Error("no image size in the header");
    // EXIF orientations 5-8 turn the image a quarter: its upright width is the stored height.
    const quarterTurn = (meta.orientation ?? 1) >= 5;
    const [width, height] = quarterTurn ? [meta.height, meta.width] : [meta.width, meta.height];
    const { resized, crop } = evalGeometry(width, height, size);
    const { data, info } = await image
      .rotate()
      // Bilinear with a support widened by the shrink (libvips reduce), as PIL's resize under torchvision.
      .resize(resized.width, resized.height, { fit: "fill", kernel: "linear" })
      .extract({ left: crop.left, top: crop.top, width: size, height: size })
      .removeAlpha()
      .toColourspace(channels === 1 ? "b-w" : "srgb")
      .raw()
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== channels || info.width !== size || info.height !== size)
      throw new Error(`${info.width}x${info.height}x${info.channels} after the transform`);
    return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  } catch (e) {
    throw new DecodeError(`${label}: cannot decode (${(e as Error).message})`);
  }
}
