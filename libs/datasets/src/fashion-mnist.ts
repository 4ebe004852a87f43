// Fashion-MNIST (Zalando, MIT licence): the full set from Debian's dataset-fashion-mnist package, and a
// stratified subset shipped in this package (data/fashion-mnist-small) so a fresh clone trains and
// tests without downloads.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { type LabelledImages, idxPair, parseIdx } from "./idx.js";

export const FASHION_MNIST_CLASSES = [
  "T-shirt/top",
  "Trouser",
  "Pullover",
  "Dress",
  "Coat",
  "Sandal",
  "Shirt",
  "Sneaker",
  "Bag",
  "Ankle boot",
] as const;

/** The subset shipped with the project: 600 train and 100 test images per class. */
export const BUNDLED_FASHION_MNIST = join(import.meta.dirname, "../data/fashion-mnist-small");

/** Where Debian's package puts the full set. */
export const DEBIAN_FASHION_MNIST = "/usr/share/datasets/fashion-mnist";

const FILES = {
  train: ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"],
  test: ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"],
} as const;

export function readFashionMnist(dir: string, split: "train" | "test"): LabelledImages {
  const [images, labels] = FILES[split];
  for (const f of [images, labels]) {
    if (!existsSync(join(dir, f))) {
      throw new Error(
        `${join(dir, f)} not found: give a directory with the Fashion-MNIST IDX files (apt-get install dataset-fashion-mnist puts them in ${DEBIAN_FASHION_MNIST})`,
      );
    }
  }
  return idxPair(
    parseIdx(readFileSync(join(dir, images)), join(dir, images)),
    parseIdx(readFileSync(join(dir, labels)), join(dir, labels)),
    dir,
  );
}

export const IDX_FILES = FILES;
