// Choosing the tfjs backend: the best one available, or the one asked for (config `backend`, env
// ADCO_BACKEND). "tensorflow" is libtensorflow through tfjs-node-gpu (CUDA) or tfjs-node (CPU);
// both are optional dependencies whose native part is often absent, so they are tried, not assumed.
// "webgpu" is tfjs-backend-webgpu on Dawn (see webgpu.ts), also optional; "auto" takes it only on a
// real GPU.
// "wasm" is XNNPACK with SIMD, on as many threads as asked (see wasm-threads.ts); "cpu" is plain
// JavaScript, the slowest.
import { createRequire } from "node:module";
import * as tf from "@tensorflow/tfjs-core";
// The umbrella package registers every op's gradient (tfjs-core's Node bundle registers none) and
// brings tfjs-layers for the standard model format; ops still come from the one tfjs-core.
import "@tensorflow/tfjs";
import "@tensorflow/tfjs-backend-cpu";
import "@tensorflow/tfjs-backend-wasm";
import { registerWasmBatchNorm } from "./wasm-batchnorm.js";
import { registerWasmGather } from "./wasm-gather.js";
import { registerWasmIdentity } from "./wasm-identity.js";
import { registerWasmConvGradients } from "./wasm-kernels.js";
import { registerWasmMatMul } from "./wasm-matmul.js";
import { registerWasmTranspose } from "./wasm-transpose.js";
import { defaultThreads, MAX_WASM_THREADS, setWasmBackend } from "./wasm-threads.js";
import { setWebGpuBackend } from "./webgpu.js";

/**
 * Our kernels for the wasm backend, once it is set up. Four replace tfjs-backend-wasm's, each faster
 * on the step (bench:core times each against tfjs's, replacedWasmKernels): Identity without the
 * copy, Transpose and GatherV2 as block copies, BatchMatMul with its transposes done first. The conv
 * gradients (wasm-kernels.ts) are ours alone: tfjs has no Conv2DBackpropFilter on wasm, and its
 * Conv2DBackpropInput is a plain loop.
 */
function registerWasmKernels(): void {
  registerWasmConvGradients();
  registerWasmBatchNorm();
  registerWasmIdentity();
  registerWasmTranspose();
  registerWasmMatMul();
  registerWasmGather();
}

export const BACKEND_CHOICES = ["auto", "tensorflow", "webgpu", "wasm", "cpu"] as const;
export type BackendChoice = (typeof BACKEND_CHOICES)[number];

export interface ActiveBackend {
  /** tfjs backend name: "tensorflow", "webgpu", "wasm" or "cpu". */
  readonly name: string;
  /** Where it came from, for the start-up log line (e.g. "@tensorflow/tfjs-node-gpu"). */
  readonly detail: string;
  /** Why better backends were passed over (empty when the first choice loaded). */
  readonly skipped: readonly string[];
  /** The threads of the wasm backend's pool (1 on the others, which manage their own). */
  readonly threads: number;
}

export interface BackendOptions {
  /**
   * Threads of the wasm backend (more than MAX_WASM_THREADS count as that); default: ADCO_THREADS,
   * else os.availableParallelism().
   */
  readonly threads?: number;
}

const require = createRequire(import.meta.url);

/** Loads the first of these packages that loads; returns its name, or the reason each fails. */
function loadTensorflow(packages: readonly string[]): { loaded?: string; reasons: string[] } {
  const reasons: string[] = [];
  for (const pkg of packages) {
    try {
      require(pkg);
      return { loaded: pkg, reasons };
    } catch (e) {
      const message = (e as Error).message.split("\n")[0] ?? "";
      reasons.push(`${pkg}: ${/Cannot find module/.test(message) ? "not installed" : message}`);
    }
  }
  return { reasons };
}

let active: ActiveBackend | undefined;

/**
 * Initialises tfjs on the chosen backend once per process and returns it; later calls return the same
 * backend (and throw if a different one is asked for, since tensors cannot move between them).
 */
export async function initBackend(
  choice: BackendChoice = "auto",
  options: BackendOptions = {},
): Promise<ActiveBackend> {
  if (!BACKEND_CHOICES.includes(choice)) {
    throw new Error(`backend: must be one of ${BACKEND_CHOICES.join(", ")}, got ${JSON.stringify(choice)}`);
  }
  if (active) {
    if (choice !== "auto" && choice !== active.name) {
      throw new Error(
        `backend: ${active.name} is already active in this process; cannot switch to ${choice}`,
      );
    }
    return active;
  }
  const skipped: string[] = [];
  const tensorflow = async (packages: readonly string[]): Promise<ActiveBackend | undefined> => {
    const { loaded, reasons } = loadTensorflow(packages);
    if (loaded && (await tf.setBackend("tensorflow"))) {
      return { name: "tensorflow", detail: loaded, skipped, threads: 1 };
    }
    skipped.push(...reasons);
    return undefined;
  };
  if (choice === "tensorflow") {
    active = await tensorflow(["@tensorflow/tfjs-node-gpu", "@tensorflow/tfjs-node"]);
    if (!active) throw new Error(`backend tensorflow is not available: ${skipped.join("; ")}`);
    return active;
  }
  if (choice === "auto") {
    // CUDA first, then a real GPU through WebGPU (never a software one: llvmpipe is slower than
    // wasm), then libtensorflow on the CPU.
    active = await tensorflow(["@tensorflow/tfjs-node-gpu"]);
    if (active) return active;
    const gpu = await setWebGpuBackend({ allowSoftware: false });
    if (gpu.ok) {
      active = { name: "webgpu", detail: gpu.detail, skipped, threads: 1 };
      return active;
    }
    skipped.push(`webgpu: ${gpu.reason}`);
    active = await tensorflow(["@tensorflow/tfjs-node"]);
    if (active) return active;
  }
  if (choice === "webgpu") {
    // Asked for by name: a software adapter (llvmpipe) too.
    const gpu = await setWebGpuBackend({ allowSoftware: true });
    if (!gpu.ok) throw new Error(`backend webgpu is not available: ${gpu.reason}`);
    active = { name: "webgpu", detail: gpu.detail, skipped, threads: 1 };
    return active;
  }
  if (choice === "auto" || choice === "wasm") {
    const threads = await setWasmBackend(
      Math.min(MAX_WASM_THREADS, options.threads ?? threadsFromEnv() ?? defaultThreads()),
    );
    if (threads > 0) {
      registerWasmKernels();
      const detail = `@tensorflow/tfjs-backend-wasm (XNNPACK, SIMD, ${threads} thread${threads === 1 ? "" : "s"})`;
      active = { name: "wasm", detail, skipped, threads };
      return active;
    }
    if (choice === "wasm") throw new Error("backend wasm failed to initialise");
    skipped.push("wasm: failed to initialise");
  }
  if (!(await tf.setBackend("cpu"))) throw new Error("backend cpu failed to initialise");
  active = { name: "cpu", detail: "@tensorflow/tfjs-backend-cpu (plain JavaScript)", skipped, threads: 1 };
  return active;
}

/** The backend choice from ADCO_BACKEND (for command-line tools; services read it as config). */
export function backendFromEnv(env: NodeJS.ProcessEnv = process.env): BackendChoice {
  const value = env.ADCO_BACKEND ?? "auto";
  if (!(BACKEND_CHOICES as readonly string[]).includes(value)) {
    throw new Error(
      `ADCO_BACKEND: must be one of ${BACKEND_CHOICES.join(", ")}, got ${JSON.stringify(value)}`,
    );
  }
  return value as BackendChoice;
}

/** The wasm threads from ADCO_THREADS (for command-line tools; services read it as config); unset: the default. */
export function threadsFromEnv(env: NodeJS.ProcessEnv = process.env): number | undefined {
  const value = env.ADCO_THREADS;
  if (value === undefined || value === "") return undefined;
  const threads = Number(value);
  if (!Number.isInteger(threads) || threads < 1) {
    throw new Error(
      `ADCO_THREADS: must be a whole number of threads, 1 or more, got ${JSON.stringify(value)}`,
    );
  }
  return threads;
}
