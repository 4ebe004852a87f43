import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { status } from "@grpc/grpc-js";
import { encodeTensor } from "@adco/proto";
import { BankUpdate, CreateBankRequest, Reduction, StepRequest } from "@adco/proto/adversary_bank";
import { BankKind } from "@adco/proto/common";
import { toRpcError } from "@adco/service-kit";
import { checkCreateBank, checkStep } from "./validate.js";

// What the client sees: the kit maps the thrown error to a status.
const invalid = (pattern: RegExp) => (e: unknown) =>
  toRpcError(e).code === status.INVALID_ARGUMENT && pattern.test(toRpcError(e).message);

const hyper = {
  temperature: 0.12,
  memoryTemperature: 0.02,
  memoryLr: 3,
  memoryMomentum: 0.9,
  memoryWeightDecay: 1e-4,
};
const create = (patch: Partial<CreateBankRequest> = {}) =>
  CreateBankRequest.fromPartial({
    runId: "r1",
    kind: BankKind.BANK_KIND_ADVERSARIAL,
    size: 65536,
    dim: 128,
    hyper,
    ...patch,
  });

const features = (b: number, d: number, fill = 0.1) =>
  encodeTensor(new Float32Array(b * d).fill(fill), [b, d]);
const step = (
  pairs: { queries: ReturnType<typeof features>; keys: ReturnType<typeof features> }[],
  patch = {},
) => StepRequest.fromPartial({ runId: "r1", step: 1, pairs, update: BankUpdate.BANK_UPDATE_TRAIN, ...patch });

describe("checkCreateBank", () => {
  it("accepts the paper's configuration", () => {
    assert.equal(checkCreateBank(create()).size, 65536);
  });
  it("rejects bad sizes, kinds, hyperparameters and peers, naming the field", () => {
    assert.throws(() => checkCreateBank(create({ size: 0 })), invalid(/^size/));
    assert.throws(
      () => checkCreateBank(create({ kind: BankKind.BANK_KIND_UNSPECIFIED })),
      invalid(/^kind: must be one of/),
    );
    assert.throws(
      () => checkCreateBank(create({ hyper: { ...hyper, memoryTemperature: -1 } })),
      invalid(/memory_temperature/),
    );
    assert.throws(
      () => checkCreateBank(create({ hyper: { ...hyper, memoryMomentum: 1 } })),
      invalid(/memory_momentum/),
    );
    assert.throws(() => checkCreateBank(create({ hyper: undefined })), invalid(/hyper: is required/));
    assert.throws(() => checkCreateBank(create({ peers: ["bank-1"] })), invalid(/peers\[0\]/));
  });
});

describe("checkStep", () => {
  it("accepts pairs of equal B x D and returns the batch size", () => {
    const checked = checkStep(step([{ queries: features(4, 8), keys: features(4, 8) }]), 8);
    assert.equal(checked.batch, 4);
    assert.equal(checked.pairs[0]!.queries.data.length, 32);
  });
  it("rejects a feature dimension other than the bank's", () => {
    assert.throws(
      () => checkStep(step([{ queries: features(4, 16), keys: features(4, 16) }]), 8),
      invalid(/pairs\[0\]\.queries: shape \[4, 16\] does not match \[\*, 8\]/),
    );
  });
  it("rejects keys whose batch differs from the queries', and pairs of different batches", () => {
    assert.throws(
      () => checkStep(step([{ queries: features(4, 8), keys: features(3, 8) }]), 8),
      invalid(/pairs\[0\]\.keys/),
    );
    const two = [
      { queries: features(4, 8), keys: features(4, 8) },
      { queries: features(2, 8), keys: features(2, 8) },
    ];
    assert.throws(
      () => checkStep(step(two, { reduction: Reduction.REDUCTION_MEAN }), 8),
      invalid(/pairs\[1\]\.queries/),
    );
  });
  it("rejects NaN features, empty batches, no pairs, and an unset update or reduction", () => {
    assert.throws(
      () => checkStep(step([{ queries: features(2, 8, NaN), keys: features(2, 8) }]), 8),
      invalid(/NaN/),
    );
    assert.throws(
      () => checkStep(step([{ queries: features(0, 8), keys: features(0, 8) }]), 8),
      invalid(/empty/),
    );
    assert.throws(() => checkStep(step([]), 8), invalid(/at least one pair/));
    const pair = { queries: features(2, 8), keys: features(2, 8) };
    assert.throws(() => checkStep(step([pair], { update: 0 }), 8), invalid(/^update/));
    assert.throws(() => checkStep(step([pair, pair]), 8), invalid(/^reduction/));
  });
  it("rejects a dtype other than float32", () => {
    const pixels = encodeTensor(new Uint8Array(16), [2, 8]);
    assert.throws(
      () => checkStep(step([{ queries: pixels, keys: features(2, 8) }]), 8),
      invalid(/dtype is DATA_TYPE_UINT8/),
    );
  });
});
