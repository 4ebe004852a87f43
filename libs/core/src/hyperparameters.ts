// The hyperparameters of the adversaries (AdCo's memory bank), with the paper's values.
import { checkInRange, checkPositive, CoreInputError } from "./checks.js";

export interface AdcoHyperparameters {
  /** Encoder temperature t (paper 0.12). */
  readonly temperature: number;
  /** Temperature t_mem of the loss the adversaries ascend (paper 0.02). */
  readonly memoryTemperature: number;
  /** Step size of the adversaries (paper 3), constant over the run. */
  readonly memoryLr: number;
  /** Momentum of the adversaries (paper 0.9). */
  readonly memoryMomentum: number;
  /** Weight decay of the adversaries (paper 1e-4). */
  readonly memoryWeightDecay: number;
}

export const PAPER_HYPERPARAMETERS: AdcoHyperparameters = {
  temperature: 0.12,
  memoryTemperature: 0.02,
  memoryLr: 3,
  memoryMomentum: 0.9,
  memoryWeightDecay: 1e-4,
};

export function checkHyperparameters(h: AdcoHyperparameters): void {
  checkPositive(h.temperature, "temperature");
  checkPositive(h.memoryTemperature, "memoryTemperature");
  if (!(h.memoryLr >= 0)) throw new CoreInputError("memoryLr", `must be >= 0, got ${h.memoryLr}`);
  checkInRange(h.memoryMomentum, "memoryMomentum", 0, 1);
  if (!(h.memoryWeightDecay >= 0)) {
    throw new CoreInputError("memoryWeightDecay", `must be >= 0, got ${h.memoryWeightDecay}`);
  }
}
