// MoCo v2's blur is PIL's ImageFilter.GaussianBlur(sigma): three passes of an "extended" box blur
// (a box of fractional radius, Gwosdek et al. 2011) along rows, then three along columns, each pass
// in Pillow's 24-bit fixed point and rounded to uint8, edges extended. This is Pillow's BoxBlur.c in
// TypeScript, bit for bit: unlike a cut-off Gaussian it blurs at every sigma, and its width grows
// with sigma without a cut.
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
 * One box pass over `n` values of `line` (read at 0, 1, ... n-1) into `out`: Pillow's
 * ImagingLineBoxBlur32 for one channel, the window clamped at both ends.
 */
function boxLine(line: Int32Array, out: Int32Array, n: number, radius: number, ww: number, fw: number): void {
  const last = n - 1;
  const at = (i: number) => line[i < 0 ? 0 : i > last ? last : i]!;
  let acc = 0;
  for (let i = -radius - 1; i < radius; i++) acc += at(i);
  for (let x = 0; x < n; x++) {
    acc += at(x + radius) - at(x - radius - 1);
    const bulk = acc * ww + (at(x - radius - 1) + at(x + radius + 1)) * fw;
    // (bulk + 2^23) >> 24 in uint32; bulk stays under 2^32, so the float division is exact.
    out[x] = Math.floor((bulk + 8388608) / 16777216);
  }
}

/**
 * Blurs an interleaved width x height x channels uint8 image in place, exactly as Pillow 9's
 * `image.filter(ImageFilter.GaussianBlur(sigma))`.
 */
export function pilGaussianBlur(
  data: Uint8Array,
  width: number,
  height: number,
  channels: number,
  sigma: number,
): void {
  const floatRadius = boxBlurRadius(sigma);
  if (floatRadius === 0) return;
  const radius = Math.trunc(floatRadius);
  // ww = (UINT32)(2^24 / (2 r + 1)) in float32; fw splits what is left between the two far taps.
  const ww = Math.trunc(f32(16777216 / f32(f32(floatRadius * 2) + 1)));
  const fw = Math.trunc((16777216 - (radius * 2 + 1) * ww) / 2);
  const longest = Math.max(width, height);
  let a = new Int32Array(longest);
  let b = new Int32Array(longest);
  const blurLines = (lines: number, n: number, lineStride: number, step: number) => {
    for (let lineIndex = 0; lineIndex < lines; lineIndex++) {
      for (let c = 0; c < channels; c++) {
        const start = lineIndex * lineStride + c;
        for (let i = 0; i < n; i++) a[i] = data[start + i * step]!;
        for (let pass = 0; pass < PASSES; pass++) {
          boxLine(a, b, n, radius, ww, fw);
          [a, b] = [b, a];
        }
        for (let i = 0; i < n; i++) data[start + i * step] = a[i]!;
      }
    }
  };
  blurLines(height, width, width * channels, channels); // rows
  blurLines(width, height, channels, width * channels); // columns
}
