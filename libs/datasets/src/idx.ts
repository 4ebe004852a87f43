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
  if (n === undefined || n >= set.count) return set;
  return {
    ...set,
    count: n,
    images: set.images.subarray(0, n * set.height * set.width),
    labels: set.labels.subarray(0, n),
  };
}
