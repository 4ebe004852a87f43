import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { status } from "@grpc/grpc-js";
import { BankKind } from "@adco/proto/common";
import { Method, RunConfig } from "@adco/proto/trainer";
import { RpcError } from "@adco/service-kit";
import { resolveRunConfig, sameRunConfig } from "./run-config.js";

const dataset = { bucket: "adco-datasets", name: "fmnist" };
const resolve = (patch: Partial<RunConfig>) =>
  resolveRunConfig(RunConfig.fromPartial({ preset: "fashion-mnist", dataset, ...patch }), "ckpt");

describe("resolveRunConfig", () => {
  it("fills every field from the preset, and the trainer's bucket", () => {
    const r = resolve({});
    assert.deepEqual(
      [r.epochs, r.checkpointEvery, r.keepCheckpoints, r.bucket, r.bankKind],
      [4, 50, 3, "ckpt", BankKind.BANK_KIND_ADVERSARIAL],
    );
    assert.deepEqual([r.pretrain.lr, r.pretrain.finalLr, r.pretrain.bnGroups], [0.06, 0.0012, 8]);
    assert.equal(r.config.method, Method.METHOD_ADCO);
    assert.equal(r.config.bank!.temperature, 0.12);
    assert.equal(r.config.checkpointBucket, "ckpt");
    // What a checkpoint stores resolves to itself: a resume repeats it.
    assert.ok(sameRunConfig(resolveRunConfig(r.config, "other").config, r.config));
  });

  it("MoCo gets a queue with its own temperature; a low lr lowers the final lr; BN groups divide the batch", () => {
    const r = resolve({ method: Method.METHOD_MOCO_V2, batchSize: 100, lr: 0.001 });
    assert.equal(r.bankKind, BankKind.BANK_KIND_QUEUE);
    assert.equal(r.config.bank!.temperature, 0.2);
    assert.deepEqual([r.pretrain.lr, r.pretrain.finalLr, r.pretrain.bnGroups], [0.001, 0.001, 5]);
  });

  it("the seed seeds the views unless they have their own; the request's settings win", () => {
    const r = resolve({ seed: 7, epochs: 2, checkpointBucket: "b", keepCheckpoints: 1 });
    assert.equal(r.augment.seed, 7);
    assert.deepEqual([r.epochs, r.bucket, r.keepCheckpoints], [2, "b", 1]);
    const own = resolve({ seed: 7, augment: { pipeline: 3, outputSize: 28, crops: [], seed: 3 } });
    assert.equal(own.augment.seed, 3);
  });

  it("refuses what the core would refuse, naming the request's field", () => {
    const invalid = (pattern: RegExp) => (e: unknown) =>
      e instanceof RpcError && e.code === status.INVALID_ARGUMENT && pattern.test(e.message);
    assert.throws(() => resolve({ bankSize: 10 }), invalid(/^config\.bank_size: K = 10 is smaller/));
    assert.throws(() => resolve({ finalLr: 1 }), invalid(/^config\.final_lr: 1 is above lr 0\.06/));
  });
});
