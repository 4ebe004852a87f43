// Every service binary, as a real process on loopback: health, reflection, metrics, status codes for
// bad requests, config errors at start, and a graceful exit on SIGTERM.
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { after, before, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { importDataset } from "@adco/cli";
import { BUNDLED_FASHION_MNIST } from "@adco/datasets";
import { AdversaryBankClient, BankUpdate, type StepResponse } from "@adco/proto/adversary_bank";
import { BankKind, DataType } from "@adco/proto/common";
import { DataWorkerClient, type ViewsResponse } from "@adco/proto/data_worker";
import { EvaluateRequest, EvaluatorClient, type EvaluateEvent } from "@adco/proto/evaluator";
import { RunConfig, TrainerClient } from "@adco/proto/trainer";
import { channelOptions, checkHealth, unaryCall } from "@adco/service-kit";
import { ObjectStore } from "@adco/storage";
import { startS3Server, type S3ServerProcess } from "@adco/storage/testing";
import {
  failedStart,
  s3Env,
  SERVICES,
  startService,
  type ServiceName,
  type ServiceProcess,
} from "./lib/service-process.js";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const insecure = grpc.credentials.createInsecure();
const SERVICE_NAMES: Record<ServiceName, string> = {
  "data-worker": "adco.v1.DataWorker",
  trainer: "adco.v1.Trainer",
  "adversary-bank": "adco.v1.AdversaryBank",
  evaluator: "adco.v1.Evaluator",
};
const ONE_UNARY_METHOD: Record<ServiceName, string> = {
  "data-worker": "/adco.v1.DataWorker/Describe",
  trainer: "/adco.v1.Trainer/GetRun",
  "adversary-bank": "/adco.v1.AdversaryBank/GetStats",
  evaluator: "/adco.v1.Evaluator/Evaluate",
};

function reflectedServices(address: string): Promise<string[]> {
  const require = createRequire(import.meta.url);
  const protoPath = require.resolve("@grpc/reflection/build/proto/grpc/reflection/v1/reflection.proto");
  type ReflectionClient = grpc.Client & {
    ServerReflectionInfo(options: grpc.CallOptions): grpc.ClientDuplexStream<unknown, unknown>;
  };
  const pkg = grpc.loadPackageDefinition(loadSync(protoPath)) as unknown as {
    grpc: {
      reflection: {
        v1: { ServerReflection: new (address: string, c: grpc.ChannelCredentials) => ReflectionClient };
      };
    };
  };
  const client = new pkg.grpc.reflection.v1.ServerReflection(address, insecure);
  return new Promise((resolve, reject) => {
    const call = client.ServerReflectionInfo({ deadline: Date.now() + 5000 });
    call.on("data", (r: { listServicesResponse?: { service: { name: string }[] } }) => {
      resolve(r.listServicesResponse?.service.map((s) => s.name) ?? []);
      call.end();
      client.close();
    });
    call.on("error", reject);
    call.write({ listServices: "" });
  });
}

/** Sends raw bytes to a unary method; resolves with the error status. */
function sendRaw(address: string, path: string, bytes: Buffer): Promise<grpc.ServiceError> {
  const raw = new grpc.Client(address, insecure);
  return new Promise((resolve, reject) =>
    raw.makeUnaryRequest(
      path,
      (b: Buffer) => b,
      (b: Buffer) => b,
      bytes,
      { deadline: Date.now() + 5000 },
      (e) => {
        raw.close();
        if (e) resolve(e);
        else reject(new Error("expected an error status"));
      },
    ),
  );
}

const hasStatus = (code: grpc.status, pattern: RegExp) => (e: grpc.ServiceError) =>
  e.code === code && pattern.test(e.details);

for (const name of SERVICES) {
  describe(`${name} process`, () => {
    let service: ServiceProcess;
    before(async () => {
      service = await startService(name);
    });
    after(async () => {
      await service.stop("SIGKILL");
    });

    it("answers grpc.health.v1.Health/Check with SERVING, for the server and its service", async () => {
      assert.equal(await checkHealth(service.grpcAddress, ""), "SERVING");
      assert.equal(await checkHealth(service.grpcAddress, SERVICE_NAMES[name]), "SERVING");
      await assert.rejects(
        checkHealth(service.grpcAddress, "adco.v1.Nope"),
        hasStatus(grpc.status.NOT_FOUND, /.*/),
      );
    });

    it("lists its service through server reflection", async () => {
      assert.ok((await reflectedServices(service.grpcAddress)).includes(SERVICE_NAMES[name]));
    });

    it("exposes Prometheus metrics at /metrics", async () => {
      const response = await fetch(service.metricsUrl);
      assert.equal(response.status, 200);
      assert.match(response.headers.get("content-type") ?? "", /text\/plain/);
      const body = await response.text();
      assert.match(body, new RegExp(`adco_process_resident_memory_bytes\\{service="${name}"\\} \\d+`));
    });

    it("answers undecodable bytes with INVALID_ARGUMENT and keeps serving", async () => {
      const error = await sendRaw(
        service.grpcAddress,
        ONE_UNARY_METHOD[name],
        Buffer.from([0x0a, 0x05, 0x61]),
      );
      assert.equal(error.code, grpc.status.INVALID_ARGUMENT, error.details);
      assert.equal(await checkHealth(service.grpcAddress, ""), "SERVING");
    });

    it("writes structured JSON logs", () => {
      const listening = service.logs.find((l) => typeof l.grpcPort === "number");
      assert.equal(listening?.service, name);
      assert.equal(typeof listening?.time, "number");
    });
  });
}

describe("requests that are well-formed protobuf but wrong get a precise status", () => {
  const started: ServiceProcess[] = [];
  // The trainer looks runs up in object storage too, so it gets a real S3 server.
  let s3: S3ServerProcess | undefined;
  const start = async (name: ServiceName) => {
    s3 ??= await startS3Server();
    const s = await startService(name, s3Env(s3.settings));
    started.push(s);
    return s;
  };
  after(async () => {
    await Promise.all(started.map((s) => s.stop("SIGKILL")));
    await s3?.stop();
  });

  it("trainer: a config without a preset is INVALID_ARGUMENT; unknown runs and datasets are NOT_FOUND", async () => {
    const s = await start("trainer");
    const client = new TrainerClient(s.grpcAddress, insecure, channelOptions());
    await assert.rejects(
      unaryCall(client.startRun.bind(client), { runId: "", config: RunConfig.fromPartial({ preset: "" }) }),
      hasStatus(grpc.status.INVALID_ARGUMENT, /config\.preset: is required/),
    );
    await assert.rejects(
      unaryCall(client.getRun.bind(client), { runId: "no-such-run" }),
      hasStatus(grpc.status.NOT_FOUND, /no run "no-such-run"/),
    );
    // A dataset that is not there is refused at StartRun, not found missing once the run has begun.
    await assert.rejects(
      unaryCall(client.startRun.bind(client), {
        runId: "",
        config: RunConfig.fromPartial({
          preset: "fashion-mnist",
          dataset: { bucket: "adco-datasets", name: "no-such-dataset" },
        }),
      }),
      hasStatus(grpc.status.NOT_FOUND, /no-such-dataset/),
    );
    await assert.rejects(
      unaryCall(client.getRun.bind(client), { runId: "bad id!" }),
      hasStatus(grpc.status.INVALID_ARGUMENT, /run_id: "bad id!" is not an id/),
    );
    assert.deepEqual((await unaryCall(client.listRuns.bind(client), {})).runs, []);
    client.close();
  });

  it("trainer: the run of startRun (a ConfigMap in Kubernetes) waits for its dataset, then starts at boot", async () => {
    const dir = mkdtempSync(join(tmpdir(), "adco-start-"));
    const file = join(dir, "run.json");
    const config = { preset: "fashion-mnist", dataset: { bucket: "adco-datasets", name: "boot-fmnist" } };
    writeFileSync(file, JSON.stringify({ runId: "boot-run", config }));
    s3 ??= await startS3Server();
    const s = await startService("trainer", { ...s3Env(s3.settings), ADCO_START_RUN: file });
    started.push(s);
    const client = new TrainerClient(s.grpcAddress, insecure, channelOptions());
    const waiting = () => s.logs.some((l) => String(l.msg).startsWith("waiting for the run's dataset"));
    for (let i = 0; i < 100 && !waiting(); i++) await new Promise((r) => setTimeout(r, 100));
    assert.ok(waiting(), "the trainer says it waits for the dataset");
    await assert.rejects(
      unaryCall(client.getRun.bind(client), { runId: "boot-run" }),
      hasStatus(grpc.status.NOT_FOUND, /no run "boot-run"/),
    );
    await importDataset(new ObjectStore(s3.settings), {
      format: "idx",
      source: BUNDLED_FASHION_MNIST,
      name: "boot-fmnist",
      bucket: "adco-datasets",
      quiet: true,
    });
    let run;
    for (let i = 0; i < 100 && !run; i++) {
      run = await unaryCall(client.getRun.bind(client), { runId: "boot-run" }).catch(() => undefined);
      if (!run) await new Promise((r) => setTimeout(r, 200));
    }
    assert.equal(run?.runId, "boot-run", "the run started once its dataset was there");
    client.close();
  });

  it("adversary-bank: a zero temperature is INVALID_ARGUMENT naming it; steps of unknown runs NOT_FOUND", async () => {
    const s = await start("adversary-bank");
    const client = new AdversaryBankClient(s.grpcAddress, insecure, channelOptions());
    const hyper = {
      temperature: 0,
      memoryTemperature: 0.02,
      memoryLr: 3,
      memoryMomentum: 0.9,
      memoryWeightDecay: 1e-4,
    };
    await assert.rejects(
      unaryCall(client.createBank.bind(client), {
        runId: "r1",
        kind: BankKind.BANK_KIND_ADVERSARIAL,
        size: 16,
        dim: 8,
        hyper,
        seed: 0,
        peers: [],
      }),
      hasStatus(grpc.status.INVALID_ARGUMENT, /hyper\.temperature: 0 is outside \(0, inf\]/),
    );
    const step = client.step();
    const error = new Promise<grpc.ServiceError>((resolve) => step.on("error", resolve));
    step.on("data", (_: StepResponse) => assert.fail("no answer expected"));
    const tensor = { dtype: DataType.DATA_TYPE_FLOAT32, shape: [1, 8], data: Buffer.alloc(32) };
    step.write({
      runId: "r1",
      step: 1,
      pairs: [{ queries: tensor, keys: tensor }],
      reduction: 0,
      update: BankUpdate.BANK_UPDATE_TRAIN,
    });
    assert.ok(hasStatus(grpc.status.NOT_FOUND, /run "r1" has no bank/)(await error));
    client.close();
  });

  it("data-worker: a stream that does not begin with `open` is INVALID_ARGUMENT", async () => {
    const s = await start("data-worker");
    const client = new DataWorkerClient(s.grpcAddress, insecure, channelOptions());
    const call = client.streamViews();
    call.on("data", (_: ViewsResponse) => assert.fail("no batch expected"));
    const error = new Promise<grpc.ServiceError>((resolve) => call.on("error", resolve));
    call.write({ credit: { batches: 4 } });
    assert.ok(
      hasStatus(grpc.status.INVALID_ARGUMENT, /first message of StreamViews must be `open`/)(await error),
    );
    const description = await unaryCall(client.describe.bind(client), {});
    assert.ok(description.cores >= 1);
    assert.match(description.workerId, /:\d+$/);
    client.close();
  });

  it("evaluator: a request without an encoder is INVALID_ARGUMENT", async () => {
    const s = await start("evaluator");
    const client = new EvaluatorClient(s.grpcAddress, insecure, channelOptions());
    const call = client.evaluate(EvaluateRequest.fromPartial({ writeResults: false }));
    call.on("data", (_: EvaluateEvent) => assert.fail("no event expected"));
    const error = await new Promise<grpc.ServiceError>((resolve) => call.on("error", resolve));
    assert.ok(hasStatus(grpc.status.INVALID_ARGUMENT, /encoder: set checkpoint or random_init/)(error));
    client.close();
  });
});

describe("configuration errors stop a service at start, naming the key", () => {
  it("an unknown environment variable", async () => {
    const { code, stderr } = await failedStart("trainer", { ADCO_GRCP_PORT: "1" });
    assert.equal(code, 2);
    assert.match(stderr, /unknown variable ADCO_GRCP_PORT/);
  });

  it("an ill-typed environment value", async () => {
    const { code, stderr } = await failedStart("data-worker", { ADCO_SHUTDOWN_GRACE_MS: "soon" });
    assert.equal(code, 2);
    assert.match(stderr, /ADCO_SHUTDOWN_GRACE_MS \(key "shutdownGraceMs"\): expected integer/);
  });

  it("an unknown or ill-typed key in the config file", async () => {
    const dir = mkdtempSync(join(tmpdir(), "adco-config-"));
    const file = join(dir, "bank.yaml");
    writeFileSync(file, "logLevel: loud\nbankSise: 65536\n");
    const { code, stderr } = await failedStart("adversary-bank", { ADCO_CONFIG: file });
    assert.equal(code, 2);
    assert.match(stderr, /unknown key "bankSise"/);
    assert.match(stderr, /key "logLevel": expected one of fatal, error, warn, info/);
  });
});

describe("the trainer's startRun file", () => {
  it("with a key a RunConfig lacks stops the trainer at start, naming it", async () => {
    const dir = mkdtempSync(join(tmpdir(), "adco-start-"));
    const file = join(dir, "run.json");
    writeFileSync(file, JSON.stringify({ runId: "r", config: { preset: "fashion-mnist", epoch: 3 } }));
    const { code, stderr } = await failedStart("trainer", { ADCO_START_RUN: file });
    assert.equal(code, 2, stderr);
    assert.match(stderr, /startRun .*run\.json: unknown key epoch; a RunConfig has/);
  });
});

describe("SIGTERM", () => {
  for (const name of SERVICES) {
    it(`${name} exits 0 within 5 s`, async () => {
      const service = await startService(name);
      assert.equal(await checkHealth(service.grpcAddress, ""), "SERVING");
      const { code, ms } = await service.stop("SIGTERM");
      assert.equal(code, 0, service.stderr());
      assert.ok(ms < 5000, `exit took ${ms.toFixed(0)} ms`);
      assert.ok(service.logs.some((l) => l.msg === "stopped"));
    });
  }

  it("ends an open stream with UNAVAILABLE, then exits 0 within 5 s", async () => {
    const service = await startService("adversary-bank");
    const client = new AdversaryBankClient(service.grpcAddress, insecure, channelOptions());
    const step = client.step();
    const error = new Promise<grpc.ServiceError>((resolve) => step.on("error", resolve));
    await new Promise((r) => setTimeout(r, 200));
    const { code, ms } = await service.stop("SIGTERM");
    assert.equal((await error).code, grpc.status.UNAVAILABLE);
    assert.equal(code, 0, service.stderr());
    assert.ok(ms < 5000, `exit took ${ms.toFixed(0)} ms`);
    client.close();
  });
});
