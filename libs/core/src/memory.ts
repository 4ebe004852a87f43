// What the tensors of a step take, against what the backend can hold, so that a config inside the
// accepted ranges is refused up front rather than ending in a wasm abort ("memory access out of
// bounds", "Aborted()") that breaks the process for every later call. The wasm backend is wasm32:
// its linear memory is at most 4 GiB, and every tensor of the process lives in it.

/** The wasm backend's address space (65,536 pages of 64 KiB). */
export const WASM_MEMORY_BYTES = 4 * 2 ** 30;

/** What a backend can hold, in bytes: the wasm limit for wasm, unbounded (device or host memory) otherwise. */
export function backendMemoryBytes(backend: string): number {
  return backend === "wasm" ? WASM_MEMORY_BYTES : Infinity;
}

/**
 * The bank's share of a step, in float32 bytes, for `adversaries` of its K (one shard's K/S):
 * 3 x adversaries x D (adversaries, momentum, gradient) + 3 x pairs x B x adversaries (per pair of
 * the step: the logits, their softmax and its gradient). Pairs 0: what the bank holds between steps.
 */
export function negativesBytes(adversaries: number, dim: number, pairs: number, batch: number): number {
  return 4 * (3 * adversaries * dim + 3 * pairs * batch * adversaries);
}

/** "1.2 GiB". */
export const gibText = (bytes: number) => `${(bytes / 2 ** 30).toFixed(1)} GiB`;
