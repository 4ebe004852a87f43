// Benchmarks the core on the active backend (ADCO_BACKEND, default auto): per-op GFLOP/s of the ops of
// a training step, images/s of a full AdCo step (resnet-mini, 28x28x1, batch 256), peak RSS, and the
// same step on the pure-JS cpu backend (in a child process) for the speed-up. Measures, never asserts.
//   npm run -s bench:core [-- --repeats 5] [--no-cpu]
import { spawnSync } from "node:child_process";
import { parseArgs } from "node:util";
import * as tf from "@tensorflow/tfjs-core";
import { backendFromEnv, encoderSpec, initBackend, PRESETS, Pretrainer } from "@adco/core";

const { values } = parseArgs({
  options: {
    repeats: { type: "string", default: "5" },
    "no-cpu": { type: "boolean", default: false },
    "step-only": { type: "boolean", default: false },
    steps: { type: "string", default: "6" },
    batch: { type: "string", default: "256" },
  },
});
const repeats = Number(values.repeats);
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

function stepImagesPerSecond(steps: number, batch: number): { imagesPerSecond: number; seconds: number[] } {
  const config = { ...PRESETS["fashion-mnist"], batchSize: batch };
  const trainer = new Pretrainer(config);
  const views = [0, 1].map((i) => tf.randomUniform([batch, 28, 28, 1], -1, 2, "float32", i) as tf.Tensor4D);
  const seconds: number[] = [];
  for (let i = 0; i < steps; i++) {
    const t0 = performance.now();
    trainer.trainStep(views, 0.03);
    seconds.push((performance.now() - t0) / 1000);
  }
  trainer.dispose();
  tf.dispose(views);
  const steady = seconds.slice(1).sort((a, b) => a - b);
  return { imagesPerSecond: batch / steady[Math.floor(steady.length / 2)]!, seconds };
}

if (values["step-only"]) {
  console.log(JSON.stringify(stepImagesPerSecond(Number(values.steps), Number(values.batch))));
  process.exit(0);
}

console.log(`backend: ${backend.name} (${backend.detail}); median of ${repeats} runs\n`);
console.log("| op (batch 256) | shape | GFLOP | ms | GFLOP/s |");
console.log("| --- | --- | --- | --- | --- |");
const row = (op: string, shape: string, flops: number, seconds: number) =>
  console.log(
    `| ${op} | ${shape} | ${(flops / 1e9).toFixed(2)} | ${(seconds * 1000).toFixed(1)} | ${(flops / seconds / 1e9).toFixed(1)} |`,
  );

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
  const x = tf.randomNormal([256, h, h, cin]) as tf.Tensor4D;
  const w = tf.randomNormal([node.size, node.size, cin, node.filters]) as tf.Tensor4D;
  const y = tf.conv2d(x, w, node.stride, "same");
  const dy = tf.randomNormal(y.shape) as tf.Tensor4D;
  const flops = 2 * y.size * node.size * node.size * cin;
  const attrs = { strides: node.stride, pad: "same", dataFormat: "NHWC", dimRoundingMode: undefined };
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
for (const k of [4096, 65536]) {
  const q = tf.randomNormal([256, 128]) as tf.Tensor2D;
  const bank = tf.randomNormal([128, k]) as tf.Tensor2D;
  const bankT = tf.transpose(bank);
  const probs = tf.randomUniform([256, k]) as tf.Tensor2D;
  const qT = tf.transpose(q);
  const flops = 2 * 256 * 128 * k;
  row(
    "q . d (logits)",
    `256x128 . 128x${k}`,
    flops,
    time(() => tf.matMul(q, bank)),
  );
  row(
    "P . dT (dLoss/dq)",
    `256x${k} . ${k}x128`,
    flops,
    time(() => tf.matMul(probs, bankT)),
  );
  row(
    "qT . P (bank gradient)",
    `128x256 . 256x${k}`,
    flops,
    time(() => tf.matMul(qT, probs)),
  );
  tf.dispose([q, bank, bankT, probs, qT]);
}

const step = stepImagesPerSecond(Number(values.steps), 256);
console.log(
  `\nfull AdCo step, resnet-mini 28x28x1, batch 256, K 4096 (${backend.name}): ${step.imagesPerSecond.toFixed(1)} images/s (median of ${step.seconds.length - 1} steps after a warm-up)`,
);
console.log(`peak RSS: ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MiB`);

// The cpu backend needs minutes per batch-256 step, so the comparison runs both at batch 32.
if (!values["no-cpu"] && backend.name !== "cpu") {
  const small = stepImagesPerSecond(4, 32);
  const child = spawnSync(
    process.execPath,
    [...process.execArgv, process.argv[1]!, "--step-only", "--steps", "2", "--batch", "32"],
    { env: { ...process.env, ADCO_BACKEND: "cpu" }, encoding: "utf8" },
  );
  const line = child.stdout.trim().split("\n").pop() ?? "";
  try {
    const cpu = JSON.parse(line) as { imagesPerSecond: number };
    console.log(
      `batch 32: ${backend.name} ${small.imagesPerSecond.toFixed(1)} images/s, cpu ${cpu.imagesPerSecond.toFixed(2)} images/s -> ${backend.name} is ${(small.imagesPerSecond / cpu.imagesPerSecond).toFixed(1)}x faster`,
    );
  } catch {
    console.log(`cpu backend run failed: ${child.stderr.slice(-500)}`);
  }
}
