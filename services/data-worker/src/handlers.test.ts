import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { status } from "@grpc/grpc-js";
import { Pipeline, ViewsRequest } from "@adco/proto/data_worker";
import { RpcError } from "@adco/service-kit";
import { checkOpenStream } from "./handlers.js";

const open = (patch: Record<string, unknown> = {}) =>
  ViewsRequest.fromPartial({
    open: {
      consumerId: "run-1",
      dataset: { bucket: "adco-datasets", name: "fashion-mnist/train" },
      augment: { pipeline: Pipeline.PIPELINE_TWO_VIEW_GRAY_SMALL, outputSize: 28, seed: 1 },
      batchSize: 256,
      ...patch,
    },
  });

const invalid = (pattern: RegExp) => (e: unknown) =>
  e instanceof RpcError && e.code === status.INVALID_ARGUMENT && pattern.test(e.message);

describe("checkOpenStream", () => {
  it("accepts a complete open message", () => {
    assert.equal(checkOpenStream(open()).batchSize, 256);
  });

  it("requires `open` first", () => {
    assert.throws(
      () => checkOpenStream(ViewsRequest.fromPartial({ credit: { batches: 1 } })),
      invalid(/must be `open`/),
    );
    assert.throws(() => checkOpenStream(undefined), invalid(/must be `open`/));
  });

  it("names each bad field", () => {
    assert.throws(() => checkOpenStream(open({ consumerId: "" })), invalid(/open\.consumer_id/));
    assert.throws(
      () => checkOpenStream(open({ dataset: { bucket: "", name: "x" } })),
      invalid(/open\.dataset\.bucket/),
    );
    assert.throws(
      () => checkOpenStream(open({ augment: { pipeline: 0, outputSize: 28 } })),
      invalid(/open\.augment\.pipeline/),
    );
    assert.throws(
      () => checkOpenStream(open({ batchSize: 0 })),
      invalid(/open\.batch_size: 0 is outside \[1, 4096\]/),
    );
    assert.throws(
      () => checkOpenStream(open({ augment: { pipeline: Pipeline.PIPELINE_TWO_VIEW, outputSize: 0 } })),
      invalid(/open\.augment\.output_size/),
    );
  });

  it("checks multi-crop entries", () => {
    const crop = { size: 96, minScale: 0.05, maxScale: 0.14, count: 6 };
    const ok = open({ augment: { pipeline: Pipeline.PIPELINE_MULTI_CROP, crops: [crop] } });
    assert.equal(checkOpenStream(ok).augment?.crops.length, 1);
    const inverted = open({
      augment: { pipeline: Pipeline.PIPELINE_MULTI_CROP, crops: [{ ...crop, maxScale: 0.01 }] },
    });
    assert.throws(() => checkOpenStream(inverted), invalid(/crops\[0\]\.max_scale/));
    const none = open({ augment: { pipeline: Pipeline.PIPELINE_MULTI_CROP, crops: [] } });
    assert.throws(() => checkOpenStream(none), invalid(/at least one crop/));
  });
});
