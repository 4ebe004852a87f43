// UMAP with a seed: the same layout every time, a different one for another seed, and two clusters
// far apart in feature space land apart in the plane.
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { initBackend } from "@adco/core";
import { Mulberry32 } from "@adco/random";
import * as tf from "@tensorflow/tfjs-core";
import { nearestRows, pca2, umap2 } from "./embedding.js";

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

/** How many turns the event loop took while `work` ran (0 for work done in one piece). */
async function turnsDuring(work: () => Promise<unknown>): Promise<number> {
  let turns = 0;
  let ticking = true;
  const tick = () => {
    turns++;
    if (ticking) setImmediate(tick);
  };
  setImmediate(tick);
  await work();
  ticking = false;
  return turns;
}

before(() => initBackend("auto"));

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

describe("nearestRows", () => {
  const dim = 8;
  const rows = 600; // three blocks of 256 rows
  const random = new Mulberry32(7);
  const features = Float32Array.from({ length: rows * dim }, () => random.normal());
  const distance = (a: number, b: number) =>
    Math.hypot(...Array.from({ length: dim }, (_, j) => features[a * dim + j]! - features[b * dim + j]!));

  it("finds each row's nearest rows exactly, itself first at 0", async () => {
    const k = 5;
    const { indices, distances } = await nearestRows(features, rows, dim, k);
    assert.equal(indices.length, rows);
    for (const row of [0, 255, 256, 599]) {
      const expected = Array.from({ length: rows }, (_, i) => i)
        .sort((a, b) => distance(row, a) - distance(row, b))
        .slice(0, k);
      assert.deepEqual(indices[row], expected, `row ${row}`);
      assert.equal(distances[row]![0], 0);
      for (let j = 1; j < k; j++)
        assert.ok(Math.abs(distances[row]![j]! - distance(row, expected[j]!)) < 1e-3);
    }
  });

  it("lets the event loop run between blocks (a long search must not stall the gRPC server)", async () => {
    const turns = await turnsDuring(() => nearestRows(features, rows, dim, 5));
    // One turn at least per block: a search in one piece gives none until it has ended.
    assert.ok(turns >= 3, `${turns} turns of the event loop`);
  });
});

describe("pca2", () => {
  it("projects on the two directions of largest variance, and frees its tensors", async () => {
    // Spread 5 along feature 3, 2 along feature 0, 0.1 along the other 30.
    const random = new Mulberry32(2);
    const rows = 400;
    const dim = 32;
    const data = new Float32Array(rows * dim);
    for (let i = 0; i < rows; i++)
      for (let j = 0; j < dim; j++) data[i * dim + j] = random.normal() * (j === 3 ? 5 : j === 0 ? 2 : 0.1);
    const x = tf.tensor2d(data, [rows, dim]);
    const tensors = tf.memory().numTensors;
    const points = await pca2(x);
    assert.equal(tf.memory().numTensors, tensors);
    x.dispose();
    const correlation = (axis: number, feature: number) => {
      let xy = 0;
      let xx = 0;
      let yy = 0;
      for (let i = 0; i < rows; i++) {
        const a = points[2 * i + axis]!;
        const b = data[i * dim + feature]!;
        xy += a * b;
        xx += a * a;
        yy += b * b;
      }
      return Math.abs(xy) / Math.sqrt(xx * yy);
    };
    assert.ok(correlation(0, 3) > 0.99, `first component against feature 3: ${correlation(0, 3)}`);
    assert.ok(correlation(1, 0) > 0.99, `second component against feature 0: ${correlation(1, 0)}`);
  });

  it("lets the event loop run between its power iterations", async () => {
    const random = new Mulberry32(3);
    const x = tf.tensor2d(
      Float32Array.from({ length: 200 * 16 }, () => random.normal()),
      [200, 16],
    );
    const turns = await turnsDuring(() => pca2(x).finally(() => x.dispose()));
    // Two components of 100 iterations, a turn every 10: one piece would give none.
    assert.ok(turns >= 20, `${turns} turns of the event loop`);
  });
});
