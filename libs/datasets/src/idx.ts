// The IDX format of MNIST and Fashion-MNIST (http://yann.lecun.com/exdb/mnist/): a magic number
// (0, 0, type, rank), rank big-endian uint32 dimensions, then the data. Only unsigned bytes (type
// 0x08) occur in these data sets. Gzipped files are inflated first.
import { gunzipSync } from "node:zlib";

export class IdxError extends Error {
  override name = "IdxError";
}

export interface IdxArray {
  readonly shape: readonly number[];
  readonly data: Uint8Array;
}

export function parseIdx(file: Uint8Array, label = "IDX file"): IdxArray {
  const bytes = file[0] === 0x1f && file[1] === 0x8b ? new Uint8Array(gunzipSync(file)) : file;
  if (bytes.length < 4 || bytes[0] !== 0 || bytes[1] !== 0)
    throw new IdxError(`${label}: not an IDX file (bad magic)`);
  if (bytes[2] !== 0x08)
    throw new IdxError(`${label}: element type 0x${bytes[2]!.toString(16)} is not unsigned byte`);
  const rank = bytes[3]!;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 4 + 4 * rank) throw new IdxError(`${label}: truncated header`);
  const shape = Array.from({ length: rank }, (_, i) => view.getUint32(4 + 4 * i));
  const size = shape.reduce((a, b) => a * b, 1);
  const start = 4 + 4 * rank;
  if (bytes.length !== start + size) {
    throw new IdxError(
      `${label}: expected ${size} data bytes for shape [${shape.join(", ")}], found ${bytes.length - start}`,
    );
  }
  return { shape, data: bytes.subarray(start) };
}

export function encodeIdx(shape: readonly number[], data: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + 4 * shape.length + data.length);
  const view = new DataView(out.buffer);
  out[2] = 0x08;
  out[3] = shape.length;
  shape.forEach((d, i) => view.setUint32(4 + 4 * i, d));
  out.set(data, 4 + 4 * shape.length);
  return out;
}

/** Images (N x H x W uint8) and labels (N) of one split, checked against each other. */
export interface LabelledImages {
  readonly count: number;
  readonly height: number;
  readonly width: number;
  readonly images: Uint8Array;
  readonly labels: Uint8Array;
}

export function idxPair(images: IdxArray, labels: IdxArray, label = "IDX"): LabelledImages {
  if (images.shape.length !== 3)
    throw new IdxError(`${label}: images must be N x H x W, got [${images.shape.join(", ")}]`);
  if (labels.shape.length !== 1) throw new IdxError(`${label}: labels must be a vector`);
  const [count, height, width] = images.shape as [number, number, number];
  if (labels.shape[0] !== count)
    throw new IdxError(`${label}: ${count} images but ${labels.shape[0]} labels`);
  return { count, height, width, images: images.data, labels: labels.data };
}

/** The first n images of a set and their labels (the set itself when n is undefined or covers it). */
export function firstImages(set: LabelledImages, n?: number): LabelledImages {
  return n === undefined || n >= set.count ? set : imagesBetween(set, 0, n);
}

/** Images [start, end) of a set and their labels: views of its memory, not copies. */
export function imagesBetween(set: LabelledImages, start: number, end: number): LabelledImages {
  if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end < start || end > set.count)
    throw new RangeError(`images [${start}, ${end}): not a range of the set's ${set.count} images`);
  const pixels = set.height * set.width;
  return {
    ...set,
    count: end - start,
    images: set.images.subarray(start * pixels, end * pixels),
    labels: set.labels.subarray(start, end),
  };
}

/** Every stride-th image of a set from the first (0, stride, 2 stride, ...), copied: a fixed sample. */
export function everyNthImage(set: LabelledImages, stride: number): LabelledImages {
  if (!Number.isInteger(stride) || stride < 1)
    throw new RangeError(`stride: a positive integer, got ${stride}`);
  const pixels = set.height * set.width;
  const count = Math.ceil(set.count / stride);
  const images = new Uint8Array(count * pixels);
  const labels = new Uint8Array(count);
  for (let i = 0; i < count; i++) {
    images.set(set.images.subarray(i * stride * pixels, (i * stride + 1) * pixels), i * pixels);
    labels[i] = set.labels[i * stride]!;
  }
  return { ...set, count, images, labels };
}
