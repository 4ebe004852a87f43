// One evaluation: an encoder (a checkpoint's query encoder, or random weights as the baseline),
// frozen backbone features of a labelled train and test split, then the kNN monitor and the linear
// probe. With write_results, the result JSON and plots go under runs/<run>/eval/step-<step>/ beside
// the run's checkpoints (outside the checkpoint folders, so retention keeps the accuracy history).
// With raw_pixels, the images themselves are scored too, through the same classifiers (raw-pixels.ts).
// Any dataset kind: raw pixels as stored, encoded photos through the evaluation transform. Features
// stream into scratch files (features.ts) and the kNN reads them back in blocks, so memory does not
// grow with the splits; only the linear probe holds its features in memory (rows x dim floats).
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  artifactsFromFiles,
  Encoder,
  encoderFromArtifacts,
  encoderSpec,
  KNN_DEFAULTS,
  knnClassifyChunked,
  LINEAR_PROBE_DEFAULTS,
  linearProbeAsync,
} from "@adco/core";
import { encoderArchName } from "@adco/proto";
import type { Accuracy, ObjectRef } from "@adco/proto/common";
import type {
  EvaluateEvent,
  EvaluateRequest,
  EvaluationResult,
  RawPixelsResult,
} from "@adco/proto/evaluator";
import {
  AsyncQueue,
  failedPrecondition,
  invalidArgument,
  type Logger,
  resourceExhausted,
} from "@adco/service-kit";
import {
  evaluationPrefix,
  evaluationsPrefix,
  type ObjectStore,
  openBundle,
  StorageError,
} from "@adco/storage";
import * as tf from "@tensorflow/tfjs-core";
import { checkInputShape, type InputShape, openSplit, type StoredSplit } from "./data.js";
import type { FeatureFile } from "./feature-file.js";
import { splitFeatures } from "./features.js";
import { pca2, umap2 } from "./embedding.js";
import { embeddingChart, lineChart, type Series, svgToPng } from "./plots.js";
import { RawPixelsCache, rawPixelsKey } from "./raw-pixels.js";

const EMBEDDING_POINTS = 2000;
/** Test samples per kNN batch: 1024 x 8192 similarities (32 MiB) at a time. */
const KNN_TEST_BATCH = 1024;

type LinearScore = Accuracy & { trainLoss: number; epochs: number };

/** kNN and linear probe scores of one set of features. */
interface Scores {
  readonly knn?: Accuracy;
  readonly linear?: LinearScore;
}

/** What an evaluation stores as results.json. */
export interface StoredResult {
  readonly runId: string;
  readonly step: number;
  readonly knn?: Accuracy;
  readonly linear?: LinearScore;
  /** The raw pixels' scores on the same splits (when raw_pixels was asked). */
  readonly rawPixels?: Scores & { dimension: number };
  readonly classNames: string[];
  readonly seconds: number;
  readonly unixMs: number;
}

interface CheckpointMeta {
  readonly history?: { step: number; loss: number; contrastAccuracy: number }[];
}

type Emit = (event: EvaluateEvent) => void;

async function loadEncoder(
  store: ObjectStore,
  request: EvaluateRequest,
): Promise<{ encoder: Encoder; meta?: CheckpointMeta }> {
  if (request.randomInit) {
    const arch = encoderArchName(request.randomInit.encoder);
    if (!arch)
      throw invalidArgument(`random_init.encoder: ${request.randomInit.encoder} is not an architecture`);
    return { encoder: new Encoder(encoderSpec(arch), Number(request.randomInit.seed) >>> 0) };
  }
  const manifest = request.checkpoint?.manifest;
  if (!manifest?.bucket || !manifest.key)
    throw invalidArgument("checkpoint.manifest: bucket and key are required");
  const bundle = await openBundle<CheckpointMeta>(store, manifest.bucket, manifest.key);
  if (!bundle.has("query/model.json"))
    throw failedPrecondition(`${manifest.key}: not a trainer checkpoint (no query/model.json)`);
  const artifacts = await artifactsFromFiles((p) => bundle.read(`query/${p}`));
  return { encoder: await encoderFromArtifacts(artifacts), meta: bundle.meta };
}

/** An Accuracy message alone (results.json keeps more). */
const accuracyOf = (a: Accuracy): Accuracy => ({
  top1: a.top1,
  top5: a.top5,
  perClassTop1: a.perClassTop1,
  samples: a.samples,
});

const knnOptions = (request: EvaluateRequest) => ({
  k: request.knn?.k || KNN_DEFAULTS.k,
  temperature: request.knn?.temperature || KNN_DEFAULTS.temperature,
});

const linearOptions = (request: EvaluateRequest) => ({
  epochs: request.linear?.epochs || LINEAR_PROBE_DEFAULTS.epochs,
  lr: request.linear?.lr || LINEAR_PROBE_DEFAULTS.lr,
  weightDecay: request.linear?.weightDecay || LINEAR_PROBE_DEFAULTS.weightDecay,
});

/**
 * The request's classifiers on one set of features (an encoder's, or the raw pixels): kNN, then the
 * linear probe, each when enabled and not left out by `only`. Progress phases are `${prefix}knn` and
 * `${prefix}linear`. Both let the event loop run as they go, so that the evaluator still answers
 * keepalives (a loop blocked past their timeout, 10 s, drops the client's connection) and sends
 * the progress events while a probe trains.
 */
async function score(
  trainFeatures: FeatureFile,
  testFeatures: FeatureFile,
  classes: number,
  request: EvaluateRequest,
  emit: Emit,
  prefix = "",
  only: { knn: boolean; linear: boolean } = { knn: true, linear: true },
): Promise<Scores> {
  const samples = testFeatures.rows;
  let knn: Accuracy | undefined;
  if (request.knn?.enabled && only.knn) {
    const phase = `${prefix}knn`;
    emit({ progress: { phase, done: 0, total: samples, etaSeconds: 0 } });
    const t0 = performance.now();
    const r = await knnClassifyChunked(trainFeatures, testFeatures, {
      ...knnOptions(request),
      classes,
      // Each batch of test samples reads the training features once: bigger batches, fewer passes.
      batchSize: KNN_TEST_BATCH,
      onProgress: (done, total) => {
        const elapsed = (performance.now() - t0) / 1000;
        emit({ progress: { phase, done, total, etaSeconds: (elapsed / done) * (total - done) } });
      },
    });
    knn = { top1: r.top1, top5: 0, perClassTop1: r.perClass, samples };
  }
  let linear: LinearScore | undefined;
  if (request.linear?.enabled && only.linear) {
    const { epochs, lr, weightDecay } = linearOptions(request);
    const t0 = performance.now();
    const trainX = tf.tensor2d(await trainFeatures.read(0, trainFeatures.rows), [
      trainFeatures.rows,
      trainFeatures.dim,
    ]);
    const testX = tf.tensor2d(await testFeatures.read(0, samples), [samples, testFeatures.dim]);
    const r = await linearProbeAsync(trainX, trainFeatures.labels, testX, testFeatures.labels, {
      classes,
      epochs,
      lr,
      weightDecay,
      onEpoch: (epoch) => {
        const elapsed = (performance.now() - t0) / 1000;
        if ((epoch + 1) % 10 === 0 || epoch + 1 === epochs)
          emit({
            progress: {
              phase: `${prefix}linear`,
              done: epoch + 1,
              total: epochs,
              etaSeconds: (elapsed / (epoch + 1)) * (epochs - epoch - 1),
            },
          });
      },
    }).finally(() => tf.dispose([trainX, testX]));
    linear = {
      top1: r.top1,
      top5: r.top5,
      perClassTop1: r.perClass,
      samples,
      trainLoss: r.trainLoss,
      epochs,
    };
  }
  return { knn, linear };
}

/** Which raw-pixel scores the request wants, and those the cache already has. */
interface RawPixelsPlan {
  readonly knnKey?: string;
  readonly linearKey?: string;
  readonly knn?: Accuracy;
  readonly linear?: LinearScore;
  readonly missing: { knn: boolean; linear: boolean };
}

function rawPixelsPlan(
  cache: RawPixelsCache<Accuracy | LinearScore>,
  train: StoredSplit,
  test: StoredSplit,
  input: InputShape,
  request: EvaluateRequest,
): RawPixelsPlan {
  const knnKey = request.knn?.enabled
    ? rawPixelsKey("knn", train, test, input, knnOptions(request))
    : undefined;
  const linearKey = request.linear?.enabled
    ? rawPixelsKey("linear", train, test, input, linearOptions(request))
    : undefined;
  const knn = knnKey === undefined ? undefined : cache.get(knnKey);
  const linear = linearKey === undefined ? undefined : (cache.get(linearKey) as LinearScore | undefined);
  return {
    knnKey,
    linearKey,
    knn,
    linear,
    missing: { knn: knnKey !== undefined && !knn, linear: linearKey !== undefined && !linear },
  };
}

/** The raw pixels' scores for the request: from the plan's cached ones, or computed (then cached). */
async function rawPixelScores(
  cache: RawPixelsCache<Accuracy | LinearScore>,
  plan: RawPixelsPlan,
  train: FeatureFile | undefined,
  test: FeatureFile | undefined,
  classes: number,
  input: InputShape,
  request: EvaluateRequest,
  emit: Emit,
): Promise<Scores & Pick<RawPixelsResult, "dimension" | "cached">> {
  let { knn, linear } = plan;
  const { missing } = plan;
  if (missing.knn || missing.linear) {
    const computed = await score(train!, test!, classes, request, emit, "raw_pixels:", missing);
    if (computed.knn) cache.set(plan.knnKey!, (knn = computed.knn));
    if (computed.linear) cache.set(plan.linearKey!, (linear = computed.linear));
  }
  const [h, w, c] = input;
  return { knn, linear, dimension: h * w * c, cached: !missing.knn && !missing.linear };
}

export interface EvaluationOptions {
  /** Raw-pixel scores kept between evaluations (one per evaluator process). */
  readonly rawPixelsCache: RawPixelsCache<Accuracy | LinearScore>;
  /** Most bytes of features a linear probe may hold in memory (LINEAR_PROBE_MAX_BYTES). */
  readonly linearProbeMaxBytes?: number;
  /** Where the evaluation says how long its slower parts took (the UMAP of the embedding plot). */
  readonly log?: Logger;
}

/**
 * The linear probe holds both splits' features in memory, and the wasm backend's heap is 4 GiB at
 * most: 1 GiB of features allows 500,000 ResNet-18 features (512 floats), or CIFAR-10's 60,000
 * images as raw pixels, and refuses 224 x 224 photos as raw pixels beyond 1,700 of them.
 */
export const LINEAR_PROBE_MAX_BYTES = 2 ** 30;

/** Refuses, before any work, a linear probe whose features would not fit in memory. */
function checkLinearProbeSize(what: string, rows: number, dim: number, maxBytes: number): void {
  const bytes = rows * dim * 4;
  if (bytes > maxBytes)
    throw resourceExhausted(
      `${what}: the linear probe holds ${rows} x ${dim} features in memory, ` +
        `${(bytes / 2 ** 30).toFixed(1)} GiB, over the evaluator's ${(maxBytes / 2 ** 30).toFixed(1)} GiB; ` +
        `ask for kNN alone${what === "raw_pixels" ? ", or without raw_pixels" : ""}`,
    );
}

export async function runEvaluation(
  store: ObjectStore,
  request: EvaluateRequest,
  emit: Emit,
  options: EvaluationOptions = { rawPixelsCache: new RawPixelsCache() },
): Promise<EvaluationResult> {
  const started = performance.now();
  emit({ progress: { phase: "load", done: 0, total: 3, etaSeconds: 0 } });
  const { encoder, meta } = await loadEncoder(store, request);
  try {
    emit({ progress: { phase: "load", done: 1, total: 3, etaSeconds: 0 } });
    const train = await openSplit(store, request.train!, "train");
    emit({ progress: { phase: "load", done: 2, total: 3, etaSeconds: 0 } });
    const test = await openSplit(store, request.test!, "test");
    emit({ progress: { phase: "load", done: 3, total: 3, etaSeconds: 0 } });
    if (JSON.stringify(train.classes) !== JSON.stringify(test.classes))
      throw failedPrecondition("train and test datasets have different class names");
    const input = encoder.spec.inputShape;
    checkInputShape(train, input, encoder.spec.arch, "features:train");
    checkInputShape(test, input, encoder.spec.arch, "features:test");
    const plan = request.rawPixels
      ? rawPixelsPlan(options.rawPixelsCache, train, test, input, request)
      : undefined;
    const withRaw = plan !== undefined && (plan.missing.knn || plan.missing.linear);
    const rows = train.count + test.count;
    const maxBytes = options.linearProbeMaxBytes ?? LINEAR_PROBE_MAX_BYTES;
    if (request.linear?.enabled) checkLinearProbeSize("linear", rows, encoder.spec.featureDim, maxBytes);
    if (plan?.missing.linear)
      checkLinearProbeSize("raw_pixels", rows, input[0] * input[1] * input[2], maxBytes);
    const scratch = await mkdtemp(join(tmpdir(), "adco-eval-"));
    const files: FeatureFile[] = [];
    try {
      const trainFeatures = await splitFeatures(
        store,
        train,
        input,
        encoder,
        withRaw,
        scratch,
        "features:train",
        emit,
      );
      files.push(trainFeatures.encoder, ...(trainFeatures.raw ? [trainFeatures.raw] : []));
      const testFeatures = await splitFeatures(
        store,
        test,
        input,
        encoder,
        withRaw,
        scratch,
        "features:test",
        emit,
      );
      files.push(testFeatures.encoder, ...(testFeatures.raw ? [testFeatures.raw] : []));
      const classes = train.classes.length;
      const rawPixels = plan
        ? await rawPixelScores(
            options.rawPixelsCache,
            plan,
            trainFeatures.raw,
            testFeatures.raw,
            classes,
            input,
            request,
            emit,
          )
        : undefined;
      const { knn, linear } = await score(
        trainFeatures.encoder,
        testFeatures.encoder,
        classes,
        request,
        emit,
      );
      const seconds = (performance.now() - started) / 1000;
      const result: EvaluationResult = {
        checkpoint: request.checkpoint,
        knn,
        linear: linear && accuracyOf(linear),
        results: undefined,
        plots: [],
        seconds,
        classNames: train.classes,
        rawPixels: rawPixels && {
          knn: rawPixels.knn,
          linear: rawPixels.linear && accuracyOf(rawPixels.linear),
          dimension: rawPixels.dimension,
          cached: rawPixels.cached,
        },
      };
      if (request.writeResults && request.checkpoint) {
        const written = await writeResults(
          store,
          request,
          {
            knn,
            linear,
            classNames: train.classes,
            seconds,
            ...(rawPixels
              ? {
                  rawPixels: {
                    knn: rawPixels.knn,
                    linear: rawPixels.linear,
                    dimension: rawPixels.dimension,
                  },
                }
              : {}),
          },
          meta,
          testFeatures.encoder,
          test.classes,
          options.log,
        );
        return { ...result, ...written };
      }
      return result;
    } finally {
      await Promise.all(files.map((f) => f.close()));
      await rm(scratch, { recursive: true, force: true });
    }
  } finally {
    encoder.dispose();
  }
}

async function writeResults(
  store: ObjectStore,
  request: EvaluateRequest,
  scores: Pick<StoredResult, "knn" | "linear" | "rawPixels" | "classNames" | "seconds">,
  meta: CheckpointMeta | undefined,
  testFeatures: FeatureFile,
  classNames: string[],
  log?: Logger,
): Promise<{ results: ObjectRef; plots: ObjectRef[] }> {
  const { runId, step, manifest } = request.checkpoint!;
  const bucket = manifest!.bucket;
  const evalPrefix = evaluationsPrefix(runId);
  const prefix = evaluationPrefix(runId, step);
  const stored: StoredResult = { runId, step, ...scores, unixMs: Date.now() };
  const ref = (o: { bucket: string; key: string; size: number; sha256: string }): ObjectRef => ({
    bucket: o.bucket,
    key: o.key,
    sizeBytes: o.size,
    sha256: o.sha256,
  });
  const results = ref(await store.putJson(bucket, `${prefix}results.json`, stored));

  // Accuracy over the run: every earlier evaluation of it, and this one.
  const earlier: StoredResult[] = [];
  for (const o of await store.list(bucket, evalPrefix)) {
    if (!o.key.endsWith("/results.json") || o.key === `${prefix}results.json`) continue;
    try {
      earlier.push(await store.getJson<StoredResult>(bucket, o.key));
    } catch (e) {
      if (!(e instanceof StorageError)) throw e;
    }
  }
  const evaluations = [...earlier, stored].sort((a, b) => a.step - b.step);
  const accuracy: Series[] = [];
  const knnPoints = evaluations.filter((r) => r.knn).map((r) => ({ x: r.step, y: 100 * r.knn!.top1 }));
  const linearPoints = evaluations
    .filter((r) => r.linear)
    .map((r) => ({ x: r.step, y: 100 * r.linear!.top1 }));
  if (knnPoints.length) accuracy.push({ name: "kNN top-1 %", points: knnPoints });
  if (linearPoints.length) accuracy.push({ name: "linear top-1 %", points: linearPoints });
  // The bar: the raw pixels' scores at the evaluations that asked for them (the same at every step).
  const rawKnn = evaluations
    .filter((r) => r.rawPixels?.knn)
    .map((r) => ({ x: r.step, y: 100 * r.rawPixels!.knn!.top1 }));
  const rawLinear = evaluations
    .filter((r) => r.rawPixels?.linear)
    .map((r) => ({ x: r.step, y: 100 * r.rawPixels!.linear!.top1 }));
  // Named with the newest value: reference lines carry no point labels.
  const reference = (name: string, points: { x: number; y: number }[]): Series => ({
    name: `${name} ${points.at(-1)!.y.toFixed(1)}`,
    points,
    reference: true,
  });
  if (rawKnn.length) accuracy.push(reference("raw pixels kNN", rawKnn));
  if (rawLinear.length) accuracy.push(reference("raw pixels linear", rawLinear));
  const history = meta?.history ?? [];
  const charts: [string, string][] = [
    [
      "loss",
      await lineChart(`${runId}: contrastive loss`, "step", "loss", [
        { name: "loss", points: history.map((p) => ({ x: p.step, y: p.loss })) },
      ]),
    ],
    [
      "accuracy",
      await lineChart(`${runId}: test accuracy`, "step", "top-1 %", accuracy, {
        yDomain: [0, 100],
        pointLabels: true,
      }),
    ],
  ];
  const { rows, labels: sampleLabels } = await testFeatures.evenRows(EMBEDDING_POINTS);
  const n = sampleLabels.length;
  const sample = tf.tensor2d(rows, [n, testFeatures.dim]);
  const pca = await pca2(sample).finally(() => sample.dispose());
  const umapStarted = performance.now();
  const umap = await umap2(rows, n, testFeatures.dim, { seed: 0 });
  log?.info(
    {
      runId,
      step,
      points: n,
      dimension: testFeatures.dim,
      seconds: (performance.now() - umapStarted) / 1000,
    },
    "umap embedding",
  );
  charts.push([
    "embedding",
    await embeddingChart(
      `${runId} step ${step}: test features`,
      [
        { method: "PCA", points: pca },
        { method: "UMAP", points: umap },
      ],
      sampleLabels,
      classNames,
    ),
  ]);
  const plots: ObjectRef[] = [];
  for (const [name, svg] of charts) {
    plots.push(
      ref(await store.put(bucket, `${prefix}${name}.svg`, new TextEncoder().encode(svg), "image/svg+xml")),
    );
    plots.push(ref(await store.put(bucket, `${prefix}${name}.png`, await svgToPng(svg), "image/png")));
  }
  return { results, plots };
}

/** The events of one evaluation as they happen: progress, then the result. */
export async function* evaluationEvents(
  store: ObjectStore,
  request: EvaluateRequest,
  options?: EvaluationOptions,
): AsyncGenerator<EvaluateEvent> {
  const queue = new AsyncQueue<EvaluateEvent>();
  runEvaluation(store, request, (event) => queue.push(event), options).then(
    (result) => {
      queue.push({ result });
      queue.end();
    },
    (e: unknown) => queue.fail(e),
  );
  yield* queue;
}
