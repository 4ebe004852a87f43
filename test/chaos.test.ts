// The short seeded chaos run (test/lib/chaos.ts): 2 epochs of 512 images while the trainer is
// SIGKILLed before its first checkpoint and rolled (SIGTERM) mid-run with a second trainer beside it,
// the object store is SIGKILLed as a checkpoint write starts, and three seeded hits fall at random on
// the trainer, the bank, its shard, a data worker or the store. `npm run -s chaos` runs more seeds,
// longer, and the boundary schedule whose final encoder must equal the reference's.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { chaosSchedule, runChaos } from "./lib/chaos.js";

describe("chaos, short and seeded", () => {
  it("the schedule of a seed is fixed, and hits before the first checkpoint and during a checkpoint write", () => {
    const schedule = chaosSchedule(1, 32, 3, false);
    assert.deepEqual(schedule, chaosSchedule(1, 32, 3, false));
    assert.notDeepEqual(schedule, chaosSchedule(2, 32, 3, false));
    assert.ok(schedule.some((d) => d.target === "trainer" && d.signal === "SIGKILL" && d.step < 4));
    assert.ok(schedule.some((d) => d.target === "store" && d.step % 4 === 0));
    assert.ok(schedule.some((d) => d.target === "trainer" && d.signal === "SIGTERM"));
    for (const d of chaosSchedule(7, 32, 5, true)) assert.notEqual(d.target, "worker");
  });

  it("the run completes, each epoch exactly once, every checkpoint verifies, no SIGTERM needs a SIGKILL", async () => {
    const report = await runChaos({
      seed: 1,
      epochs: 2,
      trainImages: 512,
      disruptions: 3,
      boundary: false,
      log: (line) => console.log(`chaos: ${line}`),
    });
    console.log(
      `chaos: ${report.killsSurvived} hits survived, ${report.stepsRedone} steps redone, ${report.secondsLost.toFixed(1)} s lost, encoder max |diff| ${report.encoderMaxDifference}`,
    );
    assert.deepEqual(report.violations, []);
    assert.equal(report.runsLost, 0);
    assert.equal(report.killsSurvived, report.schedule.length);
    assert.ok(report.checkpointsVerified > 0);
    assert.ok(report.terminated >= 1, "the trainer was rolled with SIGTERM");
  });
});
