// Images arrive as uint8 pixels (from data workers and datasets); encoders take normalised floats.
// One channel: Fashion-MNIST's statistics (x / 255: mean 0.286, std 0.353, as libs/augment uses);
// three channels: ImageNet's, as torchvision's Normalize in MoCo and AdCo.
import * as tf from "@tensorflow/tfjs-core";
import { CoreInputError } from "./checks.js";

const GRAY = { mean: [0.286], std: [0.353] };
const RGB = { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };

/** N x H x W x C uint8 pixels -> normalised float32 tensor of the same shape. */
export function pixelsToTensor(
  data: Uint8Array,
  shape: readonly [number, number, number, number],
): tf.Tensor4D {
  const [n, h, w, c] = shape;
  if (data.byteLength !== n * h * w * c)
    throw new CoreInputError("pixels", `${data.byteLength} bytes for shape ${shape.join("x")}`);
  if (c !== 1 && c !== 3) throw new CoreInputError("pixels", `1 or 3 channels, got ${c}`);
  const { mean, std } = c === 1 ? GRAY : RGB;
  const out = new Float32Array(data.byteLength);
  for (let i = 0; i < data.byteLength; i++) {
    const ch = i % c;
    out[i] = (data[i]! / 255 - mean[ch]!) / std[ch]!;
  }
  return tf.tensor4d(out, [n, h, w, c]);
}
