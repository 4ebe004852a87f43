// A bank sharded over three adversary-bank processes on loopback answers every step as one bank does
// (to float32), through init_memory (with a write that wraps at K) and training; its snapshot
// restores all slices after a shard is SIGKILLed.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { PAPER_HYPERPARAMETERS } from "@adco/core";
import { decodeTensor, encodeTensor } from "@adco/proto";
import {
  AdversaryBankClient,
  BankUpdate,
  type CreateBankRequest,
  Reduction,
  type StepRequest,
  type StepResponse,
} from "@adco/proto/adversary_bank";
import { BankKind, DataType } from "@adco/proto/common";
import { channelOptions, unaryCall } from "@adco/service-kit";
import { ObjectStore } from "@adco/storage";
import { startS3Server, type S3ServerProcess } from "@adco/storage/testing";
import { s3Env, startService, type ServiceProcess } from "./lib/service-process.js";

const DIM = 16;
const SIZE = 61; // uneven slices (21, 20, 20); the 8th init_memory write wraps at K
const BATCH = 8;
const FILL_STEPS = 8;
const BUCKET = "adco-checkpoints";

let s3: S3ServerProcess;
const replicas: ServiceProcess[] = [];
let coordinator: AdversaryBankClient;

const startReplica = (port = 0) =>
  startService("adversary-bank", { ...s3Env(s3.settings), ADCO_GRPC_PORT: String(port) });
const portOf = (replica: ServiceProcess) => Number(replica.grpcAddress.split(":")[1]);

before(async () => {
  s3 = await startS3Server();
  await new ObjectStore(s3.settings).ensureBucket(BUCKET);
  replicas.push(...(await Promise.all([startReplica(), startReplica(), startReplica()])));
  coordinator = new AdversaryBankClient(
    replicas[0]!.grpcAddress,
    grpc.credentials.createInsecure(),
    channelOptions(),
  );
});
after(async () => {
  coordinator.close();
  await Promise.all(replicas.map((r) => r.stop()));
  await s3.stop();
});

function bankRequest(runId: string, peers: string[]): CreateBankRequest {
  return {
    runId,
    kind: BankKind.BANK_KIND_ADVERSARIAL,
    size: SIZE,
    dim: DIM,
    hyper: PAPER_HYPERPARAMETERS,
    seed: 11,
    peers,
    snapshotPrefix: { bucket: BUCKET, key: `runs/${runId}/`, sizeBytes: 0, sha256: "" },
  };
}

/** Deterministic unit rows (a small LCG, so both banks get the same bytes). */
function unitRows(seed: number): Float32Array {
  let state = seed * 7919 + 17;
  const rows = new Float32Array(BATCH * DIM);
  for (let i = 0; i < rows.length; i++) {
    state = (state * 1103515245 + 12345) % 2147483648;
    rows[i] = state / 2147483648 - 0.5;
  }
  for (let r = 0; r < BATCH; r++) {
    const row = rows.subarray(r * DIM, (r + 1) * DIM);
    const norm = Math.hypot(...row);
    row.forEach((v, i) => (row[i] = v / norm));
  }
  return rows;
}

/** Step `step` of the schedule: init_memory first, then symmetric training steps (two pairs). */
function stepRequest(runId: string, step: number): StepRequest {
  const pair = (q: number, k: number) => ({
    queries: encodeTensor(unitRows(q), [BATCH, DIM]),
    keys: encodeTensor(unitRows(k), [BATCH, DIM]),
  });
  const fill = step <= FILL_STEPS;
  return {
    runId,
    step,
    pairs: fill
      ? [pair(3 * step, 3 * step + 1)]
      : [pair(3 * step, 3 * step + 1), pair(3 * step + 1, 3 * step)],
    reduction: Reduction.REDUCTION_MEAN,
    update: fill ? BankUpdate.BANK_UPDATE_FILL : BankUpdate.BANK_UPDATE_TRAIN,
  };
}

async function exchange(client: AdversaryBankClient, requests: StepRequest[]): Promise<StepResponse[]> {
  const call = client.step();
  const answers: StepResponse[] = [];
  await new Promise<void>((resolve, reject) => {
    call.on("error", reject);
    call.on("data", (r: StepResponse) => {
      answers.push(r);
      if (answers.length === requests.length) resolve();
    });
    for (const r of requests) call.write(r);
  });
  call.on("error", () => {});
  call.cancel();
  return answers;
}

const grad = (r: StepResponse, i: number) =>
  decodeTensor(r.queryGrads[i], "grad", { dtype: DataType.DATA_TYPE_FLOAT32, shape: [BATCH, DIM] }).data;

function assertSameAnswer(sharded: StepResponse, single: StepResponse) {
  const what = `step ${single.step}`;
  assert.ok(
    Math.abs(sharded.loss - single.loss) <= 1e-6 * Math.abs(single.loss),
    `${what} loss ${sharded.loss} vs ${single.loss}`,
  );
  const [a, b] = [sharded.stats!, single.stats!];
  assert.equal(a.contrastAccuracy, b.contrastAccuracy, `${what} accuracy`);
  assert.equal(a.filledAdversaries, b.filledAdversaries, `${what} filled rows`);
  for (const key of [
    "adversaryProbability",
    "meanAdversarySimilarity",
    "maxAdversarySimilarity",
    "meanAdversaryNorm",
    "meanPositiveSimilarity",
  ] as const) {
    assert.ok(
      Math.abs(a[key] - b[key]) <= 1e-5 * Math.max(1, Math.abs(b[key])),
      `${what} ${key}: ${a[key]} vs ${b[key]}`,
    );
  }
  assert.equal(sharded.queryGrads.length, single.queryGrads.length);
  single.queryGrads.forEach((_, i) => {
    const [x, y] = [grad(sharded, i), grad(single, i)];
    const scale = Math.max(...y.map(Math.abs));
    const worst = Math.max(...x.map((v, j) => Math.abs(v - y[j]!)));
    assert.ok(
      worst <= 1e-5 * scale,
      `${what} dLoss/dq of pair ${i}: differs by ${worst / scale} of its scale`,
    );
  });
}

const steps = (runId: string, from: number, to: number) =>
  Array.from({ length: to - from + 1 }, (_, i) => stepRequest(runId, from + i));

describe("sharded adversary bank on loopback", () => {
  let snapshot: { bucket: string; key: string; sizeBytes: number; sha256: string };

  it("answers every init_memory and training step as one bank does, across 3 uneven shards", async () => {
    const peers = replicas.slice(1).map((r) => r.grpcAddress);
    const info = await unaryCall(coordinator.createBank.bind(coordinator), bankRequest("sharded", peers));
    assert.equal(info.shardCount, 3);
    await unaryCall(coordinator.createBank.bind(coordinator), bankRequest("single", []));
    const single = await exchange(coordinator, steps("single", 1, 12));
    const sharded = await exchange(coordinator, steps("sharded", 1, 12));
    sharded.forEach((answer, i) => assertSameAnswer(answer, single[i]!));
    assert.equal(sharded[FILL_STEPS - 1]!.stats!.filledAdversaries, SIZE);
    const [replayed] = await exchange(coordinator, [stepRequest("sharded", 12)]);
    assert.equal(replayed!.replayed, true);
    assert.equal(replayed!.loss, sharded[11]!.loss);
  });

  it("refuses steps sent to a shard, and sharding a MoCo queue", async () => {
    const peer = new AdversaryBankClient(
      replicas[1]!.grpcAddress,
      grpc.credentials.createInsecure(),
      channelOptions(),
    );
    await assert.rejects(exchange(peer, [stepRequest("sharded", 13)]), (e: grpc.ServiceError) => {
      assert.equal(e.code, grpc.status.FAILED_PRECONDITION);
      assert.match(e.details, /holds shard 1 of run "sharded"; send steps to shard 0/);
      return true;
    });
    peer.close();
    await assert.rejects(
      unaryCall(coordinator.createBank.bind(coordinator), {
        ...bankRequest("queue", [replicas[1]!.grpcAddress]),
        kind: BankKind.BANK_KIND_QUEUE,
      }),
      (e: grpc.ServiceError) =>
        e.code === grpc.status.UNIMPLEMENTED && /a MoCo queue runs on one replica/.test(e.details),
    );
  });

  it("snapshots every slice; a SIGKILLed shard makes the bank lost, and a restore continues exactly", async () => {
    const written = await unaryCall(coordinator.snapshot.bind(coordinator), { runId: "sharded", step: 12 });
    snapshot = written.manifest!;
    const keys = (await new ObjectStore(s3.settings).list(BUCKET, "runs/sharded/bank/")).map((o) => o.key);
    for (const shard of [0, 1, 2]) {
      assert.ok(
        keys.some((k) => k.endsWith(`step-0000000012/shard-${shard}/manifest.json`)),
        `shard ${shard} written`,
      );
    }
    const [expected] = await exchange(coordinator, [stepRequest("single", 13)]);

    const port = portOf(replicas[2]!);
    await replicas[2]!.stop("SIGKILL");
    replicas[2] = await startReplica(port);
    await assert.rejects(exchange(coordinator, [stepRequest("sharded", 13)]), (e: grpc.ServiceError) => {
      assert.equal(e.code, grpc.status.NOT_FOUND, e.details);
      assert.match(e.details, /lost a shard \(shard 2 at 127\.0\.0\.1:\d+: .*\); restore it from a snapshot/);
      return true;
    });
    // What the trainer does on NOT_FOUND: create the bank again, then restore its latest snapshot.
    const peers = replicas.slice(1).map((r) => r.grpcAddress);
    await unaryCall(coordinator.createBank.bind(coordinator), bankRequest("sharded", peers));
    const info = await unaryCall(coordinator.restore.bind(coordinator), {
      runId: "sharded",
      manifest: snapshot,
    });
    assert.equal(info.step, 12);
    assert.equal(info.filledAdversaries, SIZE);
    const [again] = await exchange(coordinator, [stepRequest("sharded", 12)]);
    assert.equal(again!.replayed, true, "the last answer survives the restore");
    const [next] = await exchange(coordinator, [stepRequest("sharded", 13)]);
    assertSameAnswer(next!, expected!);
  });
});
