// The data plane end to end: a dataset imported into an S3 server process, data-worker processes
// reading it, and the feeder consuming an epoch over real gRPC streams.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { importDataset } from "@adco/cli";
import { EpochCursor, ViewFeeder, type FeederEvent } from "@adco/dataplane";
import { BUNDLED_FASHION_MNIST } from "@adco/datasets";
import { DataWorkerClient, Pipeline, type ViewsResponse } from "@adco/proto/data_worker";
import { channelOptions } from "@adco/service-kit";
import { DatasetWriter, ObjectStore, readManifest } from "@adco/storage";
import { startS3Server, type S3ServerProcess } from "@adco/storage/testing";
import { s3Env as s3EnvOf, startService, type ServiceProcess } from "./lib/service-process.js";

const BUCKET = "adco-datasets";
let s3: S3ServerProcess;
let store: ObjectStore;
let recordCounts: number[];
const workers: ServiceProcess[] = [];

const s3Env = () => s3EnvOf(s3.settings);

async function worker(): Promise<ServiceProcess> {
  const w = await startService("data-worker", s3Env());
  workers.push(w);
  return w;
}

function feeder(epoch: number, cursor?: EpochCursor, events: FeederEvent[] = []) {
  return new ViewFeeder({
    consumerId: "test",
    dataset: { bucket: BUCKET, name: "fmnist:train" },
    augment: { pipeline: Pipeline.PIPELINE_TWO_VIEW_GRAY_SMALL, outputSize: 28, crops: [], seed: 5 },
    batchSize: 50,
    recordCounts,
    epoch,
    cursor,
    leaseRecords: 200,
    onEvent: (e) => events.push(e),
  });
}

before(async () => {
  s3 = await startS3Server();
  store = new ObjectStore(s3.settings);
  // Shards of ~160 KiB: 30 of them, so leases spread over workers.
  await importDataset(store, {
    format: "idx",
    source: BUNDLED_FASHION_MNIST,
    name: "fmnist",
    bucket: BUCKET,
    shardBytes: 160_000,
    quiet: true,
  });
  const manifest = await readManifest(store, BUCKET, "fmnist");
  recordCounts = manifest.splits.train!.shards.map((s) => s.records);
});

after(async () => {
  await Promise.all(workers.map((w) => w.stop("SIGKILL")));
  await s3.stop();
});

async function photoDataset(): Promise<number[]> {
  const sharp = (await import("sharp")).default;
  const root = mkdtempSync(join(tmpdir(), "adco-photos-"));
  for (const cls of ["a", "b"]) {
    mkdirSync(join(root, cls));
    for (let i = 0; i < 6; i++) {
      const raw = Buffer.from(
        Array.from({ length: 64 * 48 * 3 }, (_, j) => (j * (i + 3) + cls.charCodeAt(0)) % 256),
      );
      writeFileSync(
        join(root, cls, `${i}.jpg`),
        await sharp(raw, { raw: { width: 64, height: 48, channels: 3 } })
          .jpeg()
          .toBuffer(),
      );
    }
  }
  await importDataset(store, {
    format: "imagefolder",
    source: root,
    name: "photos",
    bucket: BUCKET,
    quiet: true,
  });
  return (await readManifest(store, BUCKET, "photos")).splits.train!.shards.map((s) => s.records);
}

async function collect(f: ViewFeeder): Promise<Map<number, Buffer[]>> {
  const views = new Map<number, Buffer[]>();
  for await (const { batch } of f.batches()) {
    batch.sampleIds.forEach((id, i) =>
      views.set(
        id,
        batch.views.map((v) => {
          const per = v.data.byteLength / batch.sampleIds.length;
          return Buffer.from(v.data.subarray(i * per, (i + 1) * per));
        }),
      ),
    );
  }
  return views;
}

describe("data plane", () => {
  it("delivers every sample of an epoch exactly once while a worker is SIGKILLed and another joins", async () => {
    const [a, b] = await Promise.all([worker(), worker()]);
    const events: FeederEvent[] = [];
    const f = feeder(0, undefined, events);
    f.addWorker(a!.grpcAddress);
    f.addWorker(b!.grpcAddress);
    const counts = new Map<number, number>();
    let batches = 0;
    for await (const { batch } of f.batches()) {
      batches++;
      assert.equal(batch.views.length, 2);
      assert.deepEqual(batch.views[0]!.shape, [batch.sampleIds.length, 28, 28, 1]);
      for (const id of batch.sampleIds) counts.set(id, (counts.get(id) ?? 0) + 1);
      if (batches === 30) {
        await a!.stop("SIGKILL");
        f.addWorker((await worker()).grpcAddress);
      }
    }
    assert.equal(counts.size, 6000);
    assert.ok(
      [...counts.values()].every((c) => c === 1),
      "no sample twice",
    );
    assert.ok(events.some((e) => e.kind === "worker-lost" && e.address === a!.grpcAddress));
    assert.equal(events.filter((e) => e.kind === "worker-joined").length, 3);
  });

  it("resumes an epoch from a saved cursor without repeating or skipping a sample", async () => {
    const w = await worker();
    const first = feeder(1);
    first.addWorker(w.grpcAddress);
    const seen = new Set<number>();
    for await (const { batch } of first.batches()) {
      for (const id of batch.sampleIds) seen.add(id);
      if (first.cursor.done >= 2500) break;
    }
    const saved = JSON.parse(JSON.stringify(first.cursor.serialize()));
    assert.ok(saved.done.length < 2000, "the cursor is small");
    const resumed = feeder(1, EpochCursor.deserialize(saved));
    resumed.addWorker(w.grpcAddress);
    let repeated = 0;
    for await (const { batch } of resumed.batches()) {
      for (const id of batch.sampleIds) {
        if (seen.has(id)) repeated++;
        seen.add(id);
      }
    }
    assert.equal(repeated, 0);
    assert.equal(seen.size, 6000);
  });

  it("never sends more batches than the consumer's credit", async () => {
    const w = workers.at(-1) ?? (await worker());
    const client = new DataWorkerClient(w.grpcAddress, grpc.credentials.createInsecure(), channelOptions());
    const call = client.streamViews();
    const received: ViewsResponse[] = [];
    call.on("data", (r: ViewsResponse) => received.push(r));
    call.on("error", () => {}); // the CANCELLED of our own cancel() below
    call.write({
      open: {
        consumerId: "credit",
        dataset: { bucket: BUCKET, name: "fmnist" },
        augment: { pipeline: Pipeline.PIPELINE_NONE, outputSize: 28, crops: [], seed: 0 },
        batchSize: 10,
      },
    });
    call.write({
      lease: { leaseId: "l1", epoch: 0, shard: 0, records: Array.from({ length: 100 }, (_, i) => i) },
    });
    call.write({ credit: { batches: 2 } });
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal(received.filter((r) => r.batch).length, 2);
    call.write({ credit: { batches: 1 } });
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(received.filter((r) => r.batch).length, 3);
    call.write({ revoke: { leaseId: "l1" } });
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(received.at(-1)?.leaseEnded?.recordsSent, 30);
    call.cancel();
    client.close();
  });

  it("fails a lease on a corrupt shard (and carries on), and answers NOT_FOUND for a missing dataset", async () => {
    const w = workers.at(-1) ?? (await worker());
    const manifest = await readManifest(store, BUCKET, "fmnist");
    const victim = manifest.splits.test!.shards[0]!;
    const bytes = (await store.get(BUCKET, victim.key)).slice();
    bytes[100]! ^= 0xff;
    await store.put(BUCKET, victim.key, bytes);
    const events: FeederEvent[] = [];
    const f = new ViewFeeder({
      consumerId: "corrupt",
      dataset: { bucket: BUCKET, name: "fmnist:test" },
      augment: { pipeline: Pipeline.PIPELINE_NONE, outputSize: 28, crops: [], seed: 0 },
      batchSize: 100,
      recordCounts: manifest.splits.test!.shards.map((s) => s.records),
      epoch: 0,
      onEvent: (e) => events.push(e),
    });
    f.addWorker(w.grpcAddress);
    let delivered = 0;
    for await (const { batch } of f.batches()) delivered += batch.sampleIds.length;
    assert.equal(delivered + f.failed, 1000);
    assert.equal(f.failed, victim.records);
    assert.ok(events.some((e) => e.kind === "lease-failed" && /sha256/.test(e.error)));

    const client = new DataWorkerClient(w.grpcAddress, grpc.credentials.createInsecure(), channelOptions());
    const call = client.streamViews();
    const status = new Promise<grpc.StatusObject>((resolve) => call.on("status", resolve));
    call.on("data", () => {});
    call.on("error", () => {});
    call.write({
      open: {
        consumerId: "x",
        dataset: { bucket: BUCKET, name: "missing" },
        augment: { pipeline: Pipeline.PIPELINE_NONE, outputSize: 28, crops: [], seed: 0 },
        batchSize: 10,
      },
    });
    const s = await status;
    assert.equal(s.code, grpc.status.NOT_FOUND);
    assert.match(s.details, /dataset missing: no manifest/);
    client.close();
  });
});

describe("photo pipelines", () => {
  it("serve MoCo v2 two-view and multi-crop views of JPEGs, the same from any worker", async () => {
    const counts = await photoDataset();
    const [w1, w2] = await Promise.all([worker(), worker()]);
    const crops = [
      { size: 32, minScale: 0.2, maxScale: 1, count: 2 },
      { size: 16, minScale: 0.1, maxScale: 0.5, count: 3 },
    ];
    const open = (address: string, pipeline: Pipeline) => {
      const f = new ViewFeeder({
        consumerId: "photos",
        dataset: { bucket: BUCKET, name: "photos" },
        augment: {
          pipeline,
          outputSize: 32,
          crops: pipeline === Pipeline.PIPELINE_MULTI_CROP ? crops : [],
          seed: 3,
        },
        batchSize: 4,
        recordCounts: counts,
        epoch: 0,
      });
      f.addWorker(address);
      return f;
    };
    const fromFirst = await collect(open(w1!.grpcAddress, Pipeline.PIPELINE_MULTI_CROP));
    const fromSecond = await collect(open(w2!.grpcAddress, Pipeline.PIPELINE_MULTI_CROP));
    assert.equal(fromFirst.size, 12);
    const [id, views] = [...fromFirst][0]!;
    assert.deepEqual(
      views.map((v) => v.length),
      [32 * 32 * 3, 32 * 32 * 3, 16 * 16 * 3, 16 * 16 * 3, 16 * 16 * 3],
    );
    assert.ok(!views[0]!.equals(views[1]!), "two crops of one image differ");
    assert.ok(
      fromSecond.get(id)!.every((v, i) => v.equals(views[i]!)),
      "another worker makes the same views",
    );
    const twoView = await collect(open(w1!.grpcAddress, Pipeline.PIPELINE_TWO_VIEW));
    assert.deepEqual(
      [...twoView.values()][0]!.map((v) => v.length),
      [32 * 32 * 3, 32 * 32 * 3],
    );
  });
});

describe("garbage in a shard", () => {
  it("a record that is not an image is skipped and reported by sample id; the epoch still completes", async () => {
    const sharp = (await import("sharp")).default;
    const good = new Uint8Array(
      await sharp(Buffer.alloc(20 * 20 * 3, 90), { raw: { width: 20, height: 20, channels: 3 } })
        .png()
        .toBuffer(),
    );
    const writer = new DatasetWriter(store, {
      name: "garbage",
      bucket: BUCKET,
      source: "test",
      encoding: "encoded",
      classes: ["x"],
    });
    for (let i = 0; i < 6; i++) {
      const data = i === 3 ? new Uint8Array(300).map((_, j) => (j * 97) % 256) : good;
      await writer.add("train", { sampleId: i, label: 0, data });
    }
    const manifest = await writer.publish();
    const events: FeederEvent[] = [];
    const f = new ViewFeeder({
      consumerId: "garbage",
      dataset: { bucket: BUCKET, name: "garbage" },
      augment: { pipeline: Pipeline.PIPELINE_TWO_VIEW, outputSize: 16, crops: [], seed: 1 },
      batchSize: 4,
      recordCounts: manifest.splits.train!.shards.map((sh) => sh.records),
      epoch: 0,
      onEvent: (e) => events.push(e),
    });
    f.addWorker((workers.at(-1) ?? (await worker())).grpcAddress);
    const ids: number[] = [];
    for await (const { batch } of f.batches()) ids.push(...batch.sampleIds);
    assert.deepEqual(ids.sort(), [0, 1, 2, 4, 5]);
    const skipped = events.find((e) => e.kind === "skipped");
    assert.ok(
      skipped && skipped.kind === "skipped" && skipped.sampleId === 3 && /cannot decode/.test(skipped.reason),
    );
  });
});
