// Our SIMD modules (../wasm/*.wat) run on tfjs-backend-wasm's own heap: each imports the backend's
// memory, so a kernel reads its inputs and writes its outputs where the backend keeps them, with no
// copies in or out.
import type * as tf from "@tensorflow/tfjs-core";

export interface WasmMemory {
  readonly buffer: ArrayBuffer | SharedArrayBuffer;
}

/** The little of the WebAssembly API used here (this package's TypeScript libs do not declare it). */
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { readonly exports: unknown };
}
const wasmApi = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

/** The part of tfjs-backend-wasm's BackendWasm the kernels use. */
export interface WasmBackend {
  // The emscripten module: its memory is wasmMemory in the threaded build, asm.memory otherwise.
  wasm: { wasmMemory?: WasmMemory; asm?: { memory?: WasmMemory } };
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  getMemoryOffset(dataId: tf.DataId): number;
  disposeData(dataId: tf.DataId, force?: boolean): boolean;
}

/** A module's two builds: for the threaded backend's shared memory and the plain one's. */
export interface HeapModule {
  name: string;
  shared: string;
  unshared: string;
}

/** The backend's heap; `user` names the kernel in the error when it is not found. */
export function heapOf(backend: WasmBackend, user: string): WasmMemory {
  const memory = backend.wasm.wasmMemory ?? backend.wasm.asm?.memory;
  if (!memory) throw new Error(`${user}: the wasm backend's memory was not found`);
  return memory;
}

const instances = new WeakMap<WasmMemory, Map<string, unknown>>();

/**
 * The module instantiated on this backend's heap, once per heap (a backend initialised again has a
 * new one). T is the module's exports.
 */
export function onHeap<T>(backend: WasmBackend, module: HeapModule): { memory: WasmMemory; exports: T } {
  const memory = heapOf(backend, module.name);
  let modules = instances.get(memory);
  if (!modules) {
    modules = new Map();
    instances.set(memory, modules);
  }
  let exports = modules.get(module.name) as T | undefined;
  if (!exports) {
    const shared = typeof SharedArrayBuffer !== "undefined" && memory.buffer instanceof SharedArrayBuffer;
    const bytes = Buffer.from(shared ? module.shared : module.unshared, "base64");
    exports = new wasmApi.Instance(new wasmApi.Module(bytes), { env: { memory } }).exports as T;
    modules.set(module.name, exports);
  }
  return { memory, exports };
}
