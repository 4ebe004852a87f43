// A feature file on disk: rows read back as written, and the embedding's even sample of a split
// stored class by class holds every class.
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { FeatureFile } from "./feature-file.js";

describe("FeatureFile.evenRows", () => {
  it("spreads the sample over the file, so a split sorted by class shows every class", async () => {
    const dir = await mkdtemp(join(tmpdir(), "adco-features-"));
    const file = await FeatureFile.create(join(dir, "test.f32"), 12);
    try {
      // 12 rows of 2 floats, row r = [r, -r], classes 0, 1, 2 in blocks of 4.
      const features = Float32Array.from({ length: 24 }, (_, i) => (i % 2 ? -1 : 1) * Math.floor(i / 2));
      await file.append(
        features,
        Int32Array.from({ length: 12 }, (_, r) => Math.floor(r / 4)),
      );
      const sample = await file.evenRows(6);
      assert.deepEqual(Array.from(sample.rows), [0, -0, 2, -2, 4, -4, 6, -6, 8, -8, 10, -10]);
      assert.deepEqual(Array.from(sample.labels), [0, 0, 1, 1, 2, 2]);
      // The first six rows would have held two of the three classes.
      assert.deepEqual(new Set(file.labels.subarray(0, 6)), new Set([0, 1]));
      const all = await file.evenRows(100);
      assert.equal(all.labels.length, 12);
      assert.deepEqual(Array.from(all.rows), Array.from(features));
    } finally {
      await file.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
