// A bundle: named files written under one key prefix, then a manifest that lists every object with its
// size and sha256. The manifest is written last, so its presence publishes the bundle: a crash before
// it leaves only unreferenced objects, never a half-readable bundle. Files larger than a part are
// split (objects stay under the store's single-put limit) and joined again on read. Checkpoints and
// bank snapshots are bundles.
import { type ObjectStore, type StoredObject, StorageError } from "./object-store.js";

export const BUNDLE_FORMAT = "adco-bundle/1";
const PART_BYTES = 32 * 1024 * 1024;

export interface BundleManifest<Meta> {
  readonly format: typeof BUNDLE_FORMAT;
  readonly meta: Meta;
  /** File name -> its parts, in order. */
  readonly files: Record<string, StoredObject[]>;
}

/** Writes the files under `prefix` (ending in "/"), then `prefix + "manifest.json"`; returns the manifest's ref. */
export async function writeBundle<Meta>(
  store: ObjectStore,
  bucket: string,
  prefix: string,
  files: ReadonlyMap<string, Uint8Array>,
  meta: Meta,
): Promise<StoredObject> {
  const listed: Record<string, StoredObject[]> = {};
  for (const [name, data] of files) {
    const parts = Math.max(1, Math.ceil(data.byteLength / PART_BYTES));
    listed[name] = [];
    for (let i = 0; i < parts; i++) {
      const key = parts === 1 ? `${prefix}${name}` : `${prefix}${name}.part${i}`;
      const slice = data.subarray(i * PART_BYTES, Math.min(data.byteLength, (i + 1) * PART_BYTES));
      listed[name].push(await store.put(bucket, key, slice));
    }
  }
  const manifest: BundleManifest<Meta> = { format: BUNDLE_FORMAT, meta, files: listed };
  return store.putJson(bucket, `${prefix}manifest.json`, manifest);
}

export class Bundle<Meta> {
  constructor(
    private readonly store: ObjectStore,
    readonly manifestRef: { bucket: string; key: string },
    readonly manifest: BundleManifest<Meta>,
  ) {}

  get meta(): Meta {
    return this.manifest.meta;
  }

  has(name: string): boolean {
    return name in this.manifest.files;
  }

  /** A file's bytes, every part checked against the manifest (StorageError "corrupt" if not). */
  async read(name: string): Promise<Uint8Array> {
    const parts = this.manifest.files[name];
    if (!parts)
      throw new StorageError(
        "not-found",
        `${this.manifestRef.bucket}/${this.manifestRef.key}: no file ${name}`,
      );
    const chunks = [];
    for (const part of parts) chunks.push(await this.store.getVerified(part));
    if (chunks.length === 1) return chunks[0]!;
    return new Uint8Array(Buffer.concat(chunks));
  }

  /** Every object the bundle consists of, manifest last (for deletion). */
  keys(): string[] {
    return [
      ...Object.values(this.manifest.files).flatMap((parts) => parts.map((p) => p.key)),
      this.manifestRef.key,
    ];
  }
}

export async function openBundle<Meta>(
  store: ObjectStore,
  bucket: string,
  manifestKey: string,
): Promise<Bundle<Meta>> {
  const manifest = await store.getJson<BundleManifest<Meta>>(bucket, manifestKey);
  if (manifest?.format !== BUNDLE_FORMAT || typeof manifest.files !== "object") {
    throw new StorageError(
      "corrupt",
      `${bucket}/${manifestKey}: not a bundle manifest (format ${BUNDLE_FORMAT})`,
    );
  }
  return new Bundle(store, { bucket, key: manifestKey }, manifest);
}
