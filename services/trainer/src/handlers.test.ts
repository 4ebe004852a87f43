import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { status } from "@grpc/grpc-js";
import { RunConfig } from "@adco/proto/trainer";
import { RpcError } from "@adco/service-kit";
import { checkRunConfig } from "./handlers.js";

const invalid = (pattern: RegExp) => (e: unknown) =>
  e instanceof RpcError && e.code === status.INVALID_ARGUMENT && pattern.test(e.message);
const config = (patch: Partial<RunConfig> = {}) =>
  RunConfig.fromPartial({
    preset: "fashion-mnist",
    dataset: { bucket: "adco-datasets", name: "fmnist" },
    ...patch,
  });

describe("checkRunConfig", () => {
  it("accepts a preset with a dataset and leaves unset overrides unset", () => {
    const c = checkRunConfig(config());
    assert.equal(c.lr, undefined);
    assert.equal(c.epochs, undefined);
  });
  it("names the bad field", () => {
    assert.throws(() => checkRunConfig(undefined), invalid(/^config: is required/));
    assert.throws(
      () => checkRunConfig(config({ dataset: undefined })),
      invalid(/config\.dataset: is required/),
    );
    assert.throws(() => checkRunConfig(config({ epochs: 0 })), invalid(/config\.epochs/));
    assert.throws(() => checkRunConfig(config({ batchSize: 1 })), invalid(/config\.batch_size/));
    assert.throws(() => checkRunConfig(config({ lr: 0 })), invalid(/config\.lr: 0 is outside \(0/));
    assert.throws(
      () => checkRunConfig(config({ backend: "gpu" })),
      invalid(/config\.backend: must be one of/),
    );
  });
  it("takes an explicit zero where zero is meaningful", () => {
    assert.equal(checkRunConfig(config({ weightDecay: 0, finalLr: 0 })).weightDecay, 0);
  });
});
