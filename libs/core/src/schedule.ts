// The schedule of a run, in one place for the trainer service and the in-process loop (nanoGPT's
// get_lr: one function says what the learning rate of step s is). An AdCo run first fills its bank of
// K adversaries with keys, ceil(K / B) steps at the peak learning rate (the official init_memory);
// then the learning rate anneals along a cosine from lr to finalLr over the remaining steps. MoCo's
// queue fills as it trains, so MoCo has no init steps.
import type { PretrainConfig } from "./pretrainer.js";

export type InitConfig = Pick<PretrainConfig, "method" | "negatives" | "batchSize">;
export type ScheduleConfig = InitConfig & Pick<PretrainConfig, "lr" | "finalLr">;

/**
 * Steps of init_memory in a run of `totalSteps` (AdCo: enough batches of keys to fill the bank, at
 * most the whole run; MoCo: 0). Takes a config or anything that has one (a Pretrainer).
 */
export function initSteps(
  source: InitConfig | { readonly config: InitConfig },
  totalSteps = Number.POSITIVE_INFINITY,
): number {
  const config = "config" in source ? source.config : source;
  return config.method === "adco" ? Math.min(totalSteps, Math.ceil(config.negatives / config.batchSize)) : 0;
}

/** Cosine annealing from lr to finalLr over totalSteps (the official schedule, per step). */
export function cosineLr(
  config: Pick<PretrainConfig, "lr" | "finalLr">,
  step: number,
  totalSteps: number,
): number {
  const progress = Math.min(1, Math.max(0, step / Math.max(1, totalSteps)));
  return config.finalLr + (config.lr - config.finalLr) * 0.5 * (1 + Math.cos(Math.PI * progress));
}

/**
 * The learning rate of step `step` (0-based, init steps included) of a run of `totalSteps` steps:
 * the peak lr while the bank fills, then the cosine over the steps after it.
 */
export function learningRate(config: ScheduleConfig, step: number, totalSteps: number): number {
  const init = initSteps(config, totalSteps);
  return step < init ? config.lr : cosineLr(config, step - init, totalSteps - init);
}
