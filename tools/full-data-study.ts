// AdCo against MoCo v2 on the whole of Fashion-MNIST (60,000 train / 10,000 test) at equal epochs, a
// few seeds each: kNN over epochs, kNN and the linear probe of the trained encoder at the end (the
// project's protocol: kNN k 200 weighted cosine; linear probe on standardised features, 100 epochs),
// beside the raw pixels through the same code.
//   npm run -s experiment:full-data -- [--methods adco,moco] [--seeds 0,1,2] [--epochs 2] [--dir DIR]
//                                      [--until HH:MM] [--arch resnet-mini-wide]
//   npm run -s experiment:full-data -- --summary  (the results of what DIR holds; trains nothing)
//   npm run -s experiment:full-data -- --smoke   (seconds: 512 + 250 bundled images, batch 32, K 64)
// --arch trains another encoder than the presets' (both methods): its jobs are DIR/<method>-<arch>-...
// and its results experiment-full-data-e<epochs>-<arch>.json. A run takes hours on a CPU, so every
// (method, seed) is resumable: its state (both encoders, SGD momentum, the negatives, the step and
// the scores so far) is a checkpoint in DIR/<method>-e<epochs>-seed<seed>/, written after each epoch
// and when the run stops early (--until in UTC, SIGINT, SIGTERM); run the same command again to go
// on. DIR: --dir, else ~/.cache/adco/full-data-study. Two processes may share DIR on different jobs
// (e.g. --methods adco and --methods moco on two cores); a job being run by another live process is
// refused (DIR/<job>/lock).
// The kNN after each epoch scores a fixed fifth of the test split (every 5th image; all 10,000 would
// take ~5 minutes of one core per epoch); the end scores all of it, and the linear probe.
// Exits 75 when it stopped before every chosen job finished. Writes docs/results/experiment-full-data-
// e<epochs>.json (and .png) with every job of the chosen methods and seeds found in DIR, finished or
// not, and the finished runs of the file it replaces that DIR does not hold, where the same training
// config made them (each marked with the commit that ran it), so seeds run on different machines add
// up (a smoke run: a temporary directory; see libs/cli/src/results.ts).
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { isDeepStrictEqual, parseArgs } from "node:util";
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
  type EncoderArch,
  encoderSpec,
  initBackend,
  initSteps,
  featureBlocksOf,
  KNN_DEFAULTS,
  knnClassifyChunked,
  LINEAR_PROBE_DEFAULTS,
  linearProbe,
  preset,
  Pretrainer,
  type PretrainConfig,
  pretrainerFiles,
  restorePretrainer,
  runPretraining,
} from "@adco/core";
import {
  BUNDLED_FASHION_MNIST,
  DEBIAN_FASHION_MNIST,
  everyNthImage,
  FASHION_MNIST_CLASSES,
  firstImages,
  imagesBetween,
  type LabelledImages,
  readFashionMnist,
} from "@adco/datasets";
import { lineChart, type Series, svgToPng } from "@adco/evaluator";
import { evaluationImages, smallImageBatches } from "@adco/experiments";
import * as tf from "@tensorflow/tfjs-core";

const { values } = parseArgs({
  options: {
    methods: { type: "string", default: "adco,moco" },
    seeds: { type: "string", default: "0,1,2" },
    epochs: { type: "string", default: "2" },
    dir: { type: "string" },
    until: { type: "string" },
    arch: { type: "string" },
    summary: { type: "boolean", default: false },
    smoke: { type: "boolean", default: false },
  },
});
const smoke = values.smoke;
const methods: string[] = values.methods.split(",").map((m) => {
  if (m !== "adco" && m !== "moco") throw new Error(`--methods: ${m} is not adco or moco`);
  return m;
});
const seeds = parseSeeds(values.seeds);
const epochs = Number(values.epochs);
if (!Number.isInteger(epochs) || epochs < 1)
  throw new Error(`--epochs: a positive integer, got ${values.epochs}`);
// encoderSpec refuses an unknown name, listing the known ones.
const archSpec = values.arch === undefined ? undefined : encoderSpec(values.arch as EncoderArch);
const arch = archSpec?.arch;
if (archSpec && archSpec.inputShape.join("x") !== "28x28x1")
  throw new Error(`--arch: ${arch} takes ${archSpec.inputShape.join("x")} images, not 28x28 gray`);
/** What names an --arch run's jobs and results apart from the presets' encoder's. */
const archTag = arch === undefined ? "" : `-${arch}`;
const deadline = values.until ? untilDeadline(values.until) : Number.POSITIVE_INFINITY;
const dir =
  values.dir ??
  (smoke
    ? join(tmpdir(), `adco-full-data-smoke-${process.pid}`)
    : join(homedir(), ".cache/adco/full-data-study"));
mkdirSync(dir, { recursive: true });

/** SIGINT/SIGTERM end the run at the next step, with a checkpoint. */
let interrupted = false;
for (const signal of ["SIGINT", "SIGTERM"] as const)
  process.on(signal, () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    console.log(`${signal}: stopping after this step, with a checkpoint (again to quit at once)`);
  });
const stopping = () => interrupted || Date.now() > deadline;
const STEPS_BETWEEN_SIGNALS = 5;
/** Images per forward pass of an evaluation (see featuresOf). */
const EVAL_CHUNK = 500;

const backend = await initBackend(backendFromEnv());
const shared = join(import.meta.dirname, "../../shared/datasets/fashion-mnist");
const data = smoke ? BUNDLED_FASHION_MNIST : existsSync(DEBIAN_FASHION_MNIST) ? DEBIAN_FASHION_MNIST : shared;
const train = firstImages(readFashionMnist(data, "train"), smoke ? 512 : undefined);
const test = firstImages(readFashionMnist(data, "test"), smoke ? 250 : undefined);
const classes = FASHION_MNIST_CLASSES.length;
console.log(
  `backend ${backend.name} (${backend.detail}); ${data}: ${train.count} train, ${test.count} test images; work directory ${dir}`,
);

const MONITOR_STRIDE = 5;
const monitorTest = everyNthImage(test, MONITOR_STRIDE);

interface Scores {
  /** kNN top-1 on the monitor split (every 5th test image). */
  readonly monitorKnn: number;
  /** kNN and linear top-1 on all test images: the end's evaluation only. */
  readonly knn?: number;
  readonly linear?: number;
  readonly seconds: number;
}

/**
 * f(images) of a whole set as rows in JS memory, EVAL_CHUNK images at a time: the wasm heap (4 GiB
 * at most) then holds one chunk's features rather than all 60,000 x 3,136 floats (753 MB) and their
 * copies, which after an epoch or two of training no longer fit.
 */
async function featuresOf(features: (images: tf.Tensor4D) => tf.Tensor2D, set: LabelledImages) {
  let rows: Float32Array | undefined;
  let dim = 0;
  for (let start = 0; start < set.count; start += EVAL_CHUNK) {
    const end = Math.min(set.count, start + EVAL_CHUNK);
    const images = evaluationImages(imagesBetween(set, start, end));
    const f = features(images);
    images.dispose();
    dim = f.shape[1];
    rows ??= new Float32Array(set.count * dim);
    rows.set((await f.data()) as Float32Array, start * dim);
    f.dispose();
  }
  return { rows: rows!, dim };
}

/**
 * kNN (KNN_DEFAULTS) of features f(images) on the monitor split; `full`: kNN and the linear probe
 * on all test images, the monitor's score taken from the same predictions.
 */
async function evaluate(features: (images: tf.Tensor4D) => tf.Tensor2D, full: boolean): Promise<Scores> {
  const t0 = performance.now();
  const testSet = full ? test : monitorTest;
  const trainF = await featuresOf(features, train);
  const testF = await featuresOf(features, testSet);
  const trainLabels = Int32Array.from(train.labels);
  const testLabels = Int32Array.from(testSet.labels);
  // The probe first, while the heap is small: it holds the whole split as tensors (753 MB, and as
  // much again for each of its standardisation's intermediates).
  let linear: number | undefined;
  if (full) {
    const trainT = tf.tensor2d(trainF.rows, [train.count, trainF.dim]);
    const testT = tf.tensor2d(testF.rows, [testSet.count, testF.dim]);
    try {
      linear = linearProbe(trainT, trainLabels, testT, testLabels, {
        classes,
        ...LINEAR_PROBE_DEFAULTS,
        ...(smoke ? { epochs: 5 } : {}),
      }).top1;
    } finally {
      tf.dispose([trainT, testT]);
    }
  }
  // The same neighbours and votes as knnClassify (knn.ts), a block of the training rows at a time.
  const knn = await knnClassifyChunked(
    featureBlocksOf(trainF.rows, trainLabels),
    featureBlocksOf(testF.rows, testLabels),
    { ...KNN_DEFAULTS, classes, batchSize: 1000, trainBlock: 4096 },
  );
  const seconds = (performance.now() - t0) / 1000;
  if (!full) return { monitorKnn: knn.top1, seconds };
  let monitorRight = 0;
  for (let i = 0; i < testLabels.length; i += MONITOR_STRIDE)
    if (knn.predictions[i] === testLabels[i]) monitorRight++;
  return { monitorKnn: monitorRight / monitorTest.count, knn: knn.top1, linear, seconds };
}

const encoderFeatures = (encoder: Encoder) => (images: tf.Tensor4D) => encoder.features(images, 500);

/** What a job's checkpoint records besides the tensors. */
interface JobState {
  readonly method: string;
  readonly seed: number;
  readonly epochs: number;
  readonly config: PretrainConfig;
  readonly step: number;
  readonly trainSeconds: number;
  /** After each finished epoch: kNN on the monitor split. */
  readonly history: readonly EpochScore[];
  readonly final?: Scores;
}
interface EpochScore {
  readonly epoch: number;
  readonly step: number;
  readonly monitorKnn: number;
  readonly loss: number | null;
  readonly contrastAccuracy: number;
}

const presetOf = (method: string) => (method === "moco" ? "fashion-mnist-moco" : "fashion-mnist");
const configOf = (method: string, seed: number): PretrainConfig => ({
  ...preset(presetOf(method)),
  seed,
  ...(arch === undefined ? {} : { arch }),
  ...(smoke ? { batchSize: 32, negatives: 64 } : {}),
});
const jobName = (method: string, seed: number) => `${method}${archTag}-e${epochs}-seed${seed}`;
const stateFile = (name: string) => join(dir, name, "checkpoint", "state.json");
const readState = (name: string): JobState | undefined =>
  existsSync(stateFile(name)) ? (JSON.parse(readFileSync(stateFile(name), "utf8")) as JobState) : undefined;

/** Writes the checkpoint into a fresh folder, then swaps it in, so a crash leaves the last whole one. */
async function checkpoint(name: string, trainer: Pretrainer, state: JobState): Promise<void> {
  const next = join(dir, name, "checkpoint.next");
  rmSync(next, { recursive: true, force: true });
  const files = await pretrainerFiles(trainer);
  const negatives = trainer.negatives.state();
  const tensors: tf.NamedTensorMap = { weights: negatives.weights };
  if (negatives.velocity) tensors.velocity = negatives.velocity;
  const { data: bytes, specs } = await tf.io.encodeWeights(tensors);
  tf.dispose(Object.values(tensors));
  files.set("negatives.bin", new Uint8Array(bytes as ArrayBuffer));
  files.set(
    "negatives.json",
    new TextEncoder().encode(JSON.stringify({ specs, pointer: negatives.pointer })),
  );
  files.set("state.json", new TextEncoder().encode(JSON.stringify(state, null, 2)));
  for (const [path, content] of files) {
    mkdirSync(join(next, path, ".."), { recursive: true });
    writeFileSync(join(next, path), content);
  }
  const current = join(dir, name, "checkpoint");
  const old = join(dir, name, "checkpoint.old");
  rmSync(old, { recursive: true, force: true });
  if (existsSync(current)) renameSync(current, old);
  renameSync(next, current);
  rmSync(old, { recursive: true, force: true });
}

async function restore(name: string, trainer: Pretrainer, state: JobState): Promise<void> {
  const folder = join(dir, name, "checkpoint");
  const read = async (path: string) => new Uint8Array(readFileSync(join(folder, path)));
  await restorePretrainer(trainer, read, state.step);
  const meta = JSON.parse(readFileSync(join(folder, "negatives.json"), "utf8")) as {
    specs: tf.io.WeightsManifestEntry[];
    pointer?: number;
  };
  const bytes = readFileSync(join(folder, "negatives.bin"));
  const saved = tf.io.decodeWeights(
    bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer,
    meta.specs,
  );
  try {
    trainer.negatives.restore({
      weights: saved.weights as tf.Tensor2D,
      velocity: saved.velocity as tf.Tensor2D | undefined,
      pointer: meta.pointer,
    });
  } finally {
    tf.dispose(Object.values(saved));
  }
}

/**
 * Claims a job for this process (DIR/<job>/lock holds its pid), so that two processes sharing DIR
 * never train the same job; a lock whose process is gone is taken over. Returns the release.
 */
function lockJob(name: string): () => void {
  const lock = join(dir, name, "lock");
  mkdirSync(join(dir, name), { recursive: true });
  for (;;) {
    try {
      writeFileSync(lock, String(process.pid), { flag: "wx" });
      return () => rmSync(lock, { force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      const holder = Number(readFileSync(lock, "utf8"));
      if (processAlive(holder))
        throw new Error(
          `${name}: process ${holder} is running it (${lock}); run another job, or stop that one`,
        );
      rmSync(lock, { force: true });
    }
  }
}

function processAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Runs (or goes on with) one job; false when it stopped early with a checkpoint. */
async function runJob(method: string, seed: number): Promise<boolean> {
  const name = jobName(method, seed);
  const config = configOf(method, seed);
  let state: JobState = readState(name) ?? {
    method,
    seed,
    epochs,
    config,
    step: 0,
    trainSeconds: 0,
    history: [],
  };
  if (JSON.stringify(state.config) !== JSON.stringify(config))
    throw new Error(`${name}: its checkpoint was made with another config; move ${join(dir, name)} away`);
  if (state.final) {
    console.log(`${name}: done`);
    return true;
  }
  const release = lockJob(name);
  const trainer = new Pretrainer(config);
  try {
    if (state.step > 0) {
      await restore(name, trainer, state);
      console.log(`${name}: resumed at step ${state.step}`);
    }
    const stepsPerEpoch = Math.floor(train.count / config.batchSize);
    const init = initSteps(trainer);
    const total = init + epochs * stepsPerEpoch;
    // Init batches come first in the data order too, so AdCo sees init more batches (as in the paper).
    const batch = smallImageBatches(train, config.batchSize, seed);
    let last = { loss: NaN, accuracy: NaN };
    let lastLog = 0;
    const resumedAt = trainer.step;
    const trainSecondsAtResume = state.trainSeconds;
    for (let epoch = state.history.length + 1; epoch <= epochs; epoch++) {
      // Epoch e ends after init + e epochs of steps.
      const epochEnd = init + epoch * stepsPerEpoch;
      while (trainer.step < epochEnd) {
        // The loop is synchronous: a few steps at a time, so a signal is seen within seconds.
        const chunkEnd = Math.min(epochEnd, trainer.step + STEPS_BETWEEN_SIGNALS);
        const run = runPretraining({
          trainer,
          steps: epochs * stepsPerEpoch,
          batch,
          shouldStop: () => trainer.step >= chunkEnd,
          onStep: (p) => {
            last = p;
            if (performance.now() - lastLog > 30_000) {
              lastLog = performance.now();
              const seconds = state.trainSeconds + p.elapsedSeconds - trainSecondsAtResume;
              const eta = ((p.totalSteps - p.step) * seconds) / (p.step - resumedAt);
              console.log(
                `  ${name} ${p.phase} step ${p.step}/${p.totalSteps} loss ${p.loss.toFixed(3)} ` +
                  `contrast-acc ${(p.accuracy * 100).toFixed(1)}% lr ${p.lr.toFixed(4)} ${p.imagesPerSecond.toFixed(0)} img/s ` +
                  `training eta ${eta.toFixed(0)} s`,
              );
            }
          },
        });
        state = { ...state, step: trainer.step, trainSeconds: state.trainSeconds + run.seconds };
        await new Promise((resolve) => setImmediate(resolve));
        if (trainer.step < epochEnd && stopping()) {
          await checkpoint(name, trainer, state);
          console.log(
            `${name}: stopped at step ${trainer.step}/${total}, checkpoint written; run again to go on`,
          );
          return false;
        }
      }
      // The epoch's training is kept before its evaluation, which takes minutes (and memory).
      if (trainer.step !== resumedAt) await checkpoint(name, trainer, state);
      const lastEpoch = epoch === epochs;
      const scores = await evaluate(encoderFeatures(trainer.query), lastEpoch);
      const score: EpochScore = {
        epoch,
        step: trainer.step,
        monitorKnn: scores.monitorKnn,
        // NaN (null in the file) for an epoch whose last step ran before a resume.
        loss: last.loss,
        contrastAccuracy: last.accuracy,
      };
      state = { ...state, history: [...state.history, score], ...(lastEpoch ? { final: scores } : {}) };
      await checkpoint(name, trainer, state);
      console.log(
        `${name}: epoch ${epoch}/${epochs} kNN ${(scores.monitorKnn * 100).toFixed(1)}% on ${monitorTest.count} test images` +
          (scores.knn === undefined
            ? ""
            : `; on all ${test.count}: kNN ${(scores.knn * 100).toFixed(1)}%, linear ${(scores.linear! * 100).toFixed(1)}%`) +
          ` (train ${state.trainSeconds.toFixed(0)} s so far, eval ${scores.seconds.toFixed(0)} s)`,
      );
      if (stopping() && !lastEpoch) return false;
    }
    return true;
  } finally {
    trainer.dispose();
    release();
  }
}

let unfinished = false;
jobs: for (const seed of values.summary ? [] : seeds)
  for (const method of methods)
    if (stopping() || !(await runJob(method, seed))) {
      unfinished = true;
      break jobs;
    }

// Raw pixels, once per work directory.
const rawFile = join(dir, "raw-pixels.json");
const pixels = (images: tf.Tensor4D) => tf.reshape(images, [images.shape[0], -1]) as tf.Tensor2D;
if (!existsSync(rawFile) && !stopping()) {
  // Two processes on one DIR may both get here: each writes its own file, and the last rename wins.
  const next = `${rawFile}.${process.pid}.next`;
  writeFileSync(next, JSON.stringify(await evaluate(pixels, true)));
  renameSync(next, rawFile);
}
const raw = existsSync(rawFile) ? (JSON.parse(readFileSync(rawFile, "utf8")) as Scores) : undefined;

const percent = (x: number | undefined) => (x === undefined ? null : roundTo(x * 100, 1));
const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const spread = (xs: readonly number[]) => Math.max(...xs) - Math.min(...xs);

/** One job's line in the results file; top-1 in % (of all test images for kNN and linear). */
type Run = {
  readonly seed: number;
  readonly steps: number;
  readonly trainSeconds: number;
  readonly imagesPerSecond: number | null;
  readonly monitorKnnByEpoch: readonly (number | null)[];
  readonly knn: number | null;
  readonly linear: number | null;
  /** The last evaluation: features, the linear probe and the kNN on all test images. */
  readonly finalEvalSeconds: number | null;
  readonly finalLoss: number | null;
  /** Only on a run kept from an earlier results file: the commit that file was written at. */
  readonly commit?: string;
};
const runOf = (s: JobState): Run => ({
  seed: s.seed,
  steps: s.step,
  trainSeconds: roundTo(s.trainSeconds, 0),
  imagesPerSecond: s.trainSeconds > 0 ? roundTo((s.step * s.config.batchSize) / s.trainSeconds, 0) : null,
  monitorKnnByEpoch: s.history.map((h) => percent(h.monitorKnn)),
  knn: percent(s.final?.knn),
  linear: percent(s.final?.linear),
  finalEvalSeconds: s.final ? roundTo(s.final.seconds, 0) : null,
  finalLoss: Number.isFinite(s.history.at(-1)?.loss) ? roundTo(s.history.at(-1)!.loss!, 4) : null,
});

/**
 * The training config a method's runs share: the preset with the seed left out, what decides whether
 * a run of an earlier results file belongs with this one.
 */
const sharedConfig = (method: string): ResultsValue => {
  const { seed: _seed, ...config } = configOf(method, 0);
  return asResultsValue(config);
};

// A work directory is one machine's disk, and a machine can go (a pod rescheduled, a session's
// sandbox): the finished runs of the last results file of this schedule stay in the next one unless
// DIR holds the same job, when the same training config made them (a file from before configs were
// recorded: the same preset name).
const resultsName = `experiment-full-data-e${epochs}${archTag}`;
interface PublishedMethod {
  readonly preset?: string;
  readonly config?: unknown;
  readonly runs?: readonly Run[];
}
const previousFile = resultsPath(resultsName, smoke);
const previous = readResults(resultsName, smoke) as
  (ResultsFile & { results: { methods?: Record<string, PublishedMethod> } }) | undefined;
function keptRuns(method: string, inDir: readonly number[]): Run[] {
  const published = previous?.results.methods?.[method];
  if (!previous || !published || published.preset !== presetOf(method)) return [];
  if (published.config !== undefined && !isDeepStrictEqual(published.config, sharedConfig(method))) {
    console.log(`${previousFile}: ${method} ran another config; none of its runs kept`);
    return [];
  }
  return (published.runs ?? [])
    .filter((r) => r.knn !== null && seeds.includes(r.seed) && !inDir.includes(r.seed))
    .map((r) => ({ ...r, commit: r.commit ?? previous.commit }));
}

const jobs = readdirSync(dir)
  .flatMap((name) => readState(name) ?? [])
  .filter(
    (s) =>
      s.epochs === epochs &&
      methods.includes(s.method) &&
      seeds.includes(s.seed) &&
      s.config.arch === configOf(s.method, s.seed).arch,
  );
const METHOD_NAMES: Record<string, string> = { adco: "AdCo", moco: "MoCo v2" };
const byMethod: Record<string, ResultsValue> = {};
const curves: Series[] = [];
console.log(
  `\n| method | seed | epochs done | kNN by epoch (monitor) | kNN top-1 | linear top-1 | train s |`,
);
console.log(`| --- | --- | --- | --- | --- | --- | --- |`);
if (raw)
  console.log(
    `| raw pixels | - | - | ${percent(raw.monitorKnn)} | ${percent(raw.knn)} | ${percent(raw.linear)} | - |`,
  );
const rawKnn = percent(raw?.knn);
const rawLinear = percent(raw?.linear);
for (const method of methods) {
  const own = jobs.filter((s) => s.method === method).map(runOf);
  const kept = keptRuns(
    method,
    own.map((r) => r.seed),
  );
  const runs = [...own, ...kept].sort((a, b) => a.seed - b.seed);
  for (const r of runs)
    console.log(
      `| ${method} | ${r.seed} | ${r.monitorKnnByEpoch.length} | ${r.monitorKnnByEpoch.join(", ")} | ` +
        `${r.knn ?? "-"} | ${r.linear ?? "-"} | ${r.trainSeconds} |${r.commit ? ` kept from ${r.commit.slice(0, 7)}` : ""}`,
    );
  const finished = runs.filter((r) => r.knn !== null && r.linear !== null);
  const knns = finished.map((r) => r.knn!);
  const linears = finished.map((r) => r.linear!);
  // The monitor's kNN after epoch e, over the seeds that have finished it.
  const byEpoch = Array.from({ length: epochs }, (_, e) => runs.flatMap((r) => r.monitorKnnByEpoch[e] ?? []));
  const meanByEpoch = byEpoch.filter((xs) => xs.length > 0).map((xs) => mean(xs));
  curves.push({
    name: `${METHOD_NAMES[method]}, ${runs.length} seed${runs.length === 1 ? "" : "s"}`,
    // Rounded as the results file has them, so the plot's labels read the same numbers.
    points: meanByEpoch.map((y, e) => ({ x: e + 1, y: roundTo(y, 1) })),
  });
  byMethod[method] = {
    preset: presetOf(method),
    config: sharedConfig(method),
    // Means and spreads (largest minus smallest) over the finished seeds, of the runs' rounded scores.
    finishedSeeds: finished.map((r) => r.seed),
    knn: knns.length ? roundTo(mean(knns), 1) : null,
    linear: linears.length ? roundTo(mean(linears), 1) : null,
    knnSpread: knns.length ? roundTo(spread(knns), 1) : null,
    linearSpread: linears.length ? roundTo(spread(linears), 1) : null,
    knnVsRawPixels: knns.length && rawKnn !== null ? roundTo(mean(knns) - rawKnn, 1) : null,
    linearVsRawPixels: linears.length && rawLinear !== null ? roundTo(mean(linears) - rawLinear, 1) : null,
    // The monitor's kNN after each epoch, the mean over the seeds that reached it.
    monitorKnnByEpoch: meanByEpoch.map((x) => roundTo(x, 1)),
    // Every job so far, finished or not, and those kept from the last results file.
    runs,
  };
}
const stepsPerEpoch = Math.floor(train.count / configOf("adco", 0).batchSize);
// One results file per schedule (resultsName): a 10-epoch study does not replace the 3-epoch one.
const file = writeResults({
  name: resultsName,
  command: npmCommand("experiment:full-data"),
  smoke,
  backend: backend.name,
  results: {
    data: smoke ? "libs/datasets (bundled subset, cut)" : "Fashion-MNIST",
    trainImages: train.count,
    testImages: test.count,
    // The kNN after each epoch scores every 5th test image (the monitor split).
    monitorTestImages: monitorTest.count,
    epochs,
    stepsPerEpoch,
    adcoInitSteps: initSteps(configOf("adco", 0)),
    threads: process.env.ADCO_THREADS ?? "default",
    knnK: KNN_DEFAULTS.k,
    linearEpochs: smoke ? 5 : LINEAR_PROBE_DEFAULTS.epochs,
    rawPixels: raw
      ? { knn: percent(raw.knn), linear: percent(raw.linear), monitorKnn: percent(raw.monitorKnn) }
      : null,
    methods: byMethod,
  },
});
if (raw)
  curves.push({
    name: `raw pixels (${percent(raw.monitorKnn)})`,
    points: Array.from({ length: epochs }, (_, e) => ({ x: e + 1, y: raw.monitorKnn * 100 })),
    reference: true,
  });
const plot = join(dirname(file), `${resultsName}.png`);
const svg = await lineChart(
  `kNN top-1 over epochs, Fashion-MNIST${arch ? `, ${arch}` : ""}`,
  "epoch",
  "kNN top-1 (%)",
  curves,
  {
    pointLabels: true,
    subtitle: `every 5th test image: ${monitorTest.count.toLocaleString("en-US")}`,
  },
);
writeFileSync(plot, await svgToPng(svg));
console.log(`results: ${file}\nplot: ${plot}`);
// 75 (EX_TEMPFAIL): stopped early with checkpoints; the same command goes on (a Job's retry does).
if (unfinished) process.exitCode = 75;
