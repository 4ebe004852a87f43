// A labelled split of a stored dataset as one uint8 pixel block (N x H x W x C) with its labels.
// Raw-pixel encodings only (gray8, rgb8): the evaluator scores small-image datasets on the CPU;
// encoded photos go through a data worker's NONE pipeline first (see docs).
import { createHash } from "node:crypto";
import type { DatasetRef } from "@adco/proto/common";
import { failedPrecondition, notFound } from "@adco/service-kit";
import { type ObjectStore, readManifest, readShard } from "@adco/storage";

export interface LabelledImages {
  readonly pixels: Uint8Array;
  readonly shape: [number, number, number, number];
  readonly labels: Int32Array;
  readonly classes: string[];
  /**
   * What the split is, as a hash of its bucket, name, image format, classes and shards (each with its
   * sha256): equal fingerprints, equal pixels and labels. A re-import under the same name changes it.
   */
  readonly fingerprint: string;
}

/** "name" or "name:split"; the split defaults to `defaultSplit`. */
export function parseDatasetName(name: string, defaultSplit: string): { dataset: string; split: string } {
  const [dataset, split = defaultSplit] = name.split(":");
  return { dataset: dataset!, split };
}

export async function loadLabelled(
  store: ObjectStore,
  ref: DatasetRef,
  defaultSplit: string,
  onProgress?: (done: number, total: number) => void,
): Promise<LabelledImages> {
  const { dataset, split } = parseDatasetName(ref.name, defaultSplit);
  const manifest = await readManifest(store, ref.bucket, dataset);
  const splitManifest = manifest.splits[split];
  if (!splitManifest)
    throw notFound(
      `dataset ${dataset} has no split ${split} (splits: ${Object.keys(manifest.splits).join(", ")})`,
    );
  if (manifest.encoding === "encoded" || !manifest.height || !manifest.width) {
    throw failedPrecondition(
      `dataset ${dataset} is stored as ${manifest.encoding}; the evaluator reads gray8 or rgb8 datasets`,
    );
  }
  const channels = manifest.encoding === "gray8" ? 1 : 3;
  const per = manifest.height * manifest.width * channels;
  const n = splitManifest.count;
  const pixels = new Uint8Array(n * per);
  const labels = new Int32Array(n);
  let i = 0;
  for (const shard of splitManifest.shards) {
    for (const record of await readShard(store, shard)) {
      if (record.data.byteLength !== per)
        throw failedPrecondition(
          `sample ${record.sampleId}: ${record.data.byteLength} bytes, expected ${per}`,
        );
      pixels.set(record.data, i * per);
      labels[i++] = record.label;
    }
    onProgress?.(i, n);
  }
  const fingerprint = createHash("sha256")
    .update(
      JSON.stringify({
        bucket: ref.bucket,
        dataset,
        split,
        encoding: manifest.encoding,
        size: [manifest.height, manifest.width],
        classes: manifest.classes,
        shards: splitManifest.shards.map((s) => [s.key, s.sha256]),
      }),
    )
    .digest("hex");
  return {
    pixels,
    shape: [n, manifest.height, manifest.width, channels],
    labels,
    classes: manifest.classes,
    fingerprint,
  };
}
