// An evaluation's plots as files a person opens: copied from the object store (the ObjectRefs the
// evaluator answered with, checked against their size and sha256) into a local folder. The report
// names stored objects as s3:// addresses, never as files inside an object store's data directory.
import { mkdir, writeFile } from "node:fs/promises";
import { basename, join, resolve } from "node:path";
import type { ObjectRef } from "@adco/proto/common";
import type { ObjectStore } from "@adco/storage";

/** s3://bucket/key: where an object is, for any S3 client. */
export const s3Address = (o: { readonly bucket: string; readonly key: string }) =>
  `s3://${o.bucket}/${o.key}`;

export interface ExportedPlot {
  readonly ref: ObjectRef;
  /** The absolute path of the local copy. */
  readonly path: string;
}

/** Writes each plot to <directory>/<its file name> (loss.png, embedding.svg, ...). */
export async function exportPlots(
  store: ObjectStore,
  plots: readonly ObjectRef[],
  directory: string,
): Promise<ExportedPlot[]> {
  const folder = resolve(directory);
  await mkdir(folder, { recursive: true });
  const exported: ExportedPlot[] = [];
  for (const ref of plots) {
    const bytes = ref.sha256
      ? await store.getVerified({ bucket: ref.bucket, key: ref.key, size: ref.sizeBytes, sha256: ref.sha256 })
      : await store.get(ref.bucket, ref.key);
    const path = join(folder, basename(ref.key));
    await writeFile(path, bytes);
    exported.push({ ref, path });
  }
  return exported;
}
