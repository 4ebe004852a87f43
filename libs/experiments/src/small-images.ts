// Pre-train an encoder on a labelled set of small grayscale images held in memory, and measure kNN
// accuracy (k=200, weighted, the MoCo monitor) of its frozen features against the same encoder at
// random init. Used by `npm run experiment:fashion-mnist` and the learning test.
import { normalizeSmallGray, twoViewBatch, SMALL_GRAY_DEFAULTS, type SmallGrayOptions } from "@adco/augment";
import {
  type Encoder,
  type LoopProgress,
  type PretrainConfig,
  initSteps,
  KNN_DEFAULTS,
  knnClassify,
  Pretrainer,
  runPretraining,
  SeededRandom,
} from "@adco/core";
import type { LabelledImages } from "@adco/datasets";
import * as tf from "@tensorflow/tfjs-core";

export interface SmallImageExperiment {
  readonly config: PretrainConfig;
  readonly train: LabelledImages;
  readonly test: LabelledImages;
  readonly classes: number;
  /** Budget in steps, init_memory included (AdCo spends K/B of them filling the bank). */
  readonly steps: number;
  readonly onStep?: (p: LoopProgress) => void;
  /** The two-view augmentation (default SMALL_GRAY_DEFAULTS); its size must stay the images' side. */
  readonly augment?: SmallGrayOptions;
  /** Score the random-init encoder first (default true; false reports NaN and saves the time). */
  readonly randomInitKnn?: boolean;
  /** The node kNN scores (default the encoder's features; see Encoder.features). */
  readonly features?: string;
  /** Called with the trained query and momentum (key) encoders before they are disposed. */
  readonly onTrained?: (query: Encoder, key: Encoder) => void;
}

export interface ExperimentResult {
  readonly method: string;
  readonly steps: number;
  readonly initSteps: number;
  readonly epochs: number;
  readonly trainSeconds: number;
  readonly imagesPerSecond: number;
  readonly knnRandomInit: number;
  readonly knnTrained: number;
  readonly perClassTrained: number[];
  readonly finalLoss: number;
  readonly finalContrastAccuracy: number;
}

/** Normalised, un-augmented images as an N x H x W x 1 tensor. */
export function evaluationImages(set: LabelledImages): tf.Tensor4D {
  const pixels = set.height * set.width;
  const out = new Float32Array(set.count * pixels);
  for (let i = 0; i < set.count; i++) {
    normalizeSmallGray(
      set.images.subarray(i * pixels, (i + 1) * pixels),
      out.subarray(i * pixels, (i + 1) * pixels),
    );
  }
  return tf.tensor4d(out, [set.count, set.height, set.width, 1]);
}

export function knnAccuracy(
  encoder: Encoder,
  train: LabelledImages,
  test: LabelledImages,
  classes: number,
  node = encoder.spec.features,
) {
  const trainImages = evaluationImages(train);
  const testImages = evaluationImages(test);
  const trainFeatures = encoder.features(trainImages, 256, node);
  const testFeatures = encoder.features(testImages, 256, node);
  try {
    return knnClassify(
      trainFeatures,
      Int32Array.from(train.labels),
      testFeatures,
      Int32Array.from(test.labels),
      {
        ...KNN_DEFAULTS,
        classes,
      },
    );
  } finally {
    tf.dispose([trainImages, testImages, trainFeatures, testFeatures]);
  }
}

/**
 * The two augmented views of batch `index` (0, 1, ...: the step, init_memory's steps included): each
 * epoch is a fresh permutation of the set (seeded by seed and epoch), cut into whole batches, the
 * leftover dropped; `index` alone fixes the batch, so a resumed run sees the same data as a whole one.
 */
export function smallImageBatches(
  set: LabelledImages,
  batchSize: number,
  seed: number,
  augment: SmallGrayOptions = SMALL_GRAY_DEFAULTS,
): (index: number) => tf.Tensor4D[] {
  const stepsPerEpoch = Math.floor(set.count / batchSize);
  if (stepsPerEpoch < 1)
    throw new Error(`batch size ${batchSize} is more than the set's ${set.count} images`);
  let order = { epoch: -1, ids: [] as number[] };
  return (index) => {
    const epoch = Math.floor(index / stepsPerEpoch);
    if (order.epoch !== epoch)
      order = { epoch, ids: new SeededRandom(seed * 1000 + epoch).permutation(set.count) };
    const inEpoch = index % stepsPerEpoch;
    const ids = order.ids.slice(inEpoch * batchSize, (inEpoch + 1) * batchSize);
    return twoViewBatch(set.images, set.height, set.width, ids, seed, epoch, 2, augment).map((v) =>
      tf.tensor4d(v, [ids.length, augment.size, augment.size, 1]),
    );
  };
}

export function runSmallImageExperiment(e: SmallImageExperiment): ExperimentResult {
  const trainer = new Pretrainer(e.config);
  try {
    const knnRandomInit =
      e.randomInitKnn === false
        ? NaN
        : knnAccuracy(trainer.query, e.train, e.test, e.classes, e.features).top1;
    const augment = e.augment ?? SMALL_GRAY_DEFAULTS;
    const batchSize = e.config.batchSize;
    let last: LoopProgress | undefined;
    const init = initSteps(trainer);
    if (e.steps <= init) throw new Error(`steps: ${e.steps} is not more than the ${init} init_memory steps`);
    const run = runPretraining({
      trainer,
      steps: e.steps - init,
      batch: smallImageBatches(e.train, batchSize, e.config.seed, augment),
      onStep: (p) => {
        last = p;
        e.onStep?.(p);
      },
    });
    const trained = knnAccuracy(trainer.query, e.train, e.test, e.classes, e.features);
    e.onTrained?.(trainer.query, trainer.key);
    return {
      method: e.config.method,
      steps: run.steps,
      initSteps: init,
      epochs: (run.steps * batchSize) / e.train.count,
      trainSeconds: run.seconds,
      imagesPerSecond: (run.steps * batchSize) / run.seconds,
      knnRandomInit,
      knnTrained: trained.top1,
      perClassTrained: trained.perClass,
      finalLoss: last?.loss ?? NaN,
      finalContrastAccuracy: last?.accuracy ?? NaN,
    };
  } finally {
    trainer.dispose();
  }
}
