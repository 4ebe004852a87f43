#!/usr/bin/env node
import { readFileSync } from "node:fs";
import { initBackend } from "@adco/core";
import { startRunRequestFromJson } from "@adco/proto";
import { type StartRunRequest, TrainerService } from "@adco/proto/trainer";
import { ConfigError, type Logger, register, runService } from "@adco/service-kit";
import { storeFromConfig } from "@adco/storage";
import { trainerConfig } from "./config.js";
import { type TrainerControl, trainerControl } from "./handlers.js";
import { trainingMetrics } from "./metrics.js";

let control: TrainerControl | undefined;
let resume = false;

/** The StartRunRequest of `startRun`; a missing file or an unknown key stops the trainer at start. */
function readStartRun(path: string): StartRunRequest {
  let request: StartRunRequest;
  try {
    request = startRunRequestFromJson(JSON.parse(readFileSync(path, "utf8")));
  } catch (e) {
    throw new ConfigError(`startRun ${path}: ${(e as Error).message}`);
  }
  // Without an id every boot would start another run.
  if (!request.runId) throw new ConfigError(`startRun ${path}: runId is required`);
  if (!request.config) throw new ConfigError(`startRun ${path}: config is required`);
  return request;
}

async function boot(
  c: TrainerControl,
  resumeInterrupted: boolean,
  startRequest: StartRunRequest | undefined,
  log: Logger,
): Promise<void> {
  const interrupted = resumeInterrupted ? await c.interrupted() : [];
  if (interrupted[0] !== undefined) {
    log.info({ runId: interrupted[0] }, "resuming the interrupted run");
    await c.start(interrupted[0], undefined);
    return;
  }
  if (startRequest && !(await c.known(startRequest.runId))) {
    log.info({ runId: startRequest.runId }, "starting the run of startRun");
    await c.start(startRequest.runId, startRequest.config);
  }
}

await runService({
  name: "trainer",
  spec: trainerConfig,
  services: async (config, log, metrics) => {
    const backend = await initBackend(config.backend);
    log.info({ backend: backend.name, detail: backend.detail, skipped: backend.skipped }, "tfjs backend");
    resume = config.resumeInterrupted;
    control = trainerControl({
      store: storeFromConfig(config),
      checkpointsBucket: config.checkpointsBucket,
      bankAddress: config.bankAddress,
      bankPeers: commaList(config.bankPeers),
      dataWorkers: commaList(config.dataWorkers),
      retryTimeoutMs: config.retryTimeoutSeconds * 1000,
      backend: backend.name,
      observe: trainingMetrics(metrics),
      log,
    });
    // A restarted trainer (crash, SIGKILL, rescheduled pod) picks up the run it was training; a run
    // given in `startRun` starts once, the first time a trainer sees it.
    const c = control;
    const startRunFile = config.startRun;
    const startRequest = startRunFile ? readStartRun(startRunFile) : undefined;
    setImmediate(() => {
      boot(c, resume, startRequest, log).catch((e: unknown) =>
        log.error({ err: (e as Error).message }, "could not resume or start the boot run"),
      );
    });
    return [register(TrainerService, control.handlers)];
  },
  onShutdown: async () => {
    await control?.shutdown();
  },
});

function commaList(value: string): string[] {
  return value
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
}
