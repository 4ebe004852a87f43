// Frozen features of one split, streamed: batches of images (data.ts) through the encoder's backbone
// (and, for the raw-pixel baseline, the normalised pixels themselves) into feature files. Memory is
// a batch of images and its activations, whatever the split's size.
import { join } from "node:path";
import { type Encoder, pixelsToTensor } from "@adco/core";
import type { EvaluateEvent } from "@adco/proto/evaluator";
import type { ObjectStore } from "@adco/storage";
import { imageBatches, type InputShape, type StoredSplit } from "./data.js";
import { FeatureFile } from "./feature-file.js";

/** Images a batch at most; fewer for large inputs (32 at 224 x 224 x 3), so activations stay small. */
const FEATURE_BATCH = 500;
const FEATURE_BATCH_VALUES = 32 * 224 * 224 * 3;

export function featureBatchSize(input: InputShape): number {
  const [h, w, c] = input;
  return Math.max(1, Math.min(FEATURE_BATCH, Math.floor(FEATURE_BATCH_VALUES / (h * w * c))));
}

export interface SplitFeatures {
  /** The encoder's backbone features. */
  readonly encoder: FeatureFile;
  /** The normalised pixels as features (when the raw-pixel baseline is computed). */
  readonly raw?: FeatureFile;
}

/**
 * One pass over the split: each batch of images gives the encoder's features and, with `raw`, the
 * pixels as the encoder's input normalises them. Files go under `scratch`, named by `name`.
 */
export async function splitFeatures(
  store: ObjectStore,
  split: StoredSplit,
  input: InputShape,
  encoder: Encoder,
  raw: boolean,
  scratch: string,
  phase: string,
  emit: (event: EvaluateEvent) => void,
): Promise<SplitFeatures> {
  const name = phase.replace(/[^a-z]/g, "-");
  const files: SplitFeatures = {
    encoder: await FeatureFile.create(join(scratch, `${name}.f32`), split.count),
    raw: raw ? await FeatureFile.create(join(scratch, `${name}-raw.f32`), split.count) : undefined,
  };
  try {
    const started = performance.now();
    let done = 0;
    for await (const batch of imageBatches(store, split, input, featureBatchSize(input))) {
      const images = pixelsToTensor(batch.pixels, batch.shape);
      try {
        if (files.raw) await files.raw.append((await images.data()) as Float32Array, batch.labels);
        const features = encoder.features(images);
        const values = (await features.data()) as Float32Array;
        features.dispose();
        await files.encoder.append(values, batch.labels);
      } finally {
        images.dispose();
      }
      done += batch.labels.length;
      const elapsed = (performance.now() - started) / 1000;
      emit({
        progress: { phase, done, total: split.count, etaSeconds: (elapsed / done) * (split.count - done) },
      });
      // Let the progress event go out before the next batch blocks the event loop.
      await new Promise((resolve) => setImmediate(resolve));
    }
    if (done !== split.count)
      throw new Error(
        `${split.dataset}:${split.split}: ${done} records read, the manifest says ${split.count}`,
      );
    return files;
  } catch (e) {
    await Promise.all([files.encoder.close(), files.raw?.close()]);
    throw e;
  }
}
