// What a run does when a part it needs is down or refuses it, as processes on loopback: an object
// store outage during the trainer's own checkpoint and status writes (waited out for
// retryTimeoutSeconds, then FAILED, written once the store is back), errors that can never succeed
// (a run fails at once with the status and message), a StopRun while the bank is down, and a SIGTERM
// that must fit in shutdownGraceMs. A small data set (512 images, batch 32, K 64) keeps steps short.
//
// The trainer has an object store of its own (A) that the tests stop and restart; the bank and the
// data worker use another (B) that stays up. So the outage hits the trainer's own writes, the path
// that failed in ~3 s, while steps go on (the bank's snapshot waits out an outage by itself).
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { RunConfig, RunState } from "@adco/proto/trainer";
import { AdversaryBankClient } from "@adco/proto/adversary_bank";
import { BankKind, EncoderArch } from "@adco/proto/common";
import { Pipeline } from "@adco/proto/data_worker";
import { channelOptions, unaryCall } from "@adco/service-kit";
import { ObjectStore, runStatusKey } from "@adco/storage";
import { startS3Server, type S3ServerProcess } from "@adco/storage/testing";
import { importTinyDataset } from "./lib/tiny-dataset.js";
import { s3Env, startService, type ServiceName, type ServiceProcess } from "./lib/service-process.js";
import {
  ended,
  getRun,
  stateMessages,
  startRun,
  stepAtLeast,
  stopRun,
  waitFor,
  watch,
} from "./lib/trainer-run.js";

let storeA: S3ServerProcess;
let storeB: S3ServerProcess;
const dirA = mkdtempSync(join(tmpdir(), "adco-outage-a-"));
let portA = 0;
let bank: ServiceProcess;
let worker: ServiceProcess;
const processes: ServiceProcess[] = [];

async function start(name: ServiceName, env: Record<string, string>): Promise<ServiceProcess> {
  const p = await startService(name, env);
  processes.push(p);
  return p;
}

const bucketOf = (runId: string) => `ckpt-${runId}`;

/** A trainer on store A, with the bank and worker of store B. */
async function startTrainer(runId: string, env: Record<string, string> = {}): Promise<ServiceProcess> {
  // The bank writes its snapshots to the run's bucket, in its own store.
  await new ObjectStore(storeB.settings).ensureBucket(bucketOf(runId));
  return start("trainer", {
    ...s3Env(storeA.settings),
    ADCO_CHECKPOINTS_BUCKET: bucketOf(runId),
    ADCO_BANK_ADDRESS: bank.grpcAddress,
    ADCO_DATA_WORKERS: worker.grpcAddress,
    ADCO_RETRY_TIMEOUT_SECONDS: "30",
    ...env,
  });
}

const config = (patch: Partial<RunConfig> = {}) =>
  RunConfig.fromPartial({
    preset: "fashion-mnist",
    dataset: { bucket: "adco-datasets", name: "tiny" },
    epochs: 4,
    batchSize: 32,
    bankSize: 64,
    checkpointEverySteps: 4,
    ...patch,
  });

/** 512 training images: 16 steps an epoch at batch 32. */
const importTiny = (store: ObjectStore, name: string) =>
  importTinyDataset(store, name, { train: 512, test: 64 });

before(async () => {
  storeA = await startS3Server({ directory: dirA });
  portA = Number(new URL(storeA.settings.endpoint).port);
  storeB = await startS3Server();
  await importTiny(new ObjectStore(storeA.settings), "tiny");
  await importTiny(new ObjectStore(storeB.settings), "tiny");
  // Only the trainer's store has this one: the data worker answers NOT_FOUND for it.
  await importTiny(new ObjectStore(storeA.settings), "only-a");
  const b = s3Env(storeB.settings);
  [bank, worker] = [await start("adversary-bank", b), await start("data-worker", b)];
});

after(async () => {
  await Promise.all(processes.map((p) => p.stop("SIGKILL")));
  await storeA.stop();
  await storeB.stop();
});

/** Store A down (as MinIO restarting), and back on the same port with the same objects. */
const storeADown = () => storeA.stop();
async function storeAUp(): Promise<void> {
  storeA = await startS3Server({ directory: dirA, port: portA });
}

const storedState = async (runId: string) =>
  (await new ObjectStore(storeA.settings).getJson<{ state: string }>(bucketOf(runId), runStatusKey(runId)))
    .state;

describe("an object-store outage during the trainer's checkpoint writes", () => {
  it("is waited out, and said so, when the store is back within retryTimeoutSeconds", async () => {
    const runId = "blip";
    const trainer = await startTrainer(runId);
    await startRun(trainer, { runId, config: config() });
    await watch(trainer, runId, stepAtLeast(3));
    await storeADown();
    const downAt = Date.now();
    // Past the storage client's own ~3 s of retries, which were all a checkpoint write had.
    const unreachable =
      /^object store unreachable \(write the checkpoint at step (\d+)\), retrying for up to 30 s/;
    const waiting = await watch(trainer, runId, (e) => unreachable.test(e.state?.message ?? "") || ended(e));
    assert.ok(!waiting.some(ended), stateMessages(waiting).join(" | "));
    const step = Number(unreachable.exec(waiting.at(-1)!.state!.message)![1]);
    await new Promise((r) => setTimeout(r, Math.max(0, downAt + 8000 - Date.now())));
    assert.equal((await getRun(trainer, runId)).state, RunState.RUN_STATE_RUNNING, "not failed after 8 s");
    await storeAUp();
    const back = await watch(trainer, runId, (e) => (e.checkpoint?.checkpoint?.step ?? 0) > step || ended(e));
    assert.ok(!back.some(ended), stateMessages(back).join(" | "));
    const written = back.flatMap((e) => (e.checkpoint?.checkpoint ? [e.checkpoint.checkpoint.step] : []));
    assert.ok(
      written.includes(step),
      `the checkpoint at step ${step} was written after the outage: ${written}`,
    );
    assert.equal(await storedState(runId), "RUN_STATE_RUNNING");
    console.log(`blip: the checkpoint at step ${step} waited ${((Date.now() - downAt) / 1000).toFixed(1)} s`);
    await stopRun(trainer, runId);
    await watch(trainer, runId, ended);
    await trainer.stop("SIGKILL");
  });

  it("fails the run after retryTimeoutSeconds, and FAILED is stored once the store is back", async () => {
    const runId = "outage";
    const trainer = await startTrainer(runId, { ADCO_RETRY_TIMEOUT_SECONDS: "8" });
    await startRun(trainer, { runId, config: config() });
    await watch(trainer, runId, stepAtLeast(3));
    await storeADown();
    const downAt = Date.now();
    const events = await watch(trainer, runId, ended);
    const failedAfter = (Date.now() - downAt) / 1000;
    const run = await getRun(trainer, runId);
    assert.equal(run.state, RunState.RUN_STATE_FAILED, stateMessages(events).join(" | "));
    assert.match(
      run.error,
      /^UNAVAILABLE: write the checkpoint at step \d+: the object store was unreachable for 8 s/,
    );
    assert.ok(failedAfter >= 8, `failed ${failedAfter} s after the store went down`);
    await storeAUp();
    await waitFor(
      "the FAILED status in the store",
      async () => ((await storedState(runId)) === "RUN_STATE_FAILED" ? true : undefined),
      60_000,
    );
    console.log(`outage: failed ${failedAfter.toFixed(1)} s after the store went down; FAILED stored`);
    await trainer.stop("SIGKILL");
  });
});

describe("errors that can never succeed, stops and shutdowns during a retry", () => {
  it("a data worker that refuses the run fails it at once, with the worker's status and message", async () => {
    const runId = "refused";
    const trainer = await startTrainer(runId);
    const startedAt = Date.now();
    // The trainer's store has the dataset, the worker's does not: every worker would refuse it.
    await startRun(trainer, {
      runId,
      config: config({ dataset: { bucket: "adco-datasets", name: "only-a" } }),
    });
    const events = await watch(trainer, runId, ended);
    const run = await getRun(trainer, runId);
    assert.equal(run.state, RunState.RUN_STATE_FAILED, stateMessages(events).join(" | "));
    assert.match(run.error, /^NOT_FOUND: data worker 127\.0\.0\.1:\d+ refused the run: .*only-a/);
    const seconds = (Date.now() - startedAt) / 1000;
    assert.ok(seconds < 15, `failed after ${seconds} s`);
    await trainer.stop("SIGKILL");
  });

  it("a final error of the bank (ALREADY_EXISTS) fails the run at once, with its status", async () => {
    const runId = "taken";
    // The bank already holds a run of this id with another K (an earlier run of the same id).
    const client = new AdversaryBankClient(
      bank.grpcAddress,
      grpc.credentials.createInsecure(),
      channelOptions(),
    );
    await unaryCall(client.createBank.bind(client), {
      runId,
      kind: BankKind.BANK_KIND_ADVERSARIAL,
      size: 128,
      dim: 128,
      hyper: {
        temperature: 0.12,
        memoryTemperature: 0.02,
        memoryLr: 3,
        memoryMomentum: 0.9,
        memoryWeightDecay: 0,
      },
      seed: 1,
      peers: [],
    });
    client.close();
    const trainer = await startTrainer(runId);
    const startedAt = Date.now();
    await startRun(trainer, { runId, config: config() });
    const events = await watch(trainer, runId, ended);
    const run = await getRun(trainer, runId);
    assert.equal(run.state, RunState.RUN_STATE_FAILED, stateMessages(events).join(" | "));
    assert.match(
      run.error,
      /^ALREADY_EXISTS: CreateBank: the bank refused it: run "taken" already has a bank/,
    );
    const seconds = (Date.now() - startedAt) / 1000;
    assert.ok(seconds < 15, `failed after ${seconds} s`);
    await trainer.stop("SIGKILL");
  });

  it("StopRun while the bank is down ends the run STOPPED at once", async () => {
    const runId = "nobank";
    const ownBank = await start("adversary-bank", s3Env(storeB.settings));
    const trainer = await startTrainer(runId, { ADCO_BANK_ADDRESS: ownBank.grpcAddress });
    await ownBank.stop("SIGKILL");
    await startRun(trainer, { runId, config: config() });
    await waitFor(
      "a retried bank call",
      async () => trainer.logs.find((l) => l.msg === "bank call retried" && l.runId === runId),
      60_000,
    );
    const stoppedAt = Date.now();
    await stopRun(trainer, runId);
    const events = await watch(trainer, runId, ended);
    const seconds = (Date.now() - stoppedAt) / 1000;
    const last = events.at(-1)!.state!;
    assert.equal(last.state, RunState.RUN_STATE_STOPPED, stateMessages(events).join(" | "));
    assert.match(last.message, /^stopped at step 0 \(no checkpoint: CreateBank: given up by the stop/);
    assert.ok(seconds < 3, `stopped after ${seconds} s`);
    await waitFor(
      "the STOPPED status",
      async () => ((await storedState(runId)) === "RUN_STATE_STOPPED" ? true : undefined),
      60_000,
    );
    await trainer.stop("SIGKILL");
  });

  it("SIGTERM with the bank hung ends the trainer within shutdownGraceMs, the run left to the next", async () => {
    const runId = "graceful";
    const ownBank = await start("adversary-bank", s3Env(storeB.settings));
    const trainer = await startTrainer(runId, {
      ADCO_BANK_ADDRESS: ownBank.grpcAddress,
      ADCO_SHUTDOWN_GRACE_MS: "3000",
    });
    await startRun(trainer, { runId, config: config() });
    await watch(trainer, runId, stepAtLeast(5));
    // A bank that hangs (its node is partitioned): connections stay open, no step is answered.
    ownBank.child.kill("SIGSTOP");
    await new Promise((r) => setTimeout(r, 1000));
    const { code, ms } = await trainer.stop("SIGTERM", 20_000);
    ownBank.child.kill("SIGCONT");
    assert.equal(code, 0);
    assert.ok(ms < 3000, `the trainer took ${ms} ms to exit`);
    assert.ok(
      trainer.logs.some((l) => /did not end within the shutdown grace period/.test(String(l.msg))),
      "the trainer says it left the run unfinished",
    );
    // Its checkpoint at step 4 stands; the next trainer resumes from it.
    assert.match(await storedState(runId), /RUN_STATE_RUNNING/);
    console.log(`graceful: SIGTERM with the bank hung took ${ms} ms (grace 3000 ms)`);
  });
});

describe("configs a step of the trainer or the bank cannot run", () => {
  it("StartRun refuses them with INVALID_ARGUMENT naming the field, and the trainer stays usable", async () => {
    const runId = "sizes";
    const trainer = await startTrainer(runId);
    const gray = (outputSize: number) => ({
      pipeline: Pipeline.PIPELINE_TWO_VIEW_GRAY_SMALL,
      outputSize,
      crops: [],
      seed: 0,
    });
    const refused = async (patch: Partial<RunConfig>, message: RegExp) => {
      await assert.rejects(startRun(trainer, { runId, config: config(patch) }), (e: grpc.ServiceError) => {
        assert.equal(e.code, grpc.status.INVALID_ARGUMENT, e.message);
        assert.match(e.details, message);
        return true;
      });
    };
    await refused(
      { augment: gray(64) },
      /^config\.augment\.output_size: the resnet-mini encoder takes 28x28x1 views, got 64/,
    );
    await refused({ augment: gray(0) }, /^config\.augment\.output_size: /);
    await refused({ augment: gray(100000) }, /^config\.augment\.output_size: /);
    await refused(
      { augment: { pipeline: Pipeline.PIPELINE_TWO_VIEW, outputSize: 28, crops: [], seed: 0 } },
      /^config\.augment\.pipeline: PIPELINE_TWO_VIEW makes 3-channel views; the resnet-mini encoder takes 28x28x1/,
    );
    await refused(
      {
        encoder: EncoderArch.ENCODER_ARCH_RESNET18_CIFAR,
        augment: { pipeline: Pipeline.PIPELINE_NONE, outputSize: 28, crops: [], seed: 0 },
      },
      /^config\.augment\.pipeline: PIPELINE_NONE sends the records of tiny as they are \(28x28x1\); the resnet18-cifar encoder takes 32x32x3 views/,
    );
    const backend = String(trainer.logs.find((l) => l.msg === "tfjs backend")?.backend);
    if (backend === "wasm") {
      await refused(
        { batchSize: 65536, bankSize: 65536 },
        /^config\.batch_size: a step of 65536 samples of 28x28 through resnet-mini needs ~308\.\d GiB .* over the wasm backend's 4\.0 GiB/,
      );
    }
    await refused(
      { bankSize: 1 << 24, featureDim: 4096 },
      /^config\.bank_size: K 16777216 x D 4096 with batch 32 needs ~774\.0 GiB on each of 1 bank shard/,
    );
    // The trainer trains the config it accepts.
    await startRun(trainer, { runId, config: config() });
    const events = await watch(trainer, runId, stepAtLeast(2));
    assert.ok(!events.some(ended), stateMessages(events).join(" | "));
    await stopRun(trainer, runId);
    await watch(trainer, runId, ended);
    console.log(`sizes: the trainer runs ${backend}`);
    await trainer.stop("SIGKILL");
  });
});
