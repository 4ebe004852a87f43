// Trainer handlers. Run control over an empty run registry: listing works, unknown runs are
// NOT_FOUND, and StartRun checks its config and answers UNIMPLEMENTED until training lands (issue 5).
import { Method, type RunConfig, type Run, type TrainerService } from "@adco/proto/trainer";
import {
  invalidArgument,
  notFound,
  requireEnum,
  requireId,
  requireNonEmpty,
  requirePresent,
  requireRange,
  type ServiceHandlers,
  unimplemented,
} from "@adco/service-kit";

export function checkRunConfig(config: RunConfig | undefined): RunConfig {
  const c = requirePresent(config, "config");
  requireNonEmpty(c.preset, "config.preset");
  const dataset = requirePresent(c.dataset, "config.dataset");
  requireNonEmpty(dataset.bucket, "config.dataset.bucket");
  requireNonEmpty(dataset.name, "config.dataset.name");
  if (c.method !== Method.METHOD_UNSPECIFIED) requireEnum(c.method, Method, "config.method");
  if (c.epochs !== undefined) requireRange(c.epochs, "config.epochs", 1);
  if (c.batchSize !== undefined) requireRange(c.batchSize, "config.batch_size", 2, 65536);
  if (c.lr !== undefined) requireRange(c.lr, "config.lr", 0, Infinity, true);
  if (c.finalLr !== undefined) requireRange(c.finalLr, "config.final_lr", 0);
  if (c.sgdMomentum !== undefined) requireRange(c.sgdMomentum, "config.sgd_momentum", 0, 0.999999);
  if (c.weightDecay !== undefined) requireRange(c.weightDecay, "config.weight_decay", 0);
  if (c.encoderMomentum !== undefined)
    requireRange(c.encoderMomentum, "config.encoder_momentum", 0, 0.999999);
  if (c.backend !== "" && !["auto", "tensorflow", "wasm", "cpu"].includes(c.backend)) {
    throw invalidArgument(
      `config.backend: must be one of auto, tensorflow, wasm, cpu, got ${JSON.stringify(c.backend)}`,
    );
  }
  return c;
}

export function trainerHandlers(): ServiceHandlers<typeof TrainerService> {
  const runs = new Map<string, Run>();
  const runOf = (runId: string): Run => {
    requireId(runId, "run_id");
    const run = runs.get(runId);
    if (!run)
      throw notFound(`no run ${JSON.stringify(runId)} on this trainer (ListRuns shows the known runs)`);
    return run;
  };
  return {
    async startRun(request) {
      if (request.runId !== "") requireId(request.runId, "run_id");
      checkRunConfig(request.config);
      throw unimplemented("StartRun: training is not built yet (issue 5)");
    },
    async stopRun(request) {
      return runOf(request.runId);
    },
    async listRuns() {
      return { runs: [...runs.values()].sort((a, b) => b.createdUnixMs - a.createdUnixMs) };
    },
    async getRun(request) {
      return runOf(request.runId);
    },
    async *watchRun(request) {
      runOf(request.runId);
      yield* [];
    },
    async checkpointNow(request) {
      runOf(request.runId);
      throw unimplemented("CheckpointNow: not built yet (issue 5)");
    },
  };
}
