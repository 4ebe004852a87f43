// Replacing one of tfjs-backend-wasm's kernels with ours, which hands tfjs's the cases it does not
// take. The replacement keeps tfjs's setup: tfjs's kernel holds its wasm function from it, and a
// backend set up again sets it up again.
import * as tf from "@tensorflow/tfjs-core";

/** tfjs's own config of each kernel ours replace, by name, in the order they were replaced. */
const replaced = new Map<string, tf.KernelConfig>();

/**
 * Registers ours(tfjs's kernel) as the wasm backend's kernelName, once per process (later calls do
 * nothing).
 */
export function replaceWasmKernel(kernelName: string, ours: (tfjs: tf.KernelConfig) => tf.KernelFunc): void {
  if (replaced.has(kernelName)) return;
  const tfjs = tf.getKernel(kernelName, "wasm");
  if (!tfjs) throw new Error(`${kernelName}: the wasm backend has no kernel of its own to replace`);
  replaced.set(kernelName, tfjs);
  tf.unregisterKernel(kernelName, "wasm");
  tf.registerKernel({ kernelName, backendName: "wasm", setupFunc: tfjs.setupFunc, kernelFunc: ours(tfjs) });
}

/**
 * tfjs-backend-wasm's own configs of the kernels ours have replaced (once initBackend has set up
 * wasm), by name: bench:core times the step with each of them against ours.
 */
export function replacedWasmKernels(): ReadonlyMap<string, tf.KernelConfig> {
  return replaced;
}
