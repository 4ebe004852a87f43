// The wasm backend's threaded SIMD build, in Node. tfjs-backend-wasm 4.22 ships it but never uses it
// there, for three reasons this module works around, each only while the backend initialises:
// 1. its WASM_HAS_MULTITHREAD_SUPPORT flag answers false whenever it runs in Node (tfjs#3830);
// 2. it starts its 8 pthread workers from Blob URLs (the worker's script, and the module's own script
//    that the worker imports), which Node's worker_threads refuses (ERR_WORKER_PATH): the workers are
//    started from the same script text instead (`eval`), and pointed at the package's copy of the
//    module's script on disk;
// 3. its C++ side caps the thread count at half of os.cpus() (to skip hyper-threads), so 2 threads
//    on a 2-core machine became 1: os.cpus() reports twice the count asked for during the init.
// The workers never keep the process alive: a thread only runs while the main thread, which takes
// part in every parallel op, waits for it, so an unreferenced worker can never be cut off mid-op.
import { createRequire } from "node:module";
import os from "node:os";
import { dirname, join } from "node:path";
import { Worker as NodeWorker, type TransferListItem, type WorkerOptions } from "node:worker_threads";
import * as tf from "@tensorflow/tfjs-core";
import { getThreadsCount, setThreadsCount } from "@tensorflow/tfjs-backend-wasm";

/** The most threads the wasm build can use: it starts 8 pthread workers, whatever is asked. */
export const MAX_WASM_THREADS = 8;

const require = createRequire(import.meta.url);
const wasmOut = join(dirname(require.resolve("@tensorflow/tfjs-backend-wasm/package.json")), "wasm-out");
/** The module's own script, which each pthread worker runs to join the shared wasm memory. */
const moduleScript = join(wasmOut, "tfjs-backend-wasm-threaded-simd.js");

/** The pthread worker's script text, as the package ships it (the worker.js file exports it). */
function workerScript(): string {
  const { wasmWorkerContents } = require(join(wasmOut, "tfjs-backend-wasm-threaded-simd.worker.js")) as {
    wasmWorkerContents: string;
  };
  // The text holds "\n" escapes inside string literals, already turned into newlines; put them back.
  return wasmWorkerContents.replace(/\n/g, "\\n");
}

/** A worker_threads Worker that the emscripten glue can start from its Blob URLs. */
class PthreadWorker extends NodeWorker {
  constructor(url: string | URL, options?: WorkerOptions) {
    // No execArgv: the script is plain CommonJS, which a parent's --input-type=module would break.
    if (String(url).startsWith("blob:")) super(workerScript(), { eval: true, execArgv: [] });
    else super(url, options);
    this.unref();
  }

  // The glue refs a worker while its thread runs; XNNPACK's pool threads run for the process's life.
  override ref(): void {}

  override postMessage(message: unknown, transfer?: readonly TransferListItem[]): void {
    const load = message as { cmd?: string; urlOrBlob?: unknown } | null;
    if (load?.cmd === "load" && typeof load.urlOrBlob !== "string") {
      message = { ...load, urlOrBlob: moduleScript };
    }
    super.postMessage(message, transfer);
  }
}

/**
 * Initialises the wasm backend with this many threads (1: the single-threaded SIMD build, no
 * workers) and returns the count XNNPACK's pool got.
 */
export async function setWasmBackend(threads: number): Promise<number> {
  if (!Number.isInteger(threads) || threads < 1 || threads > MAX_WASM_THREADS) {
    throw new RangeError(`threads: must be an integer in [1, ${MAX_WASM_THREADS}], got ${threads}`);
  }
  tf.env().set("WASM_HAS_MULTITHREAD_SUPPORT", threads > 1);
  setThreadsCount(threads);
  const global = globalThis as { Worker?: unknown };
  const cpus = os.cpus;
  const hadWorker = Object.getOwnPropertyDescriptor(global, "Worker");
  // The glue assigns the global Worker to worker_threads' own before it starts the pool: a setter
  // that ignores it keeps ours in place.
  Object.defineProperty(global, "Worker", { configurable: true, get: () => PthreadWorker, set: () => {} });
  const real = cpus();
  os.cpus = () => Array.from({ length: 2 * threads }, (_, i) => real[i % real.length]!);
  try {
    if (!(await tf.setBackend("wasm"))) return 0;
    await tf.ready();
  } finally {
    os.cpus = cpus;
    if (hadWorker) Object.defineProperty(global, "Worker", hadWorker);
    else delete global.Worker;
  }
  return getThreadsCount();
}

/** How many threads to use by default: the cores this process may run on, at most MAX_WASM_THREADS. */
export function defaultThreads(): number {
  return Math.max(1, Math.min(MAX_WASM_THREADS, os.availableParallelism()));
}
