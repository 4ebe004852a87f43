// Convolution gradients for the wasm backend, built on its fast forward conv (XNNPACK).
//
// tfjs-backend-wasm 4.22 ships no Conv2DBackpropFilter, so a training step fails there, and its
// Conv2DBackpropInput is a plain loop (~0.7 GMAC/s against ~10 for the forward conv). Both
// gradients are convolutions themselves, so we register them as forward convs over rearranged
// tensors; a 1x1 filter's dW is a matrix product instead. Dilations are always 1 here: tfjs
// refuses conv gradients with dilation > 1 before it reaches a kernel.
import * as tf from "@tensorflow/tfjs-core";

type Pad = "valid" | "same" | number | tf.backend_util.ExplicitPadding;

interface ConvAttrs {
  strides: [number, number] | number;
  pad: Pad;
  dataFormat: "NHWC" | "NCHW";
  dimRoundingMode?: "floor" | "round" | "ceil";
}

function pair(value: [number, number] | number): [number, number] {
  return typeof value === "number" ? [value, value] : value;
}

function checkFormat(kernel: string, attrs: ConvAttrs): void {
  if (attrs.dataFormat !== "NHWC") {
    throw new Error(`${kernel} on wasm: only NHWC is supported, got ${attrs.dataFormat}`);
  }
}

/**
 * dW[kh,kw,ci,co] = sum over b,y,x of xpad[b, y*s+kh, x*s+kw, ci] * dy[b,y,x,co]: a conv of the
 * padded input (batch moved to channels, channels to batch) with dy as the filter, dilated by the
 * stride.
 */
export function conv2dBackpropFilter(
  x: tf.Tensor4D,
  dy: tf.Tensor4D,
  filterShape: [number, number, number, number],
  attrs: ConvAttrs,
): tf.Tensor4D {
  checkFormat("Conv2DBackpropFilter", attrs);
  const strides = pair(attrs.strides);
  const info = tf.backend_util.computeConv2DInfo(
    x.shape,
    filterShape,
    strides,
    1,
    attrs.pad,
    attrs.dimRoundingMode,
  );
  const [fh, fw] = [filterShape[0], filterShape[1]];
  const { top, left } = info.padInfo;
  if (fh === 1 && fw === 1) return pointwiseFilterGrad(x, dy, info);
  return tf.tidy(() => {
    // Only rows/cols that some output reads: (out-1)*stride + filter, from -pad.
    const needH = (info.outHeight - 1) * strides[0] + fh;
    const needW = (info.outWidth - 1) * strides[1] + fw;
    const input = tf.transpose(x, [3, 1, 2, 0]); // ci, H, W, b
    const filter = tf.transpose(dy, [1, 2, 0, 3]); // y, x, b, co
    const out = paddedConv(input, filter, top, left, needH, needW, strides); // ci, fh, fw, co
    return tf.transpose(out, [1, 2, 0, 3]);
  });
}

/**
 * dx[r] = sum over (i, kh) with i*s + kh - top = r of dy[i] w[kh] (per axis), computed without
 * spreading dy with zeros (which makes a stride-2 gradient 4x the work). Output rows split into s
 * phases by m = r + top (mod s): a row of phase p only meets the taps kh = p, p+s, p+2s..., so each
 * phase is a stride-1 correlation of dy with its sub-filter flipped, and the phases interleave into
 * dx. Stride 1 is the single phase: one conv with the whole flipped filter.
 */
export function conv2dBackpropInput(
  dy: tf.Tensor4D,
  filter: tf.Tensor4D,
  inputShape: [number, number, number, number],
  attrs: ConvAttrs,
): tf.Tensor4D {
  checkFormat("Conv2DBackpropInput", attrs);
  const strides = pair(attrs.strides);
  const info = tf.backend_util.computeConv2DInfo(
    inputShape,
    filter.shape,
    strides,
    1,
    attrs.pad,
    attrs.dimRoundingMode,
  );
  const [fh, fw, ci, co] = filter.shape;
  const [batch, height, width] = inputShape;
  if (fh === 1 && fw === 1) return pointwiseInputGrad(dy, filter, info);
  const rows = phaseRange(height, info.padInfo.top, strides[0]);
  const cols = phaseRange(width, info.padInfo.left, strides[1]);
  return tf.tidy(() => {
    const phaseRows: tf.Tensor4D[] = [];
    for (let ph = 0; ph < strides[0]; ph++) {
      const phaseCols: tf.Tensor4D[] = [];
      for (let pw = 0; pw < strides[1]; pw++) {
        const th = taps(fh, ph, strides[0]);
        const tw = taps(fw, pw, strides[1]);
        if (th === 0 || tw === 0) {
          phaseCols.push(tf.zeros([batch, rows.count, cols.count, ci]));
          continue;
        }
        // The sub-filter w[p + s t], flipped in space, in and out channels swapped: th x tw x co x ci.
        const sub = tf.stridedSlice(filter, [ph, pw, 0, 0], [fh, fw, ci, co], [strides[0], strides[1], 1, 1]);
        const flipped = tf.transpose(tf.reverse(sub, [0, 1]), [0, 1, 3, 2]) as tf.Tensor4D;
        // D[j] = dy[j + first - (t - 1)]: a valid conv of D gives the phase's rows first..first+count-1.
        phaseCols.push(
          paddedConv(
            dy,
            flipped,
            th - 1 - rows.first,
            tw - 1 - cols.first,
            rows.count + th - 1,
            cols.count + tw - 1,
          ),
        );
      }
      // b x q x qx x ci for each pw -> b x q x (qx s + pw) x ci.
      phaseRows.push(interleave(phaseCols, 3, [batch, rows.count, cols.count * strides[1], ci]));
    }
    // -> b x (q s + ph) x W' x ci, whose row m - first s is dx's row m - top.
    const full = interleave(phaseRows, 2, [batch, rows.count * strides[0], cols.count * strides[1], ci]);
    const top = info.padInfo.top - rows.first * strides[0];
    const left = info.padInfo.left - cols.first * strides[1];
    if (top === 0 && left === 0 && full.shape[1] === height && full.shape[2] === width) return full;
    return tf.slice(full, [0, top, left, 0], [batch, height, width, ci]);
  });
}

/**
 * A 1x1 conv is a matrix product of the pixels it reads (x subsampled by the stride) with the
 * filter, so dW = xs^T dy, one product over the batch's pixels: 5 ms at 28x28x16 -> 32, batch 256,
 * where the conv with dy as its filter took 76. The pixels come from a reshape and a plain slice:
 * tfjs-backend-wasm's StridedSlice is a slow loop (156 ms for them).
 */
function pointwiseFilterGrad(x: tf.Tensor4D, dy: tf.Tensor4D, info: tf.backend_util.Conv2DInfo): tf.Tensor4D {
  const [ci, co] = [info.inChannels, info.outChannels];
  return tf.tidy(() => {
    const pixels = info.batchSize * info.outHeight * info.outWidth;
    const xs = tf.reshape(subsample(x, info), [pixels, ci]);
    const dw = tf.matMul(tf.transpose(xs), tf.reshape(dy, [pixels, co])); // ci x co
    return tf.reshape(dw, [1, 1, ci, co]);
  });
}

/**
 * dx of a 1x1 conv: dy times the filter's transpose (itself a 1x1 conv, XNNPACK's) at the pixels the
 * stride read, zeros between them; the zeros come from one pad of a 6-d view, not from phases.
 */
function pointwiseInputGrad(
  dy: tf.Tensor4D,
  filter: tf.Tensor4D,
  info: tf.backend_util.Conv2DInfo,
): tf.Tensor4D {
  const [ci, co] = [info.inChannels, info.outChannels];
  const { batchSize: b, outHeight: oh, outWidth: ow, strideHeight: sh, strideWidth: sw } = info;
  return tf.tidy(() => {
    const back = tf.reshape(tf.transpose(tf.reshape(filter, [ci, co])), [1, 1, co, ci]) as tf.Tensor4D;
    const read = tf.conv2d(dy, back, 1, "valid"); // b x oh x ow x ci
    // Row y of `read` lands on row y*sh of the grid, which is dx's row y*sh - top.
    const grid =
      sh === 1 && sw === 1
        ? read
        : (tf.reshape(
            tf.pad(tf.reshape(read, [b, oh, 1, ow, 1, ci]), [
              [0, 0],
              [0, 0],
              [0, sh - 1],
              [0, 0],
              [0, sw - 1],
              [0, 0],
            ]),
            [b, oh * sh, ow * sw, ci],
          ) as tf.Tensor4D);
    return padOrCrop(grid, -info.padInfo.top, -info.padInfo.left, info.inHeight, info.inWidth);
  });
}

/**
 * The pixels a 1x1 filter reads at this stride and padding, b x oh x ow x c: x cut or padded to the
 * grid oh*sh x ow*sw that starts at -pad, then the first of every sh rows and sw cols by a reshape
 * and a plain slice.
 */
function subsample(x: tf.Tensor4D, info: tf.backend_util.Conv2DInfo): tf.Tensor4D {
  const { batchSize: b, outHeight: oh, outWidth: ow, strideHeight: sh, strideWidth: sw } = info;
  const c = info.inChannels;
  const grid = padOrCrop(x, info.padInfo.top, info.padInfo.left, oh * sh, ow * sw);
  if (sh === 1 && sw === 1) return grid;
  const rows = tf.reshape(grid, [b * oh, sh, ow, sw * c]);
  return tf.reshape(tf.slice(rows, [0, 0, 0, 0], [b * oh, 1, ow, c]), [b, oh, ow, c]);
}

/** How many taps of a filter of size f phase p of stride s meets: p, p+s, ... below f. */
function taps(f: number, p: number, s: number): number {
  return p >= f ? 0 : Math.ceil((f - p) / s);
}

/**
 * The q (m = q s + p, m = r + pad) that cover every row r in [0, size): one range for all phases, so
 * that they interleave into one tensor.
 */
function phaseRange(size: number, pad: number, s: number): { first: number; count: number } {
  const first = Math.floor(pad / s);
  const last = Math.floor((size - 1 + pad) / s);
  return { first, count: last - first + 1 };
}

/** Stacks the parts on a new axis at `axis` and merges it into the axis before: part k lands at i s + k. */
function interleave(
  parts: tf.Tensor4D[],
  axis: number,
  shape: [number, number, number, number],
): tf.Tensor4D {
  if (parts.length === 1) return parts[0]!;
  return tf.reshape(tf.stack(parts, axis), shape);
}

/**
 * The valid conv of padOrCrop(t, top, left, height, width) with the filter: when that only pads,
 * the padding goes to the conv (XNNPACK reads zeros for it, no padded copy of t); a crop is done
 * first.
 */
function paddedConv(
  t: tf.Tensor4D,
  filter: tf.Tensor4D,
  top: number,
  left: number,
  height: number,
  width: number,
  dilations: [number, number] = [1, 1],
): tf.Tensor4D {
  const [, h, w] = t.shape;
  const [bottom, right] = [height - top - h, width - left - w];
  if (top < 0 || left < 0 || bottom < 0 || right < 0) {
    return tf.conv2d(padOrCrop(t, top, left, height, width), filter, 1, "valid", "NHWC", dilations);
  }
  const pad: tf.backend_util.ExplicitPadding = [
    [0, 0],
    [top, bottom],
    [left, right],
    [0, 0],
  ];
  return tf.conv2d(t, filter, 1, pad, "NHWC", dilations);
}

/** Shifts t down/right by (top, left) (negative crops) and pads or crops to height x width. */
function padOrCrop(t: tf.Tensor4D, top: number, left: number, height: number, width: number): tf.Tensor4D {
  const [b, h, w, c] = t.shape;
  const cropTop = Math.max(0, -top);
  const cropLeft = Math.max(0, -left);
  const padTop = Math.max(0, top);
  const padLeft = Math.max(0, left);
  const keepH = Math.min(h - cropTop, height - padTop);
  const keepW = Math.min(w - cropLeft, width - padLeft);
  let out = t;
  if (cropTop > 0 || cropLeft > 0 || keepH < h || keepW < w) {
    out = tf.slice(out, [0, cropTop, cropLeft, 0], [b, keepH, keepW, c]);
  }
  const padBottom = height - padTop - keepH;
  const padRight = width - padLeft - keepW;
  if (padTop || padLeft || padBottom || padRight) {
    out = tf.pad(out, [
      [0, 0],
      [padTop, padBottom],
      [padLeft, padRight],
      [0, 0],
    ]);
  }
  return out;
}

let registered = false;

/** Registers the two kernels for the wasm backend (once per process; later calls do nothing). */
export function registerWasmConvGradients(): void {
  if (registered) return;
  registered = true;
  if (tf.getKernel("Conv2DBackpropInput", "wasm")) tf.unregisterKernel("Conv2DBackpropInput", "wasm");
  tf.registerKernel({
    kernelName: "Conv2DBackpropFilter",
    backendName: "wasm",
    kernelFunc: ({ inputs, attrs }) => {
      const { x, dy } = inputs as { x: tf.Tensor4D; dy: tf.Tensor4D };
      const a = attrs as unknown as ConvAttrs & { filterShape: [number, number, number, number] };
      return conv2dBackpropFilter(x, dy, a.filterShape, a);
    },
  });
  tf.registerKernel({
    kernelName: "Conv2DBackpropInput",
    backendName: "wasm",
    kernelFunc: ({ inputs, attrs }) => {
      const { dy, filter } = inputs as { dy: tf.Tensor4D; filter: tf.Tensor4D };
      const a = attrs as unknown as ConvAttrs & { inputShape: [number, number, number, number] };
      return conv2dBackpropInput(dy, filter, a.inputShape, a);
    },
  });
}
