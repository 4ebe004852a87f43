import assert from "node:assert/strict";
import { it } from "node:test";
import { parseSeeds, untilDeadline } from "./study-args.js";

it("--seeds reads a list of non-negative integers and names a bad entry", () => {
  assert.deepEqual(parseSeeds("0,1,2"), [0, 1, 2]);
  assert.deepEqual(parseSeeds("7"), [7]);
  assert.throws(() => parseSeeds("0,x"), /--seeds: x is not a seed/);
  assert.throws(() => parseSeeds("1,-1"), /--seeds: -1 is not a seed/);
  assert.throws(() => parseSeeds("0,,1"), /--seeds: an empty entry is not a seed/);
  assert.throws(() => parseSeeds("1.5"), /--seeds: 1.5 is not a seed/);
});

it("--until is the next such UTC time: later today, else tomorrow", () => {
  const now = new Date("2026-12-02T23:00:00Z");
  assert.equal(untilDeadline("23:30", now), Date.parse("2026-12-02T23:30:00Z"));
  assert.equal(untilDeadline("2:05", now), Date.parse("2026-12-03T02:05:00Z"));
  assert.equal(untilDeadline("23:00", now), Date.parse("2026-12-03T23:00:00Z"));
  for (const bad of ["24:00", "12:60", "noon", "12", "12:5"])
    assert.throws(() => untilDeadline(bad, now), new RegExp(`--until: HH:MM \\(UTC\\), got ${bad}`));
});
