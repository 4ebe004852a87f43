// How a run survives its trainer, as processes on loopback (S3 server, a data worker, the bank,
// trainers): a trainer killed or rolled before the run's first checkpoint, a run of `startRun` (the
// Kubernetes ConfigMap) across trainer restarts, and a corrupt newest checkpoint. A small data set
// (1,024 images, batch 32, K 64) keeps each step short.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { AdversaryBankClient } from "@adco/proto/adversary_bank";
import { RunConfig, type RunEvent, RunState } from "@adco/proto/trainer";
import { channelOptions, unaryCall } from "@adco/service-kit";
import {
  type BundleManifest,
  latestPointerKey,
  type LatestPointer,
  listCheckpoints,
  ObjectStore,
  runStatusKey,
} from "@adco/storage";
import { startS3Server, type S3ServerProcess } from "@adco/storage/testing";
import { importTinyDataset } from "./lib/tiny-dataset.js";
import { ROOT, s3Env, startService, type ServiceName, type ServiceProcess } from "./lib/service-process.js";
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

let s3: S3ServerProcess;
let store: ObjectStore;
let bank: ServiceProcess;
let worker: ServiceProcess;
const processes: ServiceProcess[] = [];

async function start(name: ServiceName, env: Record<string, string> = {}): Promise<ServiceProcess> {
  const p = await startService(name, { ...s3Env(s3.settings), ...env });
  processes.push(p);
  return p;
}

/** Each test's runs in a bucket of their own: a trainer resumes any interrupted run of its bucket. */
const bucketOf = (runId: string) => `ckpt-${runId}`;

const startTrainer = (runId: string, env: Record<string, string> = {}) =>
  start("trainer", {
    ADCO_CHECKPOINTS_BUCKET: bucketOf(runId),
    ADCO_BANK_ADDRESS: bank.grpcAddress,
    ADCO_DATA_WORKERS: worker.grpcAddress,
    ADCO_RETRY_TIMEOUT_SECONDS: "60",
    ...env,
  });

/** 32 steps an epoch: the first checkpoint of a run with checkpoint_every_steps 50 is at step 32. */
const config = (patch: Partial<RunConfig> = {}) =>
  RunConfig.fromPartial({
    preset: "fashion-mnist",
    dataset: { bucket: "adco-datasets", name: "tiny" },
    epochs: 3,
    batchSize: 32,
    bankSize: 64,
    checkpointEverySteps: 50,
    ...patch,
  });

before(async () => {
  s3 = await startS3Server();
  store = new ObjectStore(s3.settings);
  await importTinyDataset(store, "tiny", { train: 1024, test: 64 });
  [bank, worker] = [await start("adversary-bank"), await start("data-worker")];
});

after(async () => {
  await Promise.all(processes.map((p) => p.stop("SIGKILL")));
  await s3.stop();
});

/** The events of the run in this trainer process, once it has it (WatchRun is NOT_FOUND until then). */
const watchOnce = (trainer: ServiceProcess, runId: string, until: (e: RunEvent) => boolean) =>
  waitFor(`${runId} on the trainer`, () => watch(trainer, runId, until));

async function stopAndWait(trainer: ServiceProcess, runId: string): Promise<RunEvent[]> {
  await stopRun(trainer, runId);
  return watch(trainer, runId, ended);
}

/** The node arguments of the `adco` CLI from its source, then `args`. */
const adcoArgs = (args: string[]) => [
  "--conditions=development",
  "--import",
  "tsx",
  join(ROOT, "libs/cli/src/main.ts"),
  ...args,
];

/** The `adco` CLI as a person runs it, against this trainer and store. */
function adco(trainer: ServiceProcess, args: string[]) {
  return spawnSync(process.execPath, adcoArgs(args), {
    encoding: "utf8",
    env: { ...process.env, ...s3Env(s3.settings), ADCO_TRAINER_ADDRESS: trainer.grpcAddress },
  });
}

async function bankStep(runId: string): Promise<number> {
  const client = new AdversaryBankClient(
    bank.grpcAddress,
    grpc.credentials.createInsecure(),
    channelOptions(),
  );
  try {
    return (await unaryCall(client.getStats.bind(client), { runId })).step;
  } finally {
    client.close();
  }
}

const storedState = async (runId: string) =>
  (await store.getJson<{ state: string }>(bucketOf(runId), runStatusKey(runId))).state;
const latest = (runId: string) => store.getJson<LatestPointer>(bucketOf(runId), latestPointerKey(runId));
const hasLatest = (runId: string) => store.exists(bucketOf(runId), latestPointerKey(runId));
const checkpointsOf = (runId: string) => listCheckpoints(store, bucketOf(runId), runId);

/** Overwrites one object of a bundle with bytes of the same size that no longer match its sha256. */
async function corrupt(runId: string, manifestKey: string, file: string): Promise<void> {
  const bucket = bucketOf(runId);
  const manifest = await store.getJson<BundleManifest<unknown>>(bucket, manifestKey);
  const part = manifest.files[file]![0]!;
  const bytes = await store.get(bucket, part.key);
  bytes[0] = bytes[0]! ^ 0xff;
  await store.put(bucket, part.key, bytes);
}

describe("a trainer killed before the run's first checkpoint", () => {
  it("the next trainer restarts the run from step 0, and the bank's state of the dead attempt is reset", async () => {
    let trainer = await startTrainer("early");
    await startRun(trainer, { runId: "early", config: config() });
    await watch(trainer, "early", stepAtLeast(3));
    await trainer.stop("SIGKILL");
    assert.equal(await hasLatest("early"), false, "killed before its first checkpoint");
    assert.match(await storedState("early"), /RUN_STATE_(INITIALIZING_BANK|RUNNING)/);
    const killedAt = await bankStep("early");
    assert.ok(killedAt >= 3, `the bank still holds the dead attempt at step ${killedAt}`);

    // By itself (resumeInterrupted): the run is restarted, not left INITIALIZING_BANK at step 0.
    trainer = await startTrainer("early");
    const events = await watchOnce(trainer, "early", stepAtLeast(killedAt + 2));
    assert.ok(
      stateMessages(events).some((m) => /^restarted from step 0/.test(m)),
      stateMessages(events).join(" | "),
    );
    assert.ok(!events.some(ended), stateMessages(events).join(" | "));
    const restartedAt = events.findLast((e) => e.step)!.step!.step;
    assert.ok(restartedAt >= killedAt + 2, `trained to step ${restartedAt}`);

    // Again, and this time a person resumes it (`adco train --run-id`) on a trainer that does not.
    await trainer.stop("SIGKILL");
    assert.equal(await hasLatest("early"), false);
    trainer = await startTrainer("early", { ADCO_RESUME_INTERRUPTED: "false" });
    const cli = adco(trainer, ["train", "--run-id", "early", "--detach"]);
    assert.equal(cli.status, 0, cli.stderr);
    const resumed = await watch(trainer, "early", stepAtLeast(restartedAt + 2));
    assert.ok(!resumed.some(ended), stateMessages(resumed).join(" | "));
    assert.ok((await bankStep("early")) >= restartedAt + 2);
    await stopAndWait(trainer, "early");
    await trainer.stop("SIGKILL");
  });
});

describe("a trainer rolled (SIGTERM) as soon as its run has started", () => {
  it("leaves the run to the next trainer, which trains it, with or without a checkpoint", async () => {
    let trainer = await startTrainer("rolled");
    await startRun(trainer, { runId: "rolled", config: config() });
    const { code } = await trainer.stop("SIGTERM");
    assert.equal(code, 0);
    assert.match(await storedState("rolled"), /RUN_STATE_(STARTING|INITIALIZING_BANK|RUNNING)/);
    trainer = await startTrainer("rolled");
    const events = await watchOnce(trainer, "rolled", stepAtLeast(3));
    assert.ok(!events.some(ended), stateMessages(events).join(" | "));
    const first = stateMessages(events).find((m) => m !== "");
    assert.match(first ?? "", /^(restarted from step 0|resumed at step \d+)/);
    console.log(`rolled: the next trainer said "${first}"`);
    await trainer.stop("SIGKILL");
  });
});

describe("a rollout seen by a watcher", () => {
  it("the watcher gets the rolled trainer's last step, its checkpoint and the leave, before the stream ends", async () => {
    const runId = "watched";
    const trainer = await startTrainer(runId);
    await startRun(trainer, { runId, config: config() });
    await watch(trainer, runId, stepAtLeast(3));
    // Connected (its replay has come) before the SIGTERM: a shutting-down server takes no new calls.
    let connected!: () => void;
    const replayed = new Promise<void>((resolve) => (connected = resolve));
    const watching = watch(trainer, runId, (e) => {
      connected();
      return ended(e);
    });
    await replayed;
    const { code } = await trainer.stop("SIGTERM");
    assert.equal(code, 0);
    const events = await watching;
    const left = /^the trainer is shutting down at step (\d+); the next trainer resumes the run$/.exec(
      events.at(-1)?.state?.message ?? "",
    );
    assert.ok(left, stateMessages(events).join(" | "));
    const step = Number(left[1]);
    assert.equal(events.findLast((e) => e.step)?.step?.step, step, "the step the stop waited for");
    assert.equal(events.findLast((e) => e.checkpoint)?.checkpoint?.checkpoint?.step, step);
    assert.equal((await latest(runId)).step, step);
  });

  it("adco watch follows the run to the next trainer at the same address, each epoch shown once", async () => {
    const runId = "followed";
    let trainer = await startTrainer(runId);
    await startRun(trainer, { runId, config: config({ epochs: 2, checkpointEverySteps: 8 }) });
    const cli = spawn(process.execPath, adcoArgs(["watch", runId]), {
      env: { ...process.env, ADCO_TRAINER_ADDRESS: trainer.grpcAddress },
    });
    let output = "";
    for (const stream of [cli.stdout, cli.stderr]) stream.on("data", (d: Buffer) => (output += d.toString()));
    const exited = once(cli, "exit");
    // The rollout comes in epoch 1, after the first trainer has reported epoch 0.
    await waitFor("epoch 0 in adco watch", async () => (/epoch 0 done/.test(output) ? true : undefined));
    const port = String(trainer.grpcPort);
    assert.equal((await trainer.stop("SIGTERM")).code, 0);
    // A pod that takes a while to come back: adco watch says it waits, and does.
    await waitFor("adco watch waiting", async () =>
      /waiting for the next one/.test(output) ? true : undefined,
    );
    trainer = await startTrainer(runId, { ADCO_GRPC_PORT: port });
    const [code] = (await exited) as [number | null];
    assert.equal(code, 0, output);
    for (const said of [
      /the trainer is shutting down at step \d+; the next trainer resumes the run/,
      /run followed: no trainer holds it after step \d+; waiting for the next one to resume it/,
      /resumed at step \d+/,
      /run followed: completed/,
    ])
      assert.match(output, said);
    assert.deepEqual(output.match(/epoch \d done/g), ["epoch 0 done", "epoch 1 done"], output);
    console.log(`followed:\n${output}`);
    await trainer.stop("SIGTERM");
  });
});

describe("the run of startRun (a ConfigMap)", () => {
  it("a restarted trainer resumes it rather than leaving it; one that finds it stopped leaves it stopped", async () => {
    const dir = mkdtempSync(join(tmpdir(), "adco-start-"));
    const file = join(dir, "run.json");
    writeFileSync(
      file,
      JSON.stringify({ runId: "cm", config: RunConfig.toJSON(config({ checkpointEverySteps: 4 })) }),
    );
    const env = { ADCO_START_RUN: file, ADCO_RESUME_INTERRUPTED: "false" };

    let trainer = await startTrainer("cm", env);
    await watchOnce(trainer, "cm", stepAtLeast(6));
    await trainer.stop("SIGKILL");
    const checkpointed = (await latest("cm")).step;
    assert.ok(checkpointed >= 4);

    trainer = await startTrainer("cm", env);
    const events = await watchOnce(trainer, "cm", stepAtLeast(checkpointed + 1));
    assert.ok(
      stateMessages(events).some((m) => m.startsWith(`resumed at step ${checkpointed}`)),
      stateMessages(events).join(" | "),
    );
    const stopped = await stopAndWait(trainer, "cm");
    assert.equal(stopped.findLast((e) => e.state)?.state?.state, RunState.RUN_STATE_STOPPED);
    await trainer.stop("SIGTERM");

    trainer = await startTrainer("cm", env);
    await waitFor("the trainer's word on the run of startRun", async () =>
      trainer.logs.find((l) => l.runId === "cm" && /stopped/.test(String(l.msg))),
    );
    const run = await getRun(trainer, "cm");
    assert.equal(run.state, RunState.RUN_STATE_STOPPED);
    await assert.rejects(
      watch(trainer, "cm", ended),
      (e: grpc.ServiceError) => e.code === grpc.status.NOT_FOUND,
    );
    await trainer.stop("SIGKILL");
  });
});

describe("a corrupt checkpoint", () => {
  it("resume falls back to the newest that verifies and says why; --step picks one; none verifying fails the run", async () => {
    const trainer = await startTrainer("corrupt");
    const runId = "corrupt";
    await startRun(trainer, { runId, config: config({ checkpointEverySteps: 2, keepCheckpoints: 3 }) });
    await watch(trainer, runId, stepAtLeast(7));
    await stopAndWait(trainer, runId);
    const kept = await checkpointsOf(runId);
    assert.equal(kept.length, 3, JSON.stringify(kept));
    const [, before, newest] = kept;
    assert.equal((await latest(runId)).step, newest!.step);

    // One byte of the newest checkpoint's query encoder.
    await corrupt(runId, newest!.key, "query/model.json");
    await startRun(trainer, { runId });
    let events = await watch(
      trainer,
      runId,
      (e) => e.state?.state === RunState.RUN_STATE_RUNNING || ended(e),
    );
    const resumed = stateMessages(events).find((m) => m.startsWith("resumed at step"));
    assert.match(resumed ?? "", new RegExp(`^resumed at step ${before!.step} `));
    assert.match(resumed!, new RegExp(`skipped step ${newest!.step}: DATA_LOSS: .*query/model.json: sha256`));
    // Training on from there writes a new checkpoint at the corrupt one's step, which verifies again.
    await watch(trainer, runId, stepAtLeast(newest!.step + 1));
    await stopAndWait(trainer, runId);
    const rewritten = await store.getJson<BundleManifest<unknown>>(bucketOf(runId), newest!.key);
    await store.getVerified(rewritten.files["query/model.json"]![0]!);

    // A person picks an older checkpoint: adco train --run-id RUN --step N. The run goes on from it,
    // and the first checkpoint it writes deletes the ones it left behind.
    const chosen = (await checkpointsOf(runId))[0]!.step;
    const cli = adco(trainer, ["train", "--run-id", runId, "--step", String(chosen), "--detach"]);
    assert.equal(cli.status, 0, cli.stderr);
    events = await watch(trainer, runId, stepAtLeast(chosen + 3));
    assert.ok(
      stateMessages(events).some((m) => m.startsWith(`resumed at step ${chosen} (chosen)`)),
      stateMessages(events).join(" | "),
    );
    await stopAndWait(trainer, runId);
    const head = (await latest(runId)).step;
    assert.ok(head > chosen);
    assert.ok(
      (await checkpointsOf(runId)).every((c) => c.step <= head),
      "no checkpoint past the head",
    );
    const missing = adco(trainer, ["train", "--run-id", runId, "--step", "999"]);
    assert.equal(missing.status, 2, missing.stderr);
    assert.match(
      missing.stderr,
      /^adco: trainer: NOT_FOUND: run corrupt has no checkpoint at step 999 \(it has [\d, ]+\)/,
    );

    // A chosen checkpoint that does not verify fails the run; so does a run none of whose checkpoints do.
    const last = await checkpointsOf(runId);
    const snapshot = (
      await store.getJson<BundleManifest<{ bankSnapshot: { key: string } }>>(
        bucketOf(runId),
        last.at(-1)!.key,
      )
    ).meta.bankSnapshot.key;
    await corrupt(runId, snapshot, "weights.f32");
    await startRun(trainer, { runId, resumeStep: last.at(-1)!.step });
    events = await watch(trainer, runId, ended);
    const failed = await getRun(trainer, runId);
    assert.equal(failed.state, RunState.RUN_STATE_FAILED);
    assert.match(
      failed.error,
      new RegExp(`checkpoint at step ${last.at(-1)!.step} .*DATA_LOSS: .*weights\\.f32`),
    );
    for (const c of last.slice(0, -1)) await corrupt(runId, c.key, "optimizer.bin");
    await startRun(trainer, { runId });
    await watch(trainer, runId, ended);
    const none = await getRun(trainer, runId);
    assert.equal(none.state, RunState.RUN_STATE_FAILED);
    assert.match(none.error, /^DATA_LOSS: no checkpoint of run corrupt verifies/);
    for (const c of last) assert.match(none.error, new RegExp(`step ${c.step}: DATA_LOSS`));
  });
});

describe("a run whose checkpoints go to a bucket of its own (config.checkpoint_bucket)", () => {
  it("is found and resumed by the next trainer: its status lives in the trainer's bucket", async () => {
    const own = "ckpt-own-bucket-run";
    let trainer = await startTrainer("own");
    await startRun(trainer, {
      runId: "own",
      config: config({ checkpointBucket: own, checkpointEverySteps: 4 }),
    });
    await watch(trainer, "own", stepAtLeast(6));
    await trainer.stop("SIGKILL");
    assert.ok(await store.exists(own, latestPointerKey("own")), "its checkpoints are in its own bucket");
    assert.match(await storedState("own"), /RUN_STATE_RUNNING/);

    trainer = await startTrainer("own");
    const events = await watchOnce(trainer, "own", stepAtLeast(8));
    assert.ok(!events.some(ended), stateMessages(events).join(" | "));
    assert.ok(
      stateMessages(events).some((m) => /^resumed at step [4-9]/.test(m)),
      stateMessages(events).join(" | "),
    );
    await stopAndWait(trainer, "own");
    await trainer.stop("SIGKILL");
  });
});

describe("two trainers and one run", () => {
  /** Each epoch's last report counts every one of its 1,024 samples once (none repeated or skipped). */
  const samplesPerEpoch = (events: RunEvent[]) => {
    const epochs = new Map<number, number>();
    for (const e of events) if (e.epoch) epochs.set(e.epoch.epoch, e.epoch.samples);
    return [...epochs.entries()].sort((a, b) => a[0] - b[0]);
  };
  const lease = { ADCO_LEASE_SECONDS: "2" };

  it("a second trainer stands by while the first holds the run, and takes it over when the first dies", async () => {
    const runId = "standby";
    const first = await startTrainer(runId, { ...lease, ADCO_TRAINER_ID: "first" });
    await startRun(first, { runId, config: config({ epochs: 2, checkpointEverySteps: 8 }) });
    // Into epoch 1: epoch 0 is reported by the first trainer only.
    const firstEvents = await watch(first, runId, stepAtLeast(34));

    // Booted beside it with the same bucket: the run says RUNNING, but its owner's lease is live.
    const second = await startTrainer(runId, { ...lease, ADCO_TRAINER_ID: "second" });
    await waitFor("the second trainer standing by", async () =>
      second.logs.find((l) => /standing by/.test(String(l.msg))),
    );
    await assert.rejects(
      startRun(second, { runId }),
      (e: grpc.ServiceError) =>
        e.code === grpc.status.FAILED_PRECONDITION && /trained by trainer "first"/.test(e.details),
    );
    await assert.rejects(
      watch(second, runId, ended),
      (e: grpc.ServiceError) => e.code === grpc.status.NOT_FOUND,
    );

    // Its newest checkpoint before the kill: the first may write another on the way (a loaded machine).
    const before = (await latest(runId)).step;
    await first.stop("SIGKILL");
    const events = await watchOnce(second, runId, ended);
    assert.equal(
      events.findLast((e) => e.state)?.state?.state,
      RunState.RUN_STATE_COMPLETED,
      stateMessages(events).join(" | "),
    );
    const resumed = /^resumed at step (\d+)$/.exec(stateMessages(events).find((m) => m !== "") ?? "");
    assert.ok(resumed, stateMessages(events).join(" | "));
    const at = Number(resumed[1]);
    assert.ok(at >= before && at >= 8 && at % 8 === 0, `resumed at step ${at}, checkpoint at ${before}`);
    assert.ok(
      second.logs.some((l) => /took the run over from a trainer whose lease ended/.test(String(l.msg))),
    );
    assert.deepEqual(samplesPerEpoch(events), [
      [0, 1024],
      [1, 1024],
    ]);
    // Epoch 0 in the second trainer's replay is the first's report, from the checkpoint it resumed.
    const reportOf = (es: RunEvent[]) => es.find((e) => e.epoch?.epoch === 0);
    const { epoch: firstReport, unixMs: firstSent } = reportOf(firstEvents)!;
    assert.deepEqual([reportOf(events)?.epoch, reportOf(events)?.unixMs], [firstReport, firstSent]);
    await waitFor("COMPLETED in the store", async () =>
      (await storedState(runId)) === "RUN_STATE_COMPLETED" ? true : undefined,
    );
    await second.stop("SIGTERM");
  });

  it("a trainer that is taken over stops without writing; the run goes on on the new owner", async () => {
    const runId = "takeover";
    // Two trainers that share an id (two processes on one host): the second takes the run at once.
    const env = { ...lease, ADCO_TRAINER_ID: "shared" };
    const old = await startTrainer(runId, env);
    await startRun(old, { runId, config: config({ epochs: 2, checkpointEverySteps: 8 }) });
    await watch(old, runId, stepAtLeast(10));
    // Watched from before the takeover: once the old trainer has left the run, it no longer serves it.
    const watched = watch(old, runId, ended);
    const fresh = await startTrainer(runId, env);

    const oldEvents = await watched;
    const last = oldEvents.findLast((e) => e.state)!.state!;
    assert.equal(last.state, RunState.RUN_STATE_STOPPED);
    assert.match(last.message, /^another trainer has taken the run over at step \d+: .*token 2 of "shared"/);
    // Nothing written once taken over: each checkpoint of the old trainer is older than the takeover.
    const tookOver = fresh.logs.find((l) => /resuming the interrupted run/.test(String(l.msg)))!
      .time as number;
    const written = old.logs.filter((l) => l.runId === runId && l.msg === "checkpoint written");
    assert.ok(written.length > 0);
    for (const l of written)
      assert.ok((l.time as number) < tookOver, `checkpoint at step ${l.step} after the takeover`);
    // Found by the bank (ABORTED for its stale fence) or by its own lease check, whichever came first.
    assert.match(last.message, /stale owner|taken over by token 2/);

    const events = await watchOnce(fresh, runId, ended);
    assert.equal(
      events.findLast((e) => e.state)?.state?.state,
      RunState.RUN_STATE_COMPLETED,
      stateMessages(events).join(" | "),
    );
    assert.deepEqual(
      samplesPerEpoch(events)
        .map(([, n]) => n)
        .slice(-1),
      [1024],
    );
    await waitFor("COMPLETED in the store", async () =>
      (await storedState(runId)) === "RUN_STATE_COMPLETED" ? true : undefined,
    );
    // The old trainer answers for the run from storage, not with its own STOPPED, and no longer
    // streams it: `adco watch` at its address must not end with a STOPPED the run never had.
    assert.equal((await getRun(old, runId)).state, RunState.RUN_STATE_COMPLETED);
    await assert.rejects(
      watch(old, runId, ended),
      (e: grpc.ServiceError) =>
        e.code === grpc.status.NOT_FOUND &&
        /no longer on this trainer: another trainer has taken/.test(e.details),
    );
    // The old trainer stays up, free for another run.
    await startRun(old, { runId: "after-takeover", config: config({ epochs: 1 }) });
    await stopAndWait(old, "after-takeover");
    await Promise.all([old.stop("SIGTERM"), fresh.stop("SIGTERM")]);
  });
});
