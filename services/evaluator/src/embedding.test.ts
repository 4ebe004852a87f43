// UMAP with a seed: the same layout every time, a different one for another seed, and two clusters
// far apart in feature space land apart in the plane.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Mulberry32 } from "@adco/random";
import { umap2 } from "./embedding.js";

/** `perCluster` rows of `dim` floats around each of two centres `gap` apart (noise sd 1). */
function twoClusters(perCluster: number, dim: number, gap: number, seed = 1) {
  const random = new Mulberry32(seed);
  const rows = 2 * perCluster;
  const features = new Float32Array(rows * dim);
  const labels = new Int32Array(rows);
  for (let i = 0; i < rows; i++) {
    labels[i] = i % 2;
    for (let j = 0; j < dim; j++) features[i * dim + j] = random.normal() + (labels[i] && j < 4 ? gap : 0);
  }
  return { rows, features, labels };
}

/** The smallest distance between the clusters' points over the largest distance within one. */
function separation(points: Float32Array, labels: Int32Array): number {
  let between = Infinity;
  let within = 0;
  for (let a = 0; a < labels.length; a++)
    for (let b = a + 1; b < labels.length; b++) {
      const d = Math.hypot(points[2 * a]! - points[2 * b]!, points[2 * a + 1]! - points[2 * b + 1]!);
      if (labels[a] === labels[b]) within = Math.max(within, d);
      else between = Math.min(between, d);
    }
  return between / within;
}

describe("umap2", () => {
  const dim = 16;
  const { rows, features, labels } = twoClusters(60, dim, 12);

  it("is the same for the same seed, and not for another", async () => {
    const a = await umap2(features, rows, dim, { seed: 3, epochs: 50 });
    const b = await umap2(features, rows, dim, { seed: 3, epochs: 50 });
    const c = await umap2(features, rows, dim, { seed: 4, epochs: 50 });
    assert.equal(a.length, 2 * rows);
    assert.deepEqual(a, b);
    assert.notDeepEqual(a, c);
    assert.ok(a.every(Number.isFinite));
  });

  it("keeps two well-separated clusters apart", async () => {
    const points = await umap2(features, rows, dim, { seed: 0 });
    // The clusters farther from each other than either is wide (5x here; 0 would be one cloud).
    const s = separation(points, labels);
    assert.ok(s > 1, `between / within ${s.toFixed(3)}`);
    // A control: the same rows with no gap are one cloud, so the measure can fail.
    const mixed = twoClusters(60, dim, 0);
    const control = separation(await umap2(mixed.features, rows, dim, { seed: 0 }), mixed.labels);
    assert.ok(control < 0.05, `no gap: between / within ${control.toFixed(3)}`);
  });

  it("refuses features of the wrong length, and places one or two rows without UMAP", async () => {
    await assert.rejects(umap2(new Float32Array(5), 2, 3), /5 floats is not 2 rows of 3/);
    assert.deepEqual(Array.from(await umap2(new Float32Array(6), 2, 3)), [0, 0, 1, 0]);
  });
});
