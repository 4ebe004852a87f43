// The runs a trainer knows: those it has started since the process began (one trains at a time), and
// those of earlier processes, known from their status and checkpoints in the bucket. A run id with a
// stored status resumes with its stored config (from the newest checkpoint that verifies, or a chosen
// one; from step 0 when its trainer died before the first). Starting a run takes it over
// (ownership.ts): refused while another trainer's lease on it is live.
import { randomUUID } from "node:crypto";
import { RunConfig, RunState, type Run } from "@adco/proto/trainer";
import {
  failedPrecondition,
  invalidArgument,
  notFound,
  requireId,
  resourceExhausted,
} from "@adco/service-kit";
import { encoderSpec } from "@adco/core";
import { Pipeline } from "@adco/proto/data_worker";
import { readManifest, runStatusKey, StorageError, withStorageStatus } from "@adco/storage";
import { checkpointRef, CheckpointStore, noCheckpointAt } from "./checkpoints.js";
import type { RunStatusRecord } from "./lifecycle.js";
import { checkStepMemory } from "./memory.js";
import { leaseLeftMs, readOwner, RunOwnership } from "./ownership.js";
import { readSplit, type RunDeps, type RunStart, TrainingRun } from "./run.js";
import { type ResolvedRun, resolveRunConfig, sameRunConfig } from "./run-config.js";

/** What a run needs from the process (RunDeps without its checkpoint store), and the trainer's own. */
export interface TrainerDeps extends Omit<RunDeps, "checkpoints" | "statusBucket"> {
  readonly checkpointsBucket: string;
  /** The tfjs backend this process runs ("wasm", "cpu", "tensorflow"). */
  readonly backend: string;
  /** This trainer's id as the owner of its run (config trainerId, the host name by default). */
  readonly trainerId: string;
  /** How long its claim on a run lasts without renewal (config leaseSeconds). */
  readonly leaseMs: number;
}

/** Runs left running by a trainer that is gone: `free` to resume now, newest first; `held` by a live trainer. */
export interface InterruptedRuns {
  readonly free: string[];
  readonly held: string[];
}

/** States a trainer process was killed in (or left its run in at shutdown), whose runs it resumes at boot. */
export const INTERRUPTED = [
  RunState.RUN_STATE_RUNNING,
  RunState.RUN_STATE_INITIALIZING_BANK,
  RunState.RUN_STATE_STARTING,
];

export class Runs {
  private readonly runs = new Map<string, TrainingRun>();
  private readonly checkpoints: CheckpointStore;

  constructor(private readonly deps: TrainerDeps) {
    this.checkpoints = new CheckpointStore(deps.store, deps.checkpointsBucket);
  }

  /** The run training now, if any. */
  active(): TrainingRun | undefined {
    return [...this.runs.values()].find((r) => r.active);
  }

  /** A run of this process that it has not left. */
  private held(runId: string): TrainingRun | undefined {
    const run = this.runs.get(runId);
    return run?.left === undefined ? run : undefined;
  }

  /** Runs still writing (the active one, or one that has just ended and writes its status or release). */
  unsettled(): TrainingRun[] {
    return [...this.runs.values()].filter((r) => !r.settled);
  }

  /** A run this process holds (or has ended); NOT_FOUND otherwise, saying why for one it has left. */
  of(runId: string): TrainingRun {
    requireId(runId, "run_id");
    const run = this.runs.get(runId);
    if (!run)
      throw notFound(`no run ${JSON.stringify(runId)} on this trainer (ListRuns shows the known runs)`);
    if (run.left !== undefined)
      throw notFound(
        `run ${JSON.stringify(runId)} is no longer on this trainer: ${run.left} (GetRun shows its state)`,
      );
    return run;
  }

  /**
   * A run of this process or of storage. One this process has left (at shutdown, or to a trainer
   * that took it over) is answered from storage: its STOPPED here is not the run's state.
   */
  async info(runId: string): Promise<Run | undefined> {
    return this.held(runId)?.info() ?? (await withStorageStatus(() => this.stored(runId)));
  }

  /** Every known run, newest first. */
  async list(): Promise<Run[]> {
    const known = new Map<string, Run>();
    for (const id of this.runs.keys()) {
      const run = this.held(id);
      if (run) known.set(id, run.info());
    }
    const ids = await withStorageStatus(() => this.checkpoints.runIds());
    for (const id of ids) {
      if (known.has(id)) continue;
      const run = await this.stored(id);
      if (run) known.set(id, run);
    }
    return [...known.values()].sort((a, b) => b.createdUnixMs - a.createdUnixMs);
  }

  async known(runId: string): Promise<boolean> {
    return this.runs.has(runId) || (await this.storedStatus(runId)) !== undefined;
  }

  /**
   * Runs whose stored status says running: free when their trainer is gone (crash, kill, shutdown:
   * its lease released or ended), held while another trainer's lease on them is live.
   */
  async interrupted(): Promise<InterruptedRuns> {
    const out: { id: string; created: number; held: boolean }[] = [];
    for (const id of await this.checkpoints.runIds()) {
      if (this.runs.get(id)?.active) continue;
      const status = await this.storedStatus(id);
      if (!status || !INTERRUPTED.includes(RunState[status.state])) continue;
      const owner = await readOwner(this.deps.store, this.deps.checkpointsBucket, id);
      const held = leaseLeftMs(owner, this.deps.trainerId, Date.now()) > 0;
      out.push({ id, created: status.createdUnixMs, held });
    }
    const newest = out.sort((a, b) => b.created - a.created);
    return {
      free: newest.filter((r) => !r.held).map((r) => r.id),
      held: newest.filter((r) => r.held).map((r) => r.id),
    };
  }

  /** The stored state of a run an earlier trainer process had; undefined for a run storage does not know. */
  async storedState(runId: string): Promise<RunState | undefined> {
    const status = await this.storedStatus(runId);
    return status && (RunState[status.state] ?? RunState.RUN_STATE_UNSPECIFIED);
  }

  /**
   * Starts a run, or resumes a stored one (whose config a request may repeat but not change), from
   * the checkpoint at `resumeStep` when one is given.
   */
  async start(requestedId: string, requested: RunConfig | undefined, resumeStep?: number): Promise<Run> {
    if (requestedId !== "") requireId(requestedId, "run_id");
    if (resumeStep !== undefined && requestedId === "")
      throw invalidArgument("resume_step: needs the run_id of the run to resume");
    const active = this.active();
    if (active) {
      if (active.runId === requestedId) throw failedPrecondition(`run ${requestedId} is already running`);
      throw resourceExhausted(
        `this trainer is running ${active.runId}; stop it first or use another trainer`,
      );
    }
    const runId = requestedId || `run-${new Date().toISOString().slice(0, 10)}-${randomUUID().slice(0, 8)}`;
    const stored = requestedId ? await withStorageStatus(() => this.storedStatus(runId)) : undefined;
    const resolved = resolveRunConfig(this.configOf(runId, requested, stored), this.deps.checkpointsBucket);
    if (resolved.config.backend !== "auto" && resolved.config.backend !== this.deps.backend) {
      throw failedPrecondition(
        `config.backend: this trainer runs ${this.deps.backend}; start a trainer with ADCO_BACKEND=${resolved.config.backend} or use "auto"`,
      );
    }
    // A step the backend has no memory for would abort it (wasm: for every later run too).
    checkStepMemory(resolved.pretrain, resolved.augment, this.deps.backend, this.deps.bankPeers.length + 1);
    // A dataset that is not there would fail the run later, after StartRun said yes.
    await withStorageStatus(() => readSplit(this.deps.store, resolved.config.dataset!));
    if (resolved.augment.pipeline === Pipeline.PIPELINE_NONE)
      await withStorageStatus(() => this.checkRecordShape(resolved));
    await withStorageStatus(() => this.deps.store.ensureBucket(resolved.bucket));
    // The run's status goes to the trainer's bucket even when its checkpoints go elsewhere.
    if (resolved.bucket !== this.deps.checkpointsBucket)
      await withStorageStatus(() => this.deps.store.ensureBucket(this.deps.checkpointsBucket));
    const checkpoints =
      resolved.bucket === this.deps.checkpointsBucket
        ? this.checkpoints
        : new CheckpointStore(this.deps.store, resolved.bucket);
    if (resumeStep !== undefined) {
      // A step without a checkpoint is refused here; one that does not verify fails the run.
      const steps = await withStorageStatus(() => checkpoints.steps(runId));
      if (!steps.includes(resumeStep)) throw noCheckpointAt(runId, resumeStep, steps);
    }
    // Last: everything above can refuse the start without having taken the run from anyone.
    const ownership = await withStorageStatus(() =>
      RunOwnership.take(
        {
          store: this.deps.store,
          bucket: this.deps.checkpointsBucket,
          trainerId: this.deps.trainerId,
          leaseMs: this.deps.leaseMs,
          log: this.deps.log,
        },
        runId,
      ),
    );
    const start: RunStart = { stored: stored !== undefined, step: resumeStep, ownership };
    const run = new TrainingRun(
      runId,
      resolved,
      stored?.createdUnixMs ?? Date.now(),
      { ...this.deps, checkpoints, statusBucket: this.deps.checkpointsBucket },
      start,
    );
    this.runs.set(runId, run);
    return run.info();
  }

  /** The config a start trains with: the stored one for a resume, else the request's. */
  private configOf(runId: string, requested: RunConfig | undefined, stored: RunStatusRecord | undefined) {
    if (!stored) {
      if (!requested)
        throw invalidArgument(
          `config: is required (run ${JSON.stringify(runId)} has no checkpoint to resume)`,
        );
      return requested;
    }
    const storedConfig = RunConfig.fromJSON(stored.config);
    const { checkpointsBucket } = this.deps;
    if (requested && !sameRunConfig(resolveRunConfig(requested, checkpointsBucket).config, storedConfig)) {
      throw invalidArgument(
        `config: run ${runId} exists with another config; omit config to resume it, or pick a new run_id`,
      );
    }
    return storedConfig;
  }

  /**
   * PIPELINE_NONE sends the records as they are: a dataset of raw images (gray8, rgb8) must have the
   * encoder's input shape. Encoded images each have their own size; their views are not checked here.
   */
  private async checkRecordShape(resolved: ResolvedRun): Promise<void> {
    const { bucket, name } = resolved.config.dataset!;
    const manifest = await readManifest(this.deps.store, bucket, name.split(":")[0]!);
    const channels = { gray8: 1, rgb8: 3, encoded: undefined }[manifest.encoding];
    if (channels === undefined || !manifest.height || !manifest.width) return;
    const [height, width, takes] = encoderSpec(resolved.pretrain.arch).inputShape;
    if (manifest.height !== height || manifest.width !== width || channels !== takes) {
      throw invalidArgument(
        `config.augment.pipeline: PIPELINE_NONE sends the records of ${name} as they are (${manifest.height}x${manifest.width}x${channels}); the ${resolved.pretrain.arch} encoder takes ${height}x${width}x${takes} views`,
      );
    }
  }

  private async storedStatus(runId: string): Promise<RunStatusRecord | undefined> {
    try {
      return await this.deps.store.getJson<RunStatusRecord>(this.deps.checkpointsBucket, runStatusKey(runId));
    } catch (e) {
      if (e instanceof StorageError && (e.kind === "not-found" || e.kind === "no-bucket")) return undefined;
      throw e;
    }
  }

  /** A run known only from storage (a previous trainer process). */
  private async stored(runId: string): Promise<Run | undefined> {
    const status = await this.storedStatus(runId);
    if (!status) return undefined;
    const latest = await this.checkpoints.latest(runId).catch(() => undefined);
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
  }
}
