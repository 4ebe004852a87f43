// MoCo v2's blur is PIL's ImageFilter.GaussianBlur(sigma): three passes of an "extended" box blur
// (a box of fractional radius, Gwosdek et al. 2011) along rows, then three along columns, each pass
// in Pillow's 24-bit fixed point and rounded to uint8, edges extended. This is Pillow's BoxBlur.c,
// bit for bit: unlike a cut-off Gaussian it blurs at every sigma, and its width grows with sigma
// without a cut. For MoCo v2's sigmas (integer radius 0 or 1) the passes run in a wasm SIMD kernel
// (../wasm/box-blur.wat), 10x faster than the TypeScript passes kept for larger radii and as its
// reference in the tests.
import { BOX_BLUR_WASM } from "./box-blur-wasm.js";
import { instantiate, memoryOf, type WasmMemory } from "./wasm.js";

const f32 = Math.fround;
const PASSES = 3;

/** Pillow's _gaussian_blur_radius: the fractional box radius whose `passes` passes have variance sigma^2. */
export function boxBlurRadius(sigma: number, passes = PASSES): number {
  const sigma2 = f32(f32(f32(sigma) * f32(sigma)) / passes);
  const L = f32(Math.sqrt(12.0 * sigma2 + 1.0));
  const l = f32(Math.floor((L - 1.0) / 2.0));
  let a = f32(f32(2 * l + 1) * f32(f32(l * f32(l + 1)) - f32(3 * sigma2)));
  a = f32(a / f32(6 * f32(sigma2 - f32(f32(l + 1) * f32(l + 1)))));
  return f32(l + a);
}

/**
 * `passes` box passes along every row of an interleaved rows x n x 3 image, in place: Pillow's
 * ImagingLineBoxBlur32, whose window is clamped at both ends. Each row is copied into `padded` with
 * its end pixels repeated radius + 1 times, so the running sums need no bounds checks.
 */
function blurRows(
  data: Uint8Array,
  rows: number,
  n: number,
  radius: number,
  ww: number,
  fw: number,
  padded: Int32Array,
): void {
  const pad = radius + 1;
  const window = 2 * radius + 1;
  const lastIn = 3 * (n - 1);
  for (let row = 0; row < rows; row++) {
    const base = row * n * 3;
    for (let pass = 0; pass < PASSES; pass++) {
      for (let i = 0; i < pad; i++) {
        const left = 3 * i;
        const right = 3 * (pad + n + i);
        for (let c = 0; c < 3; c++) {
          padded[left + c] = data[base + c]!;
          padded[right + c] = data[base + lastIn + c]!;
        }
      }
      for (let i = 0; i < 3 * n; i++) padded[3 * pad + i] = data[base + i]!;
      // The window of output x is padded[x + 1 .. x + 2r + 1]; its far taps are x and x + 2r + 2.
      let accR = 0;
      let accG = 0;
      let accB = 0;
      for (let i = 1; i <= window; i++) {
        accR += padded[3 * i]!;
        accG += padded[3 * i + 1]!;
        accB += padded[3 * i + 2]!;
      }
      for (let x = 0; x < n; x++) {
        const near = 3 * x;
        const far = 3 * (x + window + 1);
        const o = base + near;
        // (bulk + 2^23) >> 24 in uint32: bulk stays under 2^32, and times 2^-24 is exact.
        data[o] = (accR * ww + (padded[near]! + padded[far]!) * fw + 8388608) * 5.960464477539063e-8;
        data[o + 1] =
          (accG * ww + (padded[near + 1]! + padded[far + 1]!) * fw + 8388608) * 5.960464477539063e-8;
        data[o + 2] =
          (accB * ww + (padded[near + 2]! + padded[far + 2]!) * fw + 8388608) * 5.960464477539063e-8;
        const enter = 3 * (x + window + 1);
        const leave = 3 * (x + 1);
        accR += padded[enter]! - padded[leave]!;
        accG += padded[enter + 1]! - padded[leave + 1]!;
        accB += padded[enter + 2]! - padded[leave + 2]!;
      }
    }
  }
}

/** Transposes an interleaved height x width x 3 image into width x height x 3. */
function transpose(src: Uint8Array, dst: Uint8Array, width: number, height: number): void {
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const from = 3 * (y * width + x);
      const to = 3 * (x * height + y);
      dst[to] = src[from]!;
      dst[to + 1] = src[from + 1]!;
      dst[to + 2] = src[from + 2]!;
    }
  }
}

interface BoxBlurKernel {
  readonly memory: WasmMemory;
  pass(
    src: number,
    dst: number,
    start: number,
    end: number,
    step: number,
    radius: number,
    ww: number,
    fw: number,
  ): void;
}
let kernel: BoxBlurKernel | undefined;

/** 2 pixels of padding on every side: the farthest tap of radius 1. */
const PAD = 2;

/**
 * The blur for integer radius 0 or 1 (sigma below 2.45) through the wasm kernel: the image goes
 * into wasm memory with PAD pixels of edge copies around it, which are refreshed before each pass,
 * so the kernel reads no index twice and checks none. Same bytes as blurRows.
 */
function blurSimd(
  data: Uint8Array,
  width: number,
  height: number,
  radius: number,
  ww: number,
  fw: number,
): void {
  const k = (kernel ??= instantiate<BoxBlurKernel>(BOX_BLUR_WASM));
  const stride = (width + 2 * PAD) * 3;
  const bytes = stride * (height + 2 * PAD);
  const slack = 16;
  const need = 2 * (bytes + slack);
  const memory = memoryOf(k.memory, need);
  const buffers = [0, bytes + slack];
  const first = PAD * stride; // the first interior row
  for (let y = 0; y < height; y++)
    memory.set(data.subarray(y * width * 3, (y + 1) * width * 3), first + y * stride + PAD * 3);
  // Byte by byte: a copyWithin call per 3 bytes cost more than the pass it pads.
  const padRows = (base: number) => {
    for (let y = 0; y < height; y++) {
      const row = base + first + y * stride;
      const left = row + PAD * 3;
      const right = row + (PAD + width - 1) * 3;
      for (let i = 0; i < PAD; i++) {
        for (let c = 0; c < 3; c++) {
          memory[row + i * 3 + c] = memory[left + c]!;
          memory[right + 3 + i * 3 + c] = memory[right + c]!;
        }
      }
    }
  };
  const padColumns = (base: number) => {
    for (let i = 0; i < PAD; i++) {
      memory.copyWithin(base + i * stride, base + first, base + first + stride);
      memory.copyWithin(
        base + first + (height + i) * stride,
        base + first + (height - 1) * stride,
        base + first + height * stride,
      );
    }
  };
  let [from, to] = buffers as [number, number];
  // Rows: every byte of the interior rows (the pads' outputs are garbage, refreshed before use).
  for (let pass = 0; pass < PASSES; pass++) {
    padRows(from);
    k.pass(from, to, first, first + height * stride, 3, radius, ww, fw);
    [from, to] = [to, from];
  }
  for (let pass = 0; pass < PASSES; pass++) {
    padColumns(from);
    k.pass(from, to, first, first + height * stride, stride, radius, ww, fw);
    [from, to] = [to, from];
  }
  for (let y = 0; y < height; y++) {
    const row = from + first + y * stride + PAD * 3;
    data.set(memory.subarray(row, row + width * 3), y * width * 3);
  }
}

/**
 * Blurs an interleaved width x height x 3 uint8 image in place, exactly as Pillow 9's
 * `image.filter(ImageFilter.GaussianBlur(sigma))`: rows, then (through a transpose, as Pillow)
 * columns.
 */
export function pilGaussianBlur(
  data: Uint8Array,
  width: number,
  height: number,
  sigma: number,
  simd = true,
): void {
  const floatRadius = boxBlurRadius(sigma);
  if (floatRadius === 0) return;
  const radius = Math.trunc(floatRadius);
  // ww = (UINT32)(2^24 / (2 r + 1)) in float32; fw splits what is left between the two far taps.
  const ww = Math.trunc(f32(16777216 / f32(f32(floatRadius * 2) + 1)));
  const fw = Math.trunc((16777216 - (radius * 2 + 1) * ww) / 2);
  if (radius <= 1 && simd) {
    blurSimd(data, width, height, radius, ww, fw);
    return;
  }
  const padded = new Int32Array(3 * (Math.max(width, height) + 2 * radius + 2));
  blurRows(data, height, width, radius, ww, fw, padded);
  const transposed = new Uint8Array(data.length);
  transpose(data, transposed, width, height);
  blurRows(transposed, width, height, radius, ww, fw, padded);
  transpose(transposed, data, height, width);
}
