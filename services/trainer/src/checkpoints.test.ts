// Which checkpoint a resume starts from, against a real S3 server (s3rver): the newest whose every
// object verifies, a chosen one, none; the run's pointer as its head; retention past the head.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { status } from "@grpc/grpc-js";
import { RpcError } from "@adco/service-kit";
import {
  bankSnapshotPrefix,
  type BundleManifest,
  latestPointerKey,
  listCheckpoints,
  ObjectStore,
  runPrefix,
  runStatusKey,
  writeBundle,
} from "@adco/storage";
import { startS3Server, type S3ServerProcess } from "@adco/storage/testing";
import { type CheckpointState, CheckpointStore } from "./checkpoints.js";

const BUCKET = "ckpt";
let s3: S3ServerProcess;
let store: ObjectStore;
let checkpoints: CheckpointStore;

before(async () => {
  s3 = await startS3Server();
  store = new ObjectStore(s3.settings);
  await store.ensureBucket(BUCKET);
  checkpoints = new CheckpointStore(store, BUCKET);
});
after(async () => {
  await s3.stop();
});

const bytes = (seed: number, n = 64) => new Uint8Array(n).map((_, i) => (seed * 31 + i) & 0xff);

/**
 * A checkpoint at `step` as the trainer writes one: the bank's snapshot first (with `shards`, a
 * coordinator's bundle naming one bundle per shard), then the checkpoint's bundle and the pointer.
 */
async function writeCheckpoint(runId: string, step: number, shards = 0): Promise<void> {
  const prefix = bankSnapshotPrefix(runPrefix(runId), step);
  const shardRefs = [];
  for (let i = 0; i < shards; i++) {
    const ref = await writeBundle(
      store,
      BUCKET,
      `${prefix}shard-${i}/`,
      new Map([["weights.f32", bytes(i)]]),
      {
        step,
      },
    );
    shardRefs.push({ bucket: ref.bucket, key: ref.key, sizeBytes: ref.size, sha256: ref.sha256 });
  }
  const files = shards > 0 ? new Map<string, Uint8Array>() : new Map([["weights.f32", bytes(step)]]);
  const bank = await writeBundle(store, BUCKET, prefix, files, { step, shards: shardRefs });
  const state: CheckpointState = {
    runId,
    step,
    epoch: 0,
    cursor: { epoch: 0, done: [] } as never,
    epochLossSum: 0,
    epochSteps: step,
    epochSamples: step,
    totalSteps: 100,
    config: {},
    createdUnixMs: 1,
    bankSnapshot: { bucket: bank.bucket, key: bank.key, sizeBytes: bank.size, sha256: bank.sha256 },
    history: [],
    trainSeconds: 0,
  };
  await checkpoints.write(
    state,
    new Map([
      ["query/model.json", bytes(step + 1)],
      ["optimizer.bin", bytes(step + 2, 4096)],
    ]),
  );
}

/** Flips one byte of a bundle's file (same size, another sha256). */
async function corrupt(manifestKey: string, file: string): Promise<void> {
  const manifest = await store.getJson<BundleManifest<unknown>>(BUCKET, manifestKey);
  const key = manifest.files[file]![0]!.key;
  const data = await store.get(BUCKET, key);
  data[3] = data[3]! ^ 0x01;
  await store.put(BUCKET, key, data);
}

const manifestOf = async (runId: string, step: number) =>
  (await listCheckpoints(store, BUCKET, runId)).find((c) => c.step === step)!.key;
const bankManifestOf = (runId: string, step: number, shard?: number) =>
  `${bankSnapshotPrefix(runPrefix(runId), step)}${shard === undefined ? "" : `shard-${shard}/`}manifest.json`;
const dataLoss = (pattern: RegExp) => (e: unknown) =>
  e instanceof RpcError && e.code === status.DATA_LOSS && pattern.test(e.message);

describe("CheckpointStore.resumePoint", () => {
  it("takes the newest checkpoint whose every object (and its bank snapshot's) verifies, naming what it skipped", async () => {
    const run = "fallback";
    for (const step of [2, 4, 6]) await writeCheckpoint(run, step, step === 4 ? 2 : 0);

    const intact = await checkpoints.resumePoint(run);
    assert.equal(intact.checkpoint?.bundle.meta.step, 6);
    assert.deepEqual(intact.skipped, []);
    assert.ok(intact.isHead);
    assert.deepEqual(
      intact.checkpoint.files.get("optimizer.bin"),
      bytes(8, 4096),
      "the files' verified bytes",
    );

    await corrupt(await manifestOf(run, 6), "optimizer.bin");
    const once = await checkpoints.resumePoint(run);
    assert.equal(once.checkpoint?.bundle.meta.step, 4);
    assert.equal(once.isHead, false);
    assert.equal(once.skipped.length, 1);
    assert.equal(once.skipped[0]!.step, 6);
    assert.match(
      once.skipped[0]!.reason,
      /^DATA_LOSS: ckpt\/runs\/fallback\/ckpt-0000000006\/optimizer\.bin: sha256 /,
    );

    // The bank's snapshot is part of the checkpoint: one shard's slice of step 4 is corrupt.
    await corrupt(bankManifestOf(run, 4, 1), "weights.f32");
    const twice = await checkpoints.resumePoint(run);
    assert.equal(twice.checkpoint?.bundle.meta.step, 2);
    assert.deepEqual(
      twice.skipped.map((s) => s.step),
      [6, 4],
    );
    assert.match(
      twice.skipped[1]!.reason,
      /^DATA_LOSS: .*bank\/step-0000000004\/shard-1\/weights\.f32: sha256/,
    );

    // A missing object does not verify either; with nothing left the error lists every checkpoint.
    await store.remove(BUCKET, [`${runPrefix(run)}ckpt-0000000002/query/model.json`]);
    await assert.rejects(
      checkpoints.resumePoint(run),
      dataLoss(
        /^DATA_LOSS: no checkpoint of run fallback verifies \(step 6: DATA_LOSS: .*; step 4: DATA_LOSS: .*; step 2: NOT_FOUND: .*query\/model\.json/,
      ),
    );
  });

  it("a chosen step: that checkpoint, NOT_FOUND without one, DATA_LOSS when it does not verify", async () => {
    const run = "chosen";
    for (const step of [3, 6, 9]) await writeCheckpoint(run, step);
    const point = await checkpoints.resumePoint(run, 3);
    assert.equal(point.checkpoint?.bundle.meta.step, 3);
    assert.equal(point.isHead, false);
    assert.equal((await checkpoints.resumePoint(run, 9)).isHead, true);
    await assert.rejects(
      checkpoints.resumePoint(run, 5),
      (e: unknown) =>
        e instanceof RpcError &&
        e.code === status.NOT_FOUND &&
        e.message === "run chosen has no checkpoint at step 5 (it has 3, 6, 9)",
    );
    await corrupt(bankManifestOf(run, 6), "weights.f32");
    await assert.rejects(
      checkpoints.resumePoint(run, 6),
      dataLoss(
        /^DATA_LOSS: the checkpoint at step 6 of run chosen does not verify: DATA_LOSS: .*weights\.f32/,
      ),
    );
  });

  it("starts from the head: checkpoints past the pointer are left behind, and the next prune deletes them", async () => {
    const run = "head";
    for (const step of [2, 4, 6, 8]) await writeCheckpoint(run, step);
    assert.equal(await checkpoints.prune(run, 3, 8), 1);
    const back = await checkpoints.resumePoint(run, 4);
    await checkpoints.moveHead(run, back.checkpoint!.bundle);
    assert.deepEqual(await store.getJson(BUCKET, latestPointerKey(run)), {
      step: 4,
      manifest: `${runPrefix(run)}ckpt-0000000004/manifest.json`,
    });
    // 6 and 8 still verify, but the run went back to 4.
    const next = await checkpoints.resumePoint(run);
    assert.equal(next.checkpoint?.bundle.meta.step, 4);
    assert.ok(next.isHead);

    // The run writes step 5 (say, at a stop): 6 and 8 go, bank snapshots with them; 4 and 5 stay.
    await writeCheckpoint(run, 5);
    assert.equal(await checkpoints.prune(run, 3, 5), 2);
    assert.deepEqual(await checkpoints.steps(run), [4, 5]);
    const left = (await store.list(BUCKET, runPrefix(run))).map((o) => o.key);
    assert.ok(!left.some((k) => /-000000000[68]\//.test(k)), left.join("\n"));
    assert.ok(left.some((k) => k.endsWith("bank/step-0000000004/manifest.json")));
  });

  it("an unreadable pointer: every checkpoint is a candidate; a run with none starts from none", async () => {
    const run = "pointer";
    for (const step of [1, 2]) await writeCheckpoint(run, step);
    await store.put(BUCKET, latestPointerKey(run), new TextEncoder().encode("{not json"));
    const point = await checkpoints.resumePoint(run);
    assert.equal(point.checkpoint?.bundle.meta.step, 2);
    assert.equal(point.isHead, false);
    assert.match(point.skipped[0]!.reason, /^latest\.json: DATA_LOSS: .*not valid JSON/);
    assert.deepEqual(await checkpoints.resumePoint("nothing-yet"), {
      checkpoint: undefined,
      skipped: [],
      isHead: false,
    });
  });
});

describe("CheckpointStore.runIds", () => {
  it("lists a run that has only its status (its trainer died before the first checkpoint)", async () => {
    await store.putJson(BUCKET, runStatusKey("status-only"), { state: "RUN_STATE_INITIALIZING_BANK" });
    const ids = await checkpoints.runIds();
    assert.ok(ids.includes("status-only"), ids.join(", "));
    assert.ok(ids.includes("fallback"));
    assert.equal(new Set(ids).size, ids.length);
    assert.deepEqual(await new CheckpointStore(store, "no-such-bucket").runIds(), []);
  });
});
