// The GPU check: on a machine with a GPU (and no network: see tools/gpu-bundle.ts), what the WebGPU
// backend does there. It prints the adapter and its limits, the parity of one full AdCo step on
// webgpu against the same step on the wasm CPU backend, images/s of a training step for
// resnet-mini (b256), resnet18-cifar (b256) and resnet50 (b64) beside the same step in PyTorch on
// the same GPU (tools/reference/adco_step.py --device cuda, where a Python has CUDA PyTorch), and
// the per-kernel GPU time of one step (tf.profile, on the backend's timestamp queries) with the
// slowest kernels named. Every part runs in a child process (a backend initialises once per
// process), under one time budget (default 270 s) that the children share.
//   npm run -s gpu:check [-- --budget-s 270] [--python PATH]
//   npm run -s gpu:check -- --smoke     (llvmpipe: parity at b8, resnet-mini b8, 2 timed steps)
//   bash .gpu-bundle/run.sh             (the self-contained bundle, on the GPU machine)
// Writes docs/results/gpu-check.json (ADCO_RESULTS_DIR elsewhere; a smoke run, or one with no GPU
// adapter but a software one or none: a temporary directory).
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import * as tf from "@tensorflow/tfjs-core";
import { npmCommand, roundTo, writeResults, type ResultsValue } from "@adco/cli";
import {
  activeWebGpuAdapter,
  bnGroupsFor,
  encoderSpec,
  type EncoderArch,
  initBackend,
  PRESETS,
  Pretrainer,
  type WebGpuAdapter,
} from "@adco/core";
import {
  aggregateProfile,
  compareParitySteps,
  type KernelRecord,
  type KernelTimer,
  type ParityStep,
  parityLine,
  type ProfileSummary,
  recordParityStep,
} from "@adco/core/testing";
import { DEFAULT_PYTHONS, runReference, tableRow } from "./reference/reference.js";

const { values } = parseArgs({
  options: {
    smoke: { type: "boolean", default: false },
    "budget-s": { type: "string", default: "270" },
    python: { type: "string" },
    // A child's part (internal): parity, or bench.
    child: { type: "string" },
    backend: { type: "string", default: "webgpu" },
    arch: { type: "string", default: "resnet-mini" },
    batch: { type: "string", default: "8" },
    steps: { type: "string", default: "3" },
    "deadline-ms": { type: "string" },
  },
});
const smoke = values.smoke;

/** The steps timed, as the issue names them; a smoke run takes resnet-mini at batch 8. */
const STEPS: readonly { arch: EncoderArch; batch: number }[] = smoke
  ? [{ arch: "resnet-mini", batch: 8 }]
  : [
      { arch: "resnet-mini", batch: 256 },
      { arch: "resnet18-cifar", batch: 256 },
      { arch: "resnet50", batch: 64 },
    ];
/** K and D of every step, both sides: the fashion-mnist preset's (a smoke run: K 64). */
const NEGATIVES = smoke ? 64 : PRESETS["fashion-mnist"].negatives;
const TIMED_STEPS = smoke ? 2 : 3;
const PARITY_BATCH = smoke ? 8 : 16;

// ---- children ---------------------------------------------------------------------------------

/** Prints a child's answer as its last stdout line and exits once the pipe has taken it. */
function answer(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`, () => process.exit(0));
}

async function childBackend(): Promise<string | { unavailable: string }> {
  try {
    return (await initBackend(values.backend as "webgpu" | "wasm")).name;
  } catch (e) {
    return { unavailable: (e as Error).message };
  }
}

async function parityChild(): Promise<void> {
  const backend = await childBackend();
  if (typeof backend !== "string") return answer(backend);
  const record = await recordParityStep(backend, Number(values.batch));
  answer({ adapter: activeWebGpuAdapter() ?? null, record });
}

/** A step is timed to its end: a read of an updated parameter waits for the GPU's queue. */
async function timedStep(trainer: Pretrainer, views: tf.Tensor4D[]): Promise<number> {
  const started = performance.now();
  trainer.trainStep(views, 0.03);
  await trainer.query.params.values().next().value!.data();
  return performance.now() - started;
}

async function benchChild(): Promise<void> {
  const backend = await childBackend();
  if (typeof backend !== "string") return answer(backend);
  const arch = values.arch as EncoderArch;
  const batch = Number(values.batch);
  const deadline = Number(values["deadline-ms"] ?? Infinity);
  const preset = PRESETS["fashion-mnist"];
  const trainer = new Pretrainer({
    ...preset,
    arch,
    batchSize: batch,
    bnGroups: bnGroupsFor(preset.bnGroups, batch),
    negatives: NEGATIVES,
  });
  const [h, w, c] = encoderSpec(arch).inputShape;
  const views = [0, 1].map((i) => tf.randomUniform([batch, h, w, c], -1, 2, "float32", i) as tf.Tensor4D);
  const firstStepMs = await timedStep(trainer, views);
  const stepMs: number[] = [];
  // As many timed steps as asked, while the budget lasts (at least one).
  while (stepMs.length < Number(values.steps)) {
    stepMs.push(await timedStep(trainer, views));
    if (Date.now() + stepMs.at(-1)! > deadline) break;
  }
  const median = [...stepMs].sort((a, b) => a - b)[Math.floor(stepMs.length / 2)]!;
  // One more step under tf.profile, each kernel timed on its own (slower than a plain step), if
  // the budget leaves room for it; checks off, so no kernel's output is read back for NaNs.
  let profile: { wallMs: number; timer: KernelTimer; kernels: KernelRecord[] } | null = null;
  if (Date.now() + 4 * median < deadline) {
    tf.env().set("CHECK_COMPUTATION_FOR_ERRORS", false);
    // Without timestamp-query the webgpu backend times every kernel as 0 ms; with its timer off,
    // tf.profile times each kernel on the wall clock, its outputs read back.
    const timer: KernelTimer = activeWebGpuAdapter()?.features.includes("timestamp-query")
      ? "timestamps"
      : "wall";
    if (timer === "wall") (tf.backend() as { timerAvailable(): boolean }).timerAvailable = () => false;
    const started = performance.now();
    const info = await tf.profile(async () => {
      trainer.trainStep(views, 0.03);
      await trainer.query.params.values().next().value!.data();
    });
    profile = {
      wallMs: performance.now() - started,
      timer,
      // The backend's own kernels only: a custom gradient's wrapper ("forward", "unnamed scope")
      // is timed around the kernels inside it, which are listed too.
      kernels: info.kernels
        .filter((k) => tf.getKernel(k.name, backend) !== undefined)
        .map((k) => ({
          name: k.name,
          ms: typeof k.kernelTimeMs === "number" ? k.kernelTimeMs : 0,
          programs: typeof k.extraInfo === "string" ? k.extraInfo : "",
        })),
    };
  }
  answer({
    backend,
    adapter: activeWebGpuAdapter() ?? null,
    firstStepMs,
    stepMs,
    imagesPerSecond: (batch * 1000) / median,
    profile,
  });
}

if (values.child === "parity") {
  await parityChild();
} else if (values.child === "bench") {
  await benchChild();
} else if (values.child !== undefined) {
  throw new Error(`--child: parity or bench, got ${values.child}`);
} else {
  await main();
}

// ---- the check --------------------------------------------------------------------------------

interface ChildResult {
  ok: boolean;
  value?: Record<string, unknown>;
  why?: string;
  seconds: number;
}

/** Runs this script again as a child with these arguments, at most `seconds`; its JSON answer. */
function runChild(args: readonly string[], seconds: number, env: Record<string, string> = {}): ChildResult {
  const started = performance.now();
  const child = spawnSync(process.execPath, [...process.execArgv, process.argv[1]!, ...args], {
    env: { ...process.env, ...env },
    encoding: "utf8",
    timeout: Math.max(1, seconds) * 1000,
    killSignal: "SIGKILL",
    maxBuffer: 64 * 1024 * 1024,
  });
  const elapsed = (performance.now() - started) / 1000;
  if (child.signal)
    return { ok: false, why: `killed (${child.signal}) after ${elapsed.toFixed(0)} s`, seconds: elapsed };
  try {
    const value = JSON.parse(child.stdout.trim().split("\n").at(-1) ?? "") as Record<string, unknown>;
    if (typeof value.unavailable === "string") return { ok: false, why: value.unavailable, seconds: elapsed };
    return { ok: true, value, seconds: elapsed };
  } catch {
    const tail = (child.stderr || child.stdout).trim().split("\n").slice(-3).join(" | ");
    return { ok: false, why: `status ${child.status}: ${tail}`, seconds: elapsed };
  }
}

/** What the machine's Vulkan and NVIDIA driver look like, for when no GPU adapter comes up. */
function driverLines(): string[] {
  const lines: string[] = [];
  const icdDirs = ["/usr/share/vulkan/icd.d", "/etc/vulkan/icd.d", "/usr/local/share/vulkan/icd.d"];
  const icds = icdDirs.filter((d) => existsSync(d)).flatMap((d) => readdirSync(d).map((f) => `${d}/${f}`));
  const icdEnv = process.env.VK_ICD_FILENAMES ?? process.env.VK_DRIVER_FILES;
  lines.push(
    `vulkan drivers (ICD files): ${icds.length > 0 ? icds.join(", ") : "none"}${icdEnv ? `; VK_ICD_FILENAMES=${icdEnv}` : ""}`,
  );
  const smi = spawnSync(
    "nvidia-smi",
    ["--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
    {
      encoding: "utf8",
      timeout: 20_000,
    },
  );
  lines.push(`nvidia-smi: ${smi.status === 0 ? smi.stdout.trim().split("\n").join("; ") : "not available"}`);
  return lines;
}

/** The first interpreter with PyTorch on CUDA, or why there is none. */
function findCudaTorch(): { python: string; version: string; device: string } | { missing: string } {
  const reasons: string[] = [];
  for (const python of values.python ? [values.python] : DEFAULT_PYTHONS) {
    try {
      const probe = runReference(python, ["probe"]);
      if (!probe.torch) reasons.push(`${python}: no torch (${String(probe.torchError)})`);
      else if (!probe.cuda) reasons.push(`${python}: torch ${String(probe.torch)} without CUDA`);
      else return { python, version: String(probe.torch), device: String(probe.cudaDevice) };
    } catch (e) {
      reasons.push(`${python}: ${(e as Error).message.split("\n")[0]}`);
    }
  }
  return { missing: reasons.join("; ") };
}

function adapterLines(adapter: WebGpuAdapter): string[] {
  const limits = Object.entries(adapter.limits).map(([name, value]) => `${name} ${value}`);
  return [
    `adapter: vendor "${adapter.vendor}", architecture "${adapter.architecture}", device "${adapter.device}", ` +
      `description "${adapter.description}" (Dawn ${adapter.dawnBackend}, ${adapter.featureLevel} level, ` +
      `${adapter.software ? "a software GPU" : "a GPU"})`,
    `limits: ${limits.join(", ")}`,
    `features: ${adapter.features.join(", ") || "none"}`,
  ];
}

function profileLines(label: string, summary: ProfileSummary): string[] {
  const lines = [`per-kernel time of one step, ${label}: ${summary.timer}`];
  if (summary.kernels.length === 0) return lines;
  lines.push(tableRow(["kernel", "calls", "ms", "share", "shaders"]));
  lines.push(tableRow(["---", "---", "---", "---", "---"]));
  for (const k of summary.kernels.slice(0, 8))
    lines.push(
      tableRow([k.name, k.calls, k.ms.toFixed(1), `${(k.share * 100).toFixed(1)}%`, k.programs.join(" ")]),
    );
  if (summary.slowest)
    lines.push(
      `slowest: ${summary.slowest.name}, ${(summary.slowest.share * 100).toFixed(1)}% of the kernels' ` +
        `${summary.kernelMs.toFixed(1)} ms; a ${summary.slowest.name} twice as fast makes the kernels ` +
        `${summary.slowest.halfSpeedup.toFixed(2)}x faster, one taking no time ${summary.slowest.boundSpeedup.toFixed(2)}x`,
    );
  return lines;
}

async function main(): Promise<void> {
  const started = Date.now();
  const budgetMs = Number(values["budget-s"]) * 1000;
  const left = () => (started + budgetMs - Date.now()) / 1000;
  const say = (line: string) => console.log(line);
  say(
    `gpu:check${smoke ? " --smoke" : ""}: node ${process.version}, ${process.platform} ${process.arch}; ` +
      `budget ${values["budget-s"]} s; K ${NEGATIVES}, D 128, median of ${TIMED_STEPS} steps after one`,
  );
  for (const line of driverLines()) say(line);
  const results: Record<string, ResultsValue> = { smoke, negatives: NEGATIVES, dim: 128 };

  // 1. The adapter, and the parity of one AdCo step against the wasm CPU backend.
  const gpu = runChild(
    ["--child", "parity", "--backend", "webgpu", "--batch", String(PARITY_BATCH)],
    Math.min(120, left()),
  );
  const adapter = gpu.ok ? (gpu.value!.adapter as WebGpuAdapter) : null;
  if (adapter) for (const line of adapterLines(adapter)) say(line);
  else say(`adapter: none (${gpu.why})`);
  results.adapter = adapter
    ? { ...adapter, limits: { ...adapter.limits }, features: [...adapter.features] }
    : null;
  if (!adapter) results.adapterUnavailable = gpu.why ?? "unknown";
  if (gpu.ok) {
    const cpu = runChild(
      ["--child", "parity", "--backend", "wasm", "--batch", String(PARITY_BATCH)],
      Math.min(120, left()),
    );
    if (cpu.ok) {
      const report = compareParitySteps(gpu.value!.record as ParityStep, cpu.value!.record as ParityStep);
      say(
        `parity (one AdCo step, resnet-mini b${PARITY_BATCH}, K 64, webgpu against wasm): ${parityLine(report)}`,
      );
      for (const failure of report.failures.slice(0, 10)) say(`  ${failure}`);
      results.parity = {
        ok: report.failures.length === 0,
        batch: PARITY_BATCH,
        lossRelative: report.lossRelative,
        ...report.worst,
        failures: report.failures,
      };
    } else {
      say(`parity: the wasm side failed (${cpu.why})`);
      results.parity = null;
    }
  }

  // 2. images/s of each step on webgpu, beside PyTorch on CUDA.
  const torch = findCudaTorch();
  if ("missing" in torch) say(`PyTorch/CUDA missing: ${torch.missing}`);
  else
    say(
      `PyTorch ${torch.version} on ${torch.device} (${torch.python}, tools/reference/adco_step.py --device cuda)`,
    );
  results.pytorch = "missing" in torch ? null : { ...torch };
  if ("missing" in torch) results.pytorchMissing = torch.missing;
  // A software adapter would take minutes per full-size step: only a smoke run times one.
  const timeOurs = adapter !== null && (smoke || !adapter.software);
  if (adapter?.software && !smoke) say("webgpu steps: skipped, the adapter is a software GPU");
  const rows: string[] = [
    tableRow([
      "arch",
      "input",
      "batch",
      "webgpu images/s",
      "first step s",
      "PyTorch CUDA images/s",
      "webgpu / PyTorch",
    ]),
    tableRow(["---", "---", "---", "---", "---", "---", "---"]),
  ];
  const profiles: string[] = [];
  const steps: Record<string, ResultsValue> = {};
  for (const { arch, batch } of STEPS) {
    const input = encoderSpec(arch).inputShape.join("x");
    const slice = Math.min(smoke ? 150 : 75, left() - 5);
    const ours =
      timeOurs && slice > 5
        ? runChild(
            [
              "--child",
              "bench",
              "--arch",
              arch,
              "--batch",
              String(batch),
              "--steps",
              String(TIMED_STEPS),
              "--deadline-ms",
              String(Date.now() + (slice - 5) * 1000),
            ],
            slice,
          )
        : {
            ok: false,
            why: !timeOurs
              ? adapter
                ? "skipped, the adapter is a software GPU"
                : "no WebGPU adapter"
              : "no time left in the budget",
            seconds: 0,
          };
    let theirs: Record<string, unknown> | undefined;
    let theirsWhy = "missing" in torch ? "PyTorch/CUDA missing" : "";
    if (!("missing" in torch) && left() > 15) {
      try {
        theirs = runReference(torch.python, [
          "step",
          "--arch",
          arch,
          "--device",
          "cuda",
          "--batch",
          String(batch),
          "--negatives",
          String(NEGATIVES),
          "--dim",
          "128",
          "--steps",
          String(TIMED_STEPS),
          "--warmup",
          "1",
        ]);
      } catch (e) {
        theirsWhy = (e as Error).message.split("\n")[0]!.slice(-300);
      }
    } else if (!("missing" in torch)) theirsWhy = "no time left in the budget";
    const oursRate = ours.ok ? (ours.value!.imagesPerSecond as number) : null;
    const theirRate = theirs ? (theirs.imagesPerSecond as number) : null;
    const ratio = oursRate !== null && theirRate !== null ? oursRate / theirRate : null;
    if (!ours.ok) say(`${arch} b${batch} on webgpu: ${ours.why}`);
    if (!theirs && theirsWhy && !("missing" in torch)) say(`${arch} b${batch} in PyTorch: ${theirsWhy}`);
    rows.push(
      tableRow([
        arch,
        input,
        batch,
        oursRate === null ? "-" : oursRate.toFixed(1),
        ours.ok ? ((ours.value!.firstStepMs as number) / 1000).toFixed(1) : "-",
        theirRate === null ? "-" : theirRate.toFixed(1),
        ratio === null ? "-" : ratio.toFixed(3),
      ]),
    );
    const raw = ours.ok
      ? (ours.value!.profile as { wallMs: number; timer: KernelTimer; kernels: KernelRecord[] } | null)
      : null;
    const summary = raw ? aggregateProfile(raw.kernels, raw.wallMs, raw.timer) : null;
    if (summary) profiles.push(...profileLines(`${arch} b${batch}`, summary), "");
    else if (ours.ok)
      profiles.push(`per-kernel time of one step, ${arch} b${batch}: skipped (no time left in the budget)`);
    steps[arch] = {
      input,
      batch,
      webgpuImagesPerSecond: oursRate === null ? null : roundTo(oursRate, 1),
      webgpuStepMs: ours.ok ? (ours.value!.stepMs as number[]).map((ms) => roundTo(ms, 1)) : null,
      webgpuFirstStepMs: ours.ok ? roundTo(ours.value!.firstStepMs as number, 0) : null,
      ...(ours.ok ? {} : { webgpuUnavailable: ours.why ?? "unknown" }),
      pytorchImagesPerSecond: theirRate === null ? null : roundTo(theirRate, 1),
      ...(theirs || !theirsWhy ? {} : { pytorchUnavailable: theirsWhy }),
      webgpuOverPytorch: ratio === null ? null : roundTo(ratio, 3),
      profile: summary
        ? {
            timer: summary.timer,
            wallMs: roundTo(summary.wallMs, 1),
            kernelMs: roundTo(summary.kernelMs, 1),
            kernels: summary.kernels.slice(0, 12).map((k) => ({
              ...k,
              ms: roundTo(k.ms, 2),
              share: roundTo(k.share, 4),
              programs: [...k.programs],
            })),
            slowest: summary.slowest ? { ...summary.slowest } : null,
          }
        : null,
    };
  }
  say(`\nA training step (AdCo, K ${NEGATIVES}, D 128), images/s:`);
  for (const row of rows) say(row);
  // The issue's moonshot: a quarter of PyTorch's fp32 rate for resnet18-cifar.
  const target = steps["resnet18-cifar"] as { webgpuOverPytorch: number | null } | undefined;
  if (target?.webgpuOverPytorch != null)
    say(
      `resnet18-cifar on webgpu: ${(target.webgpuOverPytorch * 100).toFixed(1)}% of PyTorch's images/s (moonshot: 25%)`,
    );
  say("");
  for (const line of profiles) say(line);
  results.steps = steps;
  results.seconds = roundTo((Date.now() - started) / 1000, 0);
  say(`took ${results.seconds} s`);

  // Without a GPU there are no GPU figures: such a run keeps off docs/results, like a smoke run
  // (ADCO_RESULTS_DIR, as run.sh sets it, still takes it, for its diagnosis).
  const noGpu = adapter === null || adapter.software;
  if (noGpu && !smoke) say("no GPU adapter: the results stay out of docs/results");
  const file = writeResults({
    name: "gpu-check",
    command: npmCommand("gpu:check"),
    smoke: smoke || noGpu,
    backend: "webgpu",
    results,
  });
  // The bundle runs where there is no git: it knows the commit it was built from.
  const commit = process.env.ADCO_BUNDLE_COMMIT;
  if (commit) {
    const written = JSON.parse(readFileSync(file, "utf8")) as Record<string, unknown>;
    writeFileSync(
      file,
      `${JSON.stringify({ ...written, commit, command: ["bash .gpu-bundle/run.sh", ...process.argv.slice(2)].join(" ") }, null, 2)}\n`,
    );
  }
  say(`results: ${file}`);
}
