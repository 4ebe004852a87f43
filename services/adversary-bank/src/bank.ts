// One run's bank on this replica: the core's negatives (AdCo adversaries or the MoCo queue), the last
// applied step and its answer (so a retried step is replayed, never applied twice).
import {
  AdversaryNegatives,
  type ContrastOutcome,
  type ContrastPair,
  type Negatives,
  type NegativesState,
  type PairReduction,
  QueueNegatives,
} from "@adco/core";
import { encodeTensor } from "@adco/proto";
import {
  BankStats,
  BankUpdate,
  type CreateBankRequest,
  type BankInfo,
  Reduction,
  type StepRequest,
  type StepResponse,
} from "@adco/proto/adversary_bank";
import { BankKind, type BankHyperparameters } from "@adco/proto/common";
import { failedPrecondition, requirePresent } from "@adco/service-kit";
import type { ObjectStore } from "@adco/storage";
import * as tf from "@tensorflow/tfjs-core";
import type { RunBank } from "./run-bank.js";
import { type Snapshot, writeSnapshot } from "./snapshot.js";
import { type CheckedStep, checkStep } from "./validate.js";

/** Everything a snapshot holds besides the creating request. */
export interface BankState {
  readonly step: number;
  readonly filledAdversaries: number;
  readonly last: StepResponse | undefined;
  readonly negatives: NegativesState;
}

/** A whole bank on this replica. */
export class Bank implements RunBank {
  readonly negatives: Negatives;
  private step = 0;
  private filledAdversaries = 0;
  private last: StepResponse | undefined;

  constructor(readonly request: CreateBankRequest) {
    const hyper = request.hyper!;
    const size = Number(request.size);
    const seed = Number(request.seed) >>> 0;
    this.negatives =
      request.kind === BankKind.BANK_KIND_QUEUE
        ? new QueueNegatives(request.dim, size, hyper.temperature, seed)
        : new AdversaryNegatives(request.dim, size, coreHyper(hyper), seed);
  }

  /** Same configuration (a retried CreateBank), ignoring fields that do not shape the bank. */
  sameAs(other: CreateBankRequest): boolean {
    return sameBank(this.request, other);
  }

  info(): BankInfo {
    return bankInfo(this.request, this.step, this.filledAdversaries, 1);
  }

  get appliedStep(): number {
    return this.step;
  }

  snapshotState(): BankState {
    return {
      step: this.step,
      filledAdversaries: this.filledAdversaries,
      last: this.last,
      negatives: this.negatives.state(),
    };
  }

  async restore(snapshot: Snapshot): Promise<void> {
    this.negatives.restore(requirePresent(snapshot.state.negatives, "snapshot weights"));
    this.step = snapshot.state.step;
    this.filledAdversaries = snapshot.state.filledAdversaries;
    this.last = snapshot.state.last;
  }

  snapshot(store: ObjectStore) {
    return writeSnapshot(store, this);
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

  async deletePeers(): Promise<void> {}

  dispose(): void {
    this.negatives.dispose();
  }

  async apply(request: StepRequest): Promise<StepResponse> {
    const replay = replayOrCheckOrder(request, this.step, this.last);
    if (replay) return replay;
    const checked = checkStep(request, this.request.dim);
    const started = performance.now();
    let response!: StepResponse;
    tf.tidy(() => {
      const pairs = pairTensors(checked, this.request.dim);
      const outcome = this.negatives.contrast(
        pairs,
        reductionOf(request),
        request.update === BankUpdate.BANK_UPDATE_TRAIN,
      );
      if (request.update === BankUpdate.BANK_UPDATE_FILL) {
        this.negatives.write(pairs[0]!.key, this.filledAdversaries % this.negatives.size);
        this.filledAdversaries = Math.min(this.negatives.size, this.filledAdversaries + checked.batch);
      }
      response = stepAnswer(request, outcome, this.filledAdversaries);
    });
    response.computeMs = performance.now() - started;
    this.step = request.step;
    this.last = response;
    return response;
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

/** The checked pairs as tensors (inside the caller's tidy, or disposed by it). */
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
