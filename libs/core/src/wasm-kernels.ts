// Convolution gradients for the wasm backend, built on its fast forward conv (XNNPACK).
//
// tfjs-backend-wasm 4.22 ships no Conv2DBackpropFilter, so a training step fails there, and its
// Conv2DBackpropInput is a plain loop (~0.7 GMAC/s against ~10 for the forward conv). Both
// gradients are convolutions themselves, so we register them as forward convs over rearranged
// tensors. Dilations are always 1 here: tfjs refuses conv gradients with dilation > 1 before it
// reaches a kernel.
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
  return tf.tidy(() => {
    // Only rows/cols that some output reads: (out-1)*stride + filter, from -pad.
    const needH = (info.outHeight - 1) * strides[0] + fh;
    const needW = (info.outWidth - 1) * strides[1] + fw;
    const padded = padOrCrop(x, top, left, needH, needW);
    const input = tf.transpose(padded, [3, 1, 2, 0]); // ci, H, W, b
    const filter = tf.transpose(dy, [1, 2, 0, 3]); // y, x, b, co
    const out = tf.conv2d(input, filter, 1, "valid", "NHWC", strides); // ci, fh, fw, co
    return tf.transpose(out, [1, 2, 0, 3]);
  });
}

/**
 * dx = dy spread out by the stride (zeros between), padded by filter-1-pad, convolved (stride 1)
 * with the filter flipped in space and with in/out channels swapped.
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
  const [fh, fw] = [filter.shape[0], filter.shape[1]];
  const [, height, width] = inputShape;
  return tf.tidy(() => {
    const spread = spreadByStride(dy, strides);
    const padded = padOrCrop(
      spread,
      fh - 1 - info.padInfo.top,
      fw - 1 - info.padInfo.left,
      height + fh - 1,
      width + fw - 1,
    );
    const flipped = tf.transpose(tf.reverse(filter, [0, 1]), [0, 1, 3, 2]);
    return tf.conv2d(padded, flipped, 1, "valid");
  });
}

/** Inserts stride-1 zero rows/cols between the rows/cols of t. */
function spreadByStride(t: tf.Tensor4D, [sh, sw]: [number, number]): tf.Tensor4D {
  if (sh === 1 && sw === 1) return t;
  const [b, h, w, c] = t.shape;
  const cells = tf.pad(tf.reshape(t, [b, h, 1, w, 1, c]), [
    [0, 0],
    [0, 0],
    [0, sh - 1],
    [0, 0],
    [0, sw - 1],
    [0, 0],
  ]);
  const full = tf.reshape(cells, [b, h * sh, w * sw, c]);
  return tf.slice(full, [0, 0, 0, 0], [b, (h - 1) * sh + 1, (w - 1) * sw + 1, c]) as tf.Tensor4D;
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
