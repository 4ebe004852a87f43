import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { CheckpointState } from "./checkpoints.js";
import { HISTORY_POINTS, RunProgress, type RunFields } from "./progress.js";

const RECORDS = [3, 2]; // two shards: 5 samples an epoch
const RUN: RunFields = {
  runId: "r",
  step: 2,
  totalSteps: 10,
  config: { preset: "fashion-mnist" },
  createdUnixMs: 1,
  bankSnapshot: undefined,
};
const batch = (shard: number[], record: number[]) => ({ size: shard.length, shard, record });
const point = (step: number, loss: number) => ({ step, loss, contrastAccuracy: 0.5, lr: 0.06 });
/** The state as a checkpoint's manifest stores it and a resume reads it back. */
const throughJson = (state: CheckpointState): CheckpointState => JSON.parse(JSON.stringify(state));

describe("RunProgress", () => {
  it("writes a checkpoint's state in the order checkpoints have always had", () => {
    const state = RunProgress.start(RECORDS).checkpointState(RUN);
    assert.deepEqual(Object.keys(state), [
      "runId",
      "step",
      "epoch",
      "cursor",
      "epochLossSum",
      "epochSteps",
      "epochSamples",
      "totalSteps",
      "config",
      "createdUnixMs",
      "bankSnapshot",
      "history",
      "trainSeconds",
      "epochSeconds",
      "epochReports",
    ]);
  });

  it("a resume mid-epoch carries on every counter and the cursor", () => {
    const progress = RunProgress.start(RECORDS);
    progress.enter(0);
    progress.record(batch([0, 1], [2, 0]), point(1, 6), 0.5);
    progress.record(batch([0, 0], [0, 1]), point(2, 4), 0.25);
    const saved = { ...throughJson(progress.checkpointState(RUN)), epochSeconds: 30 };
    assert.equal(saved.epoch, 0);
    assert.equal(saved.epochLossSum, 10);
    assert.equal(saved.epochSteps, 2);
    assert.equal(saved.epochSamples, 4);
    assert.equal(saved.trainSeconds, 0.75);
    assert.deepEqual(saved.history, [point(1, 6), point(2, 4)]);

    const resumed = RunProgress.resume(saved, RECORDS);
    const { epochSeconds, ...rest } = throughJson(resumed.checkpointState(RUN));
    const { epochSeconds: savedSeconds, ...savedRest } = saved;
    assert.deepEqual(rest, savedRest, "the round trip changes nothing");
    assert.ok(
      epochSeconds! >= savedSeconds! && epochSeconds! < savedSeconds! + 5,
      "the epoch's seconds go on",
    );
    resumed.enter(0); // the epoch in progress: nothing is reset
    const cursor = resumed.feederCursor();
    assert.equal(cursor.done, 4);
    assert.ok(!cursor.isDone(1, 1), "the one sample left is what the feeder still fetches");
    resumed.record(batch([1], [1]), point(3, 2), 0.25);
    assert.deepEqual(resumed.epochEvent().meanLoss, 4, "(6 + 4 + 2) / 3 steps");
    assert.equal(resumed.epochEvent().samples, 5);
    assert.ok(resumed.epochEvent().seconds >= 30, "the wall time of the epoch counts both trainers'");
    assert.ok(resumed.complete);
  });

  it("a checkpoint without the epoch's seconds (before 2026-12) resumes with none spent", () => {
    const progress = RunProgress.start(RECORDS);
    progress.record(batch([0], [0]), point(1, 3), 1);
    const { epochSeconds: _, ...older } = throughJson(progress.checkpointState(RUN));
    const resumed = RunProgress.resume(older, RECORDS);
    assert.ok(resumed.epochEvent().seconds < 5);
    assert.ok(!resumed.complete);
  });

  it("keeps the report of each finished epoch across resumes, a redone epoch's newer one only", () => {
    const progress = RunProgress.start(RECORDS);
    progress.record(batch([0, 0, 0, 1, 1], [0, 1, 2, 0, 1]), point(1, 3), 1);
    progress.reported(progress.epochEvent(), 1000);
    const resumed = RunProgress.resume(throughJson(progress.checkpointState(RUN)), RECORDS);
    assert.deepEqual(
      resumed.epochReports.map((r) => [r.epoch, r.samples, r.meanLoss, r.unixMs]),
      [[0, 5, 3, 1000]],
    );
    resumed.record(batch([0, 0, 0, 1, 1], [0, 1, 2, 0, 1]), point(2, 1), 1);
    resumed.reported(resumed.epochEvent(), 2000);
    resumed.reported({ epoch: 0, meanLoss: 2, samples: 5, seconds: 1 }, 3000);
    assert.deepEqual(
      throughJson(resumed.checkpointState(RUN)).epochReports!.map((r) => [r.epoch, r.meanLoss, r.unixMs]),
      [
        [0, 2, 3000],
        [1, 1, 2000],
      ],
    );
    const { epochReports: _, ...older } = throughJson(progress.checkpointState(RUN));
    assert.deepEqual(RunProgress.resume(older, RECORDS).epochReports, [], "a checkpoint before reports");
  });

  it("the feeder's cursor is a copy: samples it delivers count only once trained", () => {
    const progress = RunProgress.start(RECORDS);
    progress.feederCursor().markDone(0, 0);
    assert.equal(progress.checkpointState(RUN).cursor.done, progress.feederCursor().serialize().done);
    assert.equal(progress.feederCursor().done, 0);
  });

  it("a resume from an epoch-end checkpoint starts the next epoch with fresh counters", () => {
    const progress = RunProgress.start(RECORDS);
    progress.record(batch([0, 0, 0, 1, 1], [0, 1, 2, 0, 1]), point(1, 3), 1);
    const saved = throughJson(progress.checkpointState(RUN));
    const resumed = RunProgress.resume(saved, RECORDS);
    assert.equal(resumed.epoch, 1);
    const state = resumed.checkpointState(RUN);
    assert.equal(state.cursor.epoch, 1);
    assert.deepEqual([state.epochLossSum, state.epochSteps, state.epochSamples], [0, 0, 0]);
    assert.equal(resumed.feederCursor().done, 0);
    assert.equal(state.trainSeconds, 1, "the run's totals go on");
    assert.ok(state.epochSeconds! < 5, "the next epoch's seconds start at 0");
    assert.equal(state.history.length, 1);
  });

  it("entering a new epoch resets the epoch's counters, not the run's", () => {
    const progress = RunProgress.start(RECORDS);
    progress.record(batch([0], [0]), point(1, 3), 1);
    progress.enter(1);
    const state = progress.checkpointState(RUN);
    assert.equal(state.epoch, 1);
    assert.deepEqual([state.epochLossSum, state.epochSteps, state.epochSamples], [0, 0, 0]);
    assert.equal(progress.epochEvent().meanLoss, 0, "an epoch without steps");
    assert.deepEqual([state.trainSeconds, state.history.length], [1, 1]);
  });

  it("the loss curve is thinned past HISTORY_POINTS, keeping the first and the newest point", () => {
    const progress = RunProgress.start([HISTORY_POINTS + 1]);
    for (let i = 0; i <= HISTORY_POINTS; i++) progress.record(batch([0], [i]), point(i + 1, i), 0);
    const history = progress.checkpointState(RUN).history;
    assert.equal(history.length, HISTORY_POINTS / 2 + 1);
    assert.equal(history[0]!.step, 1);
    assert.equal(history.at(-1)!.step, HISTORY_POINTS + 1);
  });
});
