// The sharded dataset format. A dataset is shard objects of records (stable sample id, label, image
// bytes) and one manifest naming them with sizes and sha256. Shards are written first and the
// manifest last, so a reader that trusts only manifests never sees a half import; every shard is
// verified against the manifest when read.
//
//   <prefix>/<name>/manifest.json
//   <prefix>/<name>/<split>/shard-00000.bin ...
//
// Shard layout (little-endian): "ADCOSHD1", u32 record count, then per record:
//   u64 sample id | i32 label | u32 byte length | bytes
import { type ObjectStore, type StoredObject, StorageError, MAX_OBJECT_BYTES } from "./object-store.js";

export const DATASET_FORMAT = "adco-dataset/1";
const SHARD_MAGIC = "ADCOSHD1";

/** How a record's bytes encode its image: raw pixels, or an image file (JPEG, PNG, ...) as imported. */
export type ImageEncoding = "gray8" | "rgb8" | "encoded";

export interface ShardRef extends StoredObject {
  readonly records: number;
}

export interface SplitManifest {
  readonly count: number;
  readonly classCounts: number[];
  readonly shards: ShardRef[];
}

export interface DatasetManifest {
  readonly format: typeof DATASET_FORMAT;
  readonly name: string;
  readonly createdAt: string;
  readonly source: string;
  readonly encoding: ImageEncoding;
  /** Image size for raw encodings (gray8 / rgb8); encoded images each have their own size. */
  readonly height?: number;
  readonly width?: number;
  readonly classes: string[];
  readonly splits: Record<string, SplitManifest>;
  /** Inputs that were not imported, with the reason (corrupt image, unreadable file). */
  readonly skipped: { path: string; reason: string }[];
}

export interface DatasetRecord {
  readonly sampleId: number;
  readonly label: number;
  readonly data: Uint8Array;
}

export function encodeShard(records: readonly DatasetRecord[]): Uint8Array {
  const size = 12 + records.reduce((n, r) => n + 16 + r.data.byteLength, 0);
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  out.set(new TextEncoder().encode(SHARD_MAGIC), 0);
  view.setUint32(8, records.length, true);
  let offset = 12;
  for (const r of records) {
    view.setBigUint64(offset, BigInt(r.sampleId), true);
    view.setInt32(offset + 8, r.label, true);
    view.setUint32(offset + 12, r.data.byteLength, true);
    out.set(r.data, offset + 16);
    offset += 16 + r.data.byteLength;
  }
  return out;
}

export function decodeShard(bytes: Uint8Array, label = "shard"): DatasetRecord[] {
  const corrupt = (why: string) => new StorageError("corrupt", `${label}: ${why}`);
  if (bytes.byteLength < 12 || new TextDecoder().decode(bytes.subarray(0, 8)) !== SHARD_MAGIC) {
    throw corrupt("not an adco shard (bad magic)");
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const count = view.getUint32(8, true);
  const records: DatasetRecord[] = [];
  let offset = 12;
  for (let i = 0; i < count; i++) {
    if (offset + 16 > bytes.byteLength) throw corrupt(`truncated at record ${i} of ${count}`);
    const sampleId = Number(view.getBigUint64(offset, true));
    const recordLabel = view.getInt32(offset + 8, true);
    const length = view.getUint32(offset + 12, true);
    if (offset + 16 + length > bytes.byteLength) throw corrupt(`truncated in record ${i} of ${count}`);
    records.push({ sampleId, label: recordLabel, data: bytes.subarray(offset + 16, offset + 16 + length) });
    offset += 16 + length;
  }
  if (offset !== bytes.byteLength) throw corrupt(`${bytes.byteLength - offset} bytes after the last record`);
  return records;
}

export function datasetPrefix(name: string): string {
  if (!/^[a-z0-9][a-z0-9._-]{0,62}$/.test(name)) {
    throw new StorageError(
      "invalid",
      `dataset name ${JSON.stringify(name)}: use a-z, 0-9, '.', '_', '-' (max 63)`,
    );
  }
  return `datasets/${name}`;
}

export interface DatasetWriterOptions {
  readonly name: string;
  readonly bucket: string;
  readonly source: string;
  readonly encoding: ImageEncoding;
  readonly classes: string[];
  readonly height?: number;
  readonly width?: number;
  /** Target shard size; shards stay under 64 MiB whatever this says. */
  readonly shardBytes?: number;
}

/** Writes a dataset split by split; `publish` writes the manifest, after every shard is stored. */
export class DatasetWriter {
  private readonly splits = new Map<string, SplitManifest>();
  private readonly pending = new Map<string, DatasetRecord[]>();
  private readonly pendingBytes = new Map<string, number>();
  private readonly skipped: { path: string; reason: string }[] = [];
  private readonly shardBytes: number;
  private readonly prefix: string;

  constructor(
    private readonly store: ObjectStore,
    private readonly options: DatasetWriterOptions,
  ) {
    this.prefix = datasetPrefix(options.name);
    this.shardBytes = Math.min(options.shardBytes ?? 16 * 1024 * 1024, MAX_OBJECT_BYTES - 1024 * 1024);
  }

  async add(split: string, record: DatasetRecord): Promise<void> {
    if (!/^[a-z0-9_-]+$/.test(split))
      throw new StorageError("invalid", `split name ${JSON.stringify(split)}`);
    if (!Number.isInteger(record.label) || record.label < 0 || record.label >= this.options.classes.length) {
      throw new StorageError(
        "invalid",
        `sample ${record.sampleId}: label ${record.label} outside the ${this.options.classes.length} classes`,
      );
    }
    const list = this.pending.get(split) ?? [];
    list.push(record);
    this.pending.set(split, list);
    const bytes = (this.pendingBytes.get(split) ?? 0) + 16 + record.data.byteLength;
    this.pendingBytes.set(split, bytes);
    if (bytes >= this.shardBytes) await this.flush(split);
  }

  skip(path: string, reason: string): void {
    this.skipped.push({ path, reason });
  }

  private async flush(split: string): Promise<void> {
    const records = this.pending.get(split) ?? [];
    if (records.length === 0) return;
    const manifest = this.splits.get(split) ?? {
      count: 0,
      classCounts: new Array<number>(this.options.classes.length).fill(0),
      shards: [],
    };
    const key = `${this.prefix}/${split}/shard-${String(manifest.shards.length).padStart(5, "0")}.bin`;
    const stored = await this.store.put(this.options.bucket, key, encodeShard(records));
    for (const r of records) manifest.classCounts[r.label]!++;
    this.splits.set(split, {
      ...manifest,
      count: manifest.count + records.length,
      shards: [...manifest.shards, { ...stored, records: records.length }],
    });
    this.pending.set(split, []);
    this.pendingBytes.set(split, 0);
  }

  /** Stores the remaining shards, then the manifest. Returns the manifest. */
  async publish(): Promise<DatasetManifest> {
    for (const split of this.pending.keys()) await this.flush(split);
    const manifest: DatasetManifest = {
      format: DATASET_FORMAT,
      name: this.options.name,
      createdAt: new Date().toISOString(),
      source: this.options.source,
      encoding: this.options.encoding,
      ...(this.options.height !== undefined
        ? { height: this.options.height, width: this.options.width }
        : {}),
      classes: this.options.classes,
      splits: Object.fromEntries(this.splits),
      skipped: this.skipped,
    };
    await this.store.putJson(this.options.bucket, `${this.prefix}/manifest.json`, manifest);
    return manifest;
  }
}

/** Reads a dataset's manifest and checks that it is one. */
export async function readManifest(
  store: ObjectStore,
  bucket: string,
  name: string,
): Promise<DatasetManifest> {
  const key = `${datasetPrefix(name)}/manifest.json`;
  let manifest: DatasetManifest;
  try {
    manifest = await store.getJson<DatasetManifest>(bucket, key);
  } catch (e) {
    if (e instanceof StorageError && e.kind === "not-found") {
      throw new StorageError(
        "not-found",
        `dataset ${name}: no manifest at ${bucket}/${key} (not imported, or the import did not finish)`,
        { cause: e },
      );
    }
    throw e;
  }
  if (
    manifest.format !== DATASET_FORMAT ||
    typeof manifest.splits !== "object" ||
    !Array.isArray(manifest.classes)
  ) {
    throw new StorageError("corrupt", `${bucket}/${key}: not an ${DATASET_FORMAT} manifest`);
  }
  return manifest;
}

/** The records of one shard, verified against the manifest. */
export async function readShard(store: ObjectStore, shard: ShardRef): Promise<DatasetRecord[]> {
  let bytes: Uint8Array;
  try {
    bytes = await store.getVerified(shard);
  } catch (e) {
    if (e instanceof StorageError && e.kind === "not-found") {
      throw new StorageError(
        "not-found",
        `shard ${shard.bucket}/${shard.key} named by the manifest is missing`,
        { cause: e },
      );
    }
    throw e;
  }
  const records = decodeShard(bytes, `${shard.bucket}/${shard.key}`);
  if (records.length !== shard.records) {
    throw new StorageError(
      "corrupt",
      `${shard.bucket}/${shard.key}: ${records.length} records, the manifest says ${shard.records}`,
    );
  }
  return records;
}

/** Names of the datasets that have a manifest in the bucket. */
export async function listDatasets(store: ObjectStore, bucket: string): Promise<string[]> {
  const objects = await store.list(bucket, "datasets/");
  return objects
    .map((o) => /^datasets\/([^/]+)\/manifest\.json$/.exec(o.key)?.[1])
    .filter((n): n is string => n !== undefined);
}
