import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { status } from "@grpc/grpc-js";
import { encodeTensor } from "@adco/proto";
import { BankUpdate, CreateBankRequest, Reduction, StepRequest } from "@adco/proto/adversary_bank";
import { BankKind } from "@adco/proto/common";
import { toRpcError } from "@adco/service-kit";
import { WASM_MEMORY_BYTES } from "@adco/core";
import { checkBankMemory, checkCreateBank, checkStep } from "./validate.js";

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

describe("checkBankMemory", () => {
  it("refuses a bank a wasm replica cannot hold, naming the size, before any tensor is made", () => {
    // K 2^24 x D 4096: ~768 GiB, which ended in INTERNAL "Invalid typed array length" before.
    assert.throws(
      () => checkBankMemory(create({ size: 2 ** 24, dim: 4096 }), WASM_MEMORY_BYTES),
      invalid(
        /^size: 16777216 adversaries x D 4096 on this replica need ~768\.0 GiB .* over the backend's 4\.0 GiB/,
      ),
    );
    checkBankMemory(create({ size: 2 ** 24, dim: 4096 }), Infinity);
    checkBankMemory(create(), WASM_MEMORY_BYTES);
  });

  it("counts only this replica's share: a coordinator's K/S, a shard's slice", () => {
    const big = { size: 2 ** 22, dim: 128 }; // 6 GiB whole
    assert.throws(() => checkBankMemory(create(big), WASM_MEMORY_BYTES), invalid(/^size: /));
    checkBankMemory(create({ ...big, peers: ["b:1"] }), WASM_MEMORY_BYTES);
    const shard = { index: 1, count: 2, adversaryOffset: 2 ** 21, adversaries: 2 ** 21 };
    checkBankMemory(create({ ...big, shard }), WASM_MEMORY_BYTES);
  });

  it("refuses a step whose logits would not fit, naming the pairs and batch", () => {
    // K 65536: 0.1 GiB held, but 2 pairs of 8192 queries need 3 x 2 x 8192 x 65536 floats (12 GiB).
    checkBankMemory(create(), WASM_MEMORY_BYTES, 2, 256);
    assert.throws(
      () => checkBankMemory(create(), WASM_MEMORY_BYTES, 2, 8192),
      invalid(
        /^pairs: a step of 2 pair\(s\) of 8192 queries against 65536 adversaries x D 128 needs ~12\.1 GiB/,
      ),
    );
  });
});
