// One step's contrast, computed by the adversary bank: the step's (query, key) pairs encoded as a
// StepRequest, sent over the run's BankLink, and the answer decoded into the core's ContrastOutcome,
// so Pretrainer.stepWith sees the same contrast it would get from in-process negatives.
import type { ContrastOutcome, ContrastPair, PairReduction } from "@adco/core";
import { decodeTensor, encodeTensor } from "@adco/proto";
import {
  BankUpdate,
  type BankStats,
  Reduction,
  type StepRequest,
  type StepResponse,
} from "@adco/proto/adversary_bank";
import { DataType } from "@adco/proto/common";
import * as tf from "@tensorflow/tfjs-core";
import type { BankLink } from "./bank-link.js";

export interface BankStepId {
  readonly runId: string;
  /** The step being trained, 1-based (the bank answers a repeated id from its cache). */
  readonly step: number;
  /** An init_memory step: the keys fill the bank, the adversaries do not train. */
  readonly fill: boolean;
}

export interface BankAnswer {
  readonly outcome: ContrastOutcome;
  /** The bank's statistics after the step, for the StepEvent. */
  readonly stats: BankStats | undefined;
}

/** The step's pairs as a StepRequest; reads the tensors asynchronously (a GPU backend cannot read them synchronously). */
export async function encodeStepRequest(
  id: BankStepId,
  pairs: readonly ContrastPair[],
  reduction: PairReduction,
): Promise<StepRequest> {
  const values = await Promise.all(
    pairs.map(
      async (p) => [(await p.query.data()) as Float32Array, (await p.key.data()) as Float32Array] as const,
    ),
  );
  return {
    runId: id.runId,
    step: id.step,
    pairs: pairs.map((p, i) => ({
      queries: encodeTensor(values[i]![0], p.query.shape),
      keys: encodeTensor(values[i]![1], p.key.shape),
    })),
    reduction: reduction === "sum" ? Reduction.REDUCTION_SUM : Reduction.REDUCTION_MEAN,
    update: id.fill ? BankUpdate.BANK_UPDATE_FILL : BankUpdate.BANK_UPDATE_TRAIN,
  };
}

/** The answer as a ContrastOutcome: dLoss/dq of each pair as a tensor of its query's shape (the caller owns them). */
export function decodeStepResponse(response: StepResponse, pairs: readonly ContrastPair[]): ContrastOutcome {
  const queryGrads = response.queryGrads.map((g, i) => {
    const shape = pairs[i]!.query.shape;
    const decoded = decodeTensor(g, `query_grads[${i}]`, { dtype: DataType.DATA_TYPE_FLOAT32, shape });
    return tf.tensor2d(decoded.data, shape);
  });
  const stats = response.stats;
  return {
    loss: response.loss,
    queryGrads,
    accuracy: stats?.contrastAccuracy ?? 0,
    adversaryProbability: stats?.adversaryProbability ?? 0,
    similarity: {
      meanAdversary: stats?.meanAdversarySimilarity ?? 0,
      maxAdversary: stats?.maxAdversarySimilarity ?? 0,
      meanPositive: stats?.meanPositiveSimilarity ?? 0,
      meanAdversaryNorm: stats?.meanAdversaryNorm ?? 0,
    },
  };
}

/** Sends one step's pairs to the bank and decodes its answer. */
export async function bankContrast(
  bank: Pick<BankLink, "step">,
  id: BankStepId,
  pairs: readonly ContrastPair[],
  reduction: PairReduction,
): Promise<BankAnswer> {
  const response = await bank.step(await encodeStepRequest(id, pairs, reduction));
  return { outcome: decodeStepResponse(response, pairs), stats: response.stats };
}
