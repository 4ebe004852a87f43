// One config per experiment (solo-learn style). The paper's ImageNet settings, and ours for small
// grayscale data on a CPU, where a run is a few hundred steps rather than 200 epochs.
import { PAPER_HYPERPARAMETERS } from "./hyperparameters.js";
import { PAPER_CONFIG, type PretrainConfig } from "./pretrainer.js";

const FASHION_MNIST_ADCO: PretrainConfig = {
  ...PAPER_CONFIG,
  arch: "resnet-mini",
  batchSize: 256,
  // A short run needs a faster key encoder than 0.999 (time constant 1000 steps, longer than the
  // run); MoCo's CIFAR demo uses 0.99 for the same reason.
  encoderMomentum: 0.99,
  lr: 0.06,
  finalLr: 0.0012,
  bnGroups: 8,
  negatives: 4096,
  adco: { ...PAPER_HYPERPARAMETERS },
};

export const PRESETS = {
  /** The paper: ResNet-50, ImageNet, K 65536, t 0.12, t_mem 0.02, mem_lr 3. */
  "paper-imagenet": PAPER_CONFIG,
  /** AdCo on 28x28 grayscale (Fashion-MNIST), resnet-mini, CPU-sized. */
  "fashion-mnist": FASHION_MNIST_ADCO,
  /** The MoCo v2 baseline with the same encoder, schedule and K (queue length), t 0.2. */
  "fashion-mnist-moco": { ...FASHION_MNIST_ADCO, method: "moco" },
} as const satisfies Record<string, PretrainConfig>;

export type PresetName = keyof typeof PRESETS;

export function preset(name: string): PretrainConfig {
  const config = (PRESETS as Record<string, PretrainConfig>)[name];
  if (!config)
    throw new Error(`preset: unknown ${JSON.stringify(name)}; one of ${Object.keys(PRESETS).join(", ")}`);
  return config;
}
