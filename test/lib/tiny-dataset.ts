// A small labelled dataset in the store for tests whose runs must step fast: the first images of
// the bundled Fashion-MNIST subset's splits, imported as IDX files like a user's own.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { importDataset } from "@adco/cli";
import { BUNDLED_FASHION_MNIST, encodeIdx, firstImages, readFashionMnist } from "@adco/datasets";
import type { ObjectStore } from "@adco/storage";

/** Imports the first `train` and `test` images as dataset adco-datasets/<name>. */
export async function importTinyDataset(
  store: ObjectStore,
  name: string,
  counts: { readonly train: number; readonly test: number },
): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "adco-tiny-"));
  for (const [split, count, images, labels] of [
    ["train", counts.train, "train-images-idx3-ubyte", "train-labels-idx1-ubyte"],
    ["test", counts.test, "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"],
  ] as const) {
    const set = firstImages(readFashionMnist(BUNDLED_FASHION_MNIST, split), count);
    writeFileSync(join(dir, images), encodeIdx([set.count, set.height, set.width], set.images));
    writeFileSync(join(dir, labels), encodeIdx([set.count], set.labels));
  }
  await importDataset(store, { format: "idx", source: dir, name, bucket: "adco-datasets", quiet: true });
}
