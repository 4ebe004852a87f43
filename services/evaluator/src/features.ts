// Frozen features of one split, streamed: batches of images (data.ts) through the encoder's backbone
// (and, for the raw-pixel baseline, the normalised pixels themselves) into feature files. Memory is
// a batch of images and its activations, whatever the split's size.
import { join } from "node:path";
import { type Encoder, pixelsToTensor } from "@adco/core";
import type { EvaluateEvent } from "@adco/proto/evaluator";
import type { ObjectStore } from "@adco/storage";
import * as tf from "@tensorflow/tfjs-core";
import { imageBatches, type InputShape, type StoredSplit } from "./data.js";
import { FeatureFile } from "./feature-file.js";

/** Images a batch at most; fewer for large inputs (32 at 224 x 224 x 3), so activations stay small. */
const FEATURE_BATCH = 500;
const FEATURE_BATCH_VALUES = 32 * 224 * 224 * 3;

export function featureBatchSize(input: InputShape): number {
  const [h, w, c] = input;
  return Math.max(1, Math.min(FEATURE_BATCH, Math.floor(FEATURE_BATCH_VALUES / (h * w * c))));
}

/** How long the encoder may hold the event loop: well under gRPC's 10 s keepalive timeout. */
const CHUNK_TARGET_MS = 1000;

/**
 * Runs the encoder on a batch in chunks sized to take about CHUNK_TARGET_MS each (from the time per
 * image measured so far), giving the event loop a turn between chunks: a ResNet-18 on a loaded CPU
 * takes seconds per hundred images, and a loop blocked past the keepalive timeout drops the client.
 * A sample's features do not depend on the chunk it is in (BatchNorm in inference mode).
 */
class EncoderPacer {
  private msPerImage = 0;

  constructor(private readonly encoder: Encoder) {}

  async features(images: tf.Tensor4D): Promise<Float32Array> {
    const n = images.shape[0];
    const [, h, w, c] = images.shape;
    const dim = this.encoder.spec.featureDim;
    const out = new Float32Array(n * dim);
    for (let start = 0; start < n;) {
      const size = Math.min(n - start, this.chunkSize());
      const t0 = performance.now();
      const features = tf.tidy(() =>
        this.encoder.features(tf.slice(images, [start, 0, 0, 0], [size, h, w, c]), size),
      );
      out.set((await features.data()) as Float32Array, start * dim);
      features.dispose();
      this.msPerImage = (performance.now() - t0) / size;
      start += size;
      await new Promise((resolve) => setImmediate(resolve));
    }
    return out;
  }

  /** 8 images until one chunk is timed, then as many as take CHUNK_TARGET_MS (256 at most). */
  private chunkSize(): number {
    if (this.msPerImage === 0) return 8;
    return Math.max(1, Math.min(256, Math.floor(CHUNK_TARGET_MS / this.msPerImage)));
  }
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
  const pacer = new EncoderPacer(encoder);
  try {
    const started = performance.now();
    let done = 0;
    for await (const batch of imageBatches(store, split, input, featureBatchSize(input))) {
      const images = pixelsToTensor(batch.pixels, batch.shape);
      try {
        if (files.raw) await files.raw.append((await images.data()) as Float32Array, batch.labels);
        await files.encoder.append(await pacer.features(images), batch.labels);
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
