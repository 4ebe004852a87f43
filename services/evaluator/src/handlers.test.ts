import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { status } from "@grpc/grpc-js";
import { EncoderArch } from "@adco/proto/common";
import { EvaluateRequest } from "@adco/proto/evaluator";
import { RpcError } from "@adco/service-kit";
import { checkEvaluateRequest } from "./handlers.js";

const invalid = (pattern: RegExp) => (e: unknown) =>
  e instanceof RpcError && e.code === status.INVALID_ARGUMENT && pattern.test(e.message);
const request = (patch: Partial<EvaluateRequest> = {}) =>
  EvaluateRequest.fromPartial({
    randomInit: { encoder: EncoderArch.ENCODER_ARCH_RESNET_MINI, seed: 1 },
    train: { bucket: "adco-datasets", name: "fmnist/train" },
    test: { bucket: "adco-datasets", name: "fmnist/test" },
    knn: { enabled: true, k: 200, temperature: 0.1 },
    ...patch,
  });

describe("checkEvaluateRequest", () => {
  it("accepts a random-init kNN evaluation", () => {
    assert.equal(checkEvaluateRequest(request()).knn?.k, 200);
  });
  it("names the bad field", () => {
    assert.throws(
      () => checkEvaluateRequest(request({ randomInit: undefined })),
      invalid(/^encoder: set checkpoint/),
    );
    assert.throws(() => checkEvaluateRequest(request({ test: undefined })), invalid(/^test: is required/));
    assert.throws(
      () => checkEvaluateRequest(request({ knn: { enabled: false, k: 0, temperature: 0 } })),
      invalid(/enable at least one/),
    );
    assert.throws(
      () => checkEvaluateRequest(request({ knn: { enabled: true, k: 200, temperature: -1 } })),
      invalid(/knn\.temperature/),
    );
    assert.throws(
      () =>
        checkEvaluateRequest(
          request({ randomInit: { encoder: EncoderArch.ENCODER_ARCH_UNSPECIFIED, seed: 0 } }),
        ),
      invalid(/random_init\.encoder/),
    );
  });
});
