// The adversary-bank service as the trainer uses it: a process, one Step stream per run, answers
// equal to the core's, a retried step replayed without a second update.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { AdversaryNegatives, initBackend, l2Normalize, PAPER_HYPERPARAMETERS } from "@adco/core";
import { decodeTensor, encodeTensor } from "@adco/proto";
import {
  AdversaryBankClient,
  BankUpdate,
  type StepRequest,
  type StepResponse,
} from "@adco/proto/adversary_bank";
import { BankKind, DataType } from "@adco/proto/common";
import { channelOptions, unaryCall } from "@adco/service-kit";
import * as tf from "@tensorflow/tfjs-core";
import { ObjectStore } from "@adco/storage";
import { startS3Server, type S3ServerProcess } from "@adco/storage/testing";
import { s3Env, startService, type ServiceProcess } from "./lib/service-process.js";

const DIM = 16;
const SIZE = 64;
const BATCH = 8;
let service: ServiceProcess;
let client: AdversaryBankClient;
let s3: S3ServerProcess;

async function startBank(): Promise<void> {
  service = await startService("adversary-bank", s3Env(s3.settings));
  client = new AdversaryBankClient(service.grpcAddress, grpc.credentials.createInsecure(), channelOptions());
}

before(async () => {
  await initBackend("auto");
  s3 = await startS3Server();
  await new ObjectStore(s3.settings).ensureBucket("adco-checkpoints");
  await startBank();
});
after(async () => {
  client.close();
  await service.stop();
  await s3.stop();
});

function unitRows(seed: number): Float32Array {
  return tf.tidy(
    () =>
      l2Normalize(
        tf.randomNormal([BATCH, DIM], 0, 1, "float32", seed) as tf.Tensor2D,
      ).dataSync() as Float32Array,
  );
}

function request(step: number, seed: number, runId = "run-a"): StepRequest {
  return {
    runId,
    step,
    pairs: [
      {
        queries: encodeTensor(unitRows(seed), [BATCH, DIM]),
        keys: encodeTensor(unitRows(seed + 100), [BATCH, DIM]),
      },
    ],
    reduction: 0,
    update: BankUpdate.BANK_UPDATE_TRAIN,
  };
}

/** Sends requests on one stream and collects one answer per request, or the error that ends it. */
async function exchange(
  requests: StepRequest[],
): Promise<{ answers: StepResponse[]; error?: grpc.ServiceError }> {
  const call = client.step();
  const answers: StepResponse[] = [];
  const error = await new Promise<grpc.ServiceError | undefined>((resolve) => {
    call.on("error", resolve);
    call.on("data", (r: StepResponse) => {
      answers.push(r);
      if (answers.length === requests.length) resolve(undefined);
    });
    for (const r of requests) call.write(r);
  });
  call.on("error", () => {}); // the CANCELLED of our own cancel()
  call.cancel();
  return { answers, error };
}

describe("adversary-bank service", () => {
  it("creates a bank once; the same request again is fine, another configuration is ALREADY_EXISTS", async () => {
    const create = {
      runId: "run-a",
      kind: BankKind.BANK_KIND_ADVERSARIAL,
      size: SIZE,
      dim: DIM,
      hyper: PAPER_HYPERPARAMETERS,
      seed: 3,
      peers: [],
    };
    const info = await unaryCall(client.createBank.bind(client), create);
    assert.equal(info.step, 0);
    assert.equal(info.size, SIZE);
    assert.deepEqual(await unaryCall(client.createBank.bind(client), create), info);
    await assert.rejects(
      unaryCall(client.createBank.bind(client), { ...create, size: 128 }),
      (e: grpc.ServiceError) => e.code === grpc.status.ALREADY_EXISTS,
    );
  });

  it("answers each step as the core does, replays a retried step without a second update, refuses out-of-order steps", async () => {
    const local = new AdversaryNegatives(DIM, SIZE, PAPER_HYPERPARAMETERS, 3);
    const expect = (seed: number) =>
      tf.tidy(() => {
        const out = local.contrast(
          [
            {
              query: tf.tensor2d(unitRows(seed), [BATCH, DIM]),
              key: tf.tensor2d(unitRows(seed + 100), [BATCH, DIM]),
            },
          ],
          "mean",
        );
        return { loss: out.loss, grad: out.queryGrads[0]!.dataSync() as Float32Array };
      });
    const { answers, error } = await exchange([request(1, 1), request(1, 1), request(2, 2)]);
    assert.equal(error, undefined);
    assert.equal(answers.length, 3);
    const first = expect(1);
    const second = expect(2);
    assert.ok(Math.abs(answers[0]!.loss - first.loss) < 1e-5, `${answers[0]!.loss} vs ${first.loss}`);
    const grad = decodeTensor(answers[0]!.queryGrads[0], "g", {
      dtype: DataType.DATA_TYPE_FLOAT32,
      shape: [BATCH, DIM],
    }).data;
    grad.forEach((g, i) => assert.ok(Math.abs(g - first.grad[i]!) < 1e-6));
    assert.equal(answers[1]!.replayed, true);
    assert.equal(answers[1]!.loss, answers[0]!.loss);
    assert.ok(Math.abs(answers[2]!.loss - second.loss) < 1e-5, "step 2 sees the bank updated exactly once");
    assert.ok(answers[2]!.stats!.meanAdversaryNorm > 0);

    const { error: outOfOrder } = await exchange([request(5, 5)]);
    assert.equal(outOfOrder?.code, grpc.status.FAILED_PRECONDITION);
    assert.match(outOfOrder!.details, /step 5 is out of order: the last applied step is 2/);
    local.dispose();
  });

  it("ends a Step stream with OK when the client half-closes it", async () => {
    const call = client.step();
    call.on("data", () => {});
    const status = new Promise<grpc.StatusObject>((resolve) => call.on("status", resolve));
    call.end();
    assert.equal((await status).code, grpc.status.OK);
  });

  it("reports statistics, and forgets a deleted bank", async () => {
    const stats = await unaryCall(client.getStats.bind(client), { runId: "run-a" });
    assert.equal(stats.step, 2);
    assert.ok(stats.contrastAccuracy >= 0 && stats.contrastAccuracy <= 1);
    assert.ok(stats.adversaryProbability > 0 && stats.adversaryProbability < 1);
    await unaryCall(client.deleteBank.bind(client), { runId: "run-a" });
    await assert.rejects(
      unaryCall(client.getStats.bind(client), { runId: "run-a" }),
      (e: grpc.ServiceError) => e.code === grpc.status.NOT_FOUND,
    );
  });

  it("snapshots at the last applied step; after a SIGKILL a restored bank answers the next step as the old one did", async () => {
    const create = {
      runId: "run-s",
      kind: BankKind.BANK_KIND_ADVERSARIAL,
      size: SIZE,
      dim: DIM,
      hyper: PAPER_HYPERPARAMETERS,
      seed: 4,
      peers: [],
      snapshotPrefix: { bucket: "adco-checkpoints", key: "runs/run-s/", sizeBytes: 0, sha256: "" },
    };
    await unaryCall(client.createBank.bind(client), create);
    await exchange([1, 2, 3].map((s) => request(s, s, "run-s")));
    await assert.rejects(
      unaryCall(client.snapshot.bind(client), { runId: "run-s", step: 2 }),
      (e: grpc.ServiceError) =>
        e.code === grpc.status.FAILED_PRECONDITION && /last applied step is 3/.test(e.details),
    );
    const snapshot = await unaryCall(client.snapshot.bind(client), { runId: "run-s", step: 3 });
    assert.equal(snapshot.step, 3);
    assert.match(snapshot.manifest!.key, /^runs\/run-s\/bank\/step-0000000003\/manifest\.json$/);
    const before = (await exchange([request(4, 4, "run-s")])).answers[0]!;

    client.close();
    await service.stop("SIGKILL");
    await startBank();
    await assert.rejects(
      unaryCall(client.getStats.bind(client), { runId: "run-s" }),
      (e: grpc.ServiceError) => e.code === grpc.status.NOT_FOUND,
    );
    const info = await unaryCall(client.restore.bind(client), {
      runId: "run-s",
      manifest: snapshot.manifest,
    });
    assert.equal(info.step, 3);
    const replayed = (await exchange([request(3, 3, "run-s")])).answers[0]!;
    assert.equal(replayed.replayed, true, "the last answer survives the restore");
    const after = (await exchange([request(4, 4, "run-s")])).answers[0]!;
    assert.equal(after.replayed, false);
    assert.ok(Math.abs(after.loss - before.loss) < 1e-6, `${after.loss} vs ${before.loss}`);
    assert.deepEqual(after.queryGrads[0]!.data, before.queryGrads[0]!.data);

    await assert.rejects(
      unaryCall(client.restore.bind(client), {
        runId: "run-s",
        manifest: { ...snapshot.manifest!, key: "runs/run-s/bank/missing/manifest.json" },
      }),
      (e: grpc.ServiceError) => e.code === grpc.status.NOT_FOUND,
    );
    await assert.rejects(
      unaryCall(client.restore.bind(client), { runId: "run-other", manifest: snapshot.manifest }),
      (e: grpc.ServiceError) =>
        e.code === grpc.status.FAILED_PRECONDITION && /is of run "run-s"/.test(e.details),
    );
  });
});
