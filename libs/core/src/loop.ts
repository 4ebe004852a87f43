// The in-process training loop: init_memory (AdCo), then steps with a cosine learning rate. Data comes
// from a callback, so the loop is the same whether views are made here or by data workers.
import * as tf from "@tensorflow/tfjs-core";
import type { Pretrainer, StepStats } from "./pretrainer.js";
import { initSteps, learningRate } from "./schedule.js";

export interface LoopProgress extends StepStats {
  readonly phase: "init" | "train";
  readonly step: number;
  readonly totalSteps: number;
  readonly imagesPerSecond: number;
  readonly elapsedSeconds: number;
}

export interface LoopOptions {
  readonly trainer: Pretrainer;
  /** Training steps after init_memory, in the whole run (the cosine schedule spans init + steps). */
  readonly steps: number;
  /** The views of batch `index` (0-based over the whole run), each batchSize x H x W x C. */
  readonly batch: (index: number) => tf.Tensor4D[];
  readonly onStep?: (progress: LoopProgress) => void;
  /** Checked between steps; true ends the loop early. */
  readonly shouldStop?: () => boolean;
}

/**
 * Runs the steps from `trainer.step` (0 for a new trainer; a restored checkpoint's step to resume) to
 * the end of the run, or until shouldStop. Returns the steps this call ran and their seconds.
 */
export function runPretraining(options: LoopOptions): { steps: number; seconds: number } {
  const { trainer } = options;
  const init = initSteps(trainer);
  const total = init + options.steps;
  const started = performance.now();
  let done = 0;
  for (let index = trainer.step; index < total && !options.shouldStop?.(); index++) {
    const views = options.batch(index);
    try {
      const phase = index < init ? "init" : "train";
      const lr = learningRate(trainer.config, index, total);
      const stats =
        phase === "init"
          ? trainer.initStep(views, lr, index * trainer.config.batchSize)
          : trainer.trainStep(views, lr);
      if (index === init - 1) trainer.finishInit();
      done++;
      const elapsedSeconds = (performance.now() - started) / 1000;
      options.onStep?.({
        ...stats,
        phase,
        step: index + 1,
        totalSteps: total,
        elapsedSeconds,
        imagesPerSecond: (done * trainer.config.batchSize) / elapsedSeconds,
      });
    } finally {
      tf.dispose(views);
    }
  }
  return { steps: done, seconds: (performance.now() - started) / 1000 };
}
