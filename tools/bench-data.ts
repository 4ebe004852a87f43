// Benchmarks of the data plane. Measures, never asserts.
//   npm run -s bench:data [-- --jpegs 200 --seconds 15 --workers 3]
//   npm run -s bench:data -- --smoke    (seconds: 4 JPEGs, 0.3 s a part, batches of 4, 1 worker)
// Writes docs/results/bench-data.json (a smoke run: a temporary directory; see libs/cli/src/results.ts).
// 1. augmented images/s on one core: 28x28 grayscale, and 224x224 JPEG split into decode / augment /
//    encode (protobuf of the batch); each photo op on a 224 view in CPU ms, ours beside the libvips
//    calls the sharp pipeline made; two views at 224 and multi-crop (2x224 + 6x96) per CPU second,
//    beside torchvision + PIL on the same files, one thread (tools/reference/augment_bench.py), where
//    a Python has torchvision (Debian: python3-torchvision);
// 2. MB/s of ViewBatch messages over gRPC on loopback against a raw TCP copy of the same bytes;
// 3. images/s one consumer receives from 1, 2 and 3 data-worker processes (JPEG two-view, 224).
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { createServer, connect, type AddressInfo } from "node:net";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import * as grpc from "@grpc/grpc-js";
import sharp from "sharp";
import {
  ADCO_MULTI_CROP,
  applyColour,
  augmentRgb,
  augmentSmallGrayBytes,
  type CropOptions,
  decodeRgb,
  MOCO_V2_COLOR,
  MOCO_V2_CROP,
  pilGaussianBlur,
  pilResizedCrop,
  ViewRandom,
  viewSeed,
} from "@adco/augment";
import { importDataset, npmCommand, roundTo, writeResults } from "@adco/cli";
import { ViewFeeder } from "@adco/dataplane";
import { BUNDLED_FASHION_MNIST, readFashionMnist } from "@adco/datasets";
import { encodeTensor } from "@adco/proto";
import { DataWorkerService, Pipeline, ViewsResponse } from "@adco/proto/data_worker";
import { channelOptions, launchService, type LaunchedService } from "@adco/service-kit";
import { ObjectStore, readManifest } from "@adco/storage";
import type { ResultsValue } from "@adco/cli";
import { startS3Server } from "@adco/storage/testing";

const { values } = parseArgs({
  options: {
    jpegs: { type: "string", default: "200" },
    seconds: { type: "string", default: "15" },
    workers: { type: "string", default: "3" },
    smoke: { type: "boolean", default: false },
  },
});
const smoke = values.smoke;
const jpegCount = smoke ? 4 : Number(values.jpegs);
const seconds = smoke ? 0.3 : Number(values.seconds);
const maxWorkers = smoke ? 1 : Number(values.workers);
/** Images per encoded ViewBatch (part 1b) and batches sent over loopback (part 2). */
const encodeBatch = smoke ? 4 : 64;
const loopbackBatches = smoke ? 4 : 40;
const results: Record<string, ResultsValue> = {};

function rate(n: number, ms: number): string {
  return ((n * 1000) / ms).toFixed(0);
}

/** Photos with some structure (gradients and noise), 256-320 pixels a side, as JPEG. */
async function makeJpegs(count: number): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    const [w, h] = [256 + ((i * 37) % 64), 256 + ((i * 53) % 64)];
    const raw = Buffer.alloc(w * h * 3);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const j = (y * w + x) * 3;
        raw[j] = (x + i * 7) % 256;
        raw[j + 1] = (y * 2 + i) % 256;
        raw[j + 2] = (((x * y) >> 6) % 256) ^ ((j * 2654435761) >>> 28);
      }
    }
    out.push(
      new Uint8Array(
        await sharp(raw, { raw: { width: w, height: h, channels: 3 } })
          .jpeg({ quality: 90 })
          .toBuffer(),
      ),
    );
  }
  return out;
}

console.log(
  `machine: ${availableParallelism()} cores; numbers are medians of whole passes, one core unless said\n`,
);

// 1a. 28x28 grayscale.
{
  const set = readFashionMnist(BUNDLED_FASHION_MNIST, "train");
  const out = new Uint8Array(28 * 28);
  const t0 = performance.now();
  let n = 0;
  while (performance.now() - t0 < seconds * 1000) {
    for (let i = 0; i < 1000; i++, n++) {
      const id = n % set.count;
      for (let v = 0; v < 2; v++) {
        augmentSmallGrayBytes(
          set.images.subarray(id * 784, (id + 1) * 784),
          28,
          28,
          new ViewRandom(viewSeed(1, 0, id, v)),
          out,
        );
      }
    }
  }
  const perSecond = (n * 1000) / (performance.now() - t0);
  results.gray28TwoViews = { imagesPerSecondPerCore: roundTo(perSecond, 0) };
  console.log(`28x28 grayscale, two views: ${perSecond.toFixed(0)} images/s per core`);
}

// 1b. 224x224 JPEG: decode, augment (two views), encode (ViewBatch protobuf of 64 images).
const jpegs = await makeJpegs(jpegCount);
{
  let decodeMs = 0;
  let augmentMs = 0;
  let encodeMs = 0;
  let n = 0;
  const batch: Uint8Array[][] = [[], []];
  const started = performance.now();
  while (performance.now() - started < seconds * 1000) {
    const bytes = jpegs[n % jpegs.length]!;
    let t = performance.now();
    const pixels = await decodeRgb(bytes);
    decodeMs += performance.now() - t;
    t = performance.now();
    for (let v = 0; v < 2; v++)
      batch[v]!.push(augmentRgb(pixels, MOCO_V2_CROP, MOCO_V2_COLOR, new ViewRandom(viewSeed(1, 0, n, v))));
    augmentMs += performance.now() - t;
    n++;
    if (batch[0]!.length === encodeBatch) {
      t = performance.now();
      ViewsResponse.encode({
        batch: {
          leaseId: "l",
          epoch: 0,
          shard: 0,
          sampleIds: Array.from({ length: encodeBatch }, (_, i) => i),
          labels: new Array<number>(encodeBatch).fill(0),
          views: batch.map((views) => encodeTensor(Buffer.concat(views), [encodeBatch, 224, 224, 3])),
          firstPosition: 0,
          records: Array.from({ length: encodeBatch }, (_, i) => i),
        },
      }).finish();
      encodeMs += performance.now() - t;
      batch[0] = [];
      batch[1] = [];
    }
  }
  const total = decodeMs + augmentMs + encodeMs;
  results.jpeg224TwoViews = {
    imagesPerSecondPerCore: roundTo((n * 1000) / total, 0),
    decodeMsPerImage: roundTo(decodeMs / n, 2),
    augmentMsPerImage: roundTo(augmentMs / n, 2),
    encodeMsPerImage: roundTo(encodeMs / n, 2),
    decodePercent: roundTo((100 * decodeMs) / total, 0),
    augmentPercent: roundTo((100 * augmentMs) / total, 0),
    encodePercent: roundTo((100 * encodeMs) / total, 0),
  };
  console.log(
    `224x224 JPEG, two views: ${rate(n, total)} images/s per core; per image decode ${(decodeMs / n).toFixed(2)} ms ` +
      `(${((100 * decodeMs) / total).toFixed(0)}%), augment ${(augmentMs / n).toFixed(2)} ms (${((100 * augmentMs) / total).toFixed(0)}%), ` +
      `encode ${(encodeMs / n).toFixed(2)} ms (${((100 * encodeMs) / total).toFixed(0)}%)`,
  );
}

/** CPU milliseconds (this process, every thread: sharp decodes on libvips threads) since `from`. */
function cpuMsSince(from: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(from);
  return (used.user + used.system) / 1000;
}

// 1c. Per op on one 224 view, CPU ms: our ops (wasm SIMD kernels) against the libvips (sharp) calls
// the previous pipeline made for the same steps (one sharp call per view). The flip happens inside
// the resample's horizontal pass: its cost is the flipped resample's minus the plain one's, timed
// in alternation.
const source = await decodeRgb(jpegs[0]!);
{
  const box = { top: 16, left: 24, h: 200, w: 220 };
  const view = pilResizedCrop(source, box, 224);
  const out = new Uint8Array(view.length);
  const jitter = [
    { kind: "contrast", factor: 0.8 },
    { kind: "hue", factor: 0.05 },
    { kind: "brightness", factor: 1.2 },
    { kind: "saturation", factor: 1.3 },
  ] as const;
  const reps = smoke ? 3 : 200;
  const cpuMs = (f: () => unknown): number => {
    f();
    const t = process.cpuUsage();
    for (let i = 0; i < reps; i++) f();
    return cpuMsSince(t) / reps;
  };
  const cpuMsAsync = async (f: () => Promise<unknown>): Promise<number> => {
    await f();
    const t = process.cpuUsage();
    for (let i = 0; i < reps; i++) await f();
    return cpuMsSince(t) / reps;
  };
  /** CPU ms that `f` takes beyond `base`, the two run in alternation. */
  const extraCpuMs = (f: () => unknown, base: () => unknown): number => {
    let [withF, without] = [0, 0];
    for (let i = 0; i < reps; i++) {
      let t = process.cpuUsage();
      f();
      withF += cpuMsSince(t);
      t = process.cpuUsage();
      base();
      without += cpuMsSince(t);
    }
    return (withF - without) / reps;
  };
  const raw = () => sharp(view, { raw: { width: 224, height: 224, channels: 3 } });
  const ours = {
    resizedCrop: cpuMs(() => pilResizedCrop(source, box, 224, out)),
    jitter: cpuMs(() => applyColour(view, out, jitter, false)),
    hue: cpuMs(() => applyColour(view, out, [jitter[1]], false)),
    grayscale: cpuMs(() => applyColour(view, out, undefined, true)),
    flip: extraCpuMs(
      () => pilResizedCrop(source, box, 224, out, true, true),
      () => pilResizedCrop(source, box, 224, out),
    ),
    blur: cpuMs(() => pilGaussianBlur(out, 224, 224, 1.0)),
  };
  const libvips = {
    resizedCrop: await cpuMsAsync(() =>
      sharp(source.data, { raw: { width: source.width, height: source.height, channels: 3 } })
        .extract({ left: box.left, top: box.top, width: box.w, height: box.h })
        .resize(224, 224, { fit: "fill", kernel: "linear" })
        .raw()
        .toBuffer(),
    ),
    jitter: await cpuMsAsync(() =>
      raw().modulate({ brightness: 1.2, saturation: 1.3, hue: 18 }).linear(0.8, 30).raw().toBuffer(),
    ),
    grayscale: await cpuMsAsync(() => raw().grayscale().toColourspace("srgb").raw().toBuffer()),
    flip: await cpuMsAsync(() => raw().flop().raw().toBuffer()),
    blur: await cpuMsAsync(() => raw().blur(1.0).raw().toBuffer()),
    emptyCall: await cpuMsAsync(() => raw().raw().toBuffer()),
  };
  const round = (o: Record<string, number>) =>
    Object.fromEntries(Object.entries(o).map(([k, v]) => [k, roundTo(v, 3)]));
  results.perOp224CpuMs = { ours: round(ours), libvips: round(libvips) };
  console.log(
    "per op on a 224 view, CPU ms (ours: wasm SIMD, bit-exact with torchvision; flip: inside the resample | libvips via sharp):",
  );
  for (const [op, ms] of Object.entries(ours)) {
    const theirs = (libvips as Record<string, number>)[op];
    console.log(`  ${op}: ${ms.toFixed(3)}${theirs !== undefined ? ` | ${theirs.toFixed(3)}` : ""}`);
  }
  console.log(`  one empty sharp call: ${libvips.emptyCall.toFixed(3)}`);
}

// 1d. Two views at 224 and multi-crop (2 x 224 + 6 x 96), decode included, per CPU second.
const MULTI_CROP: readonly CropOptions[] = [
  ...Array.from({ length: 2 }, () => MOCO_V2_CROP),
  ...Array.from({ length: 6 }, () => ADCO_MULTI_CROP[4]!),
];
async function perCore(crops: readonly CropOptions[]): Promise<{ sources: number; cpuMs: number }> {
  let sources = 0;
  const started = performance.now();
  const t = process.cpuUsage();
  while (performance.now() - started < seconds * 1000) {
    const pixels = await decodeRgb(jpegs[sources % jpegs.length]!);
    crops.forEach((crop, v) =>
      augmentRgb(pixels, crop, MOCO_V2_COLOR, new ViewRandom(viewSeed(1, 0, sources, v))),
    );
    sources++;
  }
  return { sources, cpuMs: cpuMsSince(t) };
}
{
  const two = await perCore([MOCO_V2_CROP, MOCO_V2_CROP]);
  const multi = await perCore(MULTI_CROP);
  const pairs = (two.sources * 1000) / two.cpuMs;
  const multiImages = (multi.sources * MULTI_CROP.length * 1000) / multi.cpuMs;
  results.twoView224 = {
    pairsPerCpuSecond: roundTo(pairs, 0),
    msPerPair: roundTo(two.cpuMs / two.sources, 2),
  };
  results.multiCrop = {
    crops: "2x224+6x96",
    imagesPerCpuSecond: roundTo(multiImages, 0),
    msPerSource: roundTo(multi.cpuMs / multi.sources, 2),
  };
  console.log(
    `two views of 224, decode included: ${pairs.toFixed(0)} pairs per CPU second (${(two.cpuMs / two.sources).toFixed(2)} ms a pair)`,
  );
  console.log(
    `multi-crop 2x224 + 6x96, decode included: ${multiImages.toFixed(0)} images per CPU second (${(multi.cpuMs / multi.sources).toFixed(2)} ms a source)`,
  );

  // 1e. torchvision + PIL on the same JPEG files, one thread, where a Python has torchvision.
  const jpegDir = mkdtempSync(join(tmpdir(), "adco-bench-tv-"));
  jpegs.forEach((bytes, i) => writeFileSync(join(jpegDir, `${i}.jpg`), bytes));
  const reference = join(import.meta.dirname, "reference", "augment_bench.py");
  const python = ["python3", "/usr/bin/python3"].find((p) => {
    const probe = spawnSync(p, [reference, "probe"], { encoding: "utf8", timeout: 60_000 });
    return !probe.error && /"torchvision": "/.test(probe.stdout);
  });
  if (!python) {
    results.torchvision = null;
    console.log("torchvision + PIL: not available (apt-get install python3-torchvision)");
  } else {
    const runReference = (mode: string) => {
      const run = spawnSync(python, [reference, mode, "--dir", jpegDir, "--seconds", String(seconds)], {
        encoding: "utf8",
        timeout: 600_000,
      });
      if (run.status !== 0) throw new Error(`augment_bench.py ${mode}: ${run.stderr}`);
      return JSON.parse(run.stdout.trim().split("\n").pop()!) as {
        sourcesPerCpuSecond: number;
        viewsPerCpuSecond: number;
      };
    };
    const tvTwo = runReference("two-view");
    const tvMulti = runReference("multi-crop");
    results.torchvision = {
      twoView224PairsPerCpuSecond: roundTo(tvTwo.sourcesPerCpuSecond, 0),
      multiCropImagesPerCpuSecond: roundTo(tvMulti.viewsPerCpuSecond, 0),
      twoViewRatio: roundTo(pairs / tvTwo.sourcesPerCpuSecond, 2),
      multiCropRatio: roundTo(multiImages / tvMulti.viewsPerCpuSecond, 2),
    };
    console.log(
      `torchvision + PIL (${python}, one thread): two views ${tvTwo.sourcesPerCpuSecond.toFixed(0)} pairs per CPU second -> ours ${(pairs / tvTwo.sourcesPerCpuSecond).toFixed(2)}x; ` +
        `multi-crop ${tvMulti.viewsPerCpuSecond.toFixed(0)} images per CPU second -> ours ${(multiImages / tvMulti.viewsPerCpuSecond).toFixed(2)}x`,
    );
  }
}

// 2. gRPC streaming vs raw TCP on loopback, the same bytes: two-view 224x224x3 batches of 64 (19 MB).
{
  const views = [0, 1].map(() =>
    encodeTensor(new Uint8Array(encodeBatch * 224 * 224 * 3).fill(7), [encodeBatch, 224, 224, 3]),
  );
  const message: ViewsResponse = {
    batch: {
      leaseId: "l",
      epoch: 0,
      shard: 0,
      sampleIds: [],
      labels: [],
      views,
      firstPosition: 0,
      records: [],
    },
  };
  const messageBytes = ViewsResponse.encode(message).finish().byteLength;
  const count = loopbackBatches;
  const server = new grpc.Server(channelOptions());
  server.addService(DataWorkerService as unknown as grpc.ServiceDefinition, {
    streamViews: (call: grpc.ServerDuplexStream<unknown, ViewsResponse>) => {
      call.once("data", async () => {
        for (let i = 0; i < count; i++) {
          if (!call.write(message)) await new Promise((r) => call.once("drain", r));
        }
        call.end();
      });
    },
    describe: () => {},
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (e, p) =>
      e ? reject(e) : resolve(p),
    ),
  );
  const Client = grpc.makeGenericClientConstructor(
    DataWorkerService as unknown as grpc.ServiceDefinition,
    "x",
  );
  const client = new Client(
    `127.0.0.1:${port}`,
    grpc.credentials.createInsecure(),
    channelOptions(),
  ) as unknown as grpc.Client & {
    streamViews(): grpc.ClientDuplexStream<unknown, ViewsResponse>;
  };
  const t0 = performance.now();
  await new Promise<void>((resolve, reject) => {
    const call = client.streamViews();
    call.on("data", () => {});
    call.on("end", () => resolve());
    call.on("error", reject);
    call.write({ credit: { batches: 1 } });
  });
  const grpcMs = performance.now() - t0;
  client.close();
  server.forceShutdown();

  const tcp = createServer((socket) => {
    const chunk = Buffer.alloc(messageBytes, 7);
    let sent = 0;
    const pump = () => {
      while (sent < count) {
        sent++;
        if (!socket.write(chunk)) return void socket.once("drain", pump);
      }
      socket.end();
    };
    pump();
  });
  await new Promise<void>((r) => tcp.listen(0, "127.0.0.1", r));
  const t1 = performance.now();
  await new Promise<void>((resolve) => {
    const socket = connect((tcp.address() as AddressInfo).port, "127.0.0.1");
    socket.on("data", () => {});
    socket.on("end", resolve);
  });
  const tcpMs = performance.now() - t1;
  tcp.close();
  const mb = (messageBytes * count) / 1e6;
  results.loopback = {
    batchMB: roundTo(messageBytes / 1e6, 1),
    batches: count,
    grpcMBPerSecond: roundTo(mb / (grpcMs / 1000), 0),
    grpcBatchesPerSecond: roundTo((count * 1000) / grpcMs, 1),
    tcpMBPerSecond: roundTo(mb / (tcpMs / 1000), 0),
    grpcPercentOfTcp: roundTo((100 * tcpMs) / grpcMs, 0),
  };
  console.log(
    `loopback, ${count} batches of ${(messageBytes / 1e6).toFixed(1)} MB (one process): gRPC ${(mb / (grpcMs / 1000)).toFixed(0)} MB/s ` +
      `(${((count * 1000) / grpcMs).toFixed(1)} batches/s), raw TCP ${(mb / (tcpMs / 1000)).toFixed(0)} MB/s -> gRPC at ${((100 * tcpMs) / grpcMs).toFixed(0)}% of TCP`,
  );
}

// 3. One consumer fed by 1, 2, 3 worker processes (JPEG, two views of 224).
{
  const s3 = await startS3Server();
  const store = new ObjectStore(s3.settings);
  const dir = mkdtempSync(join(tmpdir(), "adco-bench-jpegs-"));
  mkdirSync(join(dir, "c0"));
  mkdirSync(join(dir, "c1"));
  jpegs.forEach((bytes, i) => writeFileSync(join(dir, `c${i % 2}`, `${i}.jpg`), bytes));
  await importDataset(store, {
    format: "imagefolder",
    source: dir,
    name: "bench",
    bucket: "adco-datasets",
    quiet: true,
    shardBytes: 1 << 20,
  });
  const counts = (await readManifest(store, "adco-datasets", "bench")).splits.train!.shards.map(
    (s) => s.records,
  );
  const workers: LaunchedService[] = [];
  const startWorker = async () => {
    workers.push(
      await launchService("data-worker", {
        env: {
          ADCO_S3_ENDPOINT: s3.settings.endpoint,
          ADCO_S3_ACCESS_KEY: s3.settings.accessKey,
          ADCO_S3_SECRET_KEY: s3.settings.secretKey,
        },
        echoStderr: true,
        keepLogs: false,
      }),
    );
  };
  const byWorkers: Record<string, { imagesPerSecond: number }> = {};
  for (let k = 1; k <= maxWorkers; k++) {
    await startWorker();
    let epoch = 0;
    let images = 0;
    const t0 = performance.now();
    while (performance.now() - t0 < seconds * 1000) {
      const feeder = new ViewFeeder({
        consumerId: "bench",
        dataset: { bucket: "adco-datasets", name: "bench" },
        augment: { pipeline: Pipeline.PIPELINE_TWO_VIEW, outputSize: 224, crops: [], seed: 1 },
        batchSize: 32,
        recordCounts: counts,
        epoch: epoch++,
        leaseRecords: 32,
      });
      for (const w of workers) feeder.addWorker(w.grpcAddress);
      for await (const { batch } of feeder.batches()) images += batch.sampleIds.length;
    }
    const perSecond = (images * 1000) / (performance.now() - t0);
    byWorkers[String(k)] = { imagesPerSecond: roundTo(perSecond, 0) };
    console.log(
      `${k} worker process(es) -> one consumer: ${perSecond.toFixed(0)} images/s (JPEG, two 224 views)`,
    );
  }
  results.workersToOneConsumer = byWorkers;
  await Promise.all(workers.map((w) => w.stop("SIGKILL")));
  await s3.stop();
}

const file = writeResults({
  name: "bench-data",
  command: npmCommand("bench:data"),
  smoke,
  results: { jpegs: jpegCount, secondsPerPart: seconds, encodeBatch, ...results },
});
console.log(`results: ${file}`);
process.exit(0);
