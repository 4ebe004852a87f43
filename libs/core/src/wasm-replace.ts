// Replacing one of tfjs-backend-wasm's kernels with ours, which hands tfjs's the cases it does not
// take. The replacement keeps tfjs's setup: tfjs's kernel holds its wasm function from it, and a
// backend set up again sets it up again.
import * as tf from "@tensorflow/tfjs-core";

const replaced = new Set<string>();

/**
 * Registers ours(tfjs's kernel) as the wasm backend's kernelName, once per process (later calls do
 * nothing).
 */
export function replaceWasmKernel(kernelName: string, ours: (tfjs: tf.KernelConfig) => tf.KernelFunc): void {
  if (replaced.has(kernelName)) return;
  const tfjs = tf.getKernel(kernelName, "wasm");
  if (!tfjs) throw new Error(`${kernelName}: the wasm backend has no kernel of its own to replace`);
  replaced.add(kernelName);
  tf.unregisterKernel(kernelName, "wasm");
  tf.registerKernel({ kernelName, backendName: "wasm", setupFunc: tfjs.setupFunc, kernelFunc: ours(tfjs) });
}
