// Split-batch BatchNorm as two kernels of the wasm backend, run by our own SIMD module
// (../wasm/batch-norm.wat) on the backend's heap, which it imports as its memory.
//
// Built from tfjs ops, the forward is six full passes over the activations (two ones-vector
// products, a subtract, a square, two multiplies and an add, each its own kernel and output), and
// the backward five more: at 28x28x16, batch 256, that cost about as much as the conv beside it.
// Here each way is two passes (the per-channel sums in float64, then xhat and y, or dx); the few
// per-channel numbers between them are computed here in JS. Plain JS loops over the heap were
// measured no faster than the ops; the SIMD module is what makes the two passes cheap.
import * as tf from "@tensorflow/tfjs-core";
import { BATCH_NORM_UNSHARED_WASM, BATCH_NORM_WASM } from "./batch-norm-wasm.js";
import { onHeap, type HeapModule, type WasmBackend } from "./wasm-heap.js";

export const GROUP_BATCH_NORM = "AdcoGroupBatchNorm";
export const GROUP_BATCH_NORM_GRAD = "AdcoGroupBatchNormGrad";

/** The module's channels go 4 at a time. */
export const BATCH_NORM_CHANNEL_MULTIPLE = 4;

/** ../wasm/batch-norm.wat's exports; pointers are byte offsets into the heap. */
interface BatchNormModule {
  sums(a: number, b: number, rows: number, c: number, out: number): void;
  normalize(
    x: number,
    rows: number,
    c: number,
    shift: number,
    scale: number,
    gamma: number,
    beta: number,
    xhat: number,
    y: number,
  ): void;
  backward(
    dy: number,
    xhat: number,
    rows: number,
    c: number,
    meanDy: number,
    meanDyXhat: number,
    scale: number,
    dx: number,
  ): void;
}

const MODULE: HeapModule = {
  name: GROUP_BATCH_NORM,
  shared: BATCH_NORM_WASM,
  unshared: BATCH_NORM_UNSHARED_WASM,
};

function check(kernel: string, inputs: Record<string, tf.TensorInfo>, shape: readonly number[]): void {
  for (const [name, info] of Object.entries(inputs)) {
    if (info.dtype !== "float32") throw new Error(`${kernel}: ${name} must be float32, got ${info.dtype}`);
  }
  if (shape.length !== 3 || shape[2]! % BATCH_NORM_CHANNEL_MULTIPLE !== 0) {
    throw new Error(
      `${kernel}: x must be G x M x C with C a multiple of ${BATCH_NORM_CHANNEL_MULTIPLE}, got [${shape}]`,
    );
  }
}

/**
 * Per-channel scratch on the heap: 2C float64 sums, then float32 vectors of C. Returned with its
 * byte offset; views of it are taken once every allocation is done (an allocation can grow the
 * heap and detach views taken before).
 */
function scratch(backend: WasmBackend, c: number, vectors: number): { info: tf.TensorInfo; offset: number } {
  const info = backend.makeOutput([4 * c + vectors * c], "float32");
  return { info, offset: backend.getMemoryOffset(info.dataId) };
}

/**
 * x: G x M x C, each group normalised over its M rows per channel:
 *   xhat = (x - mean) rstd, rstd = 1 / sqrt(variance + epsilon), y = gamma xhat + beta,
 * with the biased variance. Outputs y and xhat (G x M x C), mean, variance and rstd (G x C).
 */
const forwardKernel: tf.KernelFunc = ({ inputs, backend: raw, attrs }) => {
  const { x, gamma, beta } = inputs as Record<"x" | "gamma" | "beta", tf.TensorInfo>;
  check(GROUP_BATCH_NORM, { x, gamma, beta }, x.shape);
  const [groups, m, c] = x.shape as [number, number, number];
  const epsilon = (attrs as { epsilon: number }).epsilon;
  const backend = raw as unknown as WasmBackend;
  const { memory, exports: kernel } = onHeap<BatchNormModule>(backend, MODULE);
  const outputs = [x.shape, x.shape, [groups, c], [groups, c], [groups, c]].map((s) =>
    backend.makeOutput([...s], "float32"),
  );
  const work = scratch(backend, c, 2);
  const at = (info: tf.TensorInfo) => backend.getMemoryOffset(info.dataId);
  const [y, xhat, mean, variance, rstd] = outputs.map(at) as [number, number, number, number, number];
  const heap = memory.buffer;
  const sums = new Float64Array(heap, work.offset, 2 * c);
  const shift = new Float32Array(heap, work.offset + 16 * c, c);
  const scale = new Float32Array(heap, work.offset + 20 * c, c);
  const stats = { mean, variance, rstd };
  const statViews = Object.fromEntries(
    Object.entries(stats).map(([k, offset]) => [k, new Float32Array(heap, offset, groups * c)]),
  ) as Record<keyof typeof stats, Float32Array>;
  const groupBytes = m * c * 4;
  for (let g = 0; g < groups; g++) {
    const xg = at(x) + g * groupBytes;
    kernel.sums(xg, xg, m, c, work.offset);
    for (let k = 0; k < c; k++) {
      const mu = sums[k]! / m;
      // E[x^2] - mean^2 in float64 is exact enough at these sizes; clamped for rounding below 0.
      const v = Math.max(0, sums[c + k]! / m - mu * mu);
      const r = 1 / Math.sqrt(v + epsilon);
      statViews.mean[g * c + k] = mu;
      statViews.variance[g * c + k] = v;
      statViews.rstd[g * c + k] = r;
      shift[k] = mu;
      scale[k] = r;
    }
    kernel.normalize(
      xg,
      m,
      c,
      work.offset + 16 * c,
      work.offset + 20 * c,
      at(gamma),
      at(beta),
      xhat + g * groupBytes,
      y + g * groupBytes,
    );
  }
  backend.disposeData(work.info.dataId);
  return outputs;
};

/**
 * The closed-form backward, per group and channel:
 *   dx = gamma rstd / M (M dy - sum dy - xhat sum(dy xhat)),  dgamma = sum dy xhat,  dbeta = sum dy,
 * dgamma and dbeta summed over the groups too.
 */
const gradKernel: tf.KernelFunc = ({ inputs, backend: raw }) => {
  const { dy, xhat, rstd, gamma } = inputs as Record<"dy" | "xhat" | "rstd" | "gamma", tf.TensorInfo>;
  check(GROUP_BATCH_NORM_GRAD, { dy, xhat, rstd, gamma }, xhat.shape);
  const [groups, m, c] = xhat.shape as [number, number, number];
  const backend = raw as unknown as WasmBackend;
  const { memory, exports: kernel } = onHeap<BatchNormModule>(backend, MODULE);
  const outputs = [xhat.shape, [c], [c]].map((s) => backend.makeOutput([...s], "float32"));
  const work = scratch(backend, c, 3);
  const at = (info: tf.TensorInfo) => backend.getMemoryOffset(info.dataId);
  const heap = memory.buffer;
  const sums = new Float64Array(heap, work.offset, 2 * c);
  const meanDy = new Float32Array(heap, work.offset + 16 * c, c);
  const meanDyXhat = new Float32Array(heap, work.offset + 20 * c, c);
  const scale = new Float32Array(heap, work.offset + 24 * c, c);
  const rstdView = new Float32Array(heap, at(rstd), groups * c);
  const gammaView = new Float32Array(heap, at(gamma), c);
  const dgamma = new Float64Array(c);
  const dbeta = new Float64Array(c);
  const groupBytes = m * c * 4;
  for (let g = 0; g < groups; g++) {
    const dyg = at(dy) + g * groupBytes;
    const xhatg = at(xhat) + g * groupBytes;
    kernel.sums(dyg, xhatg, m, c, work.offset);
    for (let k = 0; k < c; k++) {
      dbeta[k] = dbeta[k]! + sums[k]!;
      dgamma[k] = dgamma[k]! + sums[c + k]!;
      meanDy[k] = sums[k]! / m;
      meanDyXhat[k] = sums[c + k]! / m;
      scale[k] = gammaView[k]! * rstdView[g * c + k]!;
    }
    // gamma rstd (dy - mean dy - xhat mean(dy xhat)): the formula above with M taken inside.
    const [dx] = outputs as [tf.TensorInfo];
    kernel.backward(
      dyg,
      xhatg,
      m,
      c,
      work.offset + 16 * c,
      work.offset + 20 * c,
      work.offset + 24 * c,
      at(dx) + g * groupBytes,
    );
  }
  new Float32Array(heap, at(outputs[1]!), c).set(dgamma);
  new Float32Array(heap, at(outputs[2]!), c).set(dbeta);
  backend.disposeData(work.info.dataId);
  return outputs;
};

let registered = false;

/** Registers the two kernels for the wasm backend (once per process; later calls do nothing). */
export function registerWasmBatchNorm(): void {
  if (registered) return;
  registered = true;
  tf.registerKernel({ kernelName: GROUP_BATCH_NORM, backendName: "wasm", kernelFunc: forwardKernel });
  tf.registerKernel({ kernelName: GROUP_BATCH_NORM_GRAD, backendName: "wasm", kernelFunc: gradKernel });
}
