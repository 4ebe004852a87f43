// Evaluation of a photo split in bounded memory: synthetic photos (JPEG, some PNG, some stored
// turned with an EXIF orientation, sizes from 96x72 to 160x128) are imported into an S3 server
// (s3rver) as an encoded dataset; then an evaluator process scores a random-init encoder on it by kNN
// (k 200, t 0.1) over gRPC, once on a tenth of the split and once on all of it, each in a fresh
// process. Reported: each process's peak RSS (VmHWM) and the ratio of the two, which stays near 1
// when memory does not grow with the split, besides images/s and the phases' seconds.
//
//   npm run -s bench:eval                              100,000 train + 10,000 test photos, resnet-mini
//   npm run -s bench:eval -- --smoke                   2,000 + 500 photos (seconds to a minute)
//   npm run -s bench:eval -- --train 20000 --test 2000 --arch resnet18-cifar
//
// resnet-mini is the default because a ResNet-18 forward on the CPU is 14 images/s here (2 hours
// for 110,000 photos); the evaluator's memory does not depend on the encoder beyond its weights and
// one batch of activations. Writes docs/results/bench-eval.json (a smoke run: a temporary directory).
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import * as grpc from "@grpc/grpc-js";
import { npmCommand, roundTo, writeResults } from "@adco/cli";
import { ENCODER_ARCH_BY_NAME } from "@adco/proto";
import {
  type EvaluateEvent,
  EvaluateRequest,
  type EvaluationResult,
  EvaluatorClient,
} from "@adco/proto/evaluator";
import { channelOptions, launchService } from "@adco/service-kit";
import { DatasetWriter, ObjectStore } from "@adco/storage";
import { startS3Server } from "@adco/storage/testing";
import sharp from "sharp";

const { values } = parseArgs({
  options: {
    smoke: { type: "boolean", default: false },
    train: { type: "string", default: "100000" },
    test: { type: "string", default: "10000" },
    arch: { type: "string", default: "resnet-mini" },
  },
});
const smoke = values.smoke;
const TRAIN = smoke ? 2000 : Number(values.train);
const TEST = smoke ? 500 : Number(values.test);
const ARCH = values.arch;
const CLASSES = Array.from({ length: 10 }, (_, i) => `class-${i}`);
const BUCKET = "adco-datasets";
const encoder = (ENCODER_ARCH_BY_NAME as Record<string, number | undefined>)[ARCH];
if (encoder === undefined) throw new Error(`--arch: one of ${Object.keys(ENCODER_ARCH_BY_NAME).join(", ")}`);

/** Photo `id` of class `label`: a tinted gradient with a moving wave, in one of four file kinds. */
async function photo(id: number, label: number): Promise<Buffer> {
  const width = 96 + ((id * 37) % 65);
  const height = 72 + ((id * 53) % 57);
  const raw = Buffer.alloc(width * height * 3);
  const hue = (label / CLASSES.length) * 2 * Math.PI;
  const tint = [Math.cos(hue), Math.cos(hue + 2.1), Math.cos(hue + 4.2)];
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      const wave = 40 * Math.sin((x + id) / (6 + label)) * Math.cos(y / 9);
      for (let c = 0; c < 3; c++)
        raw[(y * width + x) * 3 + c] = 128 + 70 * tint[c]! + wave + ((x * y + id) % 13);
    }
  const image = sharp(raw, { raw: { width, height, channels: 3 } });
  if (id % 10 === 3) return image.png().toBuffer();
  if (id % 7 === 5)
    return image.rotate(-90).withMetadata({ orientation: 6 }).jpeg({ quality: 85 }).toBuffer();
  return image.jpeg({ quality: 85 }).toBuffer();
}

const s3 = await startS3Server();
const store = new ObjectStore(s3.settings);
await store.ensureBucket(BUCKET);

/** Two datasets from one set of photos: "photos" (all) and "photos-tenth" (the first tenth of each split). */
async function importPhotos(): Promise<{ seconds: number; bytes: number }> {
  const t0 = performance.now();
  const writer = (name: string) =>
    new DatasetWriter(store, {
      name,
      bucket: BUCKET,
      source: "bench-eval",
      encoding: "encoded",
      classes: CLASSES,
    });
  const [all, tenth] = [writer("photos"), writer("photos-tenth")];
  let bytes = 0;
  let id = 0;
  for (const [split, count] of [
    ["train", TRAIN],
    ["test", TEST],
  ] as const) {
    const inTenth = Math.ceil(count / 10);
    for (let start = 0; start < count; start += 256) {
      const ids = Array.from({ length: Math.min(256, count - start) }, (_, i) => start + i);
      const files = await Promise.all(ids.map((i) => photo(id + i, i % CLASSES.length)));
      for (const [j, i] of ids.entries()) {
        const record = { sampleId: id + i, label: i % CLASSES.length, data: files[j]! };
        bytes += record.data.byteLength;
        await all.add(split, record);
        if (i < inTenth) await tenth.add(split, record);
      }
      process.stderr.write(`\rimport ${split} ${start + ids.length}/${count}`);
    }
    process.stderr.write("\n");
    id += count;
  }
  await Promise.all([all.publish(), tenth.publish()]);
  return { seconds: (performance.now() - t0) / 1000, bytes };
}

/** Peak resident set of a process (VmHWM), MiB. */
function peakRssMiB(pid: number): number {
  const kib = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
  if (!kib) throw new Error(`no VmHWM in /proc/${pid}/status`);
  return Number(kib) / 1024;
}

/** One evaluation in a fresh evaluator process: its result, peak RSS and phase seconds. */
async function evaluateIn(dataset: string) {
  const evaluator = await launchService("evaluator", {
    env: {
      ADCO_S3_ENDPOINT: s3.settings.endpoint,
      ADCO_S3_ACCESS_KEY: s3.settings.accessKey,
      ADCO_S3_SECRET_KEY: s3.settings.secretKey,
    },
  });
  const client = new EvaluatorClient(
    evaluator.grpcAddress,
    grpc.credentials.createInsecure(),
    channelOptions(),
  );
  try {
    const startRss = peakRssMiB(evaluator.child.pid!);
    const phases = new Map<string, { first: number; last: number; total: number }>();
    const t0 = performance.now();
    const result = await new Promise<EvaluationResult>((resolve, reject) => {
      const call = client.evaluate(
        EvaluateRequest.fromPartial({
          randomInit: { encoder, seed: 0 },
          train: { bucket: BUCKET, name: `${dataset}:train` },
          test: { bucket: BUCKET, name: `${dataset}:test` },
          knn: { enabled: true, k: 200, temperature: 0.1 },
        }),
      );
      let last: EvaluationResult | undefined;
      call.on("data", (e: EvaluateEvent) => {
        if (e.result) last = e.result;
        if (!e.progress) return;
        const now = performance.now();
        const p = phases.get(e.progress.phase) ?? { first: now, last: now, total: 0 };
        phases.set(e.progress.phase, { ...p, last: now, total: Number(e.progress.total) });
        if (e.progress.done === e.progress.total || Number(e.progress.done) % 5000 < 500)
          process.stderr.write(`\r${dataset} ${e.progress.phase} ${e.progress.done}/${e.progress.total}   `);
      });
      call.on("error", reject);
      call.on("end", () => (last ? resolve(last) : reject(new Error("no result"))));
    });
    process.stderr.write("\n");
    const seconds = (performance.now() - t0) / 1000;
    // A phase's events come as its batches end: it runs from the previous phase's last event to its own.
    const lastOf = (phase: string) => phases.get(phase)?.last ?? t0;
    const featureSeconds = (lastOf("features:test") - lastOf("load")) / 1000;
    const images = phases.get("features:train")!.total + phases.get("features:test")!.total;
    return {
      peakRssMiB: roundTo(peakRssMiB(evaluator.child.pid!), 0),
      idleRssMiB: roundTo(startRss, 0),
      seconds: roundTo(seconds, 1),
      featureSeconds: roundTo(featureSeconds, 1),
      featureImagesPerSecond: roundTo(images / featureSeconds, 0),
      knnSeconds: roundTo((lastOf("knn") - lastOf("features:test")) / 1000, 1),
      knnTop1: roundTo(result.knn!.top1, 4),
      testImages: result.knn!.samples,
    };
  } finally {
    client.close();
    await evaluator.stop();
  }
}

const imported = await importPhotos();
console.log(
  `imported ${TRAIN} + ${TEST} photos (${(imported.bytes / 2 ** 20).toFixed(0)} MiB of files) in ${imported.seconds.toFixed(0)} s`,
);
const tenth = await evaluateIn("photos-tenth");
console.log(
  `a tenth (${Math.ceil(TRAIN / 10)} + ${Math.ceil(TEST / 10)}): peak RSS ${tenth.peakRssMiB} MiB, ${tenth.seconds} s, kNN top-1 ${(100 * tenth.knnTop1).toFixed(1)}%`,
);
const all = await evaluateIn("photos");
console.log(
  `all (${TRAIN} + ${TEST}): peak RSS ${all.peakRssMiB} MiB, ${all.seconds} s (features ${all.featureImagesPerSecond} images/s, kNN ${all.knnSeconds} s), kNN top-1 ${(100 * all.knnTop1).toFixed(1)}%`,
);
const ratio = roundTo(all.peakRssMiB / tenth.peakRssMiB, 2);
console.log(`peak RSS, all / a tenth: ${ratio} (the split is 10x)`);
await s3.stop();

const file = writeResults({
  name: "bench-eval",
  command: npmCommand("bench:eval"),
  smoke,
  results: {
    arch: ARCH,
    train: TRAIN,
    test: TEST,
    fileMiB: roundTo(imported.bytes / 2 ** 20, 0),
    importSeconds: roundTo(imported.seconds, 0),
    tenth,
    all,
    peakRssRatio: ratio,
  },
});
console.log(`results: ${file}`);
