// What it takes on small data: pre-trains in process (libs/experiments) on the bundled Fashion-MNIST
// subset (6,000 train / 1,000 test) for a list of named variants of the `fashion-mnist` preset, and
// scores each with the project's protocol (kNN k 200 weighted cosine; linear probe on standardised
// features, 100 epochs) on the bundled test split, beside the raw pixels through the same code path.
//   npm run -s experiment:small-data -- [--only a,b,...] [--seeds 0,1,2] [--dir DIR] [--until HH:MM] [--list]
//   npm run -s experiment:small-data -- --smoke   (seconds: 256 + 128 images, batch 32, K 64, 1 epoch)
// Resumable: each finished (variant, seed) is kept as DIR/<name>-seed<seed>.json (DIR: --dir, else
// $TMPDIR/adco-small-data-study) and is not re-run. --until (UTC) skips a variant whose estimated time
// (from the variants already measured) would run past it. Writes docs/results/experiment-small-data.json
// with every finished variant, and the variants of the file it replaces that this run has no seed of
// (unchanged definitions only; a smoke run: a temporary directory; see libs/cli/src/results.ts).
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isDeepStrictEqual, parseArgs } from "node:util";
import { SMALL_GRAY_DEFAULTS, type SmallGrayOptions } from "@adco/augment";
import {
  asResultsValue,
  npmCommand,
  parseSeeds,
  readResults,
  type ResultsFile,
  resultsPath,
  roundTo,
  untilDeadline,
  writeResults,
  type ResultsValue,
} from "@adco/cli";
import {
  backendFromEnv,
  type Encoder,
  encoderSpec,
  initBackend,
  initSteps,
  KNN_DEFAULTS,
  knnClassify,
  LINEAR_PROBE_DEFAULTS,
  linearProbe,
  preset,
  type PretrainConfig,
} from "@adco/core";
import { BUNDLED_FASHION_MNIST, FASHION_MNIST_CLASSES, readFashionMnist, firstImages } from "@adco/datasets";
import { evaluationImages, runSmallImageExperiment } from "@adco/experiments";
import * as tf from "@tensorflow/tfjs-core";

interface Variant {
  readonly name: string;
  readonly preset: "fashion-mnist" | "fashion-mnist-moco";
  readonly epochs: number;
  readonly config?: Partial<Omit<PretrainConfig, "adco">> & { adco?: Partial<PretrainConfig["adco"]> };
  readonly augment?: Partial<SmallGrayOptions>;
}

const VARIANTS: readonly Variant[] = [
  { name: "preset-e4", preset: "fashion-mnist", epochs: 4 },
  { name: "preset-e10", preset: "fashion-mnist", epochs: 10 },
  { name: "preset-e12", preset: "fashion-mnist", epochs: 12 },
  { name: "preset-e16", preset: "fashion-mnist", epochs: 16 },
  {
    name: "crop50-noblur-e10",
    preset: "fashion-mnist",
    epochs: 10,
    augment: { scale: [0.5, 1], blurP: 0 },
  },
  { name: "crop50-noblur-e4", preset: "fashion-mnist", epochs: 4, augment: { scale: [0.5, 1], blurP: 0 } },
  { name: "lr012-e10", preset: "fashion-mnist", epochs: 10, config: { lr: 0.12, finalLr: 0.0024 } },
  { name: "lr003-e10", preset: "fashion-mnist", epochs: 10, config: { lr: 0.03, finalLr: 0.0006 } },
  { name: "t020-e10", preset: "fashion-mnist", epochs: 10, config: { adco: { temperature: 0.2 } } },
  { name: "k-1024-e10", preset: "fashion-mnist", epochs: 10, config: { negatives: 1024 } },
  { name: "k-16384-e10", preset: "fashion-mnist", epochs: 10, config: { negatives: 16384 } },
  { name: "m0996-e10", preset: "fashion-mnist", epochs: 10, config: { encoderMomentum: 0.996 } },
  { name: "batch-128-e10", preset: "fashion-mnist", epochs: 10, config: { batchSize: 128 } },
  {
    name: "tmem005-memlr1-e10",
    preset: "fashion-mnist",
    epochs: 10,
    config: { adco: { memoryTemperature: 0.05, memoryLr: 1 } },
  },
  { name: "crop008-e10", preset: "fashion-mnist", epochs: 10, augment: { scale: [0.08, 1] } },
  { name: "wide-e10", preset: "fashion-mnist", epochs: 10, config: { arch: "resnet-mini-wide" } },
  { name: "moco-e10", preset: "fashion-mnist-moco", epochs: 10 },
];

const { values } = parseArgs({
  options: {
    only: { type: "string" },
    dir: { type: "string" },
    until: { type: "string" },
    seeds: { type: "string", default: "0" },
    list: { type: "boolean", default: false },
    smoke: { type: "boolean", default: false },
  },
});
if (values.list) {
  for (const v of VARIANTS) console.log(`${v.name}: ${JSON.stringify({ ...v, name: undefined })}`);
  process.exit(0);
}
const smoke = values.smoke;
const seeds = parseSeeds(values.seeds);
const byName = new Map(VARIANTS.map((v) => [v.name, v]));
const chosen = (values.only ?? (smoke ? "preset-e4,moco-e10" : VARIANTS.map((v) => v.name).join(",")))
  .split(",")
  .map((name) => {
    const v = byName.get(name);
    if (!v) throw new Error(`--only: unknown variant ${name}; one of ${[...byName.keys()].join(", ")}`);
    return v;
  });
const dir =
  values.dir ?? join(tmpdir(), smoke ? `adco-small-data-smoke-${process.pid}` : "adco-small-data-study");
mkdirSync(dir, { recursive: true });
const deadline = values.until ? untilDeadline(values.until) : Number.POSITIVE_INFINITY;

const backend = await initBackend(backendFromEnv());
console.log(`backend ${backend.name} (${backend.detail}); work directory ${dir}`);
const train = firstImages(readFashionMnist(BUNDLED_FASHION_MNIST, "train"), smoke ? 256 : undefined);
const test = firstImages(readFashionMnist(BUNDLED_FASHION_MNIST, "test"), smoke ? 128 : undefined);
const classes = FASHION_MNIST_CLASSES.length;
console.log(`bundled subset: ${train.count} train, ${test.count} test images`);

interface Scores {
  readonly knn: number;
  readonly linear: number;
  readonly seconds: number;
}

/** kNN (KNN_DEFAULTS) and the linear probe (LINEAR_PROBE_DEFAULTS) of features f(images). */
function evaluate(features: (images: tf.Tensor4D) => tf.Tensor2D): Scores {
  const t0 = performance.now();
  const trainImages = evaluationImages(train);
  const testImages = evaluationImages(test);
  const trainF = features(trainImages);
  const testF = features(testImages);
  try {
    const trainLabels = Int32Array.from(train.labels);
    const testLabels = Int32Array.from(test.labels);
    const knn = knnClassify(trainF, trainLabels, testF, testLabels, { ...KNN_DEFAULTS, classes });
    const linear = linearProbe(trainF, trainLabels, testF, testLabels, {
      classes,
      ...LINEAR_PROBE_DEFAULTS,
      ...(smoke ? { epochs: 5 } : {}),
    });
    return { knn: knn.top1, linear: linear.top1, seconds: (performance.now() - t0) / 1000 };
  } finally {
    tf.dispose([trainImages, testImages, trainF, testF]);
  }
}

/** The encoder's output at `node` (its features unless named), 500 images at a time. */
const encoderFeatures =
  (encoder: Encoder, node = encoder.spec.features) =>
  (images: tf.Tensor4D) =>
    encoder.features(images, 500, node);

// What the evaluator scores: the query encoder's features (resnet-mini's whole last map). A variant
// measured with other features (a work directory from before the map) is run again.
const featureDimOf = (config: PretrainConfig) => encoderSpec(config.arch).featureDim;
const featuresOf = (config: PretrainConfig) => `query encoder, ${featureDimOf(config)} features`;
const FEATURES = featuresOf(preset("fashion-mnist"));

const rawFile = join(dir, "raw-pixels.json");
const raw: Scores = existsSync(rawFile)
  ? (JSON.parse(readFileSync(rawFile, "utf8")) as Scores)
  : evaluate((images) => tf.reshape(images, [images.shape[0], -1]));
writeFileSync(rawFile, JSON.stringify(raw));
console.log(`raw pixels: kNN ${(raw.knn * 100).toFixed(1)}%, linear ${(raw.linear * 100).toFixed(1)}%`);

interface Done {
  readonly name: string;
  readonly seed: number;
  readonly preset: string;
  readonly epochs: number;
  readonly config: ResultsValue;
  readonly augment: ResultsValue;
  readonly steps: number;
  readonly initSteps: number;
  readonly trainSeconds: number;
  /** All three evaluations: the features, the global means and the momentum encoder's features. */
  readonly evalSeconds: number;
  readonly imagesPerSecond: number;
  readonly features: string;
  readonly knn: number;
  readonly linear: number;
  /** The head's input (64 global means) and the momentum encoder's features, beside. */
  readonly global: Scores;
  readonly key: Scores;
  readonly finalLoss: number;
  readonly finalContrastAccuracy: number;
}

/** A smoke run trains every variant one epoch. */
const epochsOf = (v: Variant) => (smoke ? 1 : v.epochs);

interface Job {
  readonly variant: Variant;
  readonly seed: number;
}
const jobs: Job[] = chosen.flatMap((variant) => seeds.map((seed) => ({ variant, seed })));
const fileOf = ({ variant, seed }: Job) => join(dir, `${variant.name}-seed${seed}.json`);
const configOf = ({ variant: v, seed }: Job): PretrainConfig => {
  const base = preset(v.preset);
  return {
    ...base,
    ...v.config,
    adco: { ...base.adco, ...v.config?.adco },
    seed,
    ...(smoke ? { batchSize: 32, negatives: 64 } : {}),
  };
};
/** The job's finished result, if its file holds one measured with the current features. */
const finished = (job: Job): Done | undefined => {
  if (!existsSync(fileOf(job))) return undefined;
  const done = JSON.parse(readFileSync(fileOf(job), "utf8")) as Done;
  return done.features === featuresOf(configOf(job)) ? done : undefined;
};
const measured = () => jobs.flatMap((job) => finished(job) ?? []);

for (const job of jobs) {
  const { variant: v, seed } = job;
  const label = `${v.name} seed ${seed}`;
  if (finished(job)) {
    console.log(`${label}: done (${fileOf(job)})`);
    continue;
  }
  const config = configOf(job);
  const features = featuresOf(config);
  if (existsSync(fileOf(job)))
    console.log(`${label}: ${fileOf(job)} has other features than ${features}; again`);
  const augment: SmallGrayOptions = { ...SMALL_GRAY_DEFAULTS, ...v.augment };
  const epochs = epochsOf(v);
  const stepsPerEpoch = Math.floor(train.count / config.batchSize);
  const init = initSteps(config);
  const steps = init + epochs * stepsPerEpoch;
  // The time estimate: from finished runs of the same encoder (a wider one is slower), else of any.
  const measuredRuns = measured();
  const sameArch = measuredRuns.filter((d) => d.features === features);
  const prior = sameArch.length > 0 ? sameArch : measuredRuns;
  if (prior.length > 0 && Number.isFinite(deadline)) {
    const ips = prior.reduce((a, d) => a + d.imagesPerSecond, 0) / prior.length;
    const evalSeconds = Math.max(...prior.map((d) => d.evalSeconds));
    const estimate = (steps * config.batchSize) / ips + evalSeconds + 10;
    if (Date.now() + estimate * 1000 > deadline) {
      console.log(`${label}: skipped, ~${estimate.toFixed(0)} s would run past --until ${values.until}`);
      continue;
    }
  }
  console.log(`${label}: ${epochs} epochs, ${steps} steps (${init} init), batch ${config.batchSize}`);
  let lastLog = 0;
  let scores: { query: Scores; global: Scores; key: Scores } | undefined;
  const r = runSmallImageExperiment({
    config,
    train,
    test,
    classes,
    steps,
    augment,
    randomInitKnn: false,
    onStep: (p) => {
      if (p.step === p.totalSteps || performance.now() - lastLog > 30_000) {
        lastLog = performance.now();
        const eta = ((p.totalSteps - p.step) * p.elapsedSeconds) / p.step;
        console.log(
          `  ${p.phase} step ${p.step}/${p.totalSteps} loss ${p.loss.toFixed(3)} contrast-acc ${(p.accuracy * 100).toFixed(1)}% ` +
            `lr ${p.lr.toFixed(4)} ${p.imagesPerSecond.toFixed(0)} img/s eta ${eta.toFixed(0)} s`,
        );
      }
    },
    onTrained: (query, key) => {
      scores = {
        query: evaluate(encoderFeatures(query)),
        global: evaluate(encoderFeatures(query, "pooled")),
        key: evaluate(encoderFeatures(key)),
      };
    },
  });
  const done: Done = {
    name: v.name,
    seed,
    preset: v.preset,
    epochs,
    config: (v.config ?? {}) as ResultsValue,
    augment: (v.augment ?? {}) as ResultsValue,
    steps: r.steps,
    initSteps: r.initSteps,
    trainSeconds: r.trainSeconds,
    evalSeconds: scores!.query.seconds + scores!.global.seconds + scores!.key.seconds,
    imagesPerSecond: r.imagesPerSecond,
    features,
    knn: scores!.query.knn,
    linear: scores!.query.linear,
    global: scores!.global,
    key: scores!.key,
    finalLoss: r.finalLoss,
    finalContrastAccuracy: r.finalContrastAccuracy,
  };
  writeFileSync(fileOf(job), JSON.stringify(done, null, 2));
  console.log(
    `${label}: kNN ${(done.knn * 100).toFixed(1)}% (raw ${(raw.knn * 100).toFixed(1)}), linear ${(done.linear * 100).toFixed(1)}% ` +
      `(raw ${(raw.linear * 100).toFixed(1)}); train ${done.trainSeconds.toFixed(0)} s, eval ${done.evalSeconds.toFixed(0)} s`,
  );
}

const all = measured();
const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const percent = (x: number) => roundTo(x * 100, 1);
console.log(`\n| variant | seeds | epochs | train s | kNN top-1 | linear top-1 |`);
console.log(`| --- | --- | --- | --- | --- | --- |`);
console.log(`| raw pixels | - | - | - | ${(raw.knn * 100).toFixed(1)} | ${(raw.linear * 100).toFixed(1)} |`);
const variants: Record<string, ResultsValue> = {};
for (const v of chosen) {
  const runs = all.filter((d) => d.name === v.name);
  if (runs.length === 0) continue;
  const d = runs[0]!;
  const of = (f: (d: Done) => number) => mean(runs.map(f));
  const [knn, linear] = [of((d) => d.knn), of((d) => d.linear)];
  const spread = (f: (d: Done) => number) => percent(Math.max(...runs.map(f)) - Math.min(...runs.map(f)));
  console.log(
    `| ${v.name} | ${runs.length} | ${d.epochs} | ${of((d) => d.trainSeconds).toFixed(0)} | ${(knn * 100).toFixed(1)} | ${(linear * 100).toFixed(1)} |`,
  );
  variants[v.name] = {
    preset: d.preset,
    features: d.features,
    featureDim: featureDimOf(configOf({ variant: v, seed: d.seed })),
    // The variant's differences from its preset (PretrainConfig keys) and from SMALL_GRAY_DEFAULTS.
    config: d.config,
    augment: d.augment,
    epochs: d.epochs,
    steps: d.steps,
    initSteps: d.initSteps,
    seeds: runs.map((d) => d.seed),
    // Means over the seeds; top-1 in percent of the test images.
    trainSeconds: roundTo(
      of((d) => d.trainSeconds),
      0,
    ),
    evalSeconds: roundTo(
      of((d) => d.evalSeconds),
      0,
    ),
    imagesPerSecond: roundTo(
      of((d) => d.imagesPerSecond),
      0,
    ),
    knn: percent(knn),
    linear: percent(linear),
    knnVsRawPixels: percent(knn - raw.knn),
    linearVsRawPixels: percent(linear - raw.linear),
    // Each seed's scores, and the largest minus the smallest.
    knnBySeed: runs.map((d) => percent(d.knn)),
    linearBySeed: runs.map((d) => percent(d.linear)),
    knnSpread: spread((d) => d.knn),
    linearSpread: spread((d) => d.linear),
    // The same query encoder's 64 global means (the head's input), and the momentum encoder's grid.
    globalKnn: percent(of((d) => d.global.knn)),
    globalLinear: percent(of((d) => d.global.linear)),
    keyKnn: percent(of((d) => d.key.knn)),
    keyLinear: percent(of((d) => d.key.linear)),
    finalLoss: roundTo(
      of((d) => d.finalLoss),
      4,
    ),
    finalContrastAccuracy: roundTo(
      of((d) => d.finalContrastAccuracy),
      4,
    ),
  };
}
// A work directory is one machine's disk (a pod rescheduled, a session's sandbox): a variant this
// run has no seed of keeps its entry of the results file this one replaces, where the variant's
// definition is unchanged (preset, epochs, config, augmentation, features) and the data is the same,
// marked with the commit that measured it. So `--only` adds variants to the study's file.
const RESULTS_NAME = "experiment-small-data";
const previousFile = resultsPath(RESULTS_NAME, smoke);
const previous = readResults(RESULTS_NAME, smoke) as
  | (ResultsFile & {
      results: {
        trainImages?: number;
        features?: string;
        variants?: Record<string, Record<string, ResultsValue>>;
      };
    })
  | undefined;
for (const [name, entry] of Object.entries(previous?.results.variants ?? {})) {
  if (name in variants) continue;
  const v = VARIANTS.find((x) => x.name === name);
  const same =
    v !== undefined &&
    previous!.results.trainImages === train.count &&
    entry.preset === v.preset &&
    entry.epochs === epochsOf(v) &&
    isDeepStrictEqual(entry.config, asResultsValue(v.config)) &&
    isDeepStrictEqual(entry.augment, asResultsValue(v.augment)) &&
    // A file from before each variant named its features has them once, for all.
    (entry.features ?? previous!.results.features) === featuresOf(configOf({ variant: v, seed: 0 }));
  if (!same) {
    console.log(`${name}: in ${previousFile}, but not as this study defines it now; left out`);
    continue;
  }
  const commit = typeof entry.commit === "string" ? entry.commit : previous!.commit;
  variants[name] = { ...entry, commit };
  console.log(`${name}: kept from ${previousFile} (commit ${commit.slice(0, 7)})`);
}
const file = writeResults({
  name: RESULTS_NAME,
  command: npmCommand("experiment:small-data"),
  smoke,
  backend: backend.name,
  results: {
    data: "libs/datasets (bundled subset)",
    trainImages: train.count,
    testImages: test.count,
    seeds,
    threads: process.env.ADCO_THREADS ?? "default",
    features: FEATURES,
    knnK: KNN_DEFAULTS.k,
    linearEpochs: smoke ? 5 : LINEAR_PROBE_DEFAULTS.epochs,
    // The raw pixels (normalised as the encoder's input) through the same kNN and linear probe, in %.
    rawPixels: { knn: roundTo(raw.knn * 100, 1), linear: roundTo(raw.linear * 100, 1) },
    // In the order of VARIANTS, measured here or kept.
    variants: Object.fromEntries(
      VARIANTS.flatMap((v) => (v.name in variants ? [[v.name, variants[v.name]!]] : [])),
    ),
  },
});
console.log(`results: ${file}`);
