// Identity for the wasm backend without the copy.
//
// tfjs-core clones (runs Identity on) every tensor a kernel saves for its gradient, and the wasm
// backend's Identity copies the data on its heap; the cpu backend's shares it and counts a
// reference, as the wasm backend's own Reshape does. tfjs tensors are never written in place
// (Variable.assign swaps the data id), so a shared id is safe. Measured: 12 copies of 12.8 MB
// (256 x 28x28x16) and ~60 ms of a ~1.1 s resnet-mini step at batch 256 (bench:core's step).
import type * as tf from "@tensorflow/tfjs-core";
import { replaceWasmKernel } from "./wasm-replace.js";

interface RefCountingBackend {
  incRef(dataId: tf.DataId): void;
}

/** Identity by reference: the output is the input's data, one more reference to it. */
const identity: tf.KernelFunc = ({ inputs, backend }) => {
  const { x } = inputs as { x: tf.TensorInfo };
  (backend as unknown as RefCountingBackend).incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
};

/** Replaces the wasm backend's Identity (once per process; later calls do nothing). */
export function registerWasmIdentity(): void {
  replaceWasmKernel("Identity", () => identity);
}
