// The WebGPU backend in Node: @tensorflow/tfjs-backend-webgpu on Dawn's Node binding (the `webgpu`
// package, whose prebuilt dawn.node loads libvulkan.so.1 or libEGL.so at run time and needs no
// display). Both are optional dependencies, loaded only when this backend is tried. Four things make
// it work in Node, each done here:
// 1. the tfjs package registers its backend at import only where `navigator.gpu` exists, and asks
//    for a core-level adapter, which a GL-only driver (Mesa's llvmpipe through EGL) never offers: the
//    adapter is requested here, with fallbacks, and the backend registered on it;
// 2. tfjs reads the GPUBufferUsage / GPUMapMode / GPUTextureUsage globals that the package exports;
// 3. EGL on a machine with no display needs EGL_PLATFORM=surfaceless (set only when unset);
// 4. the backend's synchronous read (dataSync, arraySync) copies through an OffscreenCanvas, which
//    Node has not: it is replaced by a copy into a mappable buffer whose mapping is waited for here,
//    by running Dawn's event processing (which dawn.node otherwise schedules with setImmediate) until
//    the buffer is mapped. The step's custom op and its statistics read synchronously, so without
//    this no training step runs.
// A software adapter (llvmpipe, lavapipe, SwiftShader) is slower than the wasm backend, so it is
// used only when asked for (ADCO_BACKEND=webgpu); "auto" takes real GPUs only.
import * as tf from "@tensorflow/tfjs-core";

/** What the chosen adapter says of itself. */
export interface WebGpuAdapter {
  /** Dawn's backend flag that found it ("default": Dawn's own order, Vulkan first on Linux). */
  readonly dawnBackend: string;
  /** "core", or "compatibility" (GL ES: what llvmpipe offers). */
  readonly featureLevel: "core" | "compatibility";
  readonly vendor: string;
  readonly architecture: string;
  readonly device: string;
  readonly description: string;
  /** A CPU implementation of the GPU (llvmpipe, lavapipe, SwiftShader, or Dawn's fallback adapter). */
  readonly software: boolean;
  /** The adapter's limits (maxBufferSize, maxComputeWorkgroupStorageSize, ...), as it reports them. */
  readonly limits: Readonly<Record<string, number>>;
  /** Its optional features (timestamp-query, shader-f16, ...), sorted. */
  readonly features: readonly string[];
}

export type WebGpuResult =
  | { readonly ok: true; readonly adapter: WebGpuAdapter; readonly detail: string }
  | { readonly ok: false; readonly reason: string };

export interface WebGpuOptions {
  /** Accept a software adapter (true when webgpu is asked for by name; false under "auto"). */
  readonly allowSoftware: boolean;
}

// The few parts of the WebGPU API used here (the package's types live in its own node_modules).
export interface AdapterInfo {
  vendor?: string;
  architecture?: string;
  device?: string;
  description?: string;
  isFallbackAdapter?: boolean;
}
interface Adapter {
  readonly info?: AdapterInfo;
  readonly isFallbackAdapter?: boolean;
  readonly features: ReadonlySet<string>;
  readonly limits: Record<string, number>;
  requestDevice(descriptor: object): Promise<unknown>;
}
interface Gpu {
  requestAdapter(options?: object): Promise<Adapter | null>;
}
interface DawnModule {
  create(flags: string[]): Gpu;
  globals: Record<string, unknown>;
}
interface MappableBuffer {
  readonly mapState: "unmapped" | "pending" | "mapped";
  mapAsync(mode: number): Promise<void>;
  getMappedRange(): ArrayBuffer;
  unmap(): void;
}
interface TensorData {
  values?: unknown;
  dtype: string;
  resource?: { size: number };
}
interface WebGpuBackendInternals {
  tensorMap: { get(dataId: object): TensorData };
  bufferManager: {
    acquireBuffer(size: number, usage: number): MappableBuffer;
    releaseBuffer(buffer: MappableBuffer): void;
  };
  commandEncoder: {
    copyBufferToBuffer(src: unknown, srcOffset: number, dst: unknown, dstOffset: number, size: number): void;
  };
  ensureCommandEncoderReady(): void;
  endComputePassEncoder(): void;
  submitQueue(): void;
  convertAndCacheOnCPU(dataId: object, values: unknown): unknown;
}
type WebGpuBackendClass = {
  new (device: unknown, adapterInfo?: unknown): tf.KernelBackend;
  prototype: { readSync(dataId: object): unknown };
};

const SOFTWARE = /llvmpipe|lavapipe|softpipe|swiftshader|software|basic render driver/i;

/**
 * Requests in order: a core adapter in Dawn's own backend order (Vulkan on Linux), then GL ES at
 * compatibility level, which is how Mesa's llvmpipe is reached (through EGL; Debian 12's lavapipe
 * Vulkan driver is refused by Dawn). On Linux each needs the library that Dawn opens at run time:
 * without it the attempt is skipped before Dawn tries (and prints a warning of its own).
 */
const ATTEMPTS: readonly {
  flags: string[];
  featureLevel: "core" | "compatibility";
  software: boolean;
  linuxLibrary: string;
  missing: string;
}[] = [
  {
    flags: [],
    featureLevel: "core",
    software: false,
    linuxLibrary: "libvulkan.so.1",
    missing: "no Vulkan loader (libvulkan.so.1; Debian: libvulkan1 and the GPU's Vulkan driver)",
  },
  {
    flags: ["backend=opengles"],
    featureLevel: "compatibility",
    software: true,
    linuxLibrary: "libEGL.so",
    missing: "no libEGL.so for GL ES (Debian: libegl-dev libegl-mesa0 libgles2 libgl1-mesa-dri)",
  },
];

/** Whether the dynamic loader finds a shared library (found but not a Node addon counts as found). */
function libraryFound(name: string): boolean {
  try {
    process.dlopen({ exports: {} }, name);
    return true;
  } catch (e) {
    return !/cannot open shared object file/.test((e as Error).message);
  }
}

/** `import(name)` with the reason it failed, in one line. */
async function load<T>(name: string): Promise<{ module?: T; reason?: string }> {
  try {
    return { module: (await import(name)) as T };
  } catch (e) {
    const message = (e as Error).message.split("\n")[0] ?? "";
    const missing = /Cannot find (module|package)|ERR_MODULE_NOT_FOUND/.test(message);
    return { reason: missing ? `${name} is not installed` : `${name}: ${message}` };
  }
}

/** Whether an adapter is a CPU implementation of the GPU, from what it says of itself. */
export function isSoftwareAdapter(info: AdapterInfo): boolean {
  const text = [info.vendor, info.architecture, info.device, info.description].join(" ");
  return Boolean(info.isFallbackAdapter) || SOFTWARE.test(text);
}

/** GPUSupportedLimits' fields are getters on its prototype: read through for-in, which walks it. */
function limitsOf(limits: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const name in limits) if (typeof limits[name] === "number") out[name] = limits[name];
  return out;
}

function describe(
  adapter: Adapter,
  dawnBackend: string,
  featureLevel: "core" | "compatibility",
): WebGpuAdapter {
  const info = adapter.info ?? {};
  return {
    dawnBackend,
    featureLevel,
    vendor: info.vendor ?? "",
    architecture: info.architecture ?? "",
    device: info.device ?? "",
    description: info.description ?? "",
    // GPUAdapterInfo's fields are getters on its prototype: named one by one, not spread.
    software: isSoftwareAdapter({
      vendor: info.vendor,
      architecture: info.architecture,
      device: info.device,
      description: info.description,
      isFallbackAdapter: info.isFallbackAdapter ?? adapter.isFallbackAdapter,
    }),
    limits: limitsOf(adapter.limits),
    features: [...adapter.features].sort(),
  };
}

/**
 * Sets tfjs on the WebGPU backend, on the best adapter Dawn finds (a software one only where
 * allowed). Returns the adapter, or why no adapter was taken; never throws for a missing package,
 * driver or adapter.
 */
export async function setWebGpuBackend(options: WebGpuOptions): Promise<WebGpuResult> {
  const attempts = ATTEMPTS.filter((a) => options.allowSoftware || !a.software);
  const reasons: string[] = [];
  const usable = attempts.filter((a) => {
    const found = process.platform !== "linux" || libraryFound(a.linuxLibrary);
    if (!found) reasons.push(a.missing);
    return found;
  });
  if (usable.length === 0) return { ok: false, reason: reasons.join("; ") };
  // Before dawn.node starts: it keeps the setImmediate it finds then.
  hookDawnTicks();
  const result = await start(usable, options, reasons);
  if (!result.ok) unhookDawnTicks();
  return result;
}

async function start(
  attempts: typeof ATTEMPTS,
  options: WebGpuOptions,
  reasons: string[],
): Promise<WebGpuResult> {
  const dawn = await load<DawnModule>("webgpu");
  if (!dawn.module) {
    return { ok: false, reason: `${dawn.reason} (npm install webgpu @tensorflow/tfjs-backend-webgpu)` };
  }
  process.env.EGL_PLATFORM ??= "surfaceless";
  let chosen: { gpu: Gpu; adapter: Adapter; described: WebGpuAdapter } | undefined;
  for (const attempt of attempts) {
    const dawnBackend = attempt.flags[0]?.replace("backend=", "") ?? "default";
    try {
      const gpu = dawn.module.create(attempt.flags);
      const adapter = await gpu.requestAdapter({
        powerPreference: "high-performance",
        ...(attempt.featureLevel === "compatibility" ? { featureLevel: "compatibility" } : {}),
      });
      if (!adapter) {
        reasons.push(`no ${dawnBackend} adapter at ${attempt.featureLevel} level`);
        continue;
      }
      const described = describe(adapter, dawnBackend, attempt.featureLevel);
      if (described.software && !options.allowSoftware) {
        reasons.push(
          `only a software adapter (${described.device || described.description}), used only when asked for`,
        );
        continue;
      }
      chosen = { gpu, adapter, described };
      break;
    } catch (e) {
      reasons.push(`${dawnBackend}: ${(e as Error).message.split("\n")[0]}`);
    }
  }
  if (!chosen) return { ok: false, reason: reasons.join("; ") || "no adapter" };

  // Imported before navigator.gpu exists, so the package registers no backend of its own.
  const tfWebGpu = await load<{ WebGPUBackend: WebGpuBackendClass }>("@tensorflow/tfjs-backend-webgpu");
  if (!tfWebGpu.module) {
    return {
      ok: false,
      reason: `${tfWebGpu.reason} (npm install webgpu @tensorflow/tfjs-backend-webgpu)`,
    };
  }
  const { WebGPUBackend } = tfWebGpu.module;
  const { adapter, described } = chosen;
  const limits = adapter.limits;
  let device: unknown;
  try {
    // The limits tfjs asks for in its own registration; timestamp-query where there is one.
    device = await adapter.requestDevice({
      requiredFeatures: adapter.features.has("timestamp-query") ? ["timestamp-query"] : [],
      requiredLimits: Object.fromEntries(
        [
          "maxComputeWorkgroupStorageSize",
          "maxComputeWorkgroupsPerDimension",
          "maxStorageBufferBindingSize",
          "maxBufferSize",
          "maxComputeWorkgroupSizeX",
          "maxComputeInvocationsPerWorkgroup",
        ].map((name) => [name, limits[name]]),
      ),
    });
  } catch (e) {
    return { ok: false, reason: `requestDevice: ${(e as Error).message.split("\n")[0]}` };
  }
  const global = globalThis as Record<string, unknown>;
  for (const [name, value] of Object.entries(dawn.module.globals))
    if (!(name in global)) global[name] = value;
  // The backend checks navigator.gpu when it is constructed. Node 20 has no navigator; 21+ has one.
  const navigator = (global.navigator ?? (global.navigator = {})) as { gpu?: Gpu };
  if (!navigator.gpu) Object.defineProperty(navigator, "gpu", { value: chosen.gpu, configurable: true });
  installSyncRead(WebGPUBackend);
  if (tf.findBackendFactory("webgpu")) tf.removeBackend("webgpu");
  tf.registerBackend("webgpu", () => new WebGPUBackend(device, adapter.info));
  if (!(await tf.setBackend("webgpu"))) {
    tf.removeBackend("webgpu");
    return { ok: false, reason: "the tfjs webgpu backend failed to initialise" };
  }
  await tf.ready();
  activeAdapter = described;
  const name = described.device || described.description || "unknown adapter";
  const detail =
    `@tensorflow/tfjs-backend-webgpu (Dawn ${described.dawnBackend}, ${described.featureLevel} level: ` +
    `${name}${described.software ? ", a software GPU" : ""})`;
  return { ok: true, adapter: described, detail };
}

let activeAdapter: WebGpuAdapter | undefined;

/** The adapter the webgpu backend runs on in this process, once one was set; else undefined. */
export function activeWebGpuAdapter(): WebGpuAdapter | undefined {
  return activeAdapter;
}

// ---- synchronous reads ----------------------------------------------------------------------

/** dawn.node's event-processing callbacks, queued with setImmediate and not yet run. */
const dawnTicks = new Map<() => void, NodeJS.Immediate>();
let realSetImmediate: typeof setImmediate | undefined;

/**
 * dawn.node processes GPU events (a buffer's mapping among them) from a native callback that it
 * queues with the global setImmediate while a promise of its is pending. Those callbacks are kept
 * here, so a synchronous read can run them itself; any other setImmediate is untouched.
 */
function hookDawnTicks(): void {
  if (realSetImmediate) return;
  const real = (realSetImmediate = globalThis.setImmediate);
  const nativeSource = Function.prototype.toString.call(function () {}.bind(null));
  const hooked = function (this: unknown, callback: (...args: unknown[]) => void, ...args: unknown[]) {
    // dawn.node's callbacks are anonymous native functions (Napi), passed with no arguments.
    const native =
      args.length === 0 &&
      callback.name === "" &&
      Function.prototype.toString.call(callback) === nativeSource;
    if (!native) return real(callback, ...args);
    const tick = callback as () => void;
    const handle = real(() => {
      dawnTicks.delete(tick);
      tick();
    });
    dawnTicks.set(tick, handle);
    return handle;
  };
  Object.defineProperties(hooked, Object.getOwnPropertyDescriptors(real));
  globalThis.setImmediate = hooked as typeof setImmediate;
}

/** Puts the global setImmediate back (when no backend was started; dawn.node keeps the hook). */
function unhookDawnTicks(): void {
  if (realSetImmediate) globalThis.setImmediate = realSetImmediate;
  realSetImmediate = undefined;
}

/** Runs the queued dawn.node callbacks now (each queues its successor while work is pending). */
function runDawnTicks(): void {
  const ticks = [...dawnTicks];
  dawnTicks.clear();
  for (const [tick, handle] of ticks) {
    clearImmediate(handle);
    tick();
  }
}

const SYNC_READ_TIMEOUT_MS = 600_000;
const POLL_PAUSE_MS = 0.1;
/** Atomics.wait on it sleeps (nothing ever notifies it). */
const pause = new Int32Array(new SharedArrayBuffer(4));

/** The backend's readSync without a canvas: copy to a mappable buffer, wait for its mapping. */
function installSyncRead(WebGPUBackend: WebGpuBackendClass): void {
  const canvasRead = WebGPUBackend.prototype.readSync;
  if ((canvasRead as { adco?: boolean }).adco) return;
  const readSync = function (this: WebGpuBackendInternals, dataId: object): unknown {
    const data = this.tensorMap.get(dataId);
    // Cached values, strings and complex numbers (read part by part, through this) as tfjs does.
    if (data.values != null || data.dtype === "string" || data.dtype === "complex64" || !data.resource) {
      return canvasRead.call(this, dataId);
    }
    const usage = globalThis as unknown as {
      GPUBufferUsage: { COPY_DST: number; MAP_READ: number };
      GPUMapMode: { READ: number };
    };
    const size = data.resource.size;
    const staging = this.bufferManager.acquireBuffer(
      size,
      usage.GPUBufferUsage.COPY_DST | usage.GPUBufferUsage.MAP_READ,
    );
    this.ensureCommandEncoderReady();
    this.endComputePassEncoder();
    this.commandEncoder.copyBufferToBuffer(data.resource, 0, staging, 0, size);
    this.submitQueue();
    // Its outcome is read off mapState below (the promise settles only after this read returns).
    staging.mapAsync(usage.GPUMapMode.READ).catch(() => {});
    const deadline = performance.now() + SYNC_READ_TIMEOUT_MS;
    while (staging.mapState === "pending") {
      if (dawnTicks.size === 0) throw new Error("webgpu: a synchronous read found no Dawn events to wait on");
      if (performance.now() > deadline) throw new Error("webgpu: a synchronous read timed out");
      runDawnTicks();
      // Sleep a moment between polls rather than spin: a software GPU computes on these cores.
      if (staging.mapState === "pending") Atomics.wait(pause, 0, 0, POLL_PAUSE_MS);
    }
    if (staging.mapState !== "mapped") {
      this.bufferManager.releaseBuffer(staging);
      throw new Error("webgpu: mapping a buffer for a synchronous read failed (device lost?)");
    }
    const bytes = staging.getMappedRange().slice(0);
    staging.unmap();
    this.bufferManager.releaseBuffer(staging);
    return this.convertAndCacheOnCPU(
      dataId,
      tf.util.convertBackendValuesAndArrayBuffer(bytes, data.dtype as tf.DataType),
    );
  };
  (readSync as { adco?: boolean }).adco = true;
  WebGPUBackend.prototype.readSync = readSync;
}
