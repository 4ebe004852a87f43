#!/usr/bin/env node
import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import { initBackend } from "@adco/core";
import { startRunRequestFromJson } from "@adco/proto";
import { type StartRunRequest, TrainerService } from "@adco/proto/trainer";
import {
  access,
  BROKEN_BACKEND_EXIT,
  ConfigError,
  leaveBrokenBackend,
  type Logger,
  register,
  runService,
  type ServiceHost,
  serviceNameOf,
  threadsFromConfig,
} from "@adco/service-kit";
import { type ObjectStore, readManifest, StorageError, storeFromConfig } from "@adco/storage";
import { trainerConfig } from "./config.js";
import { type TrainerControl, trainerControl } from "./handlers.js";
import { trainingMetrics } from "./metrics.js";

let control: TrainerControl | undefined;
let resume = false;
/** When a shutdown must be over: SIGTERM plus shutdownGraceMs, less a margin to exit in. */
let shutdownDeadline = Infinity;
let shutdownGraceMs = 10_000;

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

const DATASET_POLL_MS = 2000;
/** What a freshly applied deployment looks like for a while: MinIO starting, buckets not yet made, no data. */
const WAITABLE = new Set(["not-found", "no-bucket", "unavailable"]);

/**
 * The run a trainer takes at boot: the newest run left running whose trainer is gone; while other
 * trainers hold every such run (and startRun names none of them), it stands by and takes one over
 * when its trainer's lease ends. Then the run of startRun.
 */
async function boot(
  c: TrainerControl,
  store: ObjectStore,
  options: { resumeInterrupted: boolean; pollMs: number },
  startRequest: StartRunRequest | undefined,
  log: Logger,
): Promise<void> {
  for (let said = false; options.resumeInterrupted; said = true) {
    const { free, held } = await c.interrupted();
    if (free[0] !== undefined) {
      log.info({ runId: free[0] }, "resuming the interrupted run");
      await c.start(free[0], undefined);
      return;
    }
    if (held.length === 0 || (startRequest && !held.includes(startRequest.runId))) break;
    if (!said)
      log.info({ runIds: held }, "runs left running are held by live trainers; standing by to take one over");
    await sleep(options.pollMs);
  }
  if (startRequest && (await c.known(startRequest.runId))) {
    await c.resumeIfInterrupted(startRequest.runId, startRequest.config);
  } else if (startRequest) {
    await waitForDataset(store, startRequest, log);
    log.info({ runId: startRequest.runId }, "starting the run of startRun");
    await c.start(startRequest.runId, startRequest.config);
  }
}

/**
 * A deployment applies the trainer and its run before anyone has imported the data: wait for the
 * dataset (saying so every 30 s) instead of failing the run.
 */
async function waitForDataset(store: ObjectStore, request: StartRunRequest, log: Logger): Promise<void> {
  const dataset = request.config?.dataset;
  if (!dataset?.bucket || !dataset.name) return; // the run's own checks name what is missing
  const name = dataset.name.split(":")[0]!;
  for (let waited = 0; ; waited += DATASET_POLL_MS) {
    try {
      await readManifest(store, dataset.bucket, name);
      return;
    } catch (e) {
      if (!(e instanceof StorageError && WAITABLE.has(e.kind))) throw e;
    }
    if (waited % 30_000 === 0) {
      log.warn(
        { runId: request.runId, bucket: dataset.bucket, dataset: name },
        "waiting for the run's dataset; import it with `adco dataset import`",
      );
    }
    await sleep(DATASET_POLL_MS);
  }
}

/** The host, once it has started (a run's backend can break only after; see onBackendBroken). */
const started: { host?: ServiceHost } = {};
const host = await runService({
  name: "trainer",
  spec: trainerConfig,
  services: async (config, log, metrics) => {
    const backend = await initBackend(config.backend, { threads: threadsFromConfig(config) });
    log.info(
      { backend: backend.name, detail: backend.detail, threads: backend.threads, skipped: backend.skipped },
      "tfjs backend",
    );
    resume = config.resumeInterrupted;
    const leaseMs = config.leaseSeconds * 1000;
    shutdownGraceMs = config.shutdownGraceMs;
    const store = storeFromConfig(config);
    control = trainerControl({
      store,
      checkpointsBucket: config.checkpointsBucket,
      bankAddress: config.bankAddress,
      bankPeers: commaList(config.bankPeers),
      dataWorkers: commaList(config.dataWorkers),
      retryTimeoutMs: config.retryTimeoutSeconds * 1000,
      backend: backend.name,
      trainerId: config.trainerId || hostname(),
      leaseMs,
      observe: trainingMetrics(metrics),
      evaluatorAddress: config.evaluatorAddress || undefined,
      onBackendBroken: (error) => {
        if (started.host) void leaveBrokenBackend(started.host, [serviceNameOf(TrainerService)], error, log);
        else process.exit(BROKEN_BACKEND_EXIT);
      },
      log,
    });
    // A restarted trainer (crash, SIGKILL, rescheduled pod) picks up the run it was training; a run
    // given in `startRun` starts once, the first time a trainer sees it.
    const c = control;
    const startRunFile = config.startRun;
    const startRequest = startRunFile ? readStartRun(startRunFile) : undefined;
    setImmediate(() => {
      void (async () => {
        // Object storage may come up after the trainer (a fresh deployment): keep trying.
        for (;;) {
          try {
            return await boot(
              c,
              store,
              { resumeInterrupted: resume, pollMs: leaseMs / 3 },
              startRequest,
              log,
            );
          } catch (e) {
            if (!(e instanceof StorageError && WAITABLE.has(e.kind))) {
              log.error({ err: (e as Error).message }, "could not resume or start the boot run");
              return;
            }
            log.warn({ err: e.message }, "object storage not ready; retrying the boot run in 5 s");
            await sleep(5000);
          }
        }
      })();
    });
    // Runs are started and stopped by operators (the bearer token); reads follow readAccess.
    return [
      register(TrainerService, control.handlers, {
        startRun: access.control(),
        stopRun: access.control(),
        listRuns: access.read,
        getRun: access.read,
        watchRun: access.read,
        checkpointNow: access.control(),
      }),
    ];
  },
  onShutdown: async () => {
    await control?.shutdown(shutdownDeadline);
  },
});
started.host = host;
// The run stops at SIGTERM, while calls drain, not after: the whole shutdown fits in the grace period.
host.shutdownSignal.addEventListener(
  "abort",
  () => {
    shutdownDeadline = Date.now() + shutdownGraceMs - Math.min(1000, shutdownGraceMs / 10);
    void control?.shutdown(shutdownDeadline);
  },
  { once: true },
);

function commaList(value: string): string[] {
  return value
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
}
