// The raw-pixel baseline: the images themselves as features (H x W x C values a sample, normalised as
// the encoder's input is, by pixelsToTensor; features.ts computes them in the encoder's pass), scored
// by the same kNN and linear probe as an encoder's features. An encoder that does not beat it is, for
// these classifiers, worse than none. Encoded photos are the pixels of the evaluation transform.
//
// The scores are deterministic for a split's contents and the classifier's options (kNN has no
// randomness; the linear probe has a fixed seed), so the evaluator keeps them in memory, in a
// RawPixelsCache per process (evaluatorHandlers makes one), keyed by both splits' fingerprints (their
// shards' sha256, see data.ts), the input shape and the options. A trainer's epoch evaluations, FollowRun and repeated
// `adco eval`s then pay for them once. Replicas each compute their own; a restart starts empty.
import type { InputShape, StoredSplit } from "./data.js";

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
  train: StoredSplit,
  test: StoredSplit,
  input: InputShape,
  options: Record<string, number>,
): string {
  return JSON.stringify([classifier, train.fingerprint, test.fingerprint, input, options]);
}
