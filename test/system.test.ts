// The whole system as processes on loopback: S3 server, two data workers, the bank in two shards, the
// trainer and the evaluator. A short AdCo run is interrupted by SIGKILL of the trainer and of a data
// worker, later of a bank shard, then by a rollout (SIGTERM of the trainer); each restarts and the run
// finishes with every epoch's samples trained on exactly once, and its encoder scores above random init.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { evaluate, evaluatorAt, importDataset, trainerAt } from "@adco/cli";
import { BUNDLED_FASHION_MNIST } from "@adco/datasets";
import { EncoderArch } from "@adco/proto/common";
import { EvaluateRequest } from "@adco/proto/evaluator";
import { type EpochEvent, RunConfig, type RunEvent, RunState } from "@adco/proto/trainer";
import { unaryCall } from "@adco/service-kit";
import { ObjectStore, runStatusKey } from "@adco/storage";
import { startS3Server, type S3ServerProcess } from "@adco/storage/testing";
import { s3Env, startService, type ServiceName, type ServiceProcess } from "./lib/service-process.js";

const TRAIN = 6000;
let s3: S3ServerProcess;
let store: ObjectStore;
const processes: ServiceProcess[] = [];

async function start(name: ServiceName, env: Record<string, string> = {}): Promise<ServiceProcess> {
  const p = await startService(name, { ...s3Env(s3.settings), ...env });
  processes.push(p);
  return p;
}

before(async () => {
  s3 = await startS3Server();
  store = new ObjectStore(s3.settings);
  // Shards of ~100 KB (125 images), so leases spread over both workers.
  await importDataset(store, {
    format: "idx",
    source: BUNDLED_FASHION_MNIST,
    name: "fmnist",
    bucket: "adco-datasets",
    shardBytes: 100_000,
    quiet: true,
  });
});

after(async () => {
  await Promise.all(processes.map((p) => p.stop("SIGKILL")));
  await s3.stop();
});

/** Collects a trainer's events until `until` says stop (or the stream ends). */
function watch(
  address: string,
  runId: string,
  until: (e: RunEvent) => boolean,
  sink: RunEvent[],
): Promise<void> {
  const client = trainerAt(address);
  const call = client.watchRun({ runId, replay: true });
  return new Promise<void>((resolve) => {
    const done = () => {
      call.cancel();
      client.close();
      resolve();
    };
    call.on("data", (e: RunEvent) => {
      sink.push(e);
      if (until(e)) done();
    });
    call.on("error", done);
    call.on("end", done);
  });
}

async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs = 300_000,
): Promise<T> {
  const giveUp = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > giveUp) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

describe("the system on loopback", () => {
  it("survives SIGKILL of the trainer, a data worker and a bank shard, and a rollout of the trainer; each epoch is trained exactly once; the encoder beats random init", async () => {
    const workers = [await start("data-worker"), await start("data-worker")];
    // The bank in two shards: the trainer talks to shard 0, which fans each step out to shard 1.
    const bank = await start("adversary-bank");
    const bankShard = await start("adversary-bank");
    const evaluator = await start("evaluator");
    const workerList = workers.map((w) => w.grpcAddress).join(",");
    const bankShardPort = bankShard.grpcAddress.split(":")[1]!;
    const trainerEnv = {
      ADCO_BANK_ADDRESS: bank.grpcAddress,
      ADCO_BANK_PEERS: bankShard.grpcAddress,
      ADCO_EVALUATOR_ADDRESS: evaluator.grpcAddress, // kNN of each epoch's checkpoint, on the watch stream
      ADCO_DATA_WORKERS: workerList,
      ADCO_RETRY_TIMEOUT_SECONDS: "120",
    };
    let trainer = await start("trainer", trainerEnv);

    // Bad requests get precise statuses.
    const client = trainerAt(trainer.grpcAddress);
    const rejects = (p: Promise<unknown>, code: grpc.status, pattern: RegExp) =>
      assert.rejects(p, (e: grpc.ServiceError) => e.code === code && pattern.test(e.details));
    await rejects(
      unaryCall(client.startRun.bind(client), {
        runId: "",
        config: RunConfig.fromPartial({
          preset: "nope",
          dataset: { bucket: "adco-datasets", name: "fmnist" },
        }),
      }),
      grpc.status.INVALID_ARGUMENT,
      /config\.preset: unknown "nope"; one of paper-imagenet, fashion-mnist/,
    );
    await rejects(
      unaryCall(client.getRun.bind(client), { runId: "missing" }),
      grpc.status.NOT_FOUND,
      /no run "missing"/,
    );
    await rejects(
      unaryCall(client.stopRun.bind(client), { runId: "missing" }),
      grpc.status.NOT_FOUND,
      /no run/,
    );
    await rejects(
      unaryCall(client.startRun.bind(client), { runId: "missing", config: undefined }),
      grpc.status.INVALID_ARGUMENT,
      /config: is required \(run "missing" has no checkpoint/,
    );

    const config = RunConfig.fromPartial({
      preset: "fashion-mnist",
      dataset: { bucket: "adco-datasets", name: "fmnist" },
      epochs: 2,
      checkpointEverySteps: 5,
    });
    const run = await unaryCall(client.startRun.bind(client), { runId: "e2e", config });
    await rejects(
      unaryCall(client.startRun.bind(client), { runId: "other", config }),
      grpc.status.RESOURCE_EXHAUSTED,
      /this trainer is running e2e/,
    );
    client.close();
    assert.equal(run.state, RunState.RUN_STATE_STARTING);
    const events: RunEvent[] = [];

    // Kill the trainer and a worker once a checkpoint exists and training has gone past it.
    await watch(trainer.grpcAddress, "e2e", (e) => (e.step?.step ?? 0) >= 7, events);
    await Promise.all([trainer.stop("SIGKILL"), workers[0]!.stop("SIGKILL")]);
    workers[0] = await start("data-worker", { ADCO_GRPC_PORT: workers[0]!.grpcAddress.split(":")[1]! });
    trainer = await start("trainer", trainerEnv); // resumes the interrupted run by itself
    const resumed = trainerAt(trainer.grpcAddress);
    await waitFor("the restarted trainer to resume e2e", async () => {
      const r = await unaryCall(resumed.getRun.bind(resumed), { runId: "e2e" });
      // Past the step it was killed at: the new process is training (not just reading the stored status).
      return r.step >= 8 ? r : undefined;
    });
    resumed.close();

    // Then the bank's second shard, mid-epoch 1: the bank has lost a slice, so the trainer restores
    // every slice and itself from its last checkpoint.
    await watch(trainer.grpcAddress, "e2e", (e) => (e.step?.step ?? 0) >= 30, events);
    const resumedAt = events.find((e) => e.state?.message.startsWith("resumed at step"));
    assert.ok(resumedAt, "the restarted trainer resumed the run from a checkpoint");
    await bankShard.stop("SIGKILL");
    await start("adversary-bank", { ADCO_GRPC_PORT: bankShardPort });

    // A rollout: SIGTERM, as Kubernetes sends on every rollout, drain and eviction. The trainer
    // checkpoints and exits; its run stays running in storage (only a person's StopRun stops it), so
    // the next trainer resumes it by itself.
    await watch(trainer.grpcAddress, "e2e", (e) => (e.step?.step ?? 0) >= 36, events);
    const rolled = await trainer.stop("SIGTERM");
    assert.equal(rolled.code, 0, "the trainer exits by itself on SIGTERM");
    const stored = await store.getJson<{ state: string }>("adco-checkpoints", runStatusKey("e2e"));
    assert.equal(stored.state, "RUN_STATE_RUNNING", "a run left at shutdown is still running in storage");
    trainer = await start("trainer", trainerEnv);
    // GetRun answers from storage until the new process has the run, so wait for the resume itself.
    const isResume = (e: RunEvent) => e.state?.message.startsWith("resumed at step") ?? false;
    const resume = await waitFor("the next trainer to resume e2e after the rollout", async () => {
      const replayed: RunEvent[] = [];
      await watch(trainer.grpcAddress, "e2e", isResume, replayed); // NOT_FOUND until it has the run
      return replayed.find(isResume);
    });
    assert.ok(Number(/resumed at step (\d+)/.exec(resume.state!.message)![1]) >= 36, resume.state!.message);

    await watch(
      trainer.grpcAddress,
      "e2e",
      (e) => e.state?.state === RunState.RUN_STATE_COMPLETED || e.state?.state === RunState.RUN_STATE_FAILED,
      events,
    );
    const tc = trainerAt(trainer.grpcAddress);
    const final = await waitFor("the run to end", async () => {
      const r = await unaryCall(tc.getRun.bind(tc), { runId: "e2e" });
      return r.state === RunState.RUN_STATE_COMPLETED || r.state === RunState.RUN_STATE_FAILED
        ? r
        : undefined;
    });
    tc.close();
    assert.equal(final.state, RunState.RUN_STATE_COMPLETED, final.error);
    assert.equal(final.step, 48);
    // The same progress on /metrics, for dashboards and the data workers' autoscaler.
    const metrics = await (await fetch(trainer.metricsUrl)).text();
    assert.match(metrics, /adco_trainer_step\{[^}]*run_id="e2e"[^}]*\} 48\n/);
    assert.match(metrics, /adco_trainer_data_wait_fraction\{[^}]*run_id="e2e"[^}]*\} [0-9.e-]+\n/);
    assert.ok(
      events.some((e) => e.state?.message.includes("bank lost the run")),
      "the trainer noticed the bank had lost a shard",
    );

    // Exactly once: the last report of each epoch counts every sample once (a repeat would push the
    // count above the split's size, a skip would leave the epoch incomplete).
    const epochs = new Map<number, EpochEvent>();
    for (const e of events) if (e.epoch) epochs.set(e.epoch.epoch, e.epoch);
    assert.deepEqual([...epochs.keys()].sort(), [0, 1]);
    for (const [epoch, e] of epochs) assert.equal(e.samples, TRAIN, `epoch ${epoch}`);

    // The encoder against random init, kNN on the test split.
    const ev = evaluatorAt(evaluator.grpcAddress);
    const request = (patch: Partial<EvaluateRequest>) =>
      EvaluateRequest.fromPartial({
        train: { bucket: "adco-datasets", name: "fmnist:train" },
        test: { bucket: "adco-datasets", name: "fmnist:test" },
        knn: { enabled: true },
        ...patch,
      });
    const trained = await evaluate(ev, request({ checkpoint: final.latestCheckpoint, writeResults: true }));
    const random = await evaluate(
      ev,
      request({ randomInit: { encoder: EncoderArch.ENCODER_ARCH_RESNET_MINI, seed: 0 } }),
    );
    assert.ok(
      trained.knn!.top1 > random.knn!.top1,
      `kNN ${trained.knn!.top1} vs random init ${random.knn!.top1}`,
    );
    assert.equal(trained.knn!.perClassTop1.length, 10);
    // The trainer had the last epoch's checkpoint scored too, before it said COMPLETED: the same number.
    const epochEval = events.find((e) => e.eval?.checkpoint?.step === final.latestCheckpoint!.step)?.eval;
    assert.ok(epochEval?.knn, "an EvalEvent for the last epoch's checkpoint");
    assert.equal(epochEval.knn.top1, trained.knn!.top1);
    assert.ok(trained.plots.some((p) => p.key.endsWith("embedding.png")));
    await assert.rejects(
      evaluate(
        ev,
        request({
          checkpoint: {
            runId: "e2e",
            step: 1,
            manifest: {
              bucket: "adco-checkpoints",
              key: "runs/e2e/ckpt-0000000001/manifest.json",
              sizeBytes: 0,
              sha256: "",
            },
          },
        }),
      ),
      (e: grpc.ServiceError) => e.code === grpc.status.NOT_FOUND,
    );
    await assert.rejects(
      evaluate(
        ev,
        request({
          randomInit: { encoder: EncoderArch.ENCODER_ARCH_RESNET_MINI, seed: 0 },
          test: { bucket: "adco-datasets", name: "nope:test" },
        }),
      ),
      (e: grpc.ServiceError) => e.code === grpc.status.NOT_FOUND,
    );
    ev.close();
    console.log(
      `# e2e: kNN ${(100 * trained.knn!.top1).toFixed(1)}% vs random init ${(100 * random.knn!.top1).toFixed(1)}%`,
    );
  });
});
