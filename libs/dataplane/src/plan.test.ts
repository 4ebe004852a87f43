// Pins the epoch plans: the data order of a run is a function of (seed, epoch, shard sizes), so a
// resumed run (or one on another worker pool) must see exactly these leases.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { EpochCursor, permutation, planEpoch } from "./plan.js";

const leases = (seed: number, epoch: number, cursor?: EpochCursor) =>
  planEpoch([5, 3, 4], seed, epoch, 2, cursor).map((l) => [l.shard, ...l.records]);
const permutationHash = (p: number[]) => p.reduce((a, v, i) => (Math.imul(a, 31) + v * (i + 1)) >>> 0, 0);

describe("epoch plans (pinned)", () => {
  it("orders shards and records the same way for seeds 0, 1 and 42", () => {
    // prettier-ignore
    {
      assert.deepEqual(leases(0, 0), [[2, 1, 2], [2, 3, 0], [1, 2, 0], [1, 1], [0, 3, 2], [0, 1, 0], [0, 4]]);
      assert.deepEqual(leases(0, 1), [[2, 2, 1], [2, 3, 0], [1, 0, 2], [1, 1], [0, 3, 4], [0, 0, 2], [0, 1]]);
      assert.deepEqual(leases(1, 0), [[1, 0, 1], [1, 2], [2, 1, 3], [2, 0, 2], [0, 3, 2], [0, 1, 0], [0, 4]]);
      assert.deepEqual(leases(1, 1), [[1, 2, 0], [1, 1], [2, 3, 2], [2, 1, 0], [0, 1, 3], [0, 4, 2], [0, 0]]);
      assert.deepEqual(leases(42, 0), [[2, 1, 0], [2, 3, 2], [0, 4, 0], [0, 3, 2], [0, 1], [1, 0, 1], [1, 2]]);
      assert.deepEqual(leases(42, 1), [[0, 1, 4], [0, 2, 3], [0, 0], [1, 1, 2], [1, 0], [2, 1, 2], [2, 0, 3]]);
    }
  });

  it("draws the same permutations (seed 0 is state 0)", () => {
    assert.deepEqual(permutation(10, 0), [3, 8, 6, 4, 5, 9, 7, 1, 0, 2]);
    assert.deepEqual(permutation(10, 42), [0, 7, 3, 5, 2, 1, 8, 9, 4, 6]);
    assert.deepEqual(
      [0, 1, 42].map((s) => permutationHash(permutation(1000, s))),
      [1782937072, 19112775, 318309084],
    );
  });

  it("leaves out what the cursor has done, keeping the order of the rest", () => {
    const cursor = new EpochCursor(0, [5, 3, 4]);
    cursor.markDone(2, 1);
    cursor.markDone(0, 3);
    assert.deepEqual(leases(0, 0, cursor), [
      [2, 2, 3],
      [2, 0],
      [1, 2, 0],
      [1, 1],
      [0, 2, 1],
      [0, 0, 4],
    ]);
  });
});
