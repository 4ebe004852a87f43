// Pre-trains AdCo and the MoCo v2 baseline on Fashion-MNIST in one process, with the same encoder,
// schedule and budget, and prints kNN accuracy (k=200, weighted) against random init.
//   npm run -s experiment:fashion-mnist -- [--data DIR] [--steps N] [--methods adco,moco] [--json FILE]
// --data defaults to the full set (Debian's path, else ../shared), --data bundled uses the subset.
//   npm run -s experiment:fashion-mnist -- --smoke   (seconds: 256 + 128 bundled images, batch 32, K 64,
//   4 steps; the same code path, numbers of no meaning)
// Writes docs/results/experiment-fashion-mnist.json (a smoke run: a temporary directory; see
// libs/cli/src/results.ts).
import { existsSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { parseArgs } from "node:util";
import { npmCommand, roundTo, writeResults, type ResultsValue } from "@adco/cli";
import { backendFromEnv, initBackend, preset } from "@adco/core";
import {
  BUNDLED_FASHION_MNIST,
  DEBIAN_FASHION_MNIST,
  FASHION_MNIST_CLASSES,
  readFashionMnist,
  firstImages,
} from "@adco/datasets";
import { type ExperimentResult, runSmallImageExperiment } from "@adco/experiments";

const { values } = parseArgs({
  options: {
    data: { type: "string" },
    steps: { type: "string", default: "400" },
    methods: { type: "string", default: "adco,moco" },
    seed: { type: "string", default: "0" },
    json: { type: "string" },
    smoke: { type: "boolean", default: false },
  },
});
const smoke = values.smoke;
const shared = join(import.meta.dirname, "../../shared/datasets/fashion-mnist");
const data =
  values.data === "bundled" || smoke
    ? BUNDLED_FASHION_MNIST
    : (values.data ?? (existsSync(DEBIAN_FASHION_MNIST) ? DEBIAN_FASHION_MNIST : shared));
const steps = smoke ? 4 : Number(values.steps);
const seed = Number(values.seed);
if (!Number.isInteger(steps) || steps < 1)
  throw new Error(`--steps: a positive integer, got ${values.steps}`);

const backend = await initBackend(backendFromEnv());
console.log(`backend ${backend.name} (${backend.detail})`);
const train = firstImages(readFashionMnist(data, "train"), smoke ? 256 : undefined);
const test = firstImages(readFashionMnist(data, "test"), smoke ? 128 : undefined);
console.log(`data ${data}: ${train.count} train, ${test.count} test images`);

const results: ExperimentResult[] = [];
for (const method of values.methods.split(",")) {
  const config = {
    ...preset(method === "moco" ? "fashion-mnist-moco" : "fashion-mnist"),
    seed,
    ...(smoke ? { batchSize: 32, negatives: 64 } : {}),
  };
  let lastLog = 0;
  const result = runSmallImageExperiment({
    config,
    train,
    test,
    classes: FASHION_MNIST_CLASSES.length,
    steps,
    onStep: (p) => {
      if (p.step === p.totalSteps || performance.now() - lastLog > 15_000) {
        lastLog = performance.now();
        const eta = ((p.totalSteps - p.step) * p.elapsedSeconds) / p.step;
        console.log(
          `${method} ${p.phase} step ${p.step}/${p.totalSteps} loss ${p.loss.toFixed(3)} contrast-acc ${(p.accuracy * 100).toFixed(1)}% ` +
            `lr ${p.lr.toFixed(4)} ${p.imagesPerSecond.toFixed(0)} img/s eta ${eta.toFixed(0)} s`,
        );
      }
    },
  });
  results.push(result);
  console.log(
    `${method}: kNN ${(result.knnRandomInit * 100).toFixed(1)}% at random init -> ${(result.knnTrained * 100).toFixed(1)}%`,
  );
}

console.log(
  `\n| method | steps (init + train) | epochs | kNN top-1 random init | kNN top-1 trained | images/s |`,
);
console.log(`| --- | --- | --- | --- | --- | --- |`);
for (const r of results) {
  console.log(
    `| ${r.method === "adco" ? "AdCo" : "MoCo v2"} | ${r.initSteps} + ${r.steps - r.initSteps} | ${r.epochs.toFixed(2)} | ` +
      `${(r.knnRandomInit * 100).toFixed(1)}% | ${(r.knnTrained * 100).toFixed(1)}% | ${r.imagesPerSecond.toFixed(0)} |`,
  );
}
if (values.json)
  writeFileSync(values.json, JSON.stringify({ data, backend: backend.name, steps, seed, results }, null, 2));

const byMethod: Record<string, ResultsValue> = {};
for (const r of results) {
  byMethod[r.method] = {
    initSteps: r.initSteps,
    trainSteps: r.steps - r.initSteps,
    epochs: roundTo(r.epochs, 2),
    knnTop1RandomInit: roundTo(r.knnRandomInit, 4),
    knnTop1Trained: roundTo(r.knnTrained, 4),
    knnTop1PerClassTrained: r.perClassTrained.map((a) => roundTo(a, 4)),
    imagesPerSecond: roundTo(r.imagesPerSecond, 0),
    trainSeconds: roundTo(r.trainSeconds, 0),
    finalLoss: roundTo(r.finalLoss, 4),
    finalContrastAccuracy: roundTo(r.finalContrastAccuracy, 4),
  };
}
const file = writeResults({
  name: "experiment-fashion-mnist",
  command: npmCommand("experiment:fashion-mnist"),
  smoke,
  backend: backend.name,
  results: {
    data: relative(join(import.meta.dirname, ".."), data) || ".",
    trainImages: train.count,
    testImages: test.count,
    steps,
    seed,
    // kNN top-1 (k 200, weighted) as fractions of the test images.
    methods: byMethod,
  },
});
console.log(`results: ${file}`);
