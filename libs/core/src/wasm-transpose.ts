// Transpose on the wasm backend: the permutation that swaps a tensor's outer and inner axes by our
// SIMD module (../wasm/transpose.wat), every other one by tfjs's own kernel.
//
// tfjs-backend-wasm's Transpose walks the output element by element: the conv filter gradient's
// x: 256 x 30 x 30 x 16 -> 16 x 30 x 30 x 256 took 29 ms there against 7 ms for a plain copy of
// the same 14.7 MB, and a step makes seven such transposes (wasm-kernels.ts, dW).
import * as tf from "@tensorflow/tfjs-core";
import { TRANSPOSE_UNSHARED_WASM, TRANSPOSE_WASM } from "./transpose-wasm.js";
import { onHeap, type HeapModule, type WasmBackend } from "./wasm-heap.js";
import { replaceWasmKernel } from "./wasm-replace.js";

/** ../wasm/transpose.wat's export; pointers are byte offsets into the heap. */
interface TransposeModule {
  transpose(x: number, outer: number, middle: number, inner: number, out: number): void;
}

const MODULE: HeapModule = {
  name: "AdcoTranspose",
  shared: TRANSPOSE_WASM,
  unshared: TRANSPOSE_UNSHARED_WASM,
};

/** The module's outer and inner axes go 4 at a time. */
const BLOCK = 4;

/**
 * The permutation as outer x middle x inner -> inner x middle x outer, if it is one: axes of size 1
 * dropped, axes that stay neighbours in order merged. Null for any other permutation.
 */
export function outerInnerSwap(
  shape: readonly number[],
  perm: readonly number[],
): { outer: number; middle: number; inner: number } | null {
  const kept = perm.filter((axis) => shape[axis] !== 1);
  // Runs of input axes that the permutation keeps together, in output order.
  const runs: number[][] = [];
  for (const axis of kept) {
    const run = runs[runs.length - 1];
    if (run && axis === run[run.length - 1]! + 1) run.push(axis);
    else runs.push([axis]);
  }
  const size = (run: number[]) => run.reduce((n, axis) => n * shape[axis]!, 1);
  const ascending = (a: number[], b: number[]) => a[0]! < b[0]!;
  if (runs.length === 2 && ascending(runs[1]!, runs[0]!)) {
    return { outer: size(runs[1]!), middle: 1, inner: size(runs[0]!) };
  }
  if (runs.length === 3 && ascending(runs[2]!, runs[1]!) && ascending(runs[1]!, runs[0]!)) {
    return { outer: size(runs[2]!), middle: size(runs[1]!), inner: size(runs[0]!) };
  }
  return null;
}

/** Replaces the wasm backend's Transpose (once per process; later calls do nothing). */
export function registerWasmTranspose(): void {
  replaceWasmKernel("Transpose", (tfjs) => (args) => {
    const { x } = args.inputs as { x: tf.TensorInfo };
    const perm = (args.attrs as unknown as { perm: number[] }).perm;
    const swap = x.dtype === "float32" ? outerInnerSwap(x.shape, perm) : null;
    if (!swap || swap.outer % BLOCK !== 0 || swap.inner % BLOCK !== 0) return tfjs.kernelFunc(args);
    const backend = args.backend as unknown as WasmBackend;
    const { exports } = onHeap<TransposeModule>(backend, MODULE);
    const out = backend.makeOutput(
      perm.map((axis) => x.shape[axis]!),
      "float32",
    );
    const at = (info: tf.TensorInfo) => backend.getMemoryOffset(info.dataId);
    exports.transpose(at(x), swap.outer, swap.middle, swap.inner, at(out));
    return out;
  });
}
