import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isRetryable, RpcError, status, statusOf, statusOfMessage } from "./errors.js";

const serviceError = (code: status, details: string) =>
  Object.assign(new Error(`${code} ${status[code]}: ${details}`), { code, details });

describe("isRetryable", () => {
  it("retries a peer that is down, slow or busy", () => {
    for (const code of [
      status.UNAVAILABLE,
      status.DEADLINE_EXCEEDED,
      status.ABORTED,
      status.CANCELLED,
      status.UNKNOWN,
    ])
      assert.equal(isRetryable(serviceError(code, "x")), true, status[code]);
    assert.equal(isRetryable(new RpcError(status.RESOURCE_EXHAUSTED, "busy")), true);
  });

  it("does not retry what the same request gets again", () => {
    for (const code of [
      status.INVALID_ARGUMENT,
      status.FAILED_PRECONDITION,
      status.ALREADY_EXISTS,
      status.DATA_LOSS,
      status.PERMISSION_DENIED,
      status.NOT_FOUND,
      status.UNIMPLEMENTED,
    ])
      assert.equal(isRetryable(serviceError(code, "x")), false, status[code]);
    // What CreateBank of K 2^24, D 4096 answered: an exception of the handler, sent as INTERNAL.
    assert.equal(
      isRetryable(serviceError(status.INTERNAL, "internal error: Invalid typed array length: 68719476736")),
      false,
    );
    assert.equal(
      isRetryable(serviceError(status.RESOURCE_EXHAUSTED, "Received message larger than max (5 vs 4)")),
      false,
    );
    assert.equal(isRetryable(new Error("no status")), false);
  });

  it("retries INTERNAL that is a broken transport", () => {
    assert.equal(
      isRetryable(serviceError(status.INTERNAL, "Received RST_STREAM with code 2 (Internal server error)")),
      true,
    );
  });
});

describe("statusOf, statusOfMessage", () => {
  it("reads the code of an error and of a grpc-js message", () => {
    assert.equal(statusOf(new RpcError(status.NOT_FOUND, "x")), status.NOT_FOUND);
    assert.equal(statusOf({ code: "ECONNREFUSED" }), undefined);
    assert.equal(
      statusOfMessage("3 INVALID_ARGUMENT: open.augment.output_size: must be in [1, 4096]"),
      status.INVALID_ARGUMENT,
    );
    assert.equal(statusOfMessage("14 UNAVAILABLE: No connection established"), status.UNAVAILABLE);
    assert.equal(statusOfMessage("stream ended"), undefined);
    assert.equal(statusOfMessage("3 UNAVAILABLE: mismatched"), undefined);
  });
});
