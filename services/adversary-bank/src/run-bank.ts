// A run's bank on this replica, whatever part of it the replica holds: the whole bank (`Bank`), the
// coordinator of a sharded bank (`ShardedBank`, shard 0, which the trainer named peers for), or one
// slice of a sharded bank that a coordinator created (`ShardReplica`). The handlers see only RunBank.
// The two kinds the trainer steps share SteppedBank: the order of steps, the replay of a retried one
// and init_memory's count of filled adversaries.
import type { ContrastOutcome, ContrastPair, PairReduction } from "@adco/core";
import { encodeTensor } from "@adco/proto";
import {
  type ApplyShardRequest,
  type ApplyShardResponse,
  type BankInfo,
  BankStats,
  BankUpdate,
  type CreateBankRequest,
  type PartialLogSumExpRequest,
  type PartialLogSumExpResponse,
  Reduction,
  type StepRequest,
  type StepResponse,
} from "@adco/proto/adversary_bank";
import type { BankHyperparameters, ObjectRef } from "@adco/proto/common";
import { failedPrecondition } from "@adco/service-kit";
import type { ObjectStore } from "@adco/storage";
import * as tf from "@tensorflow/tfjs-core";
import type { Snapshot } from "./snapshot.js";
import { type CheckedStep, checkStep } from "./validate.js";

export interface RunBank {
  /** The CreateBank that made it (a shard's: the coordinator's, with its slice). */
  readonly request: CreateBankRequest;
  readonly appliedStep: number;
  /** Same configuration (a retried CreateBank), ignoring fields that do not shape the bank. */
  sameAs(other: CreateBankRequest): boolean;
  info(): BankInfo;
  stats(): BankStats;
  /** One step of the trainer's (a retry of the last one is replayed). A shard refuses: steps go to shard 0. */
  apply(request: StepRequest): Promise<StepResponse>;
  /** Round 1 of a sharded step; only a shard serves it. */
  partialLogSumExp(request: PartialLogSumExpRequest): PartialLogSumExpResponse;
  /** Round 2 of a sharded step; only a shard serves it. */
  applyShard(request: ApplyShardRequest): ApplyShardResponse;
  /** Writes a snapshot at the applied step under the request's snapshot prefix. */
  snapshot(store: ObjectStore): Promise<ObjectRef>;
  /** Takes the state of a snapshot of a bank made by the same request. */
  restore(snapshot: Snapshot, store: ObjectStore): Promise<void>;
  /** Drops what the bank holds on other replicas (a coordinator: its peers' shards, best effort). */
  deletePeers(): Promise<void>;
  /** Frees the tensors it holds here. */
  dispose(): void;
}

/** What a step log holds: the last applied step, its answer and the adversaries filled so far. */
export interface StepLog {
  readonly step: number;
  readonly filledAdversaries: number;
  readonly last: StepResponse | undefined;
}

/**
 * A bank the trainer steps: a whole bank or a sharded bank's coordinator. A step runs once, in
 * order; the same step again is a retry, answered from the last answer.
 */
export abstract class SteppedBank implements RunBank {
  protected step = 0;
  protected filledAdversaries = 0;
  protected last: StepResponse | undefined;

  constructor(
    readonly request: CreateBankRequest,
    private readonly shardCount: number,
  ) {}

  /** The step's contrast over the bank; `fillAt`: init_memory, write the first pair's keys there. */
  protected abstract contrast(
    pairs: readonly ContrastPair[],
    request: StepRequest,
    fillAt: number | undefined,
  ): Promise<ContrastOutcome>;

  abstract snapshot(store: ObjectStore): Promise<ObjectRef>;
  abstract restore(snapshot: Snapshot, store: ObjectStore): Promise<void>;
  abstract deletePeers(): Promise<void>;
  abstract dispose(): void;

  get appliedStep(): number {
    return this.step;
  }

  sameAs(other: CreateBankRequest): boolean {
    return sameBank(this.request, other);
  }

  info(): BankInfo {
    return bankInfo(this.request, this.step, this.filledAdversaries, this.shardCount);
  }

  stats(): BankStats {
    return this.last?.stats ?? BankStats.fromPartial({ filledAdversaries: this.filledAdversaries });
  }

  partialLogSumExp(): never {
    throw notSharded(this.request);
  }

  applyShard(): never {
    throw notSharded(this.request);
  }

  async apply(request: StepRequest): Promise<StepResponse> {
    const replay = replayOrCheckOrder(request, this.step, this.last);
    if (replay) return replay;
    const checked = checkStep(request, this.request.dim);
    const started = performance.now();
    const size = Number(this.request.size);
    const fill = request.update === BankUpdate.BANK_UPDATE_FILL;
    const pairs = pairTensors(checked, this.request.dim);
    try {
      const outcome = await this.contrast(pairs, request, fill ? this.filledAdversaries % size : undefined);
      if (fill) this.filledAdversaries = Math.min(size, this.filledAdversaries + checked.batch);
      const response = stepAnswer(request, outcome, this.filledAdversaries);
      tf.dispose(outcome.queryGrads);
      response.computeMs = performance.now() - started;
      this.step = request.step;
      this.last = response;
      return response;
    } finally {
      tf.dispose(pairs.flatMap((p) => [p.query, p.key]));
    }
  }

  protected stepLog(): StepLog {
    return { step: this.step, filledAdversaries: this.filledAdversaries, last: this.last };
  }

  protected restoreStepLog(log: StepLog): void {
    this.step = log.step;
    this.filledAdversaries = log.filledAdversaries;
    this.last = log.last;
  }
}

/** The answer of a whole bank or a coordinator to a shard round. */
export const notSharded = (request: CreateBankRequest) =>
  failedPrecondition(`run ${JSON.stringify(request.runId)} is not sharded on this replica`);

/** What a bank (whole, coordinator or shard) is, for CreateBank and Restore answers. */
export function bankInfo(
  request: CreateBankRequest,
  step: number,
  filledAdversaries: number,
  shardCount: number,
): BankInfo {
  const { runId, kind, size, dim, hyper } = request;
  return { runId, kind, size, dim, hyper, step, filledAdversaries, shardCount };
}

/** Same bank configuration, ignoring fields that do not shape the bank (the snapshot prefix). */
export function sameBank(a: CreateBankRequest, b: CreateBankRequest): boolean {
  return (
    a.kind === b.kind &&
    a.size === b.size &&
    a.dim === b.dim &&
    a.seed === b.seed &&
    JSON.stringify(a.hyper) === JSON.stringify(b.hyper) &&
    JSON.stringify(a.peers) === JSON.stringify(b.peers) &&
    JSON.stringify(a.shard) === JSON.stringify(b.shard)
  );
}

/**
 * A step's order against the last applied one: the same id again is a retry, answered from the
 * cache; anything but the next id is FAILED_PRECONDITION. Undefined means: compute the step.
 */
export function replayOrCheckOrder(
  request: StepRequest,
  applied: number,
  last: StepResponse | undefined,
): StepResponse | undefined {
  if (last && request.step === applied) return { ...last, replayed: true };
  if (request.step !== applied + 1) {
    throw failedPrecondition(
      `step ${request.step} is out of order: the last applied step is ${applied}, so send ${applied + 1} (or ${applied} to replay)`,
    );
  }
  return undefined;
}

export const reductionOf = (request: StepRequest): PairReduction =>
  request.reduction === Reduction.REDUCTION_SUM ? "sum" : "mean";

/** The checked pairs as tensors (the caller disposes them). */
export function pairTensors(checked: CheckedStep, dim: number): ContrastPair[] {
  return checked.pairs.map((p) => ({
    query: tf.tensor2d(p.queries.data, [checked.batch, dim]),
    key: tf.tensor2d(p.keys.data, [checked.batch, dim]),
  }));
}

/** The answer to a step from the negatives' outcome (computeMs is filled in by the caller). */
export function stepAnswer(
  request: StepRequest,
  outcome: ContrastOutcome,
  filledAdversaries: number,
): StepResponse {
  return {
    runId: request.runId,
    step: request.step,
    loss: outcome.loss,
    queryGrads: outcome.queryGrads.map((g) => encodeTensor(g.dataSync() as Float32Array, g.shape)),
    stats: {
      step: request.step,
      contrastAccuracy: outcome.accuracy,
      adversaryProbability: outcome.adversaryProbability,
      meanAdversarySimilarity: outcome.similarity.meanAdversary,
      maxAdversarySimilarity: outcome.similarity.maxAdversary,
      meanAdversaryNorm: outcome.similarity.meanAdversaryNorm,
      meanPositiveSimilarity: outcome.similarity.meanPositive,
      filledAdversaries,
    },
    replayed: false,
    computeMs: 0,
  };
}

export function coreHyper(h: BankHyperparameters) {
  return {
    temperature: h.temperature,
    memoryTemperature: h.memoryTemperature,
    memoryLr: h.memoryLr,
    memoryMomentum: h.memoryMomentum,
    memoryWeightDecay: h.memoryWeightDecay,
  };
}
