// Instantiating the SIMD kernels of ../wasm (embedded as base64 by tools/wasm-gen.mjs), once per
// thread that asks.

/** The little of the WebAssembly API used here (this package's TypeScript libs do not declare it). */
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object) => { readonly exports: unknown };
}
const wasmApi = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

export interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}

/** A kernel's exports: its memory and its functions. */
export function instantiate<T extends { readonly memory: WasmMemory }>(base64: string): T {
  return new wasmApi.Instance(new wasmApi.Module(Buffer.from(base64, "base64"))).exports as T;
}

/** A view of the kernel's memory of at least `bytes` bytes, growing it if needed. */
export function memoryOf(memory: WasmMemory, bytes: number): Uint8Array {
  const have = memory.buffer.byteLength;
  if (have < bytes) memory.grow(Math.ceil((bytes - have) / 65536));
  return new Uint8Array(memory.buffer);
}
