// The data plane end to end: a dataset imported into an S3 server process, data-worker processes
// reading it, and the feeder consuming an epoch over real gRPC streams.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { importDataset } from "@adco/cli";
import { EpochCursor, ViewFeeder, type FeederEvent } from "@adco/dataplane";
import { BUNDLED_FASHION_MNIST } from "@adco/datasets";
import { DataWorkerClient, Pipeline, type ViewsResponse } from "@adco/proto/data_worker";
import { channelOptions } from "@adco/service-kit";
import { ObjectStore, readManifest } from "@adco/storage";
import { startS3Server, type S3ServerProcess } from "@adco/storage/testing";
import { startService, type ServiceProcess } from "./lib/service-process.js";

const BUCKET = "adco-datasets";
let s3: S3ServerProcess;
let store: ObjectStore;
let recordCounts: number[];
const workers: ServiceProcess[] = [];

function s3Env(): Record<string, string> {
  return {
    ADCO_S3_ENDPOINT: s3.settings.endpoint,
    ADCO_S3_ACCESS_KEY: s3.settings.accessKey,
    ADCO_S3_SECRET_KEY: s3.settings.secretKey,
  };
}

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
