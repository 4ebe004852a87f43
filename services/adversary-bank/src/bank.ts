// One run's bank on this replica: the core's negatives (AdCo adversaries or the MoCo queue), the last
// applied step and its answer (so a retried step is replayed, never applied twice).
import { AdversaryNegatives, type Negatives, type NegativesState, QueueNegatives } from "@adco/core";
import { encodeTensor } from "@adco/proto";
import {
  BankUpdate,
  type CreateBankRequest,
  type BankInfo,
  Reduction,
  type StepRequest,
  type StepResponse,
} from "@adco/proto/adversary_bank";
import { BankKind, type BankHyperparameters } from "@adco/proto/common";
import { failedPrecondition } from "@adco/service-kit";
import * as tf from "@tensorflow/tfjs-core";
import { checkStep } from "./validate.js";

/** Everything a snapshot holds besides the creating request. */
export interface BankState {
  readonly step: number;
  readonly filledRows: number;
  readonly last: StepResponse | undefined;
  readonly negatives: NegativesState;
}

export class Bank {
  readonly negatives: Negatives;
  private step = 0;
  private filledRows = 0;
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
    const a = this.request;
    return (
      a.kind === other.kind &&
      a.size === other.size &&
      a.dim === other.dim &&
      a.seed === other.seed &&
      JSON.stringify(a.hyper) === JSON.stringify(other.hyper)
    );
  }

  info(): BankInfo {
    const r = this.request;
    return {
      runId: r.runId,
      kind: r.kind,
      size: r.size,
      dim: r.dim,
      hyper: r.hyper,
      step: this.step,
      filledRows: this.filledRows,
      shardCount: 1,
    };
  }

  get appliedStep(): number {
    return this.step;
  }

  snapshotState(): BankState {
    return {
      step: this.step,
      filledRows: this.filledRows,
      last: this.last,
      negatives: this.negatives.state(),
    };
  }

  restore(state: BankState): void {
    this.negatives.restore(state.negatives);
    this.step = state.step;
    this.filledRows = state.filledRows;
    this.last = state.last;
  }

  lastStats() {
    return this.last?.stats;
  }

  apply(request: StepRequest): StepResponse {
    if (this.last && request.step === this.step) return { ...this.last, replayed: true };
    if (request.step !== this.step + 1) {
      throw failedPrecondition(
        `step ${request.step} is out of order: the last applied step is ${this.step}, so send ${this.step + 1} (or ${this.step} to replay)`,
      );
    }
    const checked = checkStep(request, this.request.dim);
    const started = performance.now();
    let response!: StepResponse;
    tf.tidy(() => {
      const pairs = checked.pairs.map((p) => ({
        query: tf.tensor2d(p.queries.data, [checked.batch, this.request.dim]),
        key: tf.tensor2d(p.keys.data, [checked.batch, this.request.dim]),
      }));
      const reduction = request.reduction === Reduction.REDUCTION_SUM ? "sum" : "mean";
      const outcome = this.negatives.contrast(
        pairs,
        reduction,
        request.update === BankUpdate.BANK_UPDATE_TRAIN,
      );
      if (request.update === BankUpdate.BANK_UPDATE_FILL) {
        this.negatives.write(pairs[0]!.key, this.filledRows % this.negatives.size);
        this.filledRows = Math.min(this.negatives.size, this.filledRows + checked.batch);
      }
      const queryGrads = outcome.queryGrads.map((g) => encodeTensor(g.dataSync() as Float32Array, g.shape));
      response = {
        runId: request.runId,
        step: request.step,
        loss: outcome.loss,
        queryGrads,
        stats: {
          step: request.step,
          contrastAccuracy: outcome.accuracy,
          adversaryProbability: outcome.negativeProbability,
          meanAdversarySimilarity: outcome.similarity.meanNegative,
          maxAdversarySimilarity: outcome.similarity.maxNegative,
          meanRowNorm: outcome.similarity.meanNegativeNorm,
          meanPositiveSimilarity: outcome.similarity.meanPositive,
          filledRows: this.filledRows,
        },
        replayed: false,
        computeMs: 0,
      };
    });
    response.computeMs = performance.now() - started;
    this.step = request.step;
    this.last = response;
    return response;
  }

  dispose(): void {
    this.negatives.dispose();
  }
}

function coreHyper(h: BankHyperparameters) {
  return {
    temperature: h.temperature,
    memoryTemperature: h.memoryTemperature,
    memoryLr: h.memoryLr,
    memoryMomentum: h.memoryMomentum,
    memoryWeightDecay: h.memoryWeightDecay,
  };
}
