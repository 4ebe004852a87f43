// Trainer handlers: run control. One run trains at a time on a trainer; the runs it has seen since it
// started, and those with checkpoints in the bucket, are listed. A run id with a checkpoint resumes.
import { randomUUID } from "node:crypto";
import { RunConfig, RunState, type Run, type RunEvent, type TrainerService } from "@adco/proto/trainer";
import {
  AsyncQueue,
  failedPrecondition,
  invalidArgument,
  notFound,
  requireId,
  resourceExhausted,
  type ServiceHandlers,
} from "@adco/service-kit";
import { runStatusKey, StorageError, withStorageStatus } from "@adco/storage";
import { checkpointRef, CheckpointStore } from "./checkpoints.js";
import type { RunStatusRecord } from "./lifecycle.js";
import { type RunDeps, TrainingRun } from "./run.js";
import { resolveRunConfig, sameRunConfig } from "./run-config.js";

export { checkRunConfig } from "./run-config.js";

/** What a run needs from the process (RunDeps without its checkpoint store), and the trainer's own. */
export interface TrainerDeps extends Omit<RunDeps, "checkpoints"> {
  readonly checkpointsBucket: string;
  /** The tfjs backend this process runs ("wasm", "cpu", "tensorflow"). */
  readonly backend: string;
}

export interface TrainerControl {
  readonly handlers: ServiceHandlers<typeof TrainerService>;
  /** Starts or resumes a run as StartRun does (used to resume interrupted runs at start-up). */
  start(runId: string, config: RunConfig | undefined): Promise<Run>;
  /** Runs interrupted by a crash or kill of the previous trainer process (newest first). */
  interrupted(): Promise<string[]>;
  /** Whether a run of this id is in this process or in storage (in any state). */
  known(runId: string): Promise<boolean>;
  /** Stops the active run (checkpoint first); resolves when it has ended. */
  shutdown(): Promise<void>;
}

export function trainerControl(deps: TrainerDeps): TrainerControl {
  const runs = new Map<string, TrainingRun>();
  const checkpoints = new CheckpointStore(deps.store, deps.checkpointsBucket);
  const activeRun = () => [...runs.values()].find((r) => r.active);

  const storedStatus = async (runId: string, bucket = deps.checkpointsBucket) => {
    try {
      return await deps.store.getJson<RunStatusRecord>(bucket, runStatusKey(runId));
    } catch (e) {
      if (e instanceof StorageError && (e.kind === "not-found" || e.kind === "no-bucket")) return undefined;
      throw e;
    }
  };

  const runOf = (runId: string): TrainingRun => {
    requireId(runId, "run_id");
    const run = runs.get(runId);
    if (!run)
      throw notFound(`no run ${JSON.stringify(runId)} on this trainer (ListRuns shows the known runs)`);
    return run;
  };

  /** A run known only from storage (a previous trainer process). */
  const storedRun = async (runId: string): Promise<Run | undefined> => {
    const status = await storedStatus(runId);
    if (!status) return undefined;
    const latest = await checkpoints.latest(runId).catch(() => undefined);
    return {
      runId,
      config: RunConfig.fromJSON(status.config),
      state: RunState[status.state] ?? RunState.RUN_STATE_UNSPECIFIED,
      step: latest?.meta.step ?? 0,
      epoch: latest?.meta.epoch ?? 0,
      totalSteps: latest?.meta.totalSteps ?? 0,
      latestCheckpoint: latest ? checkpointRef(latest) : undefined,
      createdUnixMs: status.createdUnixMs,
      error: status.error,
    };
  };

  async function start(requestedId: string, requested: RunConfig | undefined): Promise<Run> {
    if (requestedId !== "") requireId(requestedId, "run_id");
    const active = activeRun();
    if (active) {
      if (active.runId === requestedId) throw failedPrecondition(`run ${requestedId} is already running`);
      throw resourceExhausted(
        `this trainer is running ${active.runId}; stop it first or use another trainer`,
      );
    }
    const runId = requestedId || `run-${new Date().toISOString().slice(0, 10)}-${randomUUID().slice(0, 8)}`;
    const stored = requestedId ? await withStorageStatus(() => storedStatus(runId)) : undefined;
    let config = requested;
    if (stored) {
      const storedConfig = RunConfig.fromJSON(stored.config);
      if (config && !sameRunConfig(resolveRunConfig(config, deps.checkpointsBucket).config, storedConfig)) {
        throw invalidArgument(
          `config: run ${runId} exists with another config; omit config to resume it, or pick a new run_id`,
        );
      }
      config = storedConfig;
    } else if (!config) {
      throw invalidArgument(`config: is required (run ${JSON.stringify(runId)} has no checkpoint to resume)`);
    }
    const resolved = resolveRunConfig(config, deps.checkpointsBucket);
    if (resolved.config.backend !== "auto" && resolved.config.backend !== deps.backend) {
      throw failedPrecondition(
        `config.backend: this trainer runs ${deps.backend}; start a trainer with ADCO_BACKEND=${resolved.config.backend} or use "auto"`,
      );
    }
    await withStorageStatus(() => deps.store.ensureBucket(resolved.bucket));
    const run = new TrainingRun(runId, resolved, stored?.createdUnixMs ?? Date.now(), {
      ...deps,
      checkpoints:
        resolved.bucket === deps.checkpointsBucket
          ? checkpoints
          : new CheckpointStore(deps.store, resolved.bucket),
    });
    runs.set(runId, run);
    return run.info();
  }

  const handlers: ServiceHandlers<typeof TrainerService> = {
    async startRun(request) {
      return start(request.runId, request.config);
    },
    async stopRun(request) {
      const run = runOf(request.runId);
      run.requestStop();
      return run.info();
    },
    async listRuns() {
      const known = new Map<string, Run>([...runs].map(([id, r]) => [id, r.info()]));
      const ids = await withStorageStatus(() => checkpoints.runIds());
      for (const id of ids) {
        if (known.has(id)) continue;
        const run = await storedRun(id);
        if (run) known.set(id, run);
      }
      return { runs: [...known.values()].sort((a, b) => b.createdUnixMs - a.createdUnixMs) };
    },
    async getRun(request) {
      requireId(request.runId, "run_id");
      const run = runs.get(request.runId);
      if (run) return run.info();
      const stored = await withStorageStatus(() => storedRun(request.runId));
      if (!stored) throw notFound(`no run ${JSON.stringify(request.runId)} (ListRuns shows the known runs)`);
      return stored;
    },
    async *watchRun(request, ctx) {
      const run = runOf(request.runId);
      const queue = new AsyncQueue<RunEvent>();
      if (request.replay) for (const event of run.events) queue.push(event);
      const unsubscribe = run.subscribe((event) => queue.push(event));
      // Every event of the run is emitted before `done` resolves.
      void run.done.then(() => queue.end());
      const onAbort = () => queue.end();
      if (ctx.signal.aborted) queue.end();
      else ctx.signal.addEventListener("abort", onAbort, { once: true });
      try {
        yield* queue;
      } finally {
        ctx.signal.removeEventListener("abort", onAbort);
        unsubscribe();
      }
    },
    async checkpointNow(request) {
      const run = runOf(request.runId);
      if (!run.active || run.state === RunState.RUN_STATE_STOPPING)
        throw failedPrecondition(`run ${request.runId} is ${RunState[run.state]}, not running`);
      return run.checkpointNow();
    },
  };

  return {
    handlers,
    start,
    async known(runId) {
      return runs.has(runId) || (await storedStatus(runId)) !== undefined;
    },
    async interrupted() {
      const ids = await checkpoints.runIds();
      const out: { id: string; created: number }[] = [];
      for (const id of ids) {
        const status = await storedStatus(id);
        const state = status ? RunState[status.state] : undefined;
        if (
          status &&
          (state === RunState.RUN_STATE_RUNNING ||
            state === RunState.RUN_STATE_INITIALIZING_BANK ||
            state === RunState.RUN_STATE_STARTING)
        )
          out.push({ id, created: status.createdUnixMs });
      }
      return out.sort((a, b) => b.created - a.created).map((r) => r.id);
    },
    async shutdown() {
      const run = activeRun();
      if (!run) return;
      run.requestStop();
      await run.done;
    },
  };
}
