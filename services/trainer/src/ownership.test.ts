// One owner per run, against a real S3 server (s3rver): a live lease refuses a takeover, a released or
// ended one does not, a restart of the same trainer takes its run back at once, a takeover is found by
// the old owner's next check, and two trainers that took the same token are ordered by their ids.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { status } from "@grpc/grpc-js";
import { createLogger, RpcError } from "@adco/service-kit";
import { ObjectStore, runOwnerKey } from "@adco/storage";
import { startS3Server, type S3ServerProcess } from "@adco/storage/testing";
import { FencedError, leaseLeftMs, type OwnerRecord, readOwner, RunOwnership } from "./ownership.js";

const BUCKET = "owners";
let s3: S3ServerProcess;
let store: ObjectStore;

before(async () => {
  s3 = await startS3Server();
  store = new ObjectStore(s3.settings);
  await store.ensureBucket(BUCKET);
});
after(async () => {
  await s3.stop();
});

const log = createLogger("trainer", "silent");
const trainer = (trainerId: string, leaseMs = 60_000) => ({ store, bucket: BUCKET, trainerId, leaseMs, log });

describe("RunOwnership", () => {
  it("takes a new run with token 1 and writes its lease", async () => {
    const owned = await RunOwnership.take(trainer("a"), "new");
    assert.deepEqual(owned.fence, { token: 1, owner: "a" });
    const record = await readOwner(store, BUCKET, "new");
    assert.equal(record?.owner, "a");
    assert.equal(record?.released, false);
    await owned.check();
  });

  it("refuses a takeover while another trainer's lease is live, with FAILED_PRECONDITION naming it", async () => {
    await RunOwnership.take(trainer("a"), "live");
    await assert.rejects(
      RunOwnership.take(trainer("b"), "live"),
      (e: unknown) =>
        e instanceof RpcError &&
        e.code === status.FAILED_PRECONDITION &&
        /trained by trainer "a"/.test(e.message),
    );
  });

  it("lets the same trainer (a restart) take its run back at once, with the next token", async () => {
    await RunOwnership.take(trainer("a"), "restart");
    const again = await RunOwnership.take(trainer("a"), "restart");
    assert.equal(again.fence.token, 2);
  });

  it("lets another trainer take a released run at once, and one whose lease has ended", async () => {
    const first = await RunOwnership.take(trainer("a"), "released");
    await first.release();
    assert.equal((await readOwner(store, BUCKET, "released"))?.released, true);
    const second = await RunOwnership.take(trainer("b"), "released");
    assert.deepEqual(second.fence, { token: 2, owner: "b" });

    await RunOwnership.take(trainer("a", 300), "ended");
    await assert.rejects(RunOwnership.take(trainer("b"), "ended"));
    await new Promise((r) => setTimeout(r, 400));
    assert.equal((await RunOwnership.take(trainer("b"), "ended")).fence.token, 2);
  });

  it("the old owner's check finds the takeover; it then writes nothing, not even its release", async () => {
    const old = await RunOwnership.take(trainer("a", 300), "taken");
    await new Promise((r) => setTimeout(r, 400));
    const next = await RunOwnership.take(trainer("b"), "taken");
    await assert.rejects(
      old.check(),
      (e: unknown) => e instanceof FencedError && /taken over by token 2/.test(e.message),
    );
    assert.ok(old.lost instanceof FencedError);
    await old.release();
    const record = await readOwner(store, BUCKET, "taken");
    assert.deepEqual(
      { token: record?.token, owner: record?.owner, released: record?.released },
      {
        ...next.fence,
        released: false,
      },
    );
  });

  it("orders two trainers that took the same token by id: the record converges on the higher one", async () => {
    const a = await RunOwnership.take(trainer("a"), "race");
    // "b" read the same record as "a" did and wrote the same token after it: the store says "b".
    const raced: OwnerRecord = {
      token: a.fence.token,
      owner: "b",
      renewedUnixMs: Date.now(),
      leaseMs: 60_000,
      released: false,
    };
    await store.putJson(BUCKET, runOwnerKey("race"), raced);
    await assert.rejects(a.check(), FencedError);
    // Had "a" written last, "b"'s check would write "b" back over it.
    const b = await RunOwnership.take(trainer("b"), "race2");
    await store.putJson(BUCKET, runOwnerKey("race2"), { ...raced, owner: "a", token: b.fence.token });
    await b.check();
    assert.equal((await readOwner(store, BUCKET, "race2"))?.owner, "b");
  });

  it("keepRenewed moves the lease on, and calls onLost once when taken over", async () => {
    const owned = await RunOwnership.take(trainer("a", 600), "renewed");
    const before = (await readOwner(store, BUCKET, "renewed"))!.renewedUnixMs;
    const lost = new Promise<FencedError>((resolve) => owned.keepRenewed(resolve));
    await new Promise((r) => setTimeout(r, 500));
    const renewed = (await readOwner(store, BUCKET, "renewed"))!;
    assert.ok(renewed.renewedUnixMs > before, "renewed");
    assert.equal(leaseLeftMs(renewed, "b", Date.now()) > 0, true);
    const record: OwnerRecord = { ...renewed, token: 9, owner: "c" };
    await store.putJson(BUCKET, runOwnerKey("renewed"), record);
    const error = await lost;
    assert.match(error.message, /token 9 of "c"/);
    owned.close();
  });
});
