// One training run: views from the data workers, encoders here, the contrast in the adversary bank,
// checkpoints in object storage. Per step:
//   views (ViewFeeder -> Batcher) -> keys f_k, queries f_q -> bank Step (loss, dLoss/dq; the bank
//   ascends) -> dLoss/dq pulled back through f_q -> SGD -> f_k follows f_q
// The first ceil(K / B) steps of an AdCo run fill the bank with keys (the official init_memory) while
// f_q trains against it. A lost bank (it restarted) or a restarted trainer resumes from the latest
// checkpoint, whose cursor says which samples of the epoch are already trained on.
import { lookup } from "node:dns/promises";
import {
  cosineLr,
  pixelsToTensor,
  Pretrainer,
  pretrainerFiles,
  restorePretrainer,
  type ContrastOutcome,
} from "@adco/core";
import { EpochCursor, ViewFeeder } from "@adco/dataplane";
import { decodeTensor, encodeTensor } from "@adco/proto";
import { BankUpdate, type BankStats, Reduction } from "@adco/proto/adversary_bank";
import { type CheckpointRef, DataType } from "@adco/proto/common";
import {
  type EpochEvent,
  RunConfig,
  type RunEvent,
  RunState,
  type Run,
  type StepEvent,
} from "@adco/proto/trainer";
import type { Logger } from "@adco/service-kit";
import { type ObjectStore, readManifest, runPrefix, runStatusKey, type SplitManifest } from "@adco/storage";
import * as tf from "@tensorflow/tfjs-core";
import { BankLink, BankLostError } from "./bank-link.js";
import { Batcher, type TrainBatch } from "./batcher.js";
import { EpochEvaluator } from "./epoch-eval.js";
import { WorkerRetry } from "./worker-retry.js";
import {
  checkpointRef,
  type CheckpointState,
  type CheckpointStore,
  type HistoryPoint,
} from "./checkpoints.js";
import type { ResolvedRun } from "./run-config.js";

export interface RunDeps {
  readonly store: ObjectStore;
  readonly checkpoints: CheckpointStore;
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
  readonly log: Logger;
}

const EVENTS_KEPT = 5000;
const HISTORY_POINTS = 4000;

/** Status of a run as stored beside its checkpoints, so a restarted trainer knows what was interrupted. */
export interface RunStatusRecord {
  readonly state: keyof typeof RunState;
  readonly error: string;
  readonly config: unknown;
  readonly createdUnixMs: number;
}

export class TrainingRun {
  state = RunState.RUN_STATE_STARTING;
  step = 0;
  epoch = 0;
  totalSteps = 0;
  latest: CheckpointRef | undefined;
  error = "";
  readonly events: RunEvent[] = [];
  private sequence = 0;
  private readonly listeners = new Set<(event: RunEvent) => void>();
  private readonly stop = new AbortController();
  private checkpointWaiters: { resolve: (ref: CheckpointRef) => void; reject: (e: Error) => void }[] = [];
  /** Resolves when the run has ended (any final state). */
  readonly done: Promise<void>;

  constructor(
    readonly runId: string,
    readonly resolved: ResolvedRun,
    readonly createdUnixMs: number,
    private readonly deps: RunDeps,
  ) {
    this.done = this.main();
  }

  get config(): RunConfig {
    return this.resolved.config;
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

  get active(): boolean {
    return ![RunState.RUN_STATE_STOPPED, RunState.RUN_STATE_COMPLETED, RunState.RUN_STATE_FAILED].includes(
      this.state,
    );
  }

  subscribe(listener: (event: RunEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(event: Omit<RunEvent, "runId" | "sequence" | "unixMs">): void {
    const full: RunEvent = { runId: this.runId, sequence: ++this.sequence, unixMs: Date.now(), ...event };
    this.events.push(full);
    if (this.events.length > EVENTS_KEPT) this.events.splice(0, this.events.length - EVENTS_KEPT);
    for (const listener of this.listeners) listener(full);
    this.deps.observe?.(full);
  }

  private async setState(state: RunState, message = ""): Promise<void> {
    this.state = state;
    this.emit({ state: { state, message } });
    this.deps.log.info({ runId: this.runId, state: RunState[state], message }, "run state");
    const record: RunStatusRecord = {
      state: RunState[state] as keyof typeof RunState,
      error: this.error,
      config: RunConfig.toJSON(this.config),
      createdUnixMs: this.createdUnixMs,
    };
    try {
      await this.deps.store.putJson(this.resolved.bucket, runStatusKey(this.runId), record);
    } catch (e) {
      this.deps.log.warn({ runId: this.runId, err: (e as Error).message }, "could not write the run status");
    }
  }

  requestStop(): void {
    if (!this.active) return;
    this.state = RunState.RUN_STATE_STOPPING;
    this.emit({ state: { state: this.state, message: "stop requested" } });
    this.stop.abort();
  }

  /** A checkpoint at the next step boundary. */
  checkpointNow(): Promise<CheckpointRef> {
    return new Promise((resolve, reject) => this.checkpointWaiters.push({ resolve, reject }));
  }

  private async main(): Promise<void> {
    try {
      for (;;) {
        try {
          await this.attempt();
          break;
        } catch (e) {
          if (!(e instanceof BankLostError) || this.stop.signal.aborted) throw e;
          // The bank restarted and lost the run: both sides go back to the latest checkpoint.
          this.deps.log.warn(
            { runId: this.runId, err: e.message },
            "bank lost the run; resuming from checkpoint",
          );
          this.emit({ state: { state: this.state, message: `bank lost the run (${e.message}); resuming` } });
        }
      }
    } catch (e) {
      this.error = (e as Error).message;
      this.deps.log.error({ runId: this.runId, err: this.error, stack: (e as Error).stack }, "run failed");
      for (const w of this.checkpointWaiters) w.reject(e as Error);
      this.checkpointWaiters = [];
      await this.setState(RunState.RUN_STATE_FAILED, this.error);
    }
  }

  /** One pass from the latest checkpoint (or the start) to the end of the run or a stop. */
  private async attempt(): Promise<void> {
    const { pretrain, epochs, bucket } = this.resolved;
    const dataset = this.config.dataset!;
    const [datasetName, splitName = "train"] = dataset.name.split(":");
    const manifest = await readManifest(this.deps.store, dataset.bucket, datasetName!);
    const split: SplitManifest | undefined = manifest.splits[splitName];
    if (!split) throw new Error(`dataset ${datasetName} has no split ${splitName}`);
    const recordCounts = split.shards.map((s) => s.records);
    const stepsPerEpoch = Math.ceil(split.count / pretrain.batchSize);
    this.totalSteps = epochs * stepsPerEpoch;
    const initSteps =
      pretrain.method === "adco"
        ? Math.min(this.totalSteps, Math.ceil(pretrain.negatives / pretrain.batchSize))
        : 0;

    const trainer = new Pretrainer(pretrain, { localNegatives: false });
    const epochEvaluator = this.deps.evaluatorAddress
      ? new EpochEvaluator(
          this.deps.evaluatorAddress,
          this.runId,
          dataset,
          (result) => this.emit({ eval: result }),
          this.deps.log,
        )
      : undefined;
    const bank = new BankLink({
      address: this.deps.bankAddress,
      retryTimeoutMs: this.deps.retryTimeoutMs,
      onRetry: (what, error) =>
        this.deps.log.warn({ runId: this.runId, what, err: error }, "bank call retried"),
    });
    try {
      await bank.createBank({
        runId: this.runId,
        kind: this.resolved.bankKind,
        size: pretrain.negatives,
        dim: pretrain.projectionDim,
        hyper: this.config.bank,
        seed: pretrain.seed + 1,
        peers: [...this.deps.bankPeers],
        snapshotPrefix: { bucket, key: runPrefix(this.runId), sizeBytes: 0, sha256: "" },
      });
      // Resume: encoders, optimizer, bank and cursor from the latest checkpoint.
      const checkpoint = await this.deps.checkpoints.latest(this.runId);
      let state: CheckpointState | undefined;
      if (checkpoint) {
        state = checkpoint.meta;
        await restorePretrainer(trainer, (path) => checkpoint.read(path), state.step);
        if (state.bankSnapshot) await bank.restore(this.runId, state.bankSnapshot);
        this.latest = checkpointRef(checkpoint);
        this.deps.log.info(
          { runId: this.runId, step: state.step, epoch: state.epoch },
          "resumed from checkpoint",
        );
      }
      this.step = trainer.step;
      let history: HistoryPoint[] = state ? [...state.history] : [];
      let trainSeconds = state?.trainSeconds ?? 0;
      let epoch = state?.epoch ?? 0;
      let cursor = state ? EpochCursor.deserialize(state.cursor) : new EpochCursor(0, recordCounts);
      let epochLossSum = state?.epochLossSum ?? 0;
      let epochSteps = state?.epochSteps ?? 0;
      let epochSamples = state?.epochSamples ?? 0;
      let epochStarted = performance.now();
      if (cursor.complete) {
        epoch++;
        cursor = new EpochCursor(epoch, recordCounts);
        epochLossSum = epochSteps = epochSamples = 0;
      }
      await this.setState(
        trainer.step < initSteps ? RunState.RUN_STATE_INITIALIZING_BANK : RunState.RUN_STATE_RUNNING,
        state ? `resumed at step ${state.step}` : "",
      );

      const writeCheckpoint = async (): Promise<CheckpointRef> => {
        const snapshot = await bank.snapshot(this.runId, trainer.step);
        const files = await pretrainerFiles(trainer);
        const ref = await this.deps.checkpoints.write(
          {
            runId: this.runId,
            step: trainer.step,
            epoch,
            cursor: cursor.serialize(),
            epochLossSum,
            epochSteps,
            epochSamples,
            totalSteps: this.totalSteps,
            config: RunConfig.toJSON(this.config),
            createdUnixMs: this.createdUnixMs,
            bankSnapshot: snapshot.manifest,
            history,
            trainSeconds,
          },
          files,
        );
        this.latest = ref;
        this.emit({ checkpoint: { checkpoint: ref } });
        const pruned = await this.deps.checkpoints.prune(this.runId, this.resolved.keepCheckpoints);
        this.deps.log.info({ runId: this.runId, step: ref.step, pruned }, "checkpoint written");
        for (const w of this.checkpointWaiters.splice(0)) w.resolve(ref);
        return ref;
      };

      // Interval statistics for StepEvents.
      let intervalStart = performance.now();
      let waitMs = 0;

      const trainOn = async (batch: TrainBatch): Promise<void> => {
        const stepStarted = performance.now();
        const views = batch.views.map((data, i) => pixelsToTensor(data, [batch.size, ...batch.shapes[i]!]));
        const stepId = trainer.step + 1;
        const init = trainer.step < initSteps;
        const lr = init
          ? pretrain.lr
          : cosineLr(pretrain, trainer.step - initSteps, Math.max(1, this.totalSteps - initSteps));
        let bankStats: BankStats | undefined;
        let stats;
        try {
          stats = await trainer.stepWith(views, lr, async (pairs, reduction): Promise<ContrastOutcome> => {
            const response = await bank.step({
              runId: this.runId,
              step: stepId,
              pairs: pairs.map((p) => ({
                queries: encodeTensor(p.query.dataSync() as Float32Array, p.query.shape),
                keys: encodeTensor(p.key.dataSync() as Float32Array, p.key.shape),
              })),
              reduction: reduction === "sum" ? Reduction.REDUCTION_SUM : Reduction.REDUCTION_MEAN,
              update: init ? BankUpdate.BANK_UPDATE_FILL : BankUpdate.BANK_UPDATE_TRAIN,
            });
            bankStats = response.stats;
            const queryGrads = response.queryGrads.map((g, i) => {
              const shape = pairs[i]!.query.shape;
              const decoded = decodeTensor(g, `query_grads[${i}]`, {
                dtype: DataType.DATA_TYPE_FLOAT32,
                shape,
              });
              return tf.tensor2d(decoded.data, shape);
            });
            return {
              loss: response.loss,
              queryGrads,
              accuracy: response.stats?.contrastAccuracy ?? 0,
              negativeProbability: response.stats?.adversaryProbability ?? 0,
              similarity: {
                meanNegative: response.stats?.meanAdversarySimilarity ?? 0,
                maxNegative: response.stats?.maxAdversarySimilarity ?? 0,
                meanPositive: response.stats?.meanPositiveSimilarity ?? 0,
                meanNegativeNorm: response.stats?.meanRowNorm ?? 0,
              },
            };
          });
        } finally {
          tf.dispose(views);
        }
        if (trainer.step === initSteps && init) trainer.finishInit();
        for (let i = 0; i < batch.size; i++) cursor.markDone(batch.shard[i]!, batch.record[i]!);
        epochLossSum += stats.loss;
        epochSteps++;
        epochSamples += batch.size;
        this.step = trainer.step;
        this.epoch = epoch;
        history.push({ step: trainer.step, loss: stats.loss, contrastAccuracy: stats.accuracy, lr });
        if (history.length > HISTORY_POINTS)
          history = history.filter((_, i) => i % 2 === 0 || i === history.length - 1);
        const now = performance.now();
        trainSeconds += (now - stepStarted) / 1000;
        const wall = now - intervalStart;
        const imagesPerSecond = (batch.size * 1000) / wall;
        const step: StepEvent = {
          step: trainer.step,
          epoch,
          loss: stats.loss,
          lr,
          imagesPerSecond,
          dataWaitFraction: Math.min(1, waitMs / wall),
          bankCallMs: stats.contrastMs,
          computeMs: stats.computeMs,
          bank: bankStats,
          etaSeconds: ((this.totalSteps - trainer.step) * pretrain.batchSize) / imagesPerSecond,
        };
        this.emit({ step });
        intervalStart = now;
        waitMs = 0;
        if (init && trainer.step === initSteps)
          await this.setState(RunState.RUN_STATE_RUNNING, "bank filled");
        if (trainer.step % this.resolved.checkpointEvery === 0 || this.checkpointWaiters.length > 0)
          await writeCheckpoint();
      };

      for (; epoch < epochs; epoch++) {
        if (cursor.epoch !== epoch) {
          cursor = new EpochCursor(epoch, recordCounts);
          epochLossSum = epochSteps = epochSamples = 0;
          epochStarted = performance.now();
        }
        this.epoch = epoch;
        const workerRetry = new WorkerRetry();
        const feeder = new ViewFeeder({
          consumerId: `${this.runId}-trainer`,
          dataset: { bucket: dataset.bucket, name: dataset.name },
          augment: this.resolved.augment,
          batchSize: Math.min(pretrain.batchSize, 256),
          recordCounts,
          epoch,
          cursor: EpochCursor.deserialize(cursor.serialize()),
          onEvent: (event) => {
            this.deps.log.info({ runId: this.runId, ...event }, `data: ${event.kind}`);
            if (event.kind === "worker-joined") workerRetry.added(event.address);
            if (event.kind === "worker-lost") workerRetry.lost(event.address);
          },
        });
        const batcher = new Batcher(pretrain.batchSize);
        const connecting = this.keepWorkersConnected(feeder, workerRetry);
        try {
          let waitStarted = performance.now();
          for await (const delivered of feeder.batches(this.stop.signal)) {
            waitMs += performance.now() - waitStarted;
            batcher.add(delivered.batch);
            for (let batch = batcher.take(); batch; batch = batcher.take()) {
              await trainOn(batch);
              if (this.stop.signal.aborted) break;
            }
            if (this.stop.signal.aborted) break;
            waitStarted = performance.now();
          }
          if (!this.stop.signal.aborted) {
            const last = batcher.take(true);
            if (last && last.size >= 2) await trainOn(last);
            else if (last)
              this.deps.log.warn(
                { runId: this.runId, samples: last.size },
                "a last batch of one sample is left out (BatchNorm needs two)",
              );
          }
        } catch (e) {
          if (!this.stop.signal.aborted) throw e;
        } finally {
          feeder.close();
          connecting.abort();
        }
        if (this.stop.signal.aborted) break;
        const finished: EpochEvent = {
          epoch,
          meanLoss: epochSteps > 0 ? epochLossSum / epochSteps : 0,
          samples: epochSamples,
          seconds: (performance.now() - epochStarted) / 1000,
        };
        this.emit({ epoch: finished });
        this.deps.log.info({ runId: this.runId, ...finished, failed: feeder.failed }, "epoch done");
        // The epoch-end checkpoint records the complete cursor; a resume starts the next epoch.
        if (this.latest?.step !== trainer.step) await writeCheckpoint();
        if (this.latest) epochEvaluator?.evaluate(this.latest);
        epochStarted = performance.now();
      }
      if (this.stop.signal.aborted) {
        if (trainer.step > 0 && this.latest?.step !== trainer.step) await writeCheckpoint();
        await this.setState(RunState.RUN_STATE_STOPPED, `stopped at step ${trainer.step}`);
      } else {
        // The last epoch's accuracy belongs to the run: watchers stop at COMPLETED.
        await epochEvaluator?.settled(this.stop.signal);
        await this.setState(RunState.RUN_STATE_COMPLETED, `${trainer.step} steps`);
      }
    } finally {
      epochEvaluator?.close();
      bank.close();
      trainer.dispose();
    }
  }

  /** Adds every data worker address to the feeder, and re-adds lost ones when `retry` says they are due. */
  private keepWorkersConnected(feeder: ViewFeeder, retry: WorkerRetry): AbortController {
    const control = new AbortController();
    const connect = async () => {
      while (!control.signal.aborted) {
        for (const address of await resolveAll(this.deps.dataWorkers, this.deps.log))
          if (retry.due(address)) feeder.addWorker(address);
        await new Promise((r) => setTimeout(r, 3000));
      }
    };
    void connect();
    return control;
  }
}

/** host:port entries, each name resolved to all its addresses (a headless Service lists every pod). */
async function resolveAll(entries: readonly string[], log: Logger): Promise<string[]> {
  const out: string[] = [];
  for (const entry of entries) {
    const at = entry.lastIndexOf(":");
    const host = entry.slice(0, at);
    const port = entry.slice(at + 1);
    try {
      const addresses = await lookup(host, { all: true });
      for (const a of addresses) out.push(a.family === 6 ? `[${a.address}]:${port}` : `${a.address}:${port}`);
    } catch (e) {
      log.warn({ entry, err: (e as Error).message }, "data worker address does not resolve");
    }
  }
  return [...new Set(out)];
}
