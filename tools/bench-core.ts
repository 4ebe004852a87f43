// Benchmarks the core on the active backend (ADCO_BACKEND, default auto): per-op GFLOP/s of the ops of
// a training step, split-batch BatchNorm by tfjs ops and by the backend's own kernels (wasm), images/s
// of a full AdCo step (resnet-mini, 28x28x1, batch 256) with either BatchNorm and with each of
// tfjs-backend-wasm's kernels that ours replace (replacedWasmKernels), peak RSS, and the
// same step on the pure-JS cpu backend (in a child process) for the speed-up. Measures, never asserts.
// --torch adds the same step side by side with PyTorch (tools/reference/adco_step.py) at 1 and 2
// threads, ours in child processes with ADCO_THREADS 1 and 2; without PyTorch it says so and goes on.
//   npm run -s bench:core [-- --repeats 5] [--no-cpu] [--torch [--python PATH]]
//   npm run -s bench:core -- --smoke    (seconds: batch 8 ops, K 512, a batch-16 step, cpu at batch 16)
// Writes docs/results/bench-core.json (a smoke run: a temporary directory; see libs/cli/src/results.ts).
import { spawnSync } from "node:child_process";
import { parseArgs } from "node:util";
import * as tf from "@tensorflow/tfjs-core";
import { npmCommand, roundTo, writeResults, type ResultsValue } from "@adco/cli";
import {
  backendFromEnv,
  encoderSpec,
  GROUP_BATCH_NORM,
  GROUP_BATCH_NORM_GRAD,
  groupBatchNorm,
  initBackend,
  PRESETS,
  Pretrainer,
  replacedWasmKernels,
} from "@adco/core";
import {
  blasWarning,
  COMPARED_THREADS,
  findEngines,
  missingLine,
  runOurs,
  runReference,
  tableRow,
} from "./reference/reference.js";

const { values } = parseArgs({
  options: {
    repeats: { type: "string", default: "5" },
    "no-cpu": { type: "boolean", default: false },
    "step-only": { type: "boolean", default: false },
    steps: { type: "string", default: "6" },
    batch: { type: "string", default: "256" },
    smoke: { type: "boolean", default: false },
    torch: { type: "boolean", default: false },
    python: { type: "string" },
  },
});
const smoke = values.smoke;
const repeats = smoke ? 1 : Number(values.repeats);
/** The ops' batch, the contrast products' bank sizes, the full step's batch and the cpu comparison's. */
const OPS_BATCH = smoke ? 8 : 256;
const BANK_SIZES = smoke ? [512] : [4096, 65536];
const STEP_BATCH = smoke ? 16 : 256;
const CPU_BATCH = smoke ? 16 : 32;
const backend = await initBackend(backendFromEnv());

/** Median seconds of fn over repeats runs, after one warm-up. */
function time(fn: () => tf.Tensor | tf.Tensor[]): number {
  const run = () => {
    const out = fn();
    for (const t of Array.isArray(out) ? out : [out]) {
      t.dataSync();
      t.dispose();
    }
  };
  run();
  const samples: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const t0 = performance.now();
    run();
    samples.push((performance.now() - t0) / 1000);
  }
  return samples.sort((a, b) => a - b)[Math.floor(samples.length / 2)]!;
}

/** A trainer on the fashion-mnist preset at this batch, and two random views to step it on. */
function stepSetup(batch: number): { trainer: Pretrainer; views: tf.Tensor4D[]; seconds: () => number } {
  const trainer = new Pretrainer({ ...PRESETS["fashion-mnist"], batchSize: batch });
  const views = [0, 1].map((i) => tf.randomUniform([batch, 28, 28, 1], -1, 2, "float32", i) as tf.Tensor4D);
  const seconds = () => {
    const t0 = performance.now();
    trainer.trainStep(views, 0.03);
    return (performance.now() - t0) / 1000;
  };
  return { trainer, views, seconds };
}

function stepImagesPerSecond(steps: number, batch: number): { imagesPerSecond: number; seconds: number[] } {
  const { trainer, views, seconds: timed } = stepSetup(batch);
  const seconds = Array.from({ length: steps }, timed);
  trainer.dispose();
  tf.dispose(views);
  const steady = seconds.slice(1).sort((a, b) => a - b);
  return { imagesPerSecond: batch / steady[Math.floor(steady.length / 2)]!, seconds };
}

/**
 * Median step seconds under each mode (a function that sets the kernels up), in one trainer, the
 * modes alternating round by round (a first step after each switch not counted), so the machine's
 * load falls on all alike. The last mode is left set.
 */
function stepAlternating<M extends string>(
  rounds: number,
  batch: number,
  modes: Record<M, () => void>,
): Record<M, number> {
  const { trainer, views, seconds } = stepSetup(batch);
  const names = Object.keys(modes) as M[];
  const samples = new Map<M, number[]>(names.map((m) => [m, []]));
  for (let r = 0; r < rounds; r++) {
    for (const mode of names) {
      modes[mode]();
      seconds();
      samples.get(mode)!.push(seconds(), seconds());
    }
  }
  trainer.dispose();
  tf.dispose(views);
  const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
  return Object.fromEntries(names.map((m) => [m, median(samples.get(m)!)])) as Record<M, number>;
}

if (values["step-only"]) {
  const step = stepImagesPerSecond(Number(values.steps), Number(values.batch));
  console.log(JSON.stringify({ ...step, backend: backend.name, threads: backend.threads }));
  process.exit(0);
}

console.log(`backend: ${backend.name} (${backend.detail}); median of ${repeats} runs\n`);
console.log(`| op (batch ${OPS_BATCH}) | shape | GFLOP | ms | GFLOP/s |`);
console.log("| --- | --- | --- | --- | --- |");
// An array, in the order printed: op and shape names hold dots, which a citation's key path cannot.
const ops: ResultsValue[] = [];
const row = (op: string, shape: string, flops: number, seconds: number) => {
  ops.push({
    op,
    shape,
    gflop: roundTo(flops / 1e9, 3),
    ms: roundTo(seconds * 1000, 2),
    gflopPerSecond: roundTo(flops / seconds / 1e9, 2),
  });
  console.log(
    `| ${op} | ${shape} | ${(flops / 1e9).toFixed(2)} | ${(seconds * 1000).toFixed(1)} | ${(flops / seconds / 1e9).toFixed(1)} |`,
  );
};

// Every distinct conv of resnet-mini: forward, filter gradient, input gradient.
const seen = new Set<string>();
const channels = new Map<string, number>([["input", 1]]);
const sizes = new Map<string, number>([["input", 28]]);
for (const node of encoderSpec("resnet-mini").nodes) {
  const input = "input" in node ? node.input : node.inputs[0];
  channels.set(node.name, node.kind === "conv" ? node.filters : channels.get(input)!);
  sizes.set(node.name, node.kind === "conv" ? Math.ceil(sizes.get(input)! / node.stride) : sizes.get(input)!);
  if (node.kind !== "conv") continue;
  const [h, cin] = [sizes.get(input)!, channels.get(input)!];
  const key = `${h}x${h}x${cin} k${node.size} s${node.stride} -> ${node.filters}`;
  if (seen.has(key)) continue;
  seen.add(key);
  const x = tf.randomNormal([OPS_BATCH, h, h, cin]) as tf.Tensor4D;
  const w = tf.randomNormal([node.size, node.size, cin, node.filters]) as tf.Tensor4D;
  const y = tf.conv2d(x, w, node.stride, "same");
  const dy = tf.randomNormal(y.shape) as tf.Tensor4D;
  const flops = 2 * y.size * node.size * node.size * cin;
  const attrs = { strides: node.stride, pad: "same", dataFormat: "NHWC" };
  row(
    "conv forward",
    key,
    flops,
    time(() => tf.conv2d(x, w, node.stride, "same")),
  );
  row(
    "conv dW",
    key,
    flops,
    time(
      () =>
        tf
          .engine()
          .runKernel("Conv2DBackpropFilter", { x, dy }, { ...attrs, filterShape: w.shape }) as tf.Tensor,
    ),
  );
  if (cin > 1) {
    row(
      "conv dX",
      key,
      flops,
      time(
        () =>
          tf
            .engine()
            .runKernel(
              "Conv2DBackpropInput",
              { dy, filter: w },
              { ...attrs, inputShape: x.shape },
            ) as tf.Tensor,
      ),
    );
  }
  tf.dispose([x, w, y, dy]);
}

// The contrast products of an AdCo step, N 256, D 128, as laid out in adco.ts (all plain A.B).
const N = OPS_BATCH;
for (const k of BANK_SIZES) {
  const q = tf.randomNormal([N, 128]) as tf.Tensor2D;
  const bank = tf.randomNormal([128, k]) as tf.Tensor2D;
  const bankT = tf.transpose(bank);
  const probs = tf.randomUniform([N, k]) as tf.Tensor2D;
  const qT = tf.transpose(q);
  const flops = 2 * N * 128 * k;
  row(
    "q . d (logits)",
    `${N}x128 . 128x${k}`,
    flops,
    time(() => tf.matMul(q, bank)),
  );
  row(
    "P . dT (dLoss/dq)",
    `${N}x${k} . ${k}x128`,
    flops,
    time(() => tf.matMul(probs, bankT)),
  );
  row(
    "qT . P (bank gradient)",
    `128x${N} . ${N}x${k}`,
    flops,
    time(() => tf.matMul(qT, probs)),
  );
  tf.dispose([q, bank, bankT, probs, qT]);
}

// Split-batch BatchNorm (the preset's 8 groups) at resnet-mini's three widths, forward and backward:
// tfjs ops against the backend's own two kernels, switched by unregistering them.
const bnKernels = [GROUP_BATCH_NORM, GROUP_BATCH_NORM_GRAD].map((name) => tf.getKernel(name, backend.name));
const useBnKernels = (on: boolean) => {
  for (const kernel of bnKernels) {
    if (tf.getKernel(kernel!.kernelName, backend.name)) tf.unregisterKernel(kernel!.kernelName, backend.name);
    if (on) tf.registerKernel(kernel!);
  }
};
const bnGroups = PRESETS["fashion-mnist"].bnGroups;
const batchNorm: ResultsValue[] = [];
let batchNormStep: ResultsValue = null;
if (bnKernels.every((k) => k !== undefined)) {
  console.log(
    `\n| split-batch BatchNorm, forward + backward (batch ${OPS_BATCH}) | tfjs ops, ms | kernels, ms | ops / kernels |`,
  );
  console.log("| --- | --- | --- | --- |");
  for (const [h, c] of [
    [28, 16],
    [14, 32],
    [7, 64],
  ] as const) {
    const m = Math.max(1, OPS_BATCH / bnGroups) * h * h;
    const groups = Math.min(bnGroups, OPS_BATCH);
    const x = tf.randomNormal([groups, m, c]) as tf.Tensor3D;
    const dy = tf.randomNormal(x.shape);
    const [gamma, beta] = [tf.randomNormal([c], 1, 0.2), tf.randomNormal([c], 0, 0.2)];
    // dy passed as the output's gradient, so nothing but BatchNorm runs.
    const both = () =>
      tf.tidy(() =>
        tf.grads((a: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => {
          const { y, mean, variance } = groupBatchNorm(a as tf.Tensor3D, g, b);
          tf.dispose([mean, variance]);
          return y;
        })([x, gamma, beta], dy),
      );
    useBnKernels(false);
    const opsSeconds = time(both);
    useBnKernels(true);
    const kernelSeconds = time(both);
    const shape = `${groups} x ${m} x ${c} (${h}x${h}x${c})`;
    batchNorm.push({
      shape,
      opsMs: roundTo(opsSeconds * 1000, 2),
      kernelsMs: roundTo(kernelSeconds * 1000, 2),
      speedup: roundTo(opsSeconds / kernelSeconds, 2),
    });
    console.log(
      `| ${shape} | ${(opsSeconds * 1000).toFixed(1)} | ${(kernelSeconds * 1000).toFixed(1)} | ${(opsSeconds / kernelSeconds).toFixed(2)} |`,
    );
    tf.dispose([x, dy, gamma, beta]);
  }
  const either = stepAlternating(smoke ? 1 : 4, STEP_BATCH, {
    ops: () => useBnKernels(false),
    kernels: () => useBnKernels(true),
  });
  const speedup = either.ops / either.kernels;
  batchNormStep = {
    batch: STEP_BATCH,
    opsImagesPerSecond: roundTo(STEP_BATCH / either.ops, 1),
    kernelsImagesPerSecond: roundTo(STEP_BATCH / either.kernels, 1),
    speedup: roundTo(speedup, 2),
  };
  console.log(
    `full AdCo step, batch ${STEP_BATCH}, alternating: BatchNorm by ops ${(STEP_BATCH / either.ops).toFixed(1)} images/s, by kernels ${(STEP_BATCH / either.kernels).toFixed(1)} -> ${speedup.toFixed(2)}x`,
  );
} else {
  console.log(
    `\nsplit-batch BatchNorm: the ${backend.name} backend has no kernels of its own, only tfjs ops`,
  );
}

// The wasm kernels that replace tfjs-backend-wasm's, each alone and all at once: the whole step with
// tfjs's kernel against ours, alternating in one trainer.
const replacedKernels: ResultsValue[] = [];
if (backend.name === "wasm") {
  const tfjsKernels = [...replacedWasmKernels().values()];
  const oursKernels = tfjsKernels.map(({ kernelName }) => tf.getKernel(kernelName, "wasm")!);
  const use = (config: tf.KernelConfig) => {
    tf.unregisterKernel(config.kernelName, "wasm");
    tf.registerKernel(config);
  };
  console.log(
    `\n| full AdCo step, batch ${STEP_BATCH}: kernel | tfjs's, images/s | ours, images/s | ours / tfjs's |`,
  );
  console.log("| --- | --- | --- | --- |");
  const rows: [string, number[]][] = [
    ...tfjsKernels.map(({ kernelName }, i): [string, number[]] => [kernelName, [i]]),
    [`all ${tfjsKernels.length}`, tfjsKernels.map((_, i) => i)],
  ];
  for (const [kernel, which] of rows) {
    const seconds = stepAlternating(smoke ? 1 : 4, STEP_BATCH, {
      tfjs: () => which.forEach((i) => use(tfjsKernels[i]!)),
      ours: () => which.forEach((i) => use(oursKernels[i]!)),
    });
    const [tfjs, ours] = [STEP_BATCH / seconds.tfjs, STEP_BATCH / seconds.ours];
    replacedKernels.push({
      kernel,
      tfjsImagesPerSecond: roundTo(tfjs, 1),
      oursImagesPerSecond: roundTo(ours, 1),
      speedup: roundTo(ours / tfjs, 2),
    });
    console.log(`| ${kernel} | ${tfjs.toFixed(1)} | ${ours.toFixed(1)} | ${(ours / tfjs).toFixed(2)} |`);
  }
}

const stepCount = smoke ? 2 : Number(values.steps);
const negatives = PRESETS["fashion-mnist"].negatives;
const step = stepImagesPerSecond(stepCount, STEP_BATCH);
console.log(
  `\nfull AdCo step, resnet-mini 28x28x1, batch ${STEP_BATCH}, K ${negatives} (${backend.name}): ${step.imagesPerSecond.toFixed(1)} images/s (median of ${step.seconds.length - 1} steps after a warm-up)`,
);
const peakRssMiB = process.resourceUsage().maxRSS / 1024;
console.log(`peak RSS: ${peakRssMiB.toFixed(0)} MiB`);
const results: Record<string, ResultsValue> = {
  repeats,
  // The ops table and the step below ran on this many backend threads (ADCO_THREADS, else every core).
  threads: backend.threads,
  ops,
  batchNorm: { shapes: batchNorm, step: batchNormStep },
  replacedKernels,
  step: {
    arch: "resnet-mini",
    input: "28x28x1",
    batch: STEP_BATCH,
    negatives,
    stepsAfterWarmup: step.seconds.length - 1,
    imagesPerSecond: roundTo(step.imagesPerSecond, 1),
  },
  peakRssMiB: roundTo(peakRssMiB, 0),
};

// The cpu backend needs minutes per batch-256 step, so the comparison runs both at batch 32. A smoke
// run's child uses the active backend (the cpu one needs ~90 s for even a batch-16 step): the same
// child process and parsing, not a cpu measurement.
if (!values["no-cpu"] && backend.name !== "cpu") {
  const small = stepImagesPerSecond(smoke ? 2 : 4, CPU_BATCH);
  const against = smoke ? backend.name : "cpu";
  const child = spawnSync(
    process.execPath,
    [...process.execArgv, process.argv[1]!, "--step-only", "--steps", "2", "--batch", String(CPU_BATCH)],
    { env: { ...process.env, ADCO_BACKEND: against }, encoding: "utf8" },
  );
  const line = child.stdout.trim().split("\n").pop() ?? "";
  try {
    const cpu = JSON.parse(line) as { imagesPerSecond: number };
    results.cpuComparison = {
      batch: CPU_BATCH,
      imagesPerSecond: roundTo(small.imagesPerSecond, 1),
      cpuImagesPerSecond: roundTo(cpu.imagesPerSecond, 2),
      speedup: roundTo(small.imagesPerSecond / cpu.imagesPerSecond, 1),
    };
    console.log(
      `batch ${CPU_BATCH}: ${backend.name} ${small.imagesPerSecond.toFixed(1)} images/s, ${against} ${cpu.imagesPerSecond.toFixed(2)} images/s -> ${backend.name} is ${(small.imagesPerSecond / cpu.imagesPerSecond).toFixed(1)}x faster`,
    );
  } catch {
    console.log(`${against} backend run failed: ${child.stderr.slice(-500)}`);
    process.exitCode = 1;
  }
}
// Side by side with PyTorch: the same step (network, batch, K, D, pairs) at 1 and 2 threads on both
// sides; ours in child processes with ADCO_THREADS, and the thread count its backend reports.
if (values.torch) {
  const config = PRESETS["fashion-mnist"];
  const engines = findEngines(values.python !== undefined ? [values.python] : undefined);
  const pairs = config.symmetric ? "symmetric, 2 pairs" : "1 pair";
  console.log(
    `\nside by side with PyTorch: the same step, resnet-mini 28x28x1, batch ${STEP_BATCH}, K ${negatives}, D ${config.projectionDim}, ${pairs}, median of ${stepCount - 1} steps after a warm-up`,
  );
  console.log(
    engines.torch
      ? `PyTorch ${engines.torch.version} (${engines.torch.python}, tools/reference/adco_step.py)`
      : missingLine(engines),
  );
  console.log(
    tableRow(["threads", "ours images/s", "ours (backend threads)", "PyTorch images/s", "ours / PyTorch"]),
  );
  console.log(tableRow(["---", "---", "---", "---", "---"]));
  const byThreads: Record<string, ResultsValue> = {};
  let blas: string | undefined;
  for (const threads of COMPARED_THREADS) {
    const ours = runOurs(
      ["--step-only", "--steps", String(stepCount), "--batch", String(STEP_BATCH)],
      threads,
    );
    const oursRate = ours.imagesPerSecond as number;
    const oursThreads = ours.threads as number;
    const torch = engines.torch
      ? runReference(engines.torch.python, [
          "step",
          "--batch",
          String(STEP_BATCH),
          "--negatives",
          String(negatives),
          "--dim",
          String(config.projectionDim),
          "--threads",
          String(threads),
          "--steps",
          String(stepCount - 1),
          "--warmup",
          "1",
          ...(config.symmetric ? ["--symmetric"] : []),
        ])
      : undefined;
    blas ??= torch ? String(torch.blas) : undefined;
    const torchRate = torch ? (torch.imagesPerSecond as number) : null;
    const ratio = torchRate ? oursRate / torchRate : null;
    byThreads[String(threads)] = {
      oursImagesPerSecond: roundTo(oursRate, 1),
      oursBackend: String(ours.backend),
      oursBackendThreads: oursThreads,
      pytorchImagesPerSecond: torchRate === null ? null : roundTo(torchRate, 1),
      pytorchThreads: torch ? (torch.threads as number) : null,
      oursOverPytorch: ratio === null ? null : roundTo(ratio, 2),
    };
    console.log(
      tableRow([
        threads,
        oursRate.toFixed(1),
        `${ours.backend} (${oursThreads})`,
        torchRate === null ? "-" : torchRate.toFixed(1),
        ratio === null ? "-" : ratio.toFixed(2),
      ]),
    );
  }
  const warning = blasWarning("PyTorch", blas);
  if (warning) console.log(warning);
  results.pytorchComparison = {
    batch: STEP_BATCH,
    negatives,
    dim: config.projectionDim,
    symmetric: config.symmetric,
    stepsAfterWarmup: stepCount - 1,
    pytorch: engines.torch ? { ...engines.torch, blas: blas ?? "unknown" } : null,
    ...(engines.torch ? {} : { pytorchMissing: engines.torchMissing! }),
    threads: byThreads,
  };
}

const file = writeResults({
  name: "bench-core",
  command: npmCommand("bench:core"),
  smoke,
  backend: backend.name,
  results,
});
console.log(`results: ${file}`);
