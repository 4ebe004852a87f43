// Trainer handlers: run control. One run trains at a time on a trainer; the runs it has seen since it
// started, and those with a status or checkpoints in the bucket, are listed. A stored run id resumes.
import { type Run, type RunConfig, type RunEvent, RunState, type TrainerService } from "@adco/proto/trainer";
import {
  AsyncQueue,
  DrainingStream,
  failedPrecondition,
  notFound,
  requireId,
  type ServiceHandlers,
} from "@adco/service-kit";
import { setTimeout as sleep } from "node:timers/promises";
import { INTERRUPTED, type InterruptedRuns, Runs, type TrainerDeps } from "./runs.js";

export { checkRunConfig } from "./run-config.js";
export type { TrainerDeps } from "./runs.js";

export interface TrainerControl {
  readonly handlers: ServiceHandlers<typeof TrainerService>;
  /** Starts or resumes a run as StartRun does (used to resume interrupted runs at start-up). */
  start(runId: string, config: RunConfig | undefined): Promise<Run>;
  /** Runs left running: free to resume now (their trainer is gone), or held by a live trainer. */
  interrupted(): Promise<InterruptedRuns>;
  /** Whether a run of this id is in this process or in storage (in any state). */
  known(runId: string): Promise<boolean>;
  /**
   * The known run of `startRun` at boot: resumed (with that config, which must equal the stored one)
   * when its last trainer left it running (a crash, a kill, a rollout, before or after its first
   * checkpoint); left as it is when it has ended (completed, stopped by a person, failed). Logs which.
   */
  resumeIfInterrupted(runId: string, config: RunConfig | undefined): Promise<Run | undefined>;
  /**
   * Leaves the active run to the next trainer (checkpoint first); resolves when it has ended here, or
   * at `deadlineUnixMs` (the shutdown grace period) if it has not: its stored status still says
   * running, so the next trainer resumes it from its last checkpoint. A run that has just ended is
   * waited for too, until its final status is written. Calls after the first share it.
   */
  shutdown(deadlineUnixMs?: number): Promise<void>;
}

export function trainerControl(deps: TrainerDeps): TrainerControl {
  const runs = new Runs(deps);
  let shuttingDown: Promise<void> | undefined;
  return {
    handlers: trainerHandlers(runs),
    start: (runId, config) => runs.start(runId, config),
    known: (runId) => runs.known(runId),
    interrupted: () => runs.interrupted(),
    async resumeIfInterrupted(runId, config) {
      const state = await runs.storedState(runId);
      if (state === undefined || !INTERRUPTED.includes(state)) {
        deps.log.info(
          { runId, state: state === undefined ? "unknown" : RunState[state] },
          "the run of startRun has ended (completed, stopped or failed); not starting it again",
        );
        return undefined;
      }
      deps.log.info({ runId, state: RunState[state] }, "resuming the run of startRun");
      return runs.start(runId, config);
    },
    shutdown(deadlineUnixMs = Infinity) {
      shuttingDown ??= (async () => {
        const run = runs.active();
        run?.requestStop("shutdown");
        // A run that has just ended may still be writing its status: it counts too.
        const writing = runs.unsettled();
        if (writing.length === 0) return;
        const settled = Promise.all(writing.map((r) => r.done)).then(() => undefined);
        const left = deadlineUnixMs - Date.now();
        if (!Number.isFinite(left)) return settled;
        const timer = new AbortController();
        const ended = await Promise.race([
          settled.then(() => true),
          sleep(Math.max(0, left), false, { signal: timer.signal }).catch(() => false),
        ]);
        timer.abort();
        if (!ended && run) {
          deps.log.warn(
            { runId: run.runId, step: run.step, checkpoint: run.latest?.step ?? null },
            "the run did not end within the shutdown grace period; the next trainer resumes it from its last checkpoint",
          );
        }
      })();
      return shuttingDown;
    },
  };
}

function trainerHandlers(runs: Runs): ServiceHandlers<typeof TrainerService> {
  return {
    async startRun(request) {
      return runs.start(request.runId, request.config, request.resumeStep);
    },
    async stopRun(request) {
      const run = runs.of(request.runId);
      run.requestStop();
      return run.info();
    },
    async listRuns() {
      return { runs: await runs.list() };
    },
    async getRun(request) {
      requireId(request.runId, "run_id");
      const run = await runs.info(request.runId);
      if (!run) throw notFound(`no run ${JSON.stringify(request.runId)} (ListRuns shows the known runs)`);
      return run;
    },
    watchRun(request, ctx) {
      const run = runs.of(request.runId);
      const queue = new AsyncQueue<RunEvent>();
      if (request.replay) for (const event of run.events) queue.push(event);
      const unsubscribe = run.subscribe((event) => queue.push(event));
      // Every event of the run is emitted before `done` resolves.
      void run.done.then(() => queue.end());
      const onCancel = () => queue.end();
      if (ctx.cancelled.aborted) queue.end();
      else ctx.cancelled.addEventListener("abort", onCancel, { once: true });
      async function* events() {
        try {
          yield* queue;
        } finally {
          ctx.cancelled.removeEventListener("abort", onCancel);
          unsubscribe();
        }
      }
      // At SIGTERM the run trains on to its next step, checkpoints and leaves: watchers get all that
      // (an epoch's report among it) before the stream ends, as the run does, within the grace period.
      return new DrainingStream(events());
    },
    async checkpointNow(request) {
      const run = runs.of(request.runId);
      if (!run.active || run.state === RunState.RUN_STATE_STOPPING)
        throw failedPrecondition(`run ${request.runId} is ${RunState[run.state]}, not running`);
      return run.checkpointNow();
    },
  };
}
