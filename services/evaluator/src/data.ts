// A labelled split of a stored dataset, read as batches of uint8 pixels (N x H x W x C) in the
// encoder's input shape. Raw-pixel encodings (gray8, rgb8) must already be that shape; encoded
// photos (JPEG, PNG, ...) go through the standard evaluation transform (EXIF orientation, short side
// resized, centre crop: @adco/augment's evalTransform). One or two shards and two batches are in
// memory at a time, whatever the split's size.
import { createHash } from "node:crypto";
import { DecodeError, evalTransform } from "@adco/augment";
import type { DatasetRef } from "@adco/proto/common";
import { failedPrecondition, notFound } from "@adco/service-kit";
import {
  type DatasetRecord,
  type ImageEncoding,
  type ObjectStore,
  readManifest,
  readShard,
  type ShardRef,
} from "@adco/storage";

/** What the evaluator knows of a split before reading its shards (the manifest's entry). */
export interface StoredSplit {
  readonly dataset: string;
  readonly split: string;
  readonly encoding: ImageEncoding;
  /** Image size of raw encodings; encoded images each have their own. */
  readonly height?: number;
  readonly width?: number;
  readonly count: number;
  readonly classes: string[];
  readonly shards: readonly ShardRef[];
  /**
   * What the split is, as a hash of its bucket, name, image format, classes and shards (each with its
   * sha256): equal fingerprints, equal pixels and labels. A re-import under the same name changes it.
   */
  readonly fingerprint: string;
}

/** Height, width and channels of the images given to an encoder. */
export type InputShape = readonly [number, number, number];

export interface ImageBatch {
  readonly pixels: Uint8Array;
  readonly labels: Int32Array;
  readonly shape: [number, number, number, number];
}

/** "name" or "name:split"; the split defaults to `defaultSplit`. */
export function parseDatasetName(name: string, defaultSplit: string): { dataset: string; split: string } {
  const [dataset, split = defaultSplit] = name.split(":");
  return { dataset: dataset!, split };
}

export async function openSplit(
  store: ObjectStore,
  ref: DatasetRef,
  defaultSplit: string,
): Promise<StoredSplit> {
  const { dataset, split } = parseDatasetName(ref.name, defaultSplit);
  const manifest = await readManifest(store, ref.bucket, dataset);
  const splitManifest = manifest.splits[split];
  if (!splitManifest)
    throw notFound(
      `dataset ${dataset} has no split ${split} (splits: ${Object.keys(manifest.splits).join(", ")})`,
    );
  if (manifest.encoding !== "encoded" && (!manifest.height || !manifest.width))
    throw failedPrecondition(`dataset ${dataset} is ${manifest.encoding} but its manifest has no image size`);
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
    dataset,
    split,
    encoding: manifest.encoding,
    height: manifest.height,
    width: manifest.width,
    count: splitManifest.count,
    classes: manifest.classes,
    shards: splitManifest.shards,
    fingerprint,
  };
}

/**
 * Checks that a split can be given to an encoder of `input` shape: raw pixels must be that shape
 * (they are scored as stored); encoded images are transformed to it.
 */
export function checkInputShape(split: StoredSplit, input: InputShape, encoder: string, phase: string): void {
  if (split.encoding === "encoded") return;
  const [eh, ew, ec] = input;
  const c = split.encoding === "gray8" ? 1 : 3;
  if (c !== ec)
    throw failedPrecondition(`${phase}: images have ${c} channels, the ${encoder} encoder takes ${ec}`);
  if (split.height !== eh || split.width !== ew)
    throw failedPrecondition(
      `${phase}: images are ${split.height}x${split.width}, the ${encoder} encoder was trained on ${eh}x${ew}`,
    );
}

/** The records of a split in stored order, `size` at a time, one shard read at a time. */
async function* recordGroups(
  store: ObjectStore,
  split: StoredSplit,
  size: number,
): AsyncGenerator<DatasetRecord[]> {
  let group: DatasetRecord[] = [];
  for (const shard of split.shards) {
    for (const record of await readShard(store, shard)) {
      group.push(record);
      if (group.length === size) {
        yield group;
        group = [];
      }
    }
  }
  if (group.length) yield group;
}

/** One group of records as pixels of `input` shape. */
async function toBatch(records: DatasetRecord[], split: StoredSplit, input: InputShape): Promise<ImageBatch> {
  const [h, w, c] = input;
  const per = h * w * c;
  const pixels = new Uint8Array(records.length * per);
  const labels = Int32Array.from(records, (r) => r.label);
  if (split.encoding === "encoded") {
    // All of a batch at once: sharp runs them on its thread pool, off the event loop.
    const images = await Promise.all(
      records.map((r) => evalTransform(r.data, h, c as 1 | 3, `sample ${r.sampleId}`)),
    ).catch((e: unknown) => {
      throw e instanceof DecodeError
        ? failedPrecondition(`dataset ${split.dataset}:${split.split}: ${e.message}`)
        : e;
    });
    images.forEach((image, i) => pixels.set(image, i * per));
  } else {
    records.forEach((r, i) => {
      if (r.data.byteLength !== per)
        throw failedPrecondition(`sample ${r.sampleId}: ${r.data.byteLength} bytes, expected ${per}`);
      pixels.set(r.data, i * per);
    });
  }
  return { pixels, labels, shape: [records.length, h, w, c] };
}

/**
 * The split's images in batches of `batchSize`, in stored order. The next batch is decoded while the
 * caller works on the current one.
 */
export async function* imageBatches(
  store: ObjectStore,
  split: StoredSplit,
  input: InputShape,
  batchSize: number,
): AsyncGenerator<ImageBatch> {
  let pending: Promise<ImageBatch> | undefined;
  for await (const records of recordGroups(store, split, batchSize)) {
    const next = toBatch(records, split, input);
    // Its failure is thrown when it is awaited; until then (or if the caller stops first) it must
    // not count as an unhandled rejection, which would end the process.
    next.catch(() => {});
    if (pending) yield await pending;
    pending = next;
  }
  if (pending) yield await pending;
}
