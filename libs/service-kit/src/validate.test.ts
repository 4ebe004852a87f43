import assert from "node:assert/strict";
import { describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { RpcError } from "./errors.js";
import { requireId } from "./validate.js";

const refused = (value: string) =>
  assert.throws(
    () => requireId(value, "run_id"),
    (e: unknown) =>
      e instanceof RpcError &&
      e.code === grpc.status.INVALID_ARGUMENT &&
      /^run_id: .* is not an id/.test(e.message),
    JSON.stringify(value),
  );

describe("requireId", () => {
  it("takes 1-128 characters of letters, digits, dot, underscore and dash", () => {
    for (const id of [
      "e2e",
      "run-2026-12-01-f7f27aa9",
      "a.b_c-d",
      ".hidden",
      "v1.",
      "..x",
      "x".repeat(128),
    ]) {
      assert.equal(requireId(id, "run_id"), id);
    }
  });

  it("refuses ids that would not be one path segment of their own: empty, too long, odd characters, dots alone", () => {
    for (const id of ["", "x".repeat(129), "bad id!", "a/b", "ü", ".", "..", "..."]) refused(id);
  });
});
