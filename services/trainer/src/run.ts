// One training run: views from the data workers, encoders here, the contrast in the adversary bank,
// checkpoints in object storage. Per step:
//   views (ViewFeeder -> Batcher) -> keys f_k, queries f_q -> bank Step (loss, dLoss/dq; the bank
//   ascends) -> dLoss/dq pulled back through f_q -> SGD -> f_k follows f_q
// The first ceil(K / B) steps of an AdCo run fill the bank with keys (the official init_memory) while
// f_q trains against it. A lost bank (it restarted) or a restarted trainer resumes from the newest
// checkpoint that verifies, whose cursor says which samples of the epoch are already trained on; a
// run without one starts again from step 0, on a bank reset of whatever an earlier attempt left.
// The run has one owner (ownership.ts): a trainer taken over by another stops without writing.
// The parts: lifecycle.ts (state, events, status), epoch-loop.ts (feeder, batcher), bank-exchange.ts
// (the Step call), progress.ts (what checkpoints record), worker-discovery.ts (DNS). This file puts
// them in order.
import {
  initSteps,
  learningRate,
  pixelsToTensor,
  Pretrainer,
  pretrainerFiles,
  restorePretrainer,
  type RemoteStepStats,
} from "@adco/core";
import type { BankStats, CreateBankRequest } from "@adco/proto/adversary_bank";
import type { CheckpointRef } from "@adco/proto/common";
import { RunConfig, type RunEvent, RunState, type Run, type StepEvent } from "@adco/proto/trainer";
import { failedPrecondition, isBackendBroken, type Logger } from "@adco/service-kit";
import { type ObjectStore, readManifest, runPrefix, type SplitManifest } from "@adco/storage";
import * as tf from "@tensorflow/tfjs-core";
import { bankContrast } from "./bank-exchange.js";
import { BankLink, BankLostError } from "./bank-link.js";
import type { TrainBatch } from "./batcher.js";
import { checkpointRef, CheckpointRequests, type CheckpointStore, describeSkipped } from "./checkpoints.js";
import { EpochEvaluator } from "./epoch-eval.js";
import { type EpochData, StepInterval, trainEpoch } from "./epoch-loop.js";
import { RunLifecycle } from "./lifecycle.js";
import { RunProgress } from "./progress.js";
import { FencedError, type RunOwnership } from "./ownership.js";
import { RetryAbandonedError, storeRetrying } from "./retry.js";
import type { ResolvedRun } from "./run-config.js";
import { WorkerDiscovery } from "./worker-discovery.js";

export interface RunDeps {
  readonly store: ObjectStore;
  readonly checkpoints: CheckpointStore;
  /**
   * The trainer's own bucket (checkpointsBucket), where every run's status.json lives even when
   * the run's checkpoints go to a bucket of its own: a restarted trainer looks for runs there.
   */
  readonly statusBucket: string;
  readonly bankAddress: string;
  /** host:port of bank shards 1..S-1; empty for a bank of one shard. */
  readonly bankPeers: readonly string[];
  /** host:port entries; a name that resolves to several addresses gives a worker per address. */
  readonly dataWorkers: readonly string[];
  readonly retryTimeoutMs: number;
  /** host:port of the evaluator that scores each epoch's checkpoint (kNN); undefined: none. */
  readonly evaluatorAddress?: string;
  /** Sees every event of every run (the process's training metrics). */
  readonly observe?: (event: RunEvent) => void;
  /** A run failed with an abort of the tfjs backend (isBackendBroken): the process must restart. */
  readonly onBackendBroken?: (error: Error) => void;
  readonly log: Logger;
}

/**
 * The manifest of a run's dataset split ("name:split", train when no split is named). A dataset that
 * is not there is a StorageError (NOT_FOUND through withStorageStatus); a split it lacks, FAILED_PRECONDITION.
 */
export async function readSplit(
  store: ObjectStore,
  dataset: { readonly bucket: string; readonly name: string },
): Promise<SplitManifest> {
  const [datasetName, splitName = "train"] = dataset.name.split(":");
  const manifest = await readManifest(store, dataset.bucket, datasetName!);
  const split = manifest.splits[splitName];
  if (!split) {
    throw failedPrecondition(
      `config.dataset.name: dataset ${datasetName} has no split ${splitName} (it has ${Object.keys(manifest.splits).join(", ")})`,
    );
  }
  return split;
}

/** How a run begins in this process. */
export interface RunStart {
  /** An earlier trainer process had the run (it has a stored status): it is resumed, not new. */
  readonly stored: boolean;
  /** Resume from the checkpoint at this step, not the newest that verifies (StartRun's resume_step). */
  readonly step?: number;
  /** This trainer's claim on the run, taken before the run starts. */
  readonly ownership: RunOwnership;
}

/** Why a run stops: a person asked (StopRun), or its trainer is shutting down (SIGTERM). */
export type StopReason = "request" | "shutdown";

/** What one attempt trains with: made at its start (after the resume), closed at its end. */
interface Attempt {
  readonly trainer: Pretrainer;
  readonly bank: BankLink;
  readonly evaluator: EpochEvaluator | undefined;
  readonly data: EpochData;
  readonly progress: RunProgress;
  /** The init_memory steps of this run (0 for MoCo). */
  readonly initSteps: number;
  readonly interval: StepInterval;
}

export class TrainingRun {
  /** Last trained step, epoch in progress, steps of the whole run, and the newest checkpoint. */
  step = 0;
  epoch = 0;
  totalSteps = 0;
  latest: CheckpointRef | undefined;
  readonly lifecycle: RunLifecycle;
  private readonly stop = new AbortController();
  private stopReason: StopReason = "request";
  private readonly checkpointRequests = new CheckpointRequests();
  private readonly discovery: WorkerDiscovery;
  /** The data workers serving the run now: a WorkerEvent is sent when this set changes. */
  private readonly workers = new Set<string>();
  private readonly ownership: RunOwnership;
  /** The step a person chose to resume from, until the first attempt has resumed there. */
  private chosenStep: number | undefined;
  /** Whether the run has been trained before (by an earlier process, or an earlier attempt here). */
  private trainedBefore: boolean;
  /** Resolves when the run has ended (any final state) and its last writes are done. */
  readonly done: Promise<void>;
  /** Whether `done` has resolved: a run can be STOPPED in memory while its status is still being written. */
  settled = false;

  constructor(
    readonly runId: string,
    readonly resolved: ResolvedRun,
    readonly createdUnixMs: number,
    private readonly deps: RunDeps,
    start: RunStart,
  ) {
    this.chosenStep = start.step;
    this.trainedBefore = start.stored;
    this.ownership = start.ownership;
    this.lifecycle = new RunLifecycle(
      runId,
      { bucket: deps.statusBucket, config: resolved.config, createdUnixMs },
      { ...deps, signal: this.stop.signal, owned: () => this.ownership.check() },
    );
    this.discovery = new WorkerDiscovery(deps.dataWorkers, deps.log);
    this.done = this.main().finally(() => {
      this.settled = true;
    });
  }

  get config(): RunConfig {
    return this.resolved.config;
  }

  get state(): RunState {
    return this.lifecycle.state;
  }

  get error(): string {
    return this.lifecycle.error;
  }

  get events(): readonly RunEvent[] {
    return this.lifecycle.events;
  }

  get active(): boolean {
    return this.lifecycle.active;
  }

  /** Why this process no longer holds the run (left at shutdown, taken over); undefined while it does. */
  get left(): string | undefined {
    return this.lifecycle.left;
  }

  info(): Run {
    return {
      runId: this.runId,
      config: this.config,
      state: this.state,
      step: this.step,
      epoch: this.epoch,
      totalSteps: this.totalSteps,
      latestCheckpoint: this.latest,
      createdUnixMs: this.createdUnixMs,
      error: this.error,
    };
  }

  subscribe(listener: (event: RunEvent) => void): () => void {
    return this.lifecycle.subscribe(listener);
  }

  /**
   * Stops the run at the next step boundary, after a checkpoint. A person's stop ("request") ends it
   * STOPPED; the trainer's own shutdown ("shutdown": SIGTERM on every Kubernetes rollout, drain and
   * eviction) leaves its stored status running, so the next trainer resumes it.
   */
  requestStop(reason: StopReason = "request"): void {
    if (!this.lifecycle.stopping()) return;
    this.stopReason = reason;
    this.stop.abort();
  }

  /** A checkpoint at the next step boundary. */
  checkpointNow(): Promise<CheckpointRef> {
    return this.checkpointRequests.next();
  }

  /**
   * Attempts until the run ends; a bank that lost the run is recreated from the latest checkpoint.
   * The lease is renewed meanwhile and let go at the end, unless another trainer has taken over.
   */
  private async main(): Promise<void> {
    // Taken over while training: the run stops at once, and no checkpoint is written on the way out.
    this.ownership.keepRenewed(() => this.stop.abort());
    try {
      await this.attempts();
    } finally {
      this.ownership.close();
      if (!this.ownership.lost) {
        await this.ownership.release().catch((e: unknown) => {
          this.deps.log.warn({ runId: this.runId, err: (e as Error).message }, "could not release the run");
        });
      }
    }
  }

  private async attempts(): Promise<void> {
    try {
      for (;;) {
        try {
          await this.attempt();
          return;
        } catch (e) {
          if (!(e instanceof BankLostError) || this.stop.signal.aborted) throw e;
          // The bank restarted and lost the run: both sides go back to the latest checkpoint.
          this.deps.log.warn(
            { runId: this.runId, err: e.message },
            "bank lost the run; resuming from checkpoint",
          );
          this.lifecycle.emit({
            state: { state: this.state, message: `bank lost the run (${e.message}); resuming` },
          });
        }
      }
    } catch (e) {
      this.checkpointRequests.failed(e as Error);
      if (e instanceof FencedError || this.ownership.lost) {
        const lost = this.ownership.lost ?? this.ownership.fenced((e as FencedError).message);
        this.lifecycle.takenOver(
          `another trainer has taken the run over at step ${this.step}: ${lost.message}`,
        );
        return;
      }
      // A stop cut a wait for the bank or the store short: the run stops without its last checkpoint.
      if (e instanceof RetryAbandonedError) await this.endStopped(this.step, e.message);
      else await this.lifecycle.fail(e as Error);
      if (isBackendBroken(e)) this.deps.onBackendBroken?.(e as Error);
    }
  }

  /** Object-store work of the run, waiting out an unreachable store as long as a bank call would. */
  private stored<T>(what: string, work: () => Promise<T>): Promise<T> {
    return storeRetrying(what, work, {
      timeoutMs: this.deps.retryTimeoutMs,
      signal: this.stop.signal,
      onOutage: (message) => this.lifecycle.outage(message),
      onRetry: (call, err) =>
        this.deps.log.warn({ runId: this.runId, what: call, err }, "object store call retried"),
    });
  }

  /** One pass from the latest checkpoint (or the start) to the end of the run or a stop. */
  private async attempt(): Promise<void> {
    const { pretrain, epochs } = this.resolved;
    const split = await this.openSplit();
    const recordCounts = split.shards.map((s) => s.records);
    this.totalSteps = epochs * Math.ceil(split.count / pretrain.batchSize);
    const init = initSteps(pretrain, this.totalSteps);

    const trainer = new Pretrainer(pretrain, { localNegatives: false });
    const evaluator = this.openEvaluator();
    const bank = this.openBank();
    try {
      const { progress, message } = await this.resume(trainer, bank, recordCounts);
      this.lifecycle.recall(progress.epochReports);
      this.trainedBefore = true;
      this.step = trainer.step;
      await this.lifecycle.enter(
        trainer.step < init ? RunState.RUN_STATE_INITIALIZING_BANK : RunState.RUN_STATE_RUNNING,
        message,
      );
      const data: EpochData = {
        runId: this.runId,
        dataset: this.config.dataset!,
        augment: this.resolved.augment,
        batchSize: pretrain.batchSize,
        recordCounts,
        discovery: this.discovery,
        log: this.deps.log,
        onWorker: (address, joined, reason) => this.workerChanged(address, joined, reason),
      };
      const attempt: Attempt = {
        trainer,
        bank,
        evaluator,
        data,
        progress,
        initSteps: init,
        interval: new StepInterval(),
      };
      await this.trainEpochs(attempt);
      await this.finish(attempt);
    } finally {
      evaluator?.close();
      bank.close();
      trainer.dispose();
    }
  }

  /** The manifest of the dataset's split. */
  private openSplit(): Promise<SplitManifest> {
    return this.stored("read the dataset manifest", () => readSplit(this.deps.store, this.config.dataset!));
  }

  private openEvaluator(): EpochEvaluator | undefined {
    if (!this.deps.evaluatorAddress) return undefined;
    return new EpochEvaluator(
      this.deps.evaluatorAddress,
      this.runId,
      this.config.dataset!,
      (result) => this.lifecycle.emit({ eval: result }),
      this.deps.log,
    );
  }

  private openBank(): BankLink {
    return new BankLink({
      address: this.deps.bankAddress,
      fence: this.ownership.fence,
      retryTimeoutMs: this.deps.retryTimeoutMs,
      signal: this.stop.signal,
      onRetry: (what, error) =>
        this.deps.log.warn({ runId: this.runId, what, err: error }, "bank call retried"),
    });
  }

  /** The run's bank (CreateBank of an existing run is a no-op; a resume then restores its snapshot). */
  private createBankRequest(): CreateBankRequest {
    const { pretrain, bucket } = this.resolved;
    return {
      runId: this.runId,
      kind: this.resolved.bankKind,
      size: pretrain.negatives,
      dim: pretrain.projectionDim,
      hyper: this.config.bank,
      seed: pretrain.seed + 1,
      peers: [...this.deps.bankPeers],
      snapshotPrefix: { bucket, key: runPrefix(this.runId), sizeBytes: 0, sha256: "" },
    };
  }

  /**
   * Encoders, optimizer, bank and progress from the newest checkpoint that verifies (or the chosen
   * one); without one, step 0 on a fresh bank. The message says where the run starts and what it
   * skipped.
   */
  private async resume(
    trainer: Pretrainer,
    bank: BankLink,
    recordCounts: readonly number[],
  ): Promise<{ progress: RunProgress; message: string }> {
    const chosen = this.chosenStep;
    await this.stored("check the run's owner", () => this.ownership.check());
    const { checkpoint, skipped, isHead } = await this.stored("find the checkpoint to resume from", () =>
      this.deps.checkpoints.resumePoint(this.runId, chosen),
    );
    for (const s of skipped) {
      this.deps.log.warn(
        { runId: this.runId, step: s.step, reason: s.reason },
        "checkpoint does not verify; resuming from an older one",
      );
    }
    // CreateBank of a run the bank already holds is a no-op: a resume restores over it, a fresh start resets it.
    const bankInfo = await bank.createBank(this.createBankRequest());
    if (!checkpoint) {
      const note = skipped.length > 0 ? ` (skipped ${describeSkipped(skipped)})` : "";
      const message = this.trainedBefore ? `restarted from step 0: the run has no checkpoint yet${note}` : "";
      if (bankInfo.step > 0) {
        // A trainer died before the run's first checkpoint; the bank still holds what it trained.
        this.deps.log.warn(
          { runId: this.runId, bankStep: bankInfo.step },
          "the bank holds an earlier attempt of the run with no checkpoint; resetting it",
        );
        await bank.deleteBank(this.runId);
        await bank.createBank(this.createBankRequest());
      }
      return { progress: RunProgress.start(recordCounts), message };
    }
    const state = checkpoint.bundle.meta;
    const read = async (path: string) => {
      const bytes = checkpoint.files.get(path);
      if (!bytes) throw new Error(`the checkpoint at step ${state.step} has no file ${path}`);
      return bytes;
    };
    await restorePretrainer(trainer, read, state.step);
    if (state.bankSnapshot) await bank.restore(this.runId, state.bankSnapshot);
    // An older checkpoint becomes the run's head, so a later resume starts from it too.
    if (!isHead)
      await this.stored("move latest.json", () =>
        this.deps.checkpoints.moveHead(this.runId, checkpoint.bundle),
      );
    this.chosenStep = undefined;
    this.latest = checkpointRef(checkpoint.bundle);
    this.deps.log.info(
      { runId: this.runId, step: state.step, epoch: state.epoch, chosen: chosen !== undefined },
      "resumed from checkpoint",
    );
    const note =
      chosen !== undefined ? "chosen" : skipped.length > 0 ? `skipped ${describeSkipped(skipped)}` : "";
    return {
      progress: RunProgress.resume(state, recordCounts),
      message: `resumed at step ${state.step}${note ? ` (${note})` : ""}`,
    };
  }

  /** The epochs left, each ended by its event, a checkpoint and a kNN score of it. */
  /** Each epoch's feeder reopens every worker's stream: only a change of the set is an event. */
  private workerChanged(address: string, joined: boolean, reason: string): void {
    if (joined === this.workers.has(address)) return;
    if (joined) this.workers.add(address);
    else this.workers.delete(address);
    this.lifecycle.emit({ worker: { address, joined, reason, workers: this.workers.size } });
  }

  private async trainEpochs(a: Attempt): Promise<void> {
    const signal = this.stop.signal;
    for (let epoch = a.progress.epoch; epoch < this.resolved.epochs; epoch++) {
      a.progress.enter(epoch);
      this.epoch = epoch;
      const cursor = a.progress.feederCursor();
      const { failed } = await trainEpoch(a.data, epoch, cursor, a.interval, signal, (batch) =>
        this.trainOn(a, batch),
      );
      // A stop after the epoch's last step still reports it: its checkpoint starts the next epoch.
      if (a.progress.complete || !signal.aborted) {
        const finished = a.progress.epochEvent();
        a.progress.reported(finished, this.lifecycle.emit({ epoch: finished }).unixMs);
        this.deps.log.info({ runId: this.runId, ...finished, failed }, "epoch done");
      }
      if (signal.aborted) return;
      // The epoch-end checkpoint records the complete cursor; a resume starts the next epoch.
      if (this.latest?.step !== a.trainer.step) await this.writeCheckpoint(a);
      if (this.latest) a.evaluator?.evaluate(this.latest);
    }
  }

  /** One training step on `batch`: the contrast by the bank, then the counters, its event, a checkpoint. */
  private async trainOn(a: Attempt, batch: TrainBatch): Promise<void> {
    const { trainer, progress } = a;
    const stepStarted = performance.now();
    const fill = trainer.step < a.initSteps;
    const lr = learningRate(this.resolved.pretrain, trainer.step, this.totalSteps);
    const id = { runId: this.runId, step: trainer.step + 1, fill };
    const views = batch.views.map((data, i) => pixelsToTensor(data, [batch.size, ...batch.shapes[i]!]));
    let bankStats: BankStats | undefined;
    let stats: RemoteStepStats;
    try {
      stats = await trainer.stepWith(views, lr, async (pairs, reduction) => {
        const answer = await bankContrast(a.bank, id, pairs, reduction);
        bankStats = answer.stats;
        return answer.outcome;
      });
    } finally {
      tf.dispose(views);
    }
    const filled = fill && trainer.step === a.initSteps;
    // The bank is full: the key encoder starts from the query encoder, as the official init_memory.
    if (filled) trainer.finishInit();
    const now = performance.now();
    const point = { step: trainer.step, loss: stats.loss, contrastAccuracy: stats.accuracy, lr };
    progress.record(batch, point, (now - stepStarted) / 1000);
    this.step = trainer.step;
    this.epoch = progress.epoch;
    this.lifecycle.emit({ step: this.stepEvent(a, batch.size, stats, bankStats, now) });
    if (filled) await this.lifecycle.enter(RunState.RUN_STATE_RUNNING, "bank filled");
    // A checkpoint that ends an epoch comes after its EpochEvent (trainEpochs writes it), else a
    // trainer killed in between leaves an epoch nobody reports: the resume starts the next one.
    if (progress.complete) return;
    if (trainer.step % this.resolved.checkpointEvery === 0 || this.checkpointRequests.waiting)
      await this.writeCheckpoint(a);
  }

  /** The StepEvent of the step just trained: rates over the interval since the previous one. */
  private stepEvent(
    a: Attempt,
    size: number,
    stats: RemoteStepStats,
    bank: BankStats | undefined,
    now: number,
  ): StepEvent {
    const { wallMs, waitMs } = a.interval.lap(now);
    const imagesPerSecond = (size * 1000) / wallMs;
    return {
      step: a.trainer.step,
      epoch: a.progress.epoch,
      loss: stats.loss,
      lr: stats.lr,
      imagesPerSecond,
      dataWaitFraction: Math.min(1, waitMs / wallMs),
      bankCallMs: stats.contrastMs,
      computeMs: stats.computeMs,
      bank,
      etaSeconds: ((this.totalSteps - a.trainer.step) * this.resolved.pretrain.batchSize) / imagesPerSecond,
    };
  }

  /** Bank snapshot, encoders and progress as the run's newest checkpoint; older ones beyond the kept are pruned. */
  private async writeCheckpoint(a: Attempt): Promise<CheckpointRef> {
    const snapshot = await a.bank.snapshot(this.runId, a.trainer.step);
    const files = await pretrainerFiles(a.trainer);
    const state = a.progress.checkpointState({
      runId: this.runId,
      step: a.trainer.step,
      totalSteps: this.totalSteps,
      config: RunConfig.toJSON(this.config),
      createdUnixMs: this.createdUnixMs,
      bankSnapshot: snapshot.manifest,
    });
    // Rewriting a half-written checkpoint is safe: its objects are put again, the pointer moves last.
    // A trainer taken over writes nothing (its Snapshot was refused, or a check here fails).
    const owned = () => this.ownership.check();
    const ref = await this.stored(`write the checkpoint at step ${state.step}`, async () => {
      await owned();
      return this.deps.checkpoints.write(state, files, owned);
    });
    this.latest = ref;
    this.lifecycle.emit({ checkpoint: { checkpoint: ref } });
    const pruned = await this.stored("prune old checkpoints", async () => {
      await owned();
      return this.deps.checkpoints.prune(this.runId, this.resolved.keepCheckpoints, ref.step);
    });
    this.deps.log.info({ runId: this.runId, step: ref.step, pruned }, "checkpoint written");
    this.checkpointRequests.written(ref);
    return ref;
  }

  /**
   * The end of a stopped run: STOPPED for a person's stop; for the trainer's shutdown, left running in
   * storage for the next trainer. `note` says what the stop cut short (then there may be no
   * checkpoint at `step`, and the message says where the run resumes).
   */
  private async endStopped(step: number, note?: string): Promise<void> {
    const resumes = this.latest ? `; the run resumes from step ${this.latest.step}` : "";
    const why = !note
      ? ""
      : this.latest?.step === step
        ? ` (${note})`
        : ` (no checkpoint: ${note}${resumes})`;
    if (this.stopReason === "shutdown") {
      this.lifecycle.leave(
        `the trainer is shutting down at step ${step}; the next trainer resumes the run${why}`,
      );
    } else {
      await this.lifecycle.enter(RunState.RUN_STATE_STOPPED, `stopped at step ${step}${why}`);
    }
  }

  /** STOPPED after a last checkpoint, or COMPLETED once the last epoch's kNN is in. */
  private async finish(a: Attempt): Promise<void> {
    const step = a.trainer.step;
    const lost = this.ownership.lost;
    if (lost) throw lost;
    if (this.stop.signal.aborted) {
      if (step > 0 && this.latest?.step !== step) await this.writeCheckpoint(a);
      await this.endStopped(step);
    } else {
      // The last epoch's accuracy belongs to the run: watchers stop at COMPLETED.
      await a.evaluator?.settled(this.stop.signal);
      await this.lifecycle.enter(RunState.RUN_STATE_COMPLETED, `${step} steps`);
    }
  }
}
