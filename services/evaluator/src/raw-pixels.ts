// The raw-pixel baseline: the images themselves as features (H x W x C values a sample, normalised as
// the encoder's input is, by pixelsToTensor), scored by the same kNN and linear probe as an encoder's
// features. An encoder that does not beat it is, for these classifiers, worse than none.
//
// The scores are deterministic for a split's contents and the classifier's options (kNN has no
// randomness; the linear probe has a fixed seed), so the evaluator keeps them in memory, in a
// RawPixelsCache per process (evaluatorHandlers makes one), keyed by both splits' fingerprints (their
// shards' sha256, see data.ts) and the options. A trainer's epoch evaluations, FollowRun and repeated
// `adco eval`s then pay for them once. Replicas each compute their own; a restart starts empty.
import { pixelsToTensor } from "@adco/core";
import * as tf from "@tensorflow/tfjs-core";
import type { LabelledImages } from "./data.js";

const FEATURE_BATCH = 1000;

/** The split's pixels as an N x (H*W*C) float32 matrix, normalised as the encoder's input. */
export function rawPixelFeatures(data: LabelledImages): tf.Tensor2D {
  const [n, h, w, c] = data.shape;
  const per = h * w * c;
  const parts: tf.Tensor2D[] = [];
  for (let start = 0; start < n; start += FEATURE_BATCH) {
    const size = Math.min(FEATURE_BATCH, n - start);
    const images = pixelsToTensor(data.pixels.subarray(start * per, (start + size) * per), [size, h, w, c]);
    parts.push(tf.reshape(images, [size, per]));
    images.dispose();
  }
  if (parts.length === 1) return parts[0]!;
  const all = tf.concat(parts, 0);
  tf.dispose(parts);
  return all;
}

/** Scores by key, the least recently used dropped beyond `capacity` (an entry is a few hundred bytes). */
export class RawPixelsCache<T = unknown> {
  private readonly entries = new Map<string, T>();

  constructor(readonly capacity = 256) {}

  get(key: string): T | undefined {
    const value = this.entries.get(key);
    if (value !== undefined) {
      this.entries.delete(key);
      this.entries.set(key, value);
    }
    return value;
  }

  set(key: string, value: T): void {
    this.entries.delete(key);
    this.entries.set(key, value);
    while (this.entries.size > this.capacity) this.entries.delete(this.entries.keys().next().value!);
  }

  get size(): number {
    return this.entries.size;
  }
}

/** The cache key of one classifier's raw-pixel score on a train/test pair. */
export function rawPixelsKey(
  classifier: "knn" | "linear",
  train: LabelledImages,
  test: LabelledImages,
  options: Record<string, number>,
): string {
  return JSON.stringify([classifier, train.fingerprint, test.fingerprint, options]);
}
