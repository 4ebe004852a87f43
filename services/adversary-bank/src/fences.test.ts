// The bank's fences: a call with a lower fence than the run has seen is ABORTED, a higher one raises
// it, a tie of tokens is broken by the owner's id, and a run once fenced refuses unfenced calls.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { status } from "@grpc/grpc-js";
import { RpcError } from "@adco/service-kit";
import { Fences } from "./fences.js";

const aborted = (pattern: RegExp) => (e: unknown) =>
  e instanceof RpcError && e.code === status.ABORTED && pattern.test(e.message);

describe("Fences", () => {
  it("admits the first fence and higher ones, and refuses lower ones as ABORTED", () => {
    const fences = new Fences();
    fences.admit("r", { token: 1, owner: "a" }, "CreateBank");
    fences.admit("r", { token: 1, owner: "a" }, "Step 1");
    fences.admit("r", { token: 2, owner: "b" }, "Restore");
    assert.throws(
      () => fences.admit("r", { token: 1, owner: "a" }, "Step 2"),
      aborted(
        /Step 2 of run r comes from a stale owner \(token 1 of "a"\): the run was taken over by token 2 of "b"/,
      ),
    );
  });

  it("orders equal tokens by owner, so exactly one of two racing trainers gets through", () => {
    const fences = new Fences();
    fences.admit("r", { token: 3, owner: "b" }, "CreateBank");
    assert.throws(() => fences.admit("r", { token: 3, owner: "a" }, "CreateBank"), aborted(/stale owner/));
    fences.admit("r", { token: 3, owner: "c" }, "CreateBank");
    assert.throws(() => fences.admit("r", { token: 3, owner: "b" }, "Step 1"), aborted(/stale owner/));
  });

  it("lets unfenced calls (tools) through until the run has seen a fence, and keeps runs apart", () => {
    const fences = new Fences();
    fences.admit("tool", undefined, "CreateBank");
    fences.admit("tool", { token: 0, owner: "" }, "Step 1");
    fences.admit("r", { token: 5, owner: "a" }, "CreateBank");
    assert.throws(
      () => fences.admit("r", undefined, "DeleteBank"),
      aborted(/has no fence, but the run is owned by token 5/),
    );
    fences.admit("other", { token: 1, owner: "z" }, "CreateBank");
  });
});
