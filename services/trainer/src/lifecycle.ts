// A run's lifecycle as others see it: its state (STARTING -> INITIALIZING_BANK -> RUNNING ->
// COMPLETED, or STOPPING -> STOPPED, or FAILED; a run its trainer leaves at shutdown is STOPPED here
// but still running in storage), the events of WatchRun (kept for replay with the epoch reports of
// earlier trainers, sent to subscribers and to the process's metrics), and the status record beside
// its checkpoints, which tells a restarted trainer which runs were interrupted.
import { RunConfig, type RunEvent, RunState } from "@adco/proto/trainer";
import { type Logger, status, statusOf } from "@adco/service-kit";
import { type ObjectStore, runStatusKey } from "@adco/storage";
import type { EpochReport } from "./checkpoints.js";
import { FencedError } from "./ownership.js";
import { storeRetrying } from "./retry.js";

/** Events a run keeps for WatchRun's replay, besides every epoch's report. */
export const EVENTS_KEPT = 5000;

/** Status of a run as stored beside its checkpoints, so a restarted trainer knows what was interrupted. */
export interface RunStatusRecord {
  readonly state: keyof typeof RunState;
  readonly error: string;
  readonly config: unknown;
  readonly createdUnixMs: number;
}

export interface LifecycleDeps {
  readonly store: Pick<ObjectStore, "putJson">;
  /** Sees every event of every run (the process's training metrics). */
  readonly observe?: (event: RunEvent) => void;
  readonly log: Logger;
  /** How long a status write waits for an unreachable object store (0: one try). */
  readonly retryTimeoutMs?: number;
  /** The run's stop: a status write of a running state stops waiting for the store. */
  readonly signal?: AbortSignal;
  /** Before each status write: FencedError when another trainer owns the run (nothing is written). */
  readonly owned?: () => Promise<void>;
}

/** An event as a run's parts emit it; the lifecycle stamps the run id, sequence and time. */
export type RunEventBody = Omit<RunEvent, "runId" | "sequence" | "unixMs">;

const FINAL_STATES = [RunState.RUN_STATE_STOPPED, RunState.RUN_STATE_COMPLETED, RunState.RUN_STATE_FAILED];

export class RunLifecycle {
  state = RunState.RUN_STATE_STARTING;
  /** Why the run failed; empty otherwise. */
  error = "";
  /**
   * Why this process no longer holds the run (left at shutdown, or taken over), when it does not:
   * then the stored status, not this STOPPED, is the run's state.
   */
  left: string | undefined;
  readonly events: RunEvent[] = [];
  private sequence = 0;
  private epochsKept = 0;
  private readonly listeners = new Set<(event: RunEvent) => void>();

  constructor(
    readonly runId: string,
    private readonly status: {
      readonly bucket: string;
      readonly config: RunConfig;
      readonly createdUnixMs: number;
    },
    private readonly deps: LifecycleDeps,
  ) {}

  get active(): boolean {
    return !FINAL_STATES.includes(this.state);
  }

  subscribe(listener: (event: RunEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Stamps, keeps and sends an event; the stamped event. */
  emit(event: RunEventBody): RunEvent {
    const full = this.keep(event, Date.now());
    this.deps.observe?.(full);
    return full;
  }

  /**
   * The epoch reports of earlier trainers of the run (from the checkpoint it resumed from), as they
   * sent them, for replay and watchers: epochs this process has reported itself are not repeated. The
   * process's metrics do not see them again.
   */
  recall(reports: readonly EpochReport[]): void {
    const own = new Set(this.events.flatMap((e) => (e.epoch ? [e.epoch.epoch] : [])));
    for (const { unixMs, ...epoch } of reports) if (!own.has(epoch.epoch)) this.keep({ epoch }, unixMs);
  }

  private keep(event: RunEventBody, unixMs: number): RunEvent {
    const full: RunEvent = { runId: this.runId, sequence: ++this.sequence, unixMs, ...event };
    this.events.push(full);
    if (event.epoch) this.epochsKept++;
    // Past the limit the oldest other event goes: a long run's replay still shows every epoch.
    if (this.events.length > EVENTS_KEPT + this.epochsKept) {
      const oldest = this.events.findIndex((e) => !e.epoch);
      this.events.splice(oldest, 1);
    }
    for (const listener of this.listeners) listener(full);
    return full;
  }

  /**
   * Moves to `state`: an event, a log line and the stored status. The write waits out an unreachable
   * object store for up to retryTimeoutMs, saying so in an event; a final state (STOPPED, COMPLETED,
   * FAILED) waits even when the run is stopping, so that the store says how the run ended. A write
   * that still fails is only logged. A trainer taken over writes nothing: a running state then throws
   * the FencedError, a final one only logs it.
   */
  async enter(state: RunState, message = ""): Promise<void> {
    this.state = state;
    this.emit({ state: { state, message } });
    this.deps.log.info({ runId: this.runId, state: RunState[state], message }, "run state");
    const record: RunStatusRecord = {
      state: RunState[state] as keyof typeof RunState,
      error: this.error,
      config: RunConfig.toJSON(this.status.config),
      createdUnixMs: this.status.createdUnixMs,
    };
    const final = FINAL_STATES.includes(state);
    try {
      await storeRetrying(
        `write the ${RunState[state]} status`,
        async () => {
          await this.deps.owned?.();
          return this.deps.store.putJson(this.status.bucket, runStatusKey(this.runId), record);
        },
        {
          timeoutMs: this.deps.retryTimeoutMs ?? 0,
          signal: final ? undefined : this.deps.signal,
          onOutage: (note) => this.outage(note),
          onRetry: (what, err) =>
            this.deps.log.warn({ runId: this.runId, what, err }, "object store call retried"),
        },
      );
    } catch (e) {
      if (e instanceof FencedError && !final) throw e;
      this.deps.log.warn({ runId: this.runId, err: (e as Error).message }, "could not write the run status");
    }
  }

  /** Says, in the log and to watchers, that the run waits for the object store (its state unchanged). */
  outage(message: string): void {
    this.deps.log.warn({ runId: this.runId, message }, "object store unreachable");
    this.emit({ state: { state: this.state, message } });
  }

  /**
   * STOPPING, at once and only in memory: the stored status keeps saying RUNNING until the run has
   * checkpointed and is STOPPED, so a trainer killed meanwhile resumes it. False if already ended.
   */
  stopping(): boolean {
    if (!this.active) return false;
    this.state = RunState.RUN_STATE_STOPPING;
    this.emit({ state: { state: this.state, message: "stop requested" } });
    return true;
  }

  /**
   * Ends the run in this process only: STOPPED in memory (watchers see it end, with `message`), while
   * the stored status keeps the running state it had, which a restarted trainer reads as interrupted
   * and resumes. For the trainer's own shutdown, after its last checkpoint.
   */
  leave(message: string): void {
    this.left = message;
    this.state = RunState.RUN_STATE_STOPPED;
    this.emit({ state: { state: this.state, message } });
    this.deps.log.info({ runId: this.runId, message }, "run left to the next trainer");
  }

  /**
   * Ends the run in this process only, as `leave` does, because another trainer has taken it over:
   * the new owner writes its status from now on.
   */
  takenOver(message: string): void {
    this.left = message;
    this.state = RunState.RUN_STATE_STOPPED;
    this.emit({ state: { state: this.state, message } });
    this.deps.log.warn({ runId: this.runId, message }, "run taken over by another trainer");
  }

  /** FAILED with the error's message (after its status, when it has one), logged with its stack. */
  async fail(error: Error): Promise<void> {
    const code = statusOf(error);
    const name = code === undefined ? undefined : status[code];
    this.error = name && !error.message.startsWith(`${name}: `) ? `${name}: ${error.message}` : error.message;
    this.deps.log.error({ runId: this.runId, err: this.error, stack: error.stack }, "run failed");
    await this.enter(RunState.RUN_STATE_FAILED, this.error);
  }
}
