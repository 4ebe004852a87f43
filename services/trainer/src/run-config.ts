// A run's configuration: the request's RunConfig checked field by field, then resolved against its
// preset into every value the run uses (the proto with every field set, which is what Run.config
// reports and checkpoints store, and the core's PretrainConfig).
import {
  BACKEND_CHOICES,
  bnGroupsFor,
  encoderSpec,
  type PretrainConfig,
  PRESETS,
  preset as corePreset,
} from "@adco/core";
import { ENCODER_ARCH_BY_NAME, encoderArchName } from "@adco/proto";
import { BankKind, EncoderArch as ProtoArch } from "@adco/proto/common";
import { type AugmentSpec, Pipeline } from "@adco/proto/data_worker";
import { Method, RunConfig } from "@adco/proto/trainer";
import {
  invalidArgument,
  requireEnum,
  requireNonEmpty,
  requirePresent,
  requireRange,
} from "@adco/service-kit";

/** What a preset adds to the core's PretrainConfig: how long to train and how to make views. */
interface RunDefaults {
  readonly epochs: number;
  readonly augment: AugmentSpec;
}

const GRAY_SMALL: AugmentSpec = {
  pipeline: Pipeline.PIPELINE_TWO_VIEW_GRAY_SMALL,
  outputSize: 28,
  crops: [],
  seed: 0,
};
const RUN_DEFAULTS: Record<keyof typeof PRESETS, RunDefaults> = {
  "paper-imagenet": {
    epochs: 200,
    augment: { pipeline: Pipeline.PIPELINE_TWO_VIEW, outputSize: 224, crops: [], seed: 0 },
  },
  "fashion-mnist": { epochs: 4, augment: GRAY_SMALL },
  "fashion-mnist-moco": { epochs: 4, augment: GRAY_SMALL },
};

export const DEFAULT_CHECKPOINT_EVERY = 50;
export const DEFAULT_KEEP_CHECKPOINTS = 3;

/** Checks a requested config; the error names the field. Unset optional fields stay unset. */
export function checkRunConfig(config: RunConfig | undefined): RunConfig {
  const c = requirePresent(config, "config");
  requireNonEmpty(c.preset, "config.preset");
  if (!(c.preset in PRESETS)) {
    throw invalidArgument(
      `config.preset: unknown ${JSON.stringify(c.preset)}; one of ${Object.keys(PRESETS).join(", ")}`,
    );
  }
  const dataset = requirePresent(c.dataset, "config.dataset");
  requireNonEmpty(dataset.bucket, "config.dataset.bucket");
  requireNonEmpty(dataset.name, "config.dataset.name");
  if (c.method !== Method.METHOD_UNSPECIFIED) requireEnum(c.method, Method, "config.method");
  if (c.encoder !== ProtoArch.ENCODER_ARCH_UNSPECIFIED) requireEnum(c.encoder, ProtoArch, "config.encoder");
  if (c.epochs !== undefined) requireRange(c.epochs, "config.epochs", 1);
  if (c.batchSize !== undefined) requireRange(c.batchSize, "config.batch_size", 2, 65536);
  if (c.lr !== undefined) requireRange(c.lr, "config.lr", 0, Infinity, true);
  if (c.finalLr !== undefined) requireRange(c.finalLr, "config.final_lr", 0);
  if (c.sgdMomentum !== undefined) requireRange(c.sgdMomentum, "config.sgd_momentum", 0, 0.999999);
  if (c.weightDecay !== undefined) requireRange(c.weightDecay, "config.weight_decay", 0);
  if (c.encoderMomentum !== undefined)
    requireRange(c.encoderMomentum, "config.encoder_momentum", 0, 0.999999);
  if (c.bankSize !== undefined) requireRange(c.bankSize, "config.bank_size", 1, 1 << 24);
  if (c.featureDim !== undefined) requireRange(c.featureDim, "config.feature_dim", 1, 4096);
  if (c.checkpointEverySteps !== undefined)
    requireRange(c.checkpointEverySteps, "config.checkpoint_every_steps", 1);
  if (c.keepCheckpoints !== undefined) requireRange(c.keepCheckpoints, "config.keep_checkpoints", 1, 1000);
  if (c.backend !== "" && !(BACKEND_CHOICES as readonly string[]).includes(c.backend)) {
    throw invalidArgument(
      `config.backend: must be one of ${BACKEND_CHOICES.join(", ")}, got ${JSON.stringify(c.backend)}`,
    );
  }
  const h = c.bank;
  if (h) {
    for (const key of ["temperature", "memoryTemperature", "memoryLr", "memoryWeightDecay"] as const)
      if (h[key] !== 0) requireRange(h[key], `config.bank.${key}`, 0, Infinity, true);
    if (h.memoryMomentum !== 0) requireRange(h.memoryMomentum, "config.bank.memory_momentum", 0, 0.999999);
  }
  return c;
}

export interface ResolvedRun {
  /** Every field set: what Run.config reports and checkpoints store. */
  readonly config: RunConfig;
  readonly pretrain: PretrainConfig;
  readonly epochs: number;
  readonly augment: AugmentSpec;
  readonly checkpointEvery: number;
  readonly keepCheckpoints: number;
  readonly bucket: string;
  readonly bankKind: BankKind;
}

/** Applies the preset to a checked config. `defaultBucket` is the trainer's checkpointsBucket. */
export function resolveRunConfig(requested: RunConfig, defaultBucket: string): ResolvedRun {
  const c = checkRunConfig(requested);
  const defaults = RUN_DEFAULTS[c.preset as keyof typeof PRESETS];
  const pretrain = pretrainConfig(c);
  const run: RunSettings = {
    epochs: c.epochs ?? defaults.epochs,
    augment: { ...(c.augment ?? defaults.augment), seed: c.augment?.seed || pretrain.seed },
    checkpointEvery: c.checkpointEverySteps ?? DEFAULT_CHECKPOINT_EVERY,
    keepCheckpoints: c.keepCheckpoints ?? DEFAULT_KEEP_CHECKPOINTS,
    bucket: c.checkpointBucket || defaultBucket,
  };
  checkAugment(run.augment, pretrain);
  return {
    config: fullRunConfig(c, pretrain, run),
    pretrain,
    ...run,
    bankKind: pretrain.method === "moco" ? BankKind.BANK_KIND_QUEUE : BankKind.BANK_KIND_ADVERSARIAL,
  };
}

/** Channels of the views of each pipeline (PIPELINE_NONE: the dataset's, known to the worker only). */
const PIPELINE_CHANNELS: Partial<Record<Pipeline, number>> = {
  [Pipeline.PIPELINE_TWO_VIEW]: 3,
  [Pipeline.PIPELINE_MULTI_CROP]: 3,
  [Pipeline.PIPELINE_TWO_VIEW_GRAY_SMALL]: 1,
};

/**
 * The views must be what the encoder takes: its channels, and its input size (the size its exported
 * model, the evaluator and the checkpoints are built for); a multi-crop crop at most that size. The
 * data worker's own range (1..4096) is checked here too, so that no worker refuses a started run.
 */
function checkAugment(augment: AugmentSpec, pretrain: PretrainConfig): void {
  requireEnum(augment.pipeline, Pipeline, "config.augment.pipeline");
  const [height, width, channels] = encoderSpec(pretrain.arch, pretrain.projectionDim).inputShape;
  const takes = `the ${pretrain.arch} encoder takes ${height}x${width}x${channels} views`;
  const made = PIPELINE_CHANNELS[augment.pipeline];
  if (made !== undefined && made !== channels)
    throw invalidArgument(
      `config.augment.pipeline: ${Pipeline[augment.pipeline]} makes ${made}-channel views; ${takes}`,
    );
  if (augment.pipeline === Pipeline.PIPELINE_MULTI_CROP) {
    if (augment.crops.length === 0)
      throw invalidArgument("config.augment.crops: multi-crop needs at least one crop");
    augment.crops.forEach((crop, i) => {
      requireRange(crop.size, `config.augment.crops[${i}].size`, 1, height);
      requireRange(crop.count, `config.augment.crops[${i}].count`, 1, 64);
    });
    return;
  }
  if (augment.crops.length > 0)
    throw invalidArgument("config.augment.crops: only PIPELINE_MULTI_CROP takes crops");
  requireRange(augment.outputSize, "config.augment.output_size", 1, 4096);
  // PIPELINE_NONE sends the records as they are (StartRun checks a raw dataset's shape).
  if (augment.pipeline === Pipeline.PIPELINE_NONE) return;
  if (augment.outputSize !== height)
    throw invalidArgument(`config.augment.output_size: ${takes}, got ${augment.outputSize}`);
}

/** What a run adds to its PretrainConfig. */
type RunSettings = Pick<ResolvedRun, "epochs" | "augment" | "checkpointEvery" | "keepCheckpoints" | "bucket">;

/** The preset's PretrainConfig with the request's overrides, checked as the core would check it. */
function pretrainConfig(c: RunConfig): PretrainConfig {
  const base = corePreset(c.preset);
  const method =
    c.method === Method.METHOD_UNSPECIFIED
      ? base.method
      : c.method === Method.METHOD_MOCO_V2
        ? "moco"
        : "adco";
  const h = c.bank;
  const pretrain: PretrainConfig = {
    ...base,
    method,
    arch: encoderArchName(c.encoder) ?? base.arch,
    projectionDim: c.featureDim ?? base.projectionDim,
    batchSize: c.batchSize ?? base.batchSize,
    lr: c.lr ?? base.lr,
    finalLr: c.finalLr ?? Math.min(base.finalLr, c.lr ?? base.lr),
    sgdMomentum: c.sgdMomentum ?? base.sgdMomentum,
    weightDecay: c.weightDecay ?? base.weightDecay,
    encoderMomentum: c.encoderMomentum ?? base.encoderMomentum,
    symmetric: c.symmetric ?? base.symmetric,
    negatives: c.bankSize ?? base.negatives,
    seed: c.seed ?? base.seed,
    adco: {
      temperature: h?.temperature || base.adco.temperature,
      memoryTemperature: h?.memoryTemperature || base.adco.memoryTemperature,
      memoryLr: h?.memoryLr || base.adco.memoryLr,
      memoryMomentum: h?.memoryMomentum || base.adco.memoryMomentum,
      memoryWeightDecay: h?.memoryWeightDecay || base.adco.memoryWeightDecay,
    },
  };
  // The core's own checks (bnGroups divides the batch, K >= batch, ...), reported as the request's fields.
  // A batch the preset's BN groups do not divide trains with fewer groups, by the rule of an epoch's
  // short last batch.
  const resolved = { ...pretrain, bnGroups: bnGroupsFor(pretrain.bnGroups, pretrain.batchSize) };
  if (resolved.negatives < resolved.batchSize) {
    throw invalidArgument(
      `config.bank_size: K = ${resolved.negatives} is smaller than batch_size ${resolved.batchSize}`,
    );
  }
  if (resolved.finalLr > resolved.lr)
    throw invalidArgument(`config.final_lr: ${resolved.finalLr} is above lr ${resolved.lr}`);
  return resolved;
}

/** The RunConfig with every field set: what Run.config reports and checkpoints store. */
function fullRunConfig(c: RunConfig, pretrain: PretrainConfig, run: RunSettings): RunConfig {
  return RunConfig.fromPartial({
    preset: c.preset,
    dataset: c.dataset,
    method: pretrain.method === "moco" ? Method.METHOD_MOCO_V2 : Method.METHOD_ADCO,
    encoder: ENCODER_ARCH_BY_NAME[pretrain.arch],
    epochs: run.epochs,
    batchSize: pretrain.batchSize,
    seed: pretrain.seed,
    backend: c.backend || "auto",
    lr: pretrain.lr,
    finalLr: pretrain.finalLr,
    sgdMomentum: pretrain.sgdMomentum,
    weightDecay: pretrain.weightDecay,
    encoderMomentum: pretrain.encoderMomentum,
    bankSize: pretrain.negatives,
    featureDim: pretrain.projectionDim,
    bank: {
      ...pretrain.adco,
      // MoCo's queue uses its own temperature.
      temperature: pretrain.method === "moco" ? pretrain.mocoTemperature : pretrain.adco.temperature,
    },
    symmetric: pretrain.symmetric,
    augment: run.augment,
    checkpointEverySteps: run.checkpointEvery,
    keepCheckpoints: run.keepCheckpoints,
    checkpointBucket: run.bucket,
  });
}

/** True when two configs ask for the same run (a resume may repeat the stored config). */
export function sameRunConfig(a: RunConfig, b: RunConfig): boolean {
  return JSON.stringify(RunConfig.toJSON(a)) === JSON.stringify(RunConfig.toJSON(b));
}
