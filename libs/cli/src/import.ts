// `adco dataset import`: reads a local data set and stores it in the sharded format. Sources:
//   idx      MNIST / Fashion-MNIST IDX files (train-* and t10k-*, gzipped or not)
//   cifar10  CIFAR-10 binary batches (data_batch_1..5.bin, test_batch.bin)
//   cifar100 CIFAR-100 binary (train.bin, test.bin; fine labels)
//   imagefolder  DIR/<split>/<class>/*.jpg|png (ImageNet layout; splits train, val, test), or
//                DIR/<class>/* as one train split. Files are stored as they are, after a full decode
//                check; the ones that do not decode are skipped and listed.
// Unreadable inputs are counted, reported by path and skipped; the manifest is written last, so an
// import that dies leaves no manifest that lies, and re-running it rewrites the same objects.
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { basename, join } from "node:path";
import { decodeRgb } from "@adco/augment";
import { FASHION_MNIST_CLASSES, idxPair, parseIdx } from "@adco/datasets";
import { type DatasetManifest, DatasetWriter, type ObjectStore } from "@adco/storage";
import { Progress } from "./progress.js";

export const IMPORT_FORMATS = ["idx", "cifar10", "cifar100", "imagefolder"] as const;
export type ImportFormat = (typeof IMPORT_FORMATS)[number];

export interface ImportOptions {
  readonly format: ImportFormat;
  readonly source: string;
  readonly name: string;
  readonly bucket: string;
  readonly classes?: readonly string[];
  readonly shardBytes?: number;
  readonly quiet?: boolean;
}

const CIFAR10_CLASSES = [
  "airplane",
  "automobile",
  "bird",
  "cat",
  "deer",
  "dog",
  "frog",
  "horse",
  "ship",
  "truck",
];

export class ImportError extends Error {
  override name = "ImportError";
}

function findFile(dir: string, candidates: string[]): string | undefined {
  return candidates.map((c) => join(dir, c)).find((p) => existsSync(p));
}

export async function importDataset(store: ObjectStore, o: ImportOptions): Promise<DatasetManifest> {
  if (!existsSync(o.source)) throw new ImportError(`${o.source}: no such directory`);
  await store.ensureBucket(o.bucket);
  switch (o.format) {
    case "idx":
      return importIdx(store, o);
    case "cifar10":
    case "cifar100":
      return importCifar(store, o);
    case "imagefolder":
      return importImageFolder(store, o);
  }
}

async function importIdx(store: ObjectStore, o: ImportOptions): Promise<DatasetManifest> {
  const splits = [
    [
      "train",
      ["train-images-idx3-ubyte.gz", "train-images-idx3-ubyte"],
      ["train-labels-idx1-ubyte.gz", "train-labels-idx1-ubyte"],
    ],
    [
      "test",
      ["t10k-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte"],
      ["t10k-labels-idx1-ubyte.gz", "t10k-labels-idx1-ubyte"],
    ],
  ] as const;
  const classes = [
    ...(o.classes ??
      (/fashion/i.test(o.source) ? FASHION_MNIST_CLASSES : Array.from({ length: 10 }, (_, i) => String(i)))),
  ];
  let writer: DatasetWriter | undefined;
  let sampleId = 0;
  for (const [split, imageNames, labelNames] of splits) {
    const imagesPath = findFile(o.source, [...imageNames]);
    const labelsPath = findFile(o.source, [...labelNames]);
    if (!imagesPath || !labelsPath) {
      if (split === "train")
        throw new ImportError(
          `${o.source}: no ${imageNames[0]} / ${labelNames[0]} (IDX files of MNIST or Fashion-MNIST)`,
        );
      continue;
    }
    const set = idxPair(
      parseIdx(readFileSync(imagesPath), imagesPath),
      parseIdx(readFileSync(labelsPath), labelsPath),
      o.source,
    );
    writer ??= new DatasetWriter(store, {
      name: o.name,
      bucket: o.bucket,
      source: o.source,
      encoding: "gray8",
      classes,
      height: set.height,
      width: set.width,
      shardBytes: o.shardBytes,
    });
    const pixels = set.height * set.width;
    const progress = o.quiet ? undefined : new Progress(`import ${split}`, set.count);
    for (let i = 0; i < set.count; i++) {
      const label = set.labels[i]!;
      if (label >= classes.length) {
        writer.skip(`${basename(labelsPath)}[${i}]`, `label ${label} outside the ${classes.length} classes`);
      } else {
        await writer.add(split, {
          sampleId: sampleId,
          label,
          data: set.images.subarray(i * pixels, (i + 1) * pixels),
        });
      }
      sampleId++;
      progress?.tick();
    }
  }
  return writer!.publish();
}

async function importCifar(store: ObjectStore, o: ImportOptions): Promise<DatasetManifest> {
  const fine = o.format === "cifar100";
  const labelBytes = fine ? 2 : 1;
  const recordBytes = labelBytes + 3072;
  const files = fine
    ? [
        ["train", ["train.bin"]],
        ["test", ["test.bin"]],
      ]
    : [
        ["train", [1, 2, 3, 4, 5].map((i) => `data_batch_${i}.bin`)],
        ["test", ["test_batch.bin"]],
      ];
  const classes = [
    ...(o.classes ?? (fine ? Array.from({ length: 100 }, (_, i) => `class_${i}`) : CIFAR10_CLASSES)),
  ];
  const writer = new DatasetWriter(store, {
    name: o.name,
    bucket: o.bucket,
    source: o.source,
    encoding: "rgb8",
    classes,
    height: 32,
    width: 32,
    shardBytes: o.shardBytes,
  });
  const present = readdirSync(o.source);
  let sampleId = 0;
  let found = 0;
  for (const [split, names] of files as [string, string[]][]) {
    for (const name of names) {
      if (!present.includes(name)) continue;
      found++;
      const bytes = readFileSync(join(o.source, name));
      if (bytes.byteLength % recordBytes !== 0) {
        writer.skip(
          join(o.source, name),
          `${bytes.byteLength} bytes is not a whole number of ${recordBytes}-byte records`,
        );
        continue;
      }
      const count = bytes.byteLength / recordBytes;
      const progress = o.quiet ? undefined : new Progress(`import ${name}`, count);
      for (let i = 0; i < count; i++) {
        const record = bytes.subarray(i * recordBytes, (i + 1) * recordBytes);
        const label = record[labelBytes - 1]!;
        // CHW planes -> HWC pixels.
        const hwc = new Uint8Array(3072);
        for (let p = 0; p < 1024; p++)
          for (let c = 0; c < 3; c++) hwc[p * 3 + c] = record[labelBytes + c * 1024 + p]!;
        if (label >= classes.length)
          writer.skip(`${name}[${i}]`, `label ${label} outside the ${classes.length} classes`);
        else await writer.add(split, { sampleId, label, data: hwc });
        sampleId++;
        progress?.tick();
      }
    }
  }
  if (found === 0)
    throw new ImportError(`${o.source}: no CIFAR binary batches (${files.flatMap(([, n]) => n).join(", ")})`);
  return writer.publish();
}

/** A short human summary of a manifest. */
export function describeManifest(m: DatasetManifest): string {
  const lines = [
    `${m.name}: ${m.encoding}${m.height ? ` ${m.height}x${m.width}` : ""}, ${m.classes.length} classes, from ${m.source}, ${m.createdAt}`,
  ];
  for (const [split, s] of Object.entries(m.splits)) {
    const bytes = s.shards.reduce((n, sh) => n + sh.size, 0);
    lines.push(
      `  ${split}: ${s.count} samples in ${s.shards.length} shards (${(bytes / 1024 / 1024).toFixed(1)} MiB)`,
    );
  }
  lines.push(`  skipped: ${m.skipped.length}`);
  for (const s of m.skipped.slice(0, 20)) lines.push(`    ${s.path}: ${s.reason}`);
  if (m.skipped.length > 20) lines.push(`    ... and ${m.skipped.length - 20} more`);
  return lines.join("\n");
}

const IMAGE_FILE = /\.(jpe?g|png|webp|tiff?|gif|avif)$/i;
const SPLIT_DIRS = ["train", "val", "test"];

function subdirs(dir: string): string[] {
  return readdirSync(dir)
    .filter((d) => statSync(join(dir, d)).isDirectory())
    .sort();
}

async function importImageFolder(store: ObjectStore, o: ImportOptions): Promise<DatasetManifest> {
  const top = subdirs(o.source);
  const splits = top.some((d) => SPLIT_DIRS.includes(d))
    ? top.filter((d) => SPLIT_DIRS.includes(d)).map((d) => [d, join(o.source, d)] as const)
    : ([["train", o.source]] as const);
  const classes = [...(o.classes ?? subdirs(splits[0]![1]))];
  if (classes.length === 0)
    throw new ImportError(
      `${o.source}: no class directories (expected DIR/<class>/*.jpg or DIR/train/<class>/*.jpg)`,
    );
  const writer = new DatasetWriter(store, {
    name: o.name,
    bucket: o.bucket,
    source: o.source,
    encoding: "encoded",
    classes,
    shardBytes: o.shardBytes,
  });
  let sampleId = 0;
  for (const [split, dir] of splits) {
    const files: [string, number][] = [];
    for (const cls of subdirs(dir)) {
      const label = classes.indexOf(cls);
      const names = readdirSync(join(dir, cls))
        .filter((f) => IMAGE_FILE.test(f))
        .sort();
      if (label < 0) {
        for (const f of names) writer.skip(join(dir, cls, f), `class ${cls} is not in the class list`);
        continue;
      }
      for (const f of names) files.push([join(dir, cls, f), label]);
    }
    const progress = o.quiet ? undefined : new Progress(`import ${split}`, files.length);
    for (const [path, label] of files) {
      const id = sampleId++;
      progress?.tick();
      let bytes: Uint8Array;
      try {
        bytes = readFileSync(path);
      } catch (e) {
        // Node's message repeats the path; the listing prints it once, so keep only the cause.
        writer.skip(path, `cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
        continue;
      }
      try {
        await decodeRgb(bytes);
      } catch (e) {
        writer.skip(path, (e as Error).message);
        continue;
      }
      await writer.add(split, { sampleId: id, label, data: bytes });
    }
  }
  return writer.publish();
}
