import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  bankSnapshotPrefix,
  checkpointManifestKey,
  checkpointPrefix,
  checkpointsIn,
  runPrefix,
  stepOfKey,
} from "./run-layout.js";

describe("run layout", () => {
  it("names checkpoint and snapshot keys by zero-padded step, so they sort by step", () => {
    assert.equal(checkpointManifestKey("r", 47), "runs/r/ckpt-0000000047/manifest.json");
    assert.equal(bankSnapshotPrefix(runPrefix("r"), 47), "runs/r/bank/step-0000000047/");
    assert.equal(stepOfKey(`${checkpointPrefix("r", 12)}query/model.json`), 12);
    assert.equal(stepOfKey(`${bankSnapshotPrefix("runs/r/", 9)}weights.f32`), 9);
    assert.equal(stepOfKey("runs/r/latest.json"), undefined);
    assert.equal(stepOfKey("runs/r/eval/step-0000000012/results.json"), undefined);
  });

  it("lists only published checkpoints, oldest first", () => {
    const keys = [
      "runs/r/ckpt-0000000020/manifest.json",
      "runs/r/ckpt-0000000030/query/model.json", // no manifest: not published
      "runs/r/ckpt-0000000010/manifest.json",
      "runs/r/bank/step-0000000010/manifest.json",
    ].map((key) => ({ key }));
    assert.deepEqual(checkpointsIn(keys), [
      { step: 10, key: "runs/r/ckpt-0000000010/manifest.json" },
      { step: 20, key: "runs/r/ckpt-0000000020/manifest.json" },
    ]);
  });
});
