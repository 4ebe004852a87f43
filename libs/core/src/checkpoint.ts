// A Pretrainer's learned state as files: both encoders in the standard tfjs LayersModel format (so a
// checkpoint's query/ folder loads with tf.loadLayersModel), and the SGD velocity as tfjs-encoded
// weights. The step and everything else a run needs to resume is the caller's to store.
import * as tf from "@tensorflow/tfjs-core";
import { CoreInputError } from "./checks.js";
import { artifactsFromFiles, artifactsToFiles, encoderArtifacts, encoderFromArtifacts } from "./export.js";
import type { Encoder } from "./encoder.js";
import type { Pretrainer } from "./pretrainer.js";

/** File names (relative paths) -> bytes. */
export type Files = Map<string, Uint8Array>;

async function encoderFiles(encoder: Encoder, folder: string, files: Files): Promise<void> {
  for (const [name, bytes] of artifactsToFiles(await encoderArtifacts(encoder, true)))
    files.set(`${folder}/${name}`, bytes);
}

export async function pretrainerFiles(trainer: Pretrainer): Promise<Files> {
  const files: Files = new Map();
  await encoderFiles(trainer.query, "query", files);
  await encoderFiles(trainer.key, "key", files);
  const velocity: tf.NamedTensorMap = Object.fromEntries(trainer.optimizer.velocity);
  const { data, specs } = await tf.io.encodeWeights(velocity);
  files.set("optimizer.bin", new Uint8Array(data as ArrayBuffer));
  files.set("optimizer.json", new TextEncoder().encode(JSON.stringify(specs)));
  return files;
}

async function loadEncoderInto(
  target: Encoder,
  folder: string,
  read: (path: string) => Promise<Uint8Array>,
): Promise<void> {
  const loaded = await encoderFromArtifacts(await artifactsFromFiles((p) => read(`${folder}/${p}`)));
  try {
    for (const name of target.params.keys())
      if (!loaded.params.has(name)) throw new CoreInputError(folder, `checkpoint lacks parameter ${name}`);
    target.copyFrom(loaded);
  } finally {
    loaded.dispose();
  }
}

/** Loads files written by pretrainerFiles into a Pretrainer of the same config; sets its step. */
export async function restorePretrainer(
  trainer: Pretrainer,
  read: (path: string) => Promise<Uint8Array>,
  step: number,
): Promise<void> {
  await loadEncoderInto(trainer.query, "query", read);
  await loadEncoderInto(trainer.key, "key", read);
  const specs = JSON.parse(
    new TextDecoder().decode(await read("optimizer.json")),
  ) as tf.io.WeightsManifestEntry[];
  const bytes = await read("optimizer.bin");
  const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  const velocity = tf.io.decodeWeights(buffer, specs);
  try {
    for (const [name, v] of trainer.optimizer.velocity) {
      const saved = velocity[name];
      if (!saved || saved.shape.join() !== v.shape.join())
        throw new CoreInputError("optimizer", `velocity of ${name} is missing or has another shape`);
      v.assign(saved);
    }
  } finally {
    tf.dispose(Object.values(velocity));
  }
  trainer.step = step;
}
