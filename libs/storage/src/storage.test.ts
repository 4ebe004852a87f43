import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { openBundle, writeBundle } from "./bundle.js";
import { decodeShard, DatasetWriter, encodeShard, listDatasets, readManifest, readShard } from "./dataset.js";
import { MAX_OBJECT_BYTES, ObjectStore, StorageError } from "./object-store.js";
import { startS3Server, type S3ServerProcess } from "./testing.js";

let server: S3ServerProcess;
let store: ObjectStore;
const bucket = "adco-test";

before(async () => {
  server = await startS3Server();
  store = new ObjectStore(server.settings);
  await store.ensureBucket(bucket);
});

after(async () => {
  await server.stop();
});

function kind(k: string) {
  return (e: unknown) => e instanceof StorageError && e.kind === k;
}

describe("object store against an S3 server process", () => {
  it("puts, gets, lists and removes objects; ensureBucket is idempotent", async () => {
    await store.ensureBucket(bucket);
    const data = new TextEncoder().encode("hello");
    const stored = await store.put(bucket, "a/b.txt", data);
    assert.equal(stored.size, 5);
    assert.deepEqual(await store.get(bucket, "a/b.txt"), data);
    assert.deepEqual(await store.getVerified(stored), data);
    assert.equal(await store.exists(bucket, "a/b.txt"), true);
    assert.equal(await store.exists(bucket, "a/missing"), false);
    assert.deepEqual(
      (await store.list(bucket, "a/")).map((o) => o.key),
      ["a/b.txt"],
    );
    await store.remove(bucket, ["a/b.txt"]);
    assert.equal(await store.exists(bucket, "a/b.txt"), false);
  });

  it("names the cause: missing object, missing bucket, wrong credentials, over-size object", async () => {
    await assert.rejects(store.get(bucket, "nope"), kind("not-found"));
    await assert.rejects(store.get("no-such-bucket", "x"), kind("no-bucket"));
    const wrong = new ObjectStore({ ...server.settings, accessKey: "WRONG", secretKey: "wrong" });
    await assert.rejects(
      wrong.get(bucket, "x"),
      (e: unknown) => kind("auth")(e) && /access key and secret/.test((e as Error).message),
    );
    await assert.rejects(store.put(bucket, "big", new Uint8Array(MAX_OBJECT_BYTES + 1)), kind("too-large"));
  });

  it("reads JSON caught half written again, and calls JSON that stays broken corrupt", async () => {
    const whole = { token: 2, owner: "trainer-0", renewedUnixMs: 1, leaseMs: 2, released: false };
    const text = JSON.stringify(whole);
    const torn = new TextEncoder().encode(text.slice(0, 20));
    await store.put(bucket, "runs/r/owner.json", torn, "application/json");
    // The writer finishes 60 ms later (s3rver writes a PUT's file in place: a read can land inside).
    const finished = new Promise((r) => setTimeout(r, 60)).then(() =>
      store.putJson(bucket, "runs/r/owner.json", whole),
    );
    assert.deepEqual(await store.getJson(bucket, "runs/r/owner.json"), whole);
    await finished;

    await store.put(bucket, "runs/r/owner.json", torn, "application/json");
    await assert.rejects(
      store.getJson(bucket, "runs/r/owner.json"),
      (e: unknown) => kind("corrupt")(e) && /runs\/r\/owner.json: not valid JSON/.test((e as Error).message),
    );
  });

  it("retries, then reports an unreachable server as unavailable", async () => {
    const down = new ObjectStore({
      ...server.settings,
      endpoint: "http://127.0.0.1:9",
      attempts: 3,
      backoffMs: 10,
    });
    await assert.rejects(
      down.get(bucket, "x"),
      (e: unknown) => kind("unavailable")(e) && /after 3 attempts/.test((e as Error).message),
    );
  });
});

describe("datasets", () => {
  const records = Array.from({ length: 50 }, (_, i) => ({
    sampleId: 1000 + i,
    label: i % 3,
    data: new Uint8Array(100).fill(i),
  }));

  it("are published atomically (manifest last) and read back record for record", async () => {
    const writer = new DatasetWriter(store, {
      name: "toy",
      bucket,
      source: "test",
      encoding: "gray8",
      classes: ["a", "b", "c"],
      height: 10,
      width: 10,
      shardBytes: 1000,
    });
    for (const r of records) await writer.add("train", r);
    await assert.rejects(
      readManifest(store, bucket, "toy"),
      (e: unknown) => kind("not-found")(e) && /did not finish/.test((e as Error).message),
    );
    const manifest = await writer.publish();
    assert.ok(manifest.splits.train!.shards.length >= 5, "small shardBytes gives several shards");
    assert.deepEqual(manifest.splits.train!.classCounts, [17, 17, 16]);
    const read = await readManifest(store, bucket, "toy");
    const back = [];
    for (const shard of read.splits.train!.shards) back.push(...(await readShard(store, shard)));
    assert.deepEqual(
      back.map((r) => [r.sampleId, r.label, r.data[0]]),
      records.map((r) => [r.sampleId, r.label, r.data[0]]),
    );
    assert.deepEqual(await listDatasets(store, bucket), ["toy"]);
  });

  it("refuse truncated shards, checksum mismatches and shards the manifest names but the store lacks", async () => {
    const manifest = await readManifest(store, bucket, "toy");
    const [first, second, third] = manifest.splits.train!.shards;
    const good = await store.get(bucket, first!.key);
    await store.put(bucket, first!.key, good.subarray(0, good.byteLength - 7));
    await assert.rejects(
      readShard(store, first!),
      (e: unknown) => kind("corrupt")(e) && /bytes, the manifest says/.test((e as Error).message),
    );
    const flipped = (await store.get(bucket, second!.key)).slice();
    flipped[40]! ^= 0xff;
    await store.put(bucket, second!.key, flipped);
    await assert.rejects(
      readShard(store, second!),
      (e: unknown) => kind("corrupt")(e) && /sha256/.test((e as Error).message),
    );
    await store.remove(bucket, [third!.key]);
    await assert.rejects(
      readShard(store, third!),
      (e: unknown) => kind("not-found")(e) && /named by the manifest is missing/.test((e as Error).message),
    );
  });

  it("shard decoding names truncation and trailing bytes", () => {
    const bytes = encodeShard(records.slice(0, 3));
    assert.equal(decodeShard(bytes).length, 3);
    assert.throws(() => decodeShard(bytes.subarray(0, bytes.length - 1), "s"), /s: truncated in record 2/);
    assert.throws(() => decodeShard(new Uint8Array([...bytes, 0]), "s"), /1 bytes after the last record/);
    assert.throws(() => decodeShard(new Uint8Array(20), "s"), /bad magic/);
  });

  it("reject bad names and labels", async () => {
    assert.throws(
      () =>
        new DatasetWriter(store, { name: "Bad Name", bucket, source: "", encoding: "gray8", classes: ["a"] }),
      kind("invalid"),
    );
    const writer = new DatasetWriter(store, {
      name: "ok",
      bucket,
      source: "",
      encoding: "gray8",
      classes: ["a"],
    });
    await assert.rejects(
      writer.add("train", { sampleId: 1, label: 3, data: new Uint8Array(1) }),
      /label 3 outside the 1 classes/,
    );
  });
});

describe("bundles", () => {
  it("writes files then the manifest, reads them back verified, splits large files into parts", async () => {
    const big = new Uint8Array(33 * 1024 * 1024).map((_, i) => i % 251);
    const files = new Map([
      ["small.bin", new Uint8Array([1, 2, 3])],
      ["big.bin", big],
    ]);
    const ref = await writeBundle(store, bucket, "bundle/1/", files, { step: 7 });
    assert.equal(ref.key, "bundle/1/manifest.json");
    const bundle = await openBundle<{ step: number }>(store, bucket, ref.key);
    assert.equal(bundle.meta.step, 7);
    assert.deepEqual(await bundle.read("small.bin"), new Uint8Array([1, 2, 3]));
    assert.deepEqual(await bundle.read("big.bin"), big);
    assert.equal(bundle.keys().length, 4, "small, two parts of big, manifest");
    await assert.rejects(bundle.read("nope"), kind("not-found"));
    // A part changed after publication is caught.
    await store.put(bucket, "bundle/1/small.bin", new Uint8Array([9, 9, 9]));
    await assert.rejects(bundle.read("small.bin"), kind("corrupt"));
    await store.put(bucket, "bundle/2/manifest.json", new TextEncoder().encode("{}"));
    await assert.rejects(openBundle(store, bucket, "bundle/2/manifest.json"), kind("corrupt"));
  });
});
