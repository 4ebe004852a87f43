// RandomResizedCrop's resample as torchvision does it on a PIL image: crop the box, then
// resize(BILINEAR), which in Pillow 9 is a separable convolution with a triangle filter widened by
// the scale when shrinking (antialiased), coefficients in 22-bit fixed point, rows first into uint8,
// then columns. This is Pillow's Resample.c, bit for bit: the passes run in a wasm SIMD kernel
// (../wasm/resample.wat), and in TypeScript as its reference. libvips through sharp was within 0.2
// grey levels when shrinking but 9 levels off (max 91) when enlarging a small crop.
import { RESAMPLE_WASM } from "./resample-wasm.js";
import type { CropBox, Pixels } from "./rgb.js";
import { instantiate, memoryOf, type WasmMemory } from "./wasm.js";

const PRECISION_BITS = 32 - 8 - 2;
const HALF = 1 << (PRECISION_BITS - 1);
const ONE = 1 << PRECISION_BITS;

interface Coefficients {
  /** Per output position: first input index and number of taps. */
  readonly bounds: Int32Array;
  /** Per output position, `taps` fixed-point weights. */
  readonly weights: Int32Array;
  readonly taps: number;
}

/** Pillow's precompute_coeffs + normalize_coeffs_8bpc for the bilinear filter, over [0, inSize). */
function coefficients(inSize: number, outSize: number): Coefficients {
  const scale = inSize / outSize;
  const filterScale = Math.max(1, scale);
  const support = filterScale; // the bilinear filter's support is 1
  const taps = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const weights = new Int32Array(outSize * taps);
  const k = new Float64Array(taps);
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const ss = 1 / filterScale;
    const xmin = Math.max(0, Math.trunc(center - support + 0.5));
    const n = Math.min(inSize, Math.trunc(center + support + 0.5)) - xmin;
    let total = 0;
    for (let x = 0; x < n; x++) {
      const t = Math.abs((x + xmin - center + 0.5) * ss);
      total += k[x] = t < 1 ? 1 - t : 0;
    }
    for (let x = 0; x < n; x++) {
      const w = total !== 0 ? k[x]! / total : k[x]!;
      weights[xx * taps + x] = w < 0 ? Math.trunc(-0.5 + w * ONE) : Math.trunc(0.5 + w * ONE);
    }
    bounds[2 * xx] = xmin;
    bounds[2 * xx + 1] = n;
  }
  return { bounds, weights, taps };
}

/** Pillow's clip8: the fixed-point sum (never negative: the weights are not) back to uint8. */
function clip8(sum: number): number {
  const v = (sum * (1 / ONE)) | 0;
  return v > 255 ? 255 : v;
}

interface ResampleKernel {
  readonly memory: WasmMemory;
  horizontal(
    src: number,
    srcStride: number,
    rows: number,
    dst: number,
    outWidth: number,
    bounds: number,
    weights: number,
    taps: number,
    flip: boolean,
  ): void;
  vertical(
    src: number,
    srcStride: number,
    dst: number,
    rowBytes: number,
    outHeight: number,
    bounds: number,
    weights: number,
    taps: number,
  ): void;
}
let kernel: ResampleKernel | undefined;

/** Bytes after each buffer in wasm memory: the kernels read and write up to 15 past a row. */
const SLACK = 16;

/**
 * The same resample through the wasm SIMD kernel (../wasm/resample.wat): the crop rows it reads,
 * the coefficients and the passes' outputs laid out in wasm memory, one after the other.
 */
function resizedCropSimd(
  src: Pixels,
  box: CropBox,
  size: number,
  out: Uint8Array,
  flip: boolean,
): Uint8Array {
  const k = (kernel ??= instantiate<ResampleKernel>(RESAMPLE_WASM));
  const horizontal = coefficients(box.w, size);
  const vertical = coefficients(box.h, size);
  const firstRow = vertical.bounds[0]!;
  const rows = vertical.bounds[2 * size - 2]! + vertical.bounds[2 * size - 1]! - firstRow;
  const verticalBounds = vertical.bounds.map((v, i) => (i % 2 === 0 ? v - firstRow : v));
  const rowBytes = size * 3;
  let at = 0;
  const place = (bytes: number) => {
    const start = at;
    at += Math.ceil((bytes + SLACK) / 16) * 16;
    return start;
  };
  const hBounds = place(horizontal.bounds.byteLength);
  const hWeights = place(horizontal.weights.byteLength);
  const vBounds = place(verticalBounds.byteLength);
  const vWeights = place(vertical.weights.byteLength);
  const crop = place(rows * box.w * 3);
  const temp = place(rows * rowBytes);
  const result = place(size * rowBytes);
  const memory = memoryOf(k.memory, at);
  const ints = (offset: number, values: Int32Array) =>
    memory.set(new Uint8Array(values.buffer, values.byteOffset, values.byteLength), offset);
  ints(hBounds, horizontal.bounds);
  ints(hWeights, horizontal.weights);
  ints(vBounds, verticalBounds);
  ints(vWeights, vertical.weights);
  for (let y = 0; y < rows; y++) {
    const from = ((box.top + firstRow + y) * src.width + box.left) * 3;
    memory.set(src.data.subarray(from, from + box.w * 3), crop + y * box.w * 3);
  }
  let rowsAt = crop;
  // A crop as wide as the view still goes through the horizontal pass to be flipped: its weights
  // are then exactly 1 and 0, a copy.
  if (box.w !== size || flip) {
    k.horizontal(crop, box.w * 3, rows, temp, size, hBounds, hWeights, horizontal.taps, flip);
    rowsAt = temp;
  }
  let resultAt = rowsAt;
  if (box.h !== size) {
    k.vertical(rowsAt, rowBytes, result, rowBytes, size, vBounds, vWeights, vertical.taps);
    resultAt = result;
  }
  out.set(memory.subarray(resultAt, resultAt + size * rowBytes));
  return out;
}

/**
 * The box of src, cropped, resized to size x size x 3 as Pillow's resize(BILINEAR), then mirrored
 * left to right if `flip`: through the wasm SIMD kernel unless `simd` is false (the TypeScript
 * passes, its reference in the tests).
 */
export function pilResizedCrop(
  src: Pixels,
  box: CropBox,
  size: number,
  out: Uint8Array = new Uint8Array(size * size * 3),
  simd = true,
  flip = false,
): Uint8Array {
  if (simd) return resizedCropSimd(src, box, size, out, flip);
  resizedCropPlain(src, box, size, out);
  if (flip) flipRows(out, size);
  return out;
}

/** Mirrors each row of a size x size x 3 image in place. */
function flipRows(data: Uint8Array, size: number): void {
  for (let row = 0; row < data.length; row += size * 3) {
    for (let left = row, right = row + size * 3 - 3; left < right; left += 3, right -= 3) {
      for (let c = 0; c < 3; c++) [data[left + c], data[right + c]] = [data[right + c]!, data[left + c]!];
    }
  }
}

function resizedCropPlain(src: Pixels, box: CropBox, size: number, out: Uint8Array): Uint8Array {
  const horizontal = coefficients(box.w, size);
  const vertical = coefficients(box.h, size);
  // Only the crop rows the vertical pass reads are resampled horizontally.
  const firstRow = vertical.bounds[0]!;
  const lastRow = vertical.bounds[2 * size - 2]! + vertical.bounds[2 * size - 1]!;
  const needHorizontal = box.w !== size;
  const needVertical = box.h !== size;
  const rows = lastRow - firstRow;
  let temp: Uint8Array;
  let tempRow0: number;
  let tempWidth: number;
  if (needHorizontal) {
    temp = new Uint8Array(rows * size * 3);
    const { bounds, weights, taps } = horizontal;
    for (let y = 0; y < rows; y++) {
      const inRow = ((box.top + firstRow + y) * src.width + box.left) * 3;
      for (let x = 0; x < size; x++) {
        const xmin = bounds[2 * x]!;
        const n = bounds[2 * x + 1]!;
        let r = HALF;
        let g = HALF;
        let b = HALF;
        for (let i = 0; i < n; i++) {
          const w = weights[x * taps + i]!;
          const p = inRow + (xmin + i) * 3;
          r += src.data[p]! * w;
          g += src.data[p + 1]! * w;
          b += src.data[p + 2]! * w;
        }
        const o = (y * size + x) * 3;
        temp[o] = clip8(r);
        temp[o + 1] = clip8(g);
        temp[o + 2] = clip8(b);
      }
    }
    tempRow0 = firstRow;
    tempWidth = size;
  } else {
    // Rows are read straight from the crop of src.
    temp = src.data;
    tempRow0 = -box.top;
    tempWidth = src.width;
  }
  const columnOffset = needHorizontal ? 0 : box.left;
  if (!needVertical) {
    for (let y = 0; y < size; y++) {
      const from = ((y - tempRow0) * tempWidth + columnOffset) * 3;
      out.set(temp.subarray(from, from + size * 3), y * size * 3);
    }
    return out;
  }
  const { bounds, weights, taps } = vertical;
  const rowBytes = size * 3;
  const sums = new Float64Array(rowBytes);
  for (let y = 0; y < size; y++) {
    const ymin = bounds[2 * y]! - tempRow0;
    const n = bounds[2 * y + 1]!;
    sums.fill(HALF);
    // Whole rows at a time: each tap's source row is read once, in order.
    for (let i = 0; i < n; i++) {
      const w = weights[y * taps + i]!;
      const from = ((ymin + i) * tempWidth + columnOffset) * 3;
      for (let x = 0; x < rowBytes; x++) sums[x]! += temp[from + x]! * w;
    }
    const o = y * rowBytes;
    for (let x = 0; x < rowBytes; x++) out[o + x] = clip8(sums[x]!);
  }
  return out;
}
