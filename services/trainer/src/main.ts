#!/usr/bin/env node
import { initBackend } from "@adco/core";
import { TrainerService } from "@adco/proto/trainer";
import { register, runService } from "@adco/service-kit";
import { storeFromConfig } from "@adco/storage";
import { trainerConfig } from "./config.js";
import { type TrainerControl, trainerControl } from "./handlers.js";

let control: TrainerControl | undefined;
let resume = false;

await runService({
  name: "trainer",
  spec: trainerConfig,
  services: async (config, log) => {
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
      log,
    });
    // A restarted trainer (crash, SIGKILL, rescheduled pod) picks up the run it was training.
    if (resume) {
      const c = control;
      setImmediate(() => {
        c.interrupted()
          .then(async (ids) => {
            if (ids[0] === undefined) return;
            log.info({ runId: ids[0] }, "resuming the interrupted run");
            await c.start(ids[0], undefined);
          })
          .catch((e: unknown) =>
            log.error({ err: (e as Error).message }, "could not resume interrupted runs"),
          );
      });
    }
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
