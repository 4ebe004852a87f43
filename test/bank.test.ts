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
import { startService, type ServiceProcess } from "./lib/service-process.js";

const DIM = 16;
const SIZE = 64;
const BATCH = 8;
let service: ServiceProcess;
let client: AdversaryBankClient;

before(async () => {
  await initBackend("auto");
  service = await startService("adversary-bank");
  client = new AdversaryBankClient(service.grpcAddress, grpc.credentials.createInsecure(), channelOptions());
});
after(async () => {
  client.close();
  await service.stop();
});

function unitRows(seed: number): Float32Array {
  return tf.tidy(
    () =>
      l2Normalize(
        tf.randomNormal([BATCH, DIM], 0, 1, "float32", seed) as tf.Tensor2D,
      ).dataSync() as Float32Array,
  );
}

function request(step: number, seed: number): StepRequest {
  return {
    runId: "run-a",
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
    assert.ok(answers[2]!.stats!.meanRowNorm > 0);

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
});
