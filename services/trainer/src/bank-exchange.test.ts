import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { initBackend } from "@adco/core";
import { decodeTensor, encodeTensor } from "@adco/proto";
import { BankUpdate, Reduction, type StepRequest, StepResponse } from "@adco/proto/adversary_bank";
import { DataType } from "@adco/proto/common";
import * as tf from "@tensorflow/tfjs-core";
import { bankContrast, decodeStepResponse, encodeStepRequest } from "./bank-exchange.js";

before(async () => {
  await initBackend("cpu");
});

const pairOf = (offset: number) => ({
  query: tf.tensor2d([1 + offset, 2, 3, 4, 5, 6], [2, 3]),
  key: tf.tensor2d([6, 5, 4, 3, 2, 1 + offset], [2, 3]),
});
const STATS = {
  step: 7,
  contrastAccuracy: 0.75,
  adversaryProbability: 0.5,
  meanAdversarySimilarity: 0.125,
  maxAdversarySimilarity: 0.875,
  meanAdversaryNorm: 1.5,
  meanPositiveSimilarity: 0.625,
};
const f32 = (v: number[]) => new Float32Array(v);

describe("the bank exchange", () => {
  it("encodes each pair's queries and keys, the reduction and the update", async () => {
    const pairs = [pairOf(0), pairOf(10)];
    const request = await encodeStepRequest({ runId: "r", step: 3, fill: true }, pairs, "sum");
    assert.equal(request.runId, "r");
    assert.equal(request.step, 3);
    assert.equal(request.reduction, Reduction.REDUCTION_SUM);
    assert.equal(request.update, BankUpdate.BANK_UPDATE_FILL);
    const queries = decodeTensor(request.pairs[1]!.queries!, "q", { dtype: DataType.DATA_TYPE_FLOAT32 });
    assert.deepEqual(queries.shape, [2, 3]);
    assert.deepEqual(Array.from(queries.data), [11, 2, 3, 4, 5, 6]);
    const keys = decodeTensor(request.pairs[0]!.keys!, "k", { dtype: DataType.DATA_TYPE_FLOAT32 });
    assert.deepEqual(Array.from(keys.data), [6, 5, 4, 3, 2, 1]);
    const train = await encodeStepRequest({ runId: "r", step: 4, fill: false }, pairs, "mean");
    assert.equal(train.reduction, Reduction.REDUCTION_MEAN);
    assert.equal(train.update, BankUpdate.BANK_UPDATE_TRAIN);
    tf.dispose(pairs.flatMap((p) => [p.query, p.key]));
  });

  it("decodes the answer into a ContrastOutcome: dLoss/dq per pair and the bank's statistics", () => {
    const pairs = [pairOf(0)];
    const response = StepResponse.fromPartial({
      runId: "r",
      step: 3,
      loss: 2.5,
      queryGrads: [encodeTensor(f32([0.5, -1, 0, 2, 3, -4]), [2, 3])],
      stats: STATS,
    });
    const outcome = decodeStepResponse(response, pairs);
    assert.equal(outcome.loss, 2.5);
    assert.equal(outcome.accuracy, 0.75);
    assert.equal(outcome.adversaryProbability, 0.5);
    assert.deepEqual(outcome.similarity, {
      meanAdversary: 0.125,
      maxAdversary: 0.875,
      meanPositive: 0.625,
      meanAdversaryNorm: 1.5,
    });
    assert.deepEqual(outcome.queryGrads[0]!.shape, [2, 3]);
    assert.deepEqual(Array.from(outcome.queryGrads[0]!.dataSync()), [0.5, -1, 0, 2, 3, -4]);
    tf.dispose([...outcome.queryGrads, pairs[0]!.query, pairs[0]!.key]);
  });

  it("an answer without statistics reads as zeros; a gradient of the wrong shape is refused", () => {
    const pairs = [pairOf(0)];
    const bare = { runId: "r", step: 1, loss: 1, queryGrads: [] } as unknown as StepResponse;
    const outcome = decodeStepResponse(bare, pairs);
    assert.equal(outcome.accuracy, 0);
    assert.equal(outcome.similarity.meanAdversaryNorm, 0);
    const wrong = { ...bare, queryGrads: [encodeTensor(f32([1, 2, 3]), [1, 3])] } as StepResponse;
    assert.throws(() => decodeStepResponse(wrong, pairs), /query_grads\[0\]/);
    tf.dispose([pairs[0]!.query, pairs[0]!.key]);
  });

  it("bankContrast sends the encoded request and hands back the outcome and the raw statistics", async () => {
    const pairs = [pairOf(0)];
    const sent: StepRequest[] = [];
    const bank = {
      step: async (request: StepRequest) => {
        sent.push(request);
        return {
          runId: request.runId,
          step: request.step,
          loss: 1.25,
          queryGrads: [encodeTensor(f32([1, 1, 1, 1, 1, 1]), [2, 3])],
          stats: STATS,
        } as StepResponse;
      },
    };
    const answer = await bankContrast(bank, { runId: "r", step: 9, fill: false }, pairs, "mean");
    assert.equal(sent.length, 1);
    assert.equal(sent[0]!.step, 9);
    assert.equal(answer.outcome.loss, 1.25);
    assert.equal(answer.stats, STATS);
    tf.dispose([...answer.outcome.queryGrads, pairs[0]!.query, pairs[0]!.key]);
  });
});
