// BatchMatMul on the wasm backend with its transposes done first.
//
// tfjs-backend-wasm gives XNNPACK only the plain product; a transposed operand goes through a slow
// loop instead: 6.4 ms for 256x128 . (256x128)^T (the AdCo step's key cosines) against 0.5 for a
// transpose (wasm-transpose.ts) and the plain product. tfjs's own gradient of a product asks for
// the transposed forms too (the projection head's, each step).
import * as tf from "@tensorflow/tfjs-core";
import { replaceWasmKernel } from "./wasm-replace.js";

interface MatMulAttrs {
  transposeA: boolean;
  transposeB: boolean;
}

/** t with its last two axes swapped. */
function swapLast(t: tf.Tensor): tf.Tensor {
  const perm = t.shape.map((_, i) => i);
  perm.splice(-2, 2, perm.length - 1, perm.length - 2);
  return tf.transpose(t, perm);
}

/** Replaces the wasm backend's BatchMatMul (once per process; later calls do nothing). */
export function registerWasmMatMul(): void {
  replaceWasmKernel("BatchMatMul", (tfjs) => (args) => {
    const { transposeA, transposeB } = args.attrs as unknown as MatMulAttrs;
    if (!transposeA && !transposeB) return tfjs.kernelFunc(args);
    const { a, b } = args.inputs as { a: tf.Tensor; b: tf.Tensor };
    // Kernels inside a kernel are not taped: the gradient stays BatchMatMul's own.
    return tf.tidy(() => tf.matMul(transposeA ? swapLast(a) : a, transposeB ? swapLast(b) : b));
  });
}
