// One epoch of training data: a ViewFeeder leases the samples of the epoch not yet trained on to the
// data workers (WorkerDiscovery finds them), a Batcher cuts their batches of any size into training
// batches of exactly batchSize, and each goes to `step` in turn. The epoch's last, smaller batch trains
// too, unless it is a single sample (BatchNorm needs two). A stop ends the epoch at a step boundary.
import { EpochCursor, ViewFeeder } from "@adco/dataplane";
import type { DatasetRef } from "@adco/proto/common";
import type { AugmentSpec } from "@adco/proto/data_worker";
import { isRetryable, type Logger, RpcError, statusOfMessage } from "@adco/service-kit";
import { Batcher, type TrainBatch } from "./batcher.js";
import type { WorkerDiscovery } from "./worker-discovery.js";
import { WorkerRetry } from "./worker-retry.js";

/** Largest batch asked of a data worker; the Batcher joins them into training batches. */
const WORKER_BATCH = 256;

/** What every epoch of a run reads. */
export interface EpochData {
  readonly runId: string;
  readonly dataset: DatasetRef;
  readonly augment: AugmentSpec;
  readonly batchSize: number;
  /** Records of each shard of the split. */
  readonly recordCounts: readonly number[];
  readonly discovery: WorkerDiscovery;
  readonly log: Logger;
  /** Each stream of a data worker that opened (joined) or ended before the epoch did (lost). */
  readonly onWorker?: (address: string, joined: boolean, reason: string) => void;
}

/**
 * The wall time between StepEvents and how much of it went waiting for data. One per attempt, so
 * the first step of an epoch counts the end of the one before (its checkpoint) too.
 */
export class StepInterval {
  private started = performance.now();
  private waitMs = 0;

  waited(ms: number): void {
    this.waitMs += ms;
  }

  /** The interval ending at `now`, and the next one starts. */
  lap(now: number): { wallMs: number; waitMs: number } {
    const interval = { wallMs: now - this.started, waitMs: this.waitMs };
    this.started = now;
    this.waitMs = 0;
    return interval;
  }
}

/** Trains on what is left of `epoch` (its `cursor` says what is done); resolves at its end or a stop. */
export async function trainEpoch(
  data: EpochData,
  epoch: number,
  cursor: EpochCursor,
  interval: StepInterval,
  signal: AbortSignal,
  step: (batch: TrainBatch) => Promise<void>,
): Promise<{ failed: number }> {
  const retry = new WorkerRetry();
  // A worker that refuses the run (INVALID_ARGUMENT, ...) refuses it again: the epoch fails with it.
  const refused = new AbortController();
  let refusal: Error | undefined;
  const feeder = openFeeder(data, epoch, cursor, retry, (error) => {
    refusal ??= error;
    refused.abort(error);
  });
  const batcher = new Batcher(data.batchSize);
  const connecting = data.discovery.keepConnected(feeder, retry);
  try {
    let waitStarted = performance.now();
    for await (const delivered of feeder.batches(AbortSignal.any([signal, refused.signal]))) {
      interval.waited(performance.now() - waitStarted);
      batcher.add(delivered.batch);
      for (let batch = batcher.take(); batch; batch = batcher.take()) {
        await step(batch);
        if (signal.aborted) break;
      }
      if (signal.aborted) break;
      waitStarted = performance.now();
    }
    if (refusal) throw refusal;
    if (!signal.aborted) await trainLast(data, batcher, step);
  } catch (e) {
    if (refusal) throw refusal;
    // A stop ends the feeder's wait for data by throwing the abort: that is the stop, not a failure.
    if (!signal.aborted) throw e;
  } finally {
    feeder.close();
    connecting.abort();
  }
  return { failed: feeder.failed };
}

function openFeeder(
  data: EpochData,
  epoch: number,
  cursor: EpochCursor,
  retry: WorkerRetry,
  refuse: (error: Error) => void,
): ViewFeeder {
  return new ViewFeeder({
    consumerId: `${data.runId}-trainer`,
    dataset: { bucket: data.dataset.bucket, name: data.dataset.name },
    augment: data.augment,
    batchSize: Math.min(data.batchSize, WORKER_BATCH),
    recordCounts: data.recordCounts,
    epoch,
    cursor,
    onEvent: (event) => {
      data.log.info({ runId: data.runId, ...event }, `data: ${event.kind}`);
      if (event.kind === "worker-joined") {
        retry.added(event.address);
        data.onWorker?.(event.address, true, "");
      }
      if (event.kind === "worker-lost") {
        data.onWorker?.(event.address, false, event.error);
        retry.lost(event.address);
        const refusal = workerRefusal(event.address, event.error);
        if (refusal) refuse(refusal);
      }
    },
  });
}

/**
 * The error of a worker stream that ended with a final status (isRetryable says no: the worker
 * refused the run's request, and every worker would), as that status; undefined for a lost worker.
 */
export function workerRefusal(address: string, error: string): RpcError | undefined {
  const code = statusOfMessage(error);
  if (code === undefined || isRetryable({ code, message: error })) return undefined;
  return new RpcError(code, `data worker ${address} refused the run: ${error.replace(/^\d+ [A-Z_]+: /, "")}`);
}

/** The samples left in the Batcher at the end of an epoch, as one smaller batch. */
async function trainLast(
  data: EpochData,
  batcher: Batcher,
  step: (batch: TrainBatch) => Promise<void>,
): Promise<void> {
  const last = batcher.take(true);
  if (last && last.size >= 2) await step(last);
  else if (last)
    data.log.warn(
      { runId: data.runId, samples: last.size },
      "a last batch of one sample is left out (BatchNorm needs two)",
    );
}
