#!/usr/bin/env node
// `npm start`: the whole system on loopback, one AdCo pre-training on the bundled Fashion-MNIST
// subset, evaluated against the same encoder with random weights and against the raw pixels (the
// images themselves as features, the bar to clear). Prints a short report.
//   ADCO_DEMO_EPOCHS (default 14) shortens or lengthens the run; ADCO_DEMO_DIR keeps its files.
// Writes its numbers to docs/results/start.json (ADCO_RESULTS_DIR to put it elsewhere; see results.ts).
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BUNDLED_FASHION_MNIST } from "@adco/datasets";
import { type Accuracy, EncoderArch } from "@adco/proto/common";
import { EvaluateRequest } from "@adco/proto/evaluator";
import { RunConfig, RunState } from "@adco/proto/trainer";
import { unaryCall } from "@adco/service-kit";
import { evaluationPrefix, ObjectStore } from "@adco/storage";
import { importDataset } from "./import.js";
import { exportPlots, s3Address } from "./plots.js";
import { roundTo, writeResults } from "./results.js";
import {
  evaluate,
  evaluatorAt,
  formatAccuracy,
  formatPerClass,
  formatVersus,
  pointsBetween,
  trainerAt,
  watchRun,
} from "./runs.js";
import { startLocalSystem } from "./system.js";
import { startSystemDashboard } from "./ui/local.js";

const started = performance.now();
const elapsed = () => `${((performance.now() - started) / 1000).toFixed(0)} s`;
// 14 epochs: the encoder passes the raw pixels' kNN only after ~12 epochs (docs/experiments.md),
// and 14 took 9 minutes on 2 cores (docs/results/start.json), under the 10 that npm start may take.
const epochs = Number(process.env.ADCO_DEMO_EPOCHS ?? 14);
const directory = process.env.ADCO_DEMO_DIR ?? mkdtempSync(join(tmpdir(), "adco-demo-"));

console.log(
  "adco: AdCo pre-training on Fashion-MNIST (bundled subset: 6,000 train / 1,000 test images), CPU only",
);
console.log(`starting an S3 server and the four services on loopback (files in ${directory})`);
const system = await startLocalSystem({
  directory,
  freePorts: true,
  onStarted: (name, address) => console.log(`  ${name.padEnd(15)} ${address}`),
});
const trainer = trainerAt(system.services.trainer.address, system.credentials("trainer"));
const evaluator = evaluatorAt(system.services.evaluator.address, system.credentials("evaluator"));
// The run live in a browser while it trains (the page goes with the demo when it ends).
const dashboard = await startSystemDashboard(system, 0);
console.log(`  ${"dashboard".padEnd(15)} ${dashboard.url}`);
let code = 0;
try {
  const store = new ObjectStore(system.s3);
  await importDataset(store, {
    format: "idx",
    source: BUNDLED_FASHION_MNIST,
    name: "fashion-mnist",
    bucket: "adco-datasets",
    quiet: true,
  });
  console.log(`[${elapsed()}] dataset imported: adco-datasets/fashion-mnist (train 6000, test 1000)`);

  const evalOf = (patch: Partial<EvaluateRequest>) =>
    EvaluateRequest.fromPartial({
      train: { bucket: "adco-datasets", name: "fashion-mnist:train" },
      test: { bucket: "adco-datasets", name: "fashion-mnist:test" },
      knn: { enabled: true },
      linear: { enabled: true },
      // The raw pixels through the same classifiers: computed once, then cached by the evaluator.
      rawPixels: true,
      ...patch,
    });
  const baseline = await evaluate(
    evaluator,
    evalOf({ randomInit: { encoder: EncoderArch.ENCODER_ARCH_RESNET_MINI, seed: 0 } }),
  );
  console.log(`[${elapsed()}] random-init encoder and raw pixels evaluated`);

  const run = await unaryCall(trainer.startRun.bind(trainer), {
    runId: "",
    config: RunConfig.fromPartial({
      preset: "fashion-mnist",
      dataset: { bucket: "adco-datasets", name: "fashion-mnist" },
      epochs,
    }),
  });
  console.log(
    `[${elapsed()}] run ${run.runId}: ${run.config?.epochs} epochs, batch ${run.config?.batchSize}, K ${run.config?.bankSize}`,
  );
  const summary = await watchRun(trainer, run.runId, process.stdout);
  if (summary.run.state !== RunState.RUN_STATE_COMPLETED)
    throw new Error(`run ended ${RunState[summary.run.state]}: ${summary.run.error}`);
  const checkpoint = summary.run.latestCheckpoint!;
  const trained = await evaluate(evaluator, evalOf({ checkpoint, writeResults: true }));
  console.log(`[${elapsed()}] checkpoint evaluated`);
  // The plots as local files to open (the S3 server's data directory is no place to look for them).
  const plots = await exportPlots(store, trained.plots, join(directory, "plots"));
  const evaluationFolder = s3Address({
    bucket: checkpoint.manifest!.bucket,
    key: evaluationPrefix(run.runId, checkpoint.step),
  });

  const raw = trained.rawPixels ?? baseline.rawPixels;
  console.log(`
Report
  pre-training     ${summary.run.step} steps (${epochs} epochs) at ${summary.imagesPerSecond.toFixed(0)} images/s
                   per step: compute ${summary.computeMs.toFixed(0)} ms, bank call ${summary.bankCallMs.toFixed(0)} ms, data wait ${(100 * summary.dataWaitFraction).toFixed(0)}%
  random init      ${formatAccuracy("kNN", baseline.knn)}
                   ${formatAccuracy("linear", baseline.linear)}
  raw pixels       ${formatAccuracy("kNN", raw?.knn)}
                   ${formatAccuracy("linear", raw?.linear)}
  AdCo             ${formatAccuracy("kNN", trained.knn)}
                   ${formatAccuracy("linear", trained.linear)}
                   ${formatVersus("random init", trained, baseline) ?? "vs random init: not scored"}
                   ${formatVersus("raw pixels", trained, raw) ?? "vs raw pixels: not scored"}
  per class (linear, AdCo): ${formatPerClass(trained.linear!, trained.classNames)}
  checkpoint       ${s3Address(checkpoint.manifest!)}
  plots            ${plots
    .filter((p) => p.path.endsWith(".png"))
    .map((p) => p.path)
    .join("\n                   ")}
                   (.svg beside them; stored under ${evaluationFolder})
  logs             ${system.logDirectory}
  total time       ${elapsed()}`);
  const top1 = (a?: { top1: number }) => (a ? roundTo(a.top1, 4) : null);
  const points = (a?: Accuracy, b?: Accuracy) => {
    const p = pointsBetween(a, b);
    return p === undefined ? null : Number(p);
  };
  const results = writeResults({
    name: "start",
    command: process.env.ADCO_DEMO_EPOCHS ? `ADCO_DEMO_EPOCHS=${epochs} npm start` : "npm start",
    backend: system.services.trainer.startLogs.find((l) => l.msg === "tfjs backend")?.backend as
      string | undefined,
    results: {
      dataset: "fashion-mnist-small",
      trainImages: 6000,
      testImages: 1000,
      epochs,
      steps: summary.run.step,
      batch: run.config?.batchSize ?? null,
      negatives: run.config?.bankSize ?? null,
      pretraining: {
        imagesPerSecond: roundTo(summary.imagesPerSecond, 0),
        computeMsPerStep: roundTo(summary.computeMs, 0),
        bankCallMsPerStep: roundTo(summary.bankCallMs, 0),
        dataWaitPercent: roundTo(100 * summary.dataWaitFraction, 0),
      },
      // Top-1 accuracies as fractions of the 1,000 test images.
      randomInit: { knnTop1: top1(baseline.knn), linearTop1: top1(baseline.linear) },
      // The images' pixels as features (featureDimension values each), through the same kNN and probe.
      rawPixels: {
        knnTop1: top1(raw?.knn),
        linearTop1: top1(raw?.linear),
        featureDimension: raw?.dimension ?? null,
      },
      adco: {
        knnTop1: top1(trained.knn),
        linearTop1: top1(trained.linear),
        linearTop1PerClass: Object.fromEntries(
          (trained.linear?.perClassTop1 ?? []).map((v, i) => [
            trained.classNames[i] ?? String(i),
            roundTo(v, 4),
          ]),
        ),
      },
      // AdCo's top-1 less the baselines', in points (as the report prints them).
      vsRandomInit: {
        knnPoints: points(trained.knn, baseline.knn),
        linearPoints: points(trained.linear, baseline.linear),
      },
      vsRawPixels: {
        knnPoints: points(trained.knn, raw?.knn),
        linearPoints: points(trained.linear, raw?.linear),
      },
      totalSeconds: roundTo((performance.now() - started) / 1000, 0),
    },
  });
  console.log(`  results          ${results}`);
  if (!trained.knn || !baseline.knn || trained.knn.top1 <= baseline.knn.top1) {
    console.log("AdCo did not beat random init on kNN: see the logs");
    code = 1;
  }
} catch (e) {
  console.error(`adco start failed: ${(e as Error).message}; service logs in ${system.logDirectory}`);
  code = 1;
} finally {
  trainer.close();
  evaluator.close();
  await dashboard.close();
  await system.stop();
}
process.exit(code);
