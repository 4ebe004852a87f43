// Makes the bundled Fashion-MNIST subset (libs/datasets/data/fashion-mnist-small) from the full IDX
// files: a seeded, stratified choice of PER_CLASS images per class and split, in IDX format, gzipped.
//   npm run -s dataset:make-subset -- [SOURCE_DIR]   (default: ../shared/datasets/fashion-mnist)
import { mkdirSync, writeFileSync, copyFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { SeededRandom } from "@adco/core";
import {
  BUNDLED_FASHION_MNIST,
  DEBIAN_FASHION_MNIST,
  encodeIdx,
  IDX_FILES,
  readFashionMnist,
} from "@adco/datasets";

const PER_CLASS = { train: 600, test: 100 } as const;
const source =
  process.argv[2] ??
  (existsSync(DEBIAN_FASHION_MNIST)
    ? DEBIAN_FASHION_MNIST
    : join(import.meta.dirname, "../../shared/datasets/fashion-mnist"));

mkdirSync(BUNDLED_FASHION_MNIST, { recursive: true });
for (const split of ["train", "test"] as const) {
  const full = readFashionMnist(source, split);
  const order = new SeededRandom(split === "train" ? 1 : 2).permutation(full.count);
  const taken = new Array<number>(10).fill(0);
  const chosen = order.filter(
    (i) => taken[full.labels[i]!]! < PER_CLASS[split] && ++taken[full.labels[i]!]! > 0,
  );
  chosen.sort((a, b) => a - b);
  const pixels = full.height * full.width;
  const images = new Uint8Array(chosen.length * pixels);
  const labels = new Uint8Array(chosen.length);
  chosen.forEach((src, dst) => {
    images.set(full.images.subarray(src * pixels, (src + 1) * pixels), dst * pixels);
    labels[dst] = full.labels[src]!;
  });
  const [imageFile, labelFile] = IDX_FILES[split];
  writeFileSync(
    join(BUNDLED_FASHION_MNIST, imageFile),
    gzipSync(encodeIdx([chosen.length, full.height, full.width], images), { level: 9 }),
  );
  writeFileSync(
    join(BUNDLED_FASHION_MNIST, labelFile),
    gzipSync(encodeIdx([chosen.length], labels), { level: 9 }),
  );
  console.log(
    `${split}: ${chosen.length} images (${PER_CLASS[split]} per class) from ${full.count} in ${source}`,
  );
}
if (existsSync(join(source, "COPYRIGHT")))
  copyFileSync(join(source, "COPYRIGHT"), join(BUNDLED_FASHION_MNIST, "COPYRIGHT"));
