// The system as `adco up` runs it, with mutual TLS from its throwaway CA: a short run trains over
// mTLS end to end (trainer, bank, data worker, evaluator) while every service's certificate is
// rotated, callers without the right credentials are refused with the right status, and no
// configured secret (S3 key, operators' token, private keys) shows in a log line, a stored object,
// the metrics or `adco runs`.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { connect } from "node:tls";
import { setTimeout as sleep } from "node:timers/promises";
import * as grpc from "@grpc/grpc-js";
import { evaluate, evaluatorAt, type LocalSystem, startLocalSystem, trainerAt } from "@adco/cli";
import { EncoderArch } from "@adco/proto/common";
import { EvaluateRequest } from "@adco/proto/evaluator";
import {
  AdversaryBankClient,
  AdversaryBankShardClient,
  BankUpdate,
  Reduction,
  type StepResponse,
  StepRequest,
} from "@adco/proto/adversary_bank";
import { PAPER_HYPERPARAMETERS } from "@adco/core";
import { encodeTensor } from "@adco/proto";
import { BankKind } from "@adco/proto/common";
import { RunConfig, type RunEvent, RunState, TrainerClient } from "@adco/proto/trainer";
import {
  channelCredentialsFor,
  channelOptions,
  createLocalCa,
  issueCertificate,
  tlsEnvironment,
  unaryCall,
  withBearerToken,
} from "@adco/service-kit";
import { ObjectStore } from "@adco/storage";
import { failedStart, ROOT, s3Env, startService, type ServiceProcess } from "./lib/service-process.js";
import { importTinyDataset } from "./lib/tiny-dataset.js";

const dir = mkdtempSync(join(tmpdir(), "adco-security-"));
const tlsDir = join(dir, "tls");
let system: LocalSystem;
let store: ObjectStore;
const openClients: grpc.Client[] = [];

before(async () => {
  system = await startLocalSystem({
    directory: dir,
    freePorts: true,
    evaluateEpochs: true,
    env: { ADCO_TLS_REFRESH_SECONDS: "1" },
  });
  store = new ObjectStore(system.s3);
  await importTinyDataset(store, "tiny", { train: 512, test: 64 });
});

after(async () => {
  for (const c of openClients) c.close();
  await system?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const operator = () => {
  const c = trainerAt(system.services.trainer.address, system.credentials("trainer"));
  openClients.push(c);
  return c;
};

/** The serial number of the certificate a service presents to a new connection. */
function servedSerial(address: string): Promise<string> {
  const [host, port] = address.split(":");
  return new Promise((resolve, reject) => {
    const socket = connect(
      { host, port: Number(port), rejectUnauthorized: false, ALPNProtocols: ["h2"] },
      () => {
        resolve(socket.getPeerCertificate().serialNumber);
        socket.end();
      },
    );
    socket.once("error", reject);
  });
}

function watch(runId: string, onEvent: (e: RunEvent) => void): Promise<RunEvent[]> {
  const client = operator();
  const call = client.watchRun({ runId, replay: true });
  const events: RunEvent[] = [];
  return new Promise((resolve, reject) => {
    call.on("data", (e: RunEvent) => {
      events.push(e);
      onEvent(e);
      const state = e.state?.state;
      if (state === RunState.RUN_STATE_COMPLETED || state === RunState.RUN_STATE_FAILED) {
        call.cancel();
        resolve(events);
      }
    });
    call.on("error", (e: grpc.ServiceError) =>
      e.code === grpc.status.CANCELLED ? resolve(events) : reject(e),
    );
  });
}

describe("the system with mutual TLS", () => {
  let runId = "";

  it("trains a short run over mTLS end to end while every certificate is rotated", async () => {
    const trainer = operator();
    const run = await unaryCall(trainer.startRun.bind(trainer), {
      runId: "secure",
      config: RunConfig.fromPartial({
        preset: "fashion-mnist",
        dataset: { bucket: "adco-datasets", name: "tiny" },
        epochs: 2,
        batchSize: 32,
        bankSize: 64,
        checkpointEverySteps: 4,
      }),
    });
    runId = run.runId;
    const addresses = Object.values(system.services).map((s) => s.address);
    const before = await Promise.all(addresses.map(servedSerial));
    let rotation: Promise<string[]> | undefined;
    const events = await watch(runId, (e) => {
      // After a few steps, every service gets a new certificate; the run must not notice.
      if ((e.step?.step ?? 0) >= 3 && !rotation) {
        system.rotateCertificates();
        rotation = (async () => {
          for (let i = 0; i < 100; i++) {
            const now = await Promise.all(addresses.map(servedSerial));
            if (now.every((serial, k) => serial !== before[k])) return now;
            await sleep(100);
          }
          throw new Error("the services still present their old certificates");
        })();
      }
    });
    assert.ok(rotation, "the run ended before the rotation");
    const after = await rotation;
    after.forEach((serial, k) => assert.notEqual(serial, before[k], addresses[k]));

    const final = events.findLast((e) => e.state)!.state!;
    assert.equal(final.state, RunState.RUN_STATE_COMPLETED, final.message);
    const steps = events.flatMap((e) => (e.step ? [e.step.step] : []));
    // 512 images at batch 32 for 2 epochs; the steps only go forward (none was redone from a checkpoint).
    assert.equal(steps.at(-1), 32);
    assert.ok(
      steps.every((s, i) => i === 0 || s > steps[i - 1]!),
      `steps went back: ${steps.join(",")}`,
    );
    // The trainer's calls to the evaluator are mTLS too: each epoch's kNN came back.
    assert.equal(events.filter((e) => e.eval).length, 2);
    // No service refused another: the identities and the access rules agree.
    for (const file of readdirSync(system.logDirectory)) {
      const text = readFileSync(join(system.logDirectory, file), "utf8");
      assert.doesNotMatch(text, /call refused/, `${file} refused a call`);
      assert.match(text, /"tls":"mtls"/, `${file} did not listen with mtls`);
    }
  });

  it("refuses callers without the right credentials, with the right status", async () => {
    const caOnly = {
      tlsMode: "mtls",
      tlsCertFile: "",
      tlsKeyFile: "",
      tlsCaFile: join(tlsDir, "ca.crt"),
    } as const;
    const settings = { ...caOnly, tlsRefreshSeconds: 60 };
    const refusal = (p: Promise<unknown>) =>
      p.then(
        () => ({ code: grpc.status.OK, details: "" }),
        (e: grpc.ServiceError) => ({ code: e.code, details: e.details }),
      );

    // No certificate, no token: the trainer's StartRun is UNAUTHENTICATED; reads stay open.
    const anonymous = new TrainerClient(
      system.services.trainer.address,
      channelCredentialsFor(settings, "trainer"),
      channelOptions(),
    );
    openClients.push(anonymous);
    const noCredentials = await refusal(
      unaryCall(anonymous.startRun.bind(anonymous), { runId: "intruder", config: undefined }),
    );
    assert.equal(noCredentials.code, grpc.status.UNAUTHENTICATED, noCredentials.details);
    assert.equal((await refusal(unaryCall(anonymous.listRuns.bind(anonymous), {}))).code, grpc.status.OK);

    // The operators' token may not step a bank: Step takes the trainer's certificate.
    const bankAddress = system.services["adversary-bank"].address;
    const tokenBank = new AdversaryBankClient(
      bankAddress,
      withBearerToken(channelCredentialsFor(settings, "adversary-bank"), system.clientTls!.token!),
      channelOptions(),
    );
    openClients.push(tokenBank);
    const step = await new Promise<{ code: number; details: string }>((resolve) => {
      const call = tokenBank.step();
      call.on("data", (_: StepResponse) => resolve({ code: grpc.status.OK, details: "" }));
      call.on("error", (e: grpc.ServiceError) => resolve({ code: e.code, details: e.details }));
      call.write(StepRequest.fromPartial({ runId, step: 999 }));
    });
    assert.equal(step.code, grpc.status.PERMISSION_DENIED, step.details);

    // A data worker's certificate may not drop a run's bank.
    const workerIdentity = join(tlsDir, "data-worker", "current");
    const workerBank = new AdversaryBankClient(
      bankAddress,
      channelCredentialsFor(
        {
          ...settings,
          tlsCertFile: join(workerIdentity, "tls.crt"),
          tlsKeyFile: join(workerIdentity, "tls.key"),
        },
        "adversary-bank",
      ),
      channelOptions(),
    );
    openClients.push(workerBank);
    const deleted = await refusal(unaryCall(workerBank.deleteBank.bind(workerBank), { runId }));
    assert.equal(deleted.code, grpc.status.PERMISSION_DENIED, deleted.details);
    assert.match(deleted.details, /the caller data-worker may not call it/);

    // The evaluator scores for the operators' token (as `adco eval` and `npm start` call it), and
    // not for a caller with no credentials.
    const scoring = EvaluateRequest.fromPartial({
      randomInit: { encoder: EncoderArch.ENCODER_ARCH_RESNET_MINI, seed: 0 },
      train: { bucket: "adco-datasets", name: "tiny:train" },
      test: { bucket: "adco-datasets", name: "tiny:test" },
      knn: { enabled: true, k: 20, temperature: 0.1 },
    });
    const operatorEvaluator = evaluatorAt(system.services.evaluator.address, system.credentials("evaluator"));
    openClients.push(operatorEvaluator);
    const scored = await evaluate(operatorEvaluator, scoring);
    assert.equal(scored.knn?.samples, 64);
    const anonymousEvaluator = evaluatorAt(
      system.services.evaluator.address,
      channelCredentialsFor(settings, "evaluator"),
    );
    openClients.push(anonymousEvaluator);
    const unscored = await refusal(evaluate(anonymousEvaluator, scoring));
    assert.equal(unscored.code, grpc.status.UNAUTHENTICATED, unscored.details);

    // Plaintext does not get through at all.
    const plain = new AdversaryBankClient(bankAddress, grpc.credentials.createInsecure(), channelOptions());
    openClients.push(plain);
    assert.equal(
      (await refusal(unaryCall(plain.getStats.bind(plain), { runId }, 5000))).code,
      grpc.status.UNAVAILABLE,
    );
  });

  it("shows no configured secret in a log line, a stored object, the metrics or `adco runs`", async () => {
    const secrets = new Map<string, string>([
      ["the S3 secret key", system.s3.secretKey],
      ["the operators' token", system.clientTls!.token!],
    ]);
    // Every private key of the system: a line of each key's base64 body is enough to spot it.
    const keys = (d: string): string[] =>
      readdirSync(d, { withFileTypes: true }).flatMap((e) =>
        e.isDirectory() ? keys(join(d, e.name)) : e.name.endsWith(".key") ? [join(d, e.name)] : [],
      );
    for (const file of keys(tlsDir)) {
      const body = readFileSync(file, "utf8")
        .split("\n")
        .filter((l) => l && !l.startsWith("-----"));
      secrets.set(file, body.join(""));
      secrets.set(`${file} (first line)`, body[0]!);
    }
    assert.ok(secrets.size >= 2 + 2 * 5, "expected the CA's and four services' keys");

    const places = new Map<string, string>();
    for (const file of readdirSync(system.logDirectory))
      places.set(`log ${file}`, readFileSync(join(system.logDirectory, file), "utf8"));
    for (const bucket of ["adco-datasets", "adco-checkpoints"]) {
      for (const { key } of await store.list(bucket, "")) {
        places.set(`object ${bucket}/${key}`, Buffer.from(await store.get(bucket, key)).toString("latin1"));
      }
    }
    assert.ok(
      [...places.keys()].some((p) => p.includes("status.json")),
      "the run's stored status was read",
    );
    for (const service of Object.values(system.services)) {
      const port = service.startLogs.find((l) => typeof l.metricsPort === "number")!.metricsPort as number;
      places.set(`metrics ${service.name}`, await (await fetch(`http://127.0.0.1:${port}/metrics`)).text());
    }
    const runs = spawnSync(
      process.execPath,
      ["--conditions=development", "--import", "tsx", join(ROOT, "libs/cli/src/main.ts"), "runs"],
      {
        encoding: "utf8",
        env: {
          ...process.env,
          ADCO_TRAINER_ADDRESS: system.services.trainer.address,
          ADCO_TLS_CA_FILE: join(tlsDir, "ca.crt"),
          ADCO_AUTH_TOKEN_FILE: join(tlsDir, "token"),
        },
      },
    );
    assert.equal(runs.status, 0, runs.stderr);
    assert.match(runs.stdout, new RegExp(`${runId}\\tcompleted`));
    places.set("adco runs", runs.stdout + runs.stderr);

    for (const [where, text] of places) {
      for (const [what, secret] of secrets) {
        assert.ok(!text.includes(secret), `${where} contains ${what}`);
      }
    }
  });
});

describe("a sharded bank with mutual TLS", () => {
  const pki = join(dir, "bank-pki");
  const replicas: ServiceProcess[] = [];
  after(async () => {
    await Promise.all(replicas.map((r) => r.stop()));
  });

  it("stops at start, naming the keys, when mtls has no certificate", async () => {
    const { code, stderr } = await failedStart("adversary-bank", {
      ...s3Env(system.s3),
      ADCO_TLS_MODE: "mtls",
    });
    assert.equal(code, 2, stderr);
    assert.match(stderr, /tlsMode is mtls but tlsCertFile, tlsKeyFile, tlsCaFile are not set/);
  });

  it("steps over two shards, shard 0 calling shard 1 with its certificate; the rounds are the bank's alone", async () => {
    const ca = createLocalCa(pki);
    const bankIdentity = issueCertificate(ca, "adversary-bank");
    const trainerIdentity = issueCertificate(ca, "trainer");
    const env = { ...s3Env(system.s3), ...tlsEnvironment(ca, bankIdentity) };
    replicas.push(
      ...(await Promise.all([startService("adversary-bank", env), startService("adversary-bank", env)])),
    );
    const asTrainer = channelCredentialsFor(
      {
        tlsMode: "mtls",
        tlsCertFile: trainerIdentity.certFile,
        tlsKeyFile: trainerIdentity.keyFile,
        tlsCaFile: ca.caFile,
        tlsRefreshSeconds: 60,
      },
      "adversary-bank",
    );
    const coordinator = new AdversaryBankClient(replicas[0]!.grpcAddress, asTrainer, channelOptions());
    openClients.push(coordinator);
    const [batch, dim, size] = [8, 16, 32];
    const info = await unaryCall(coordinator.createBank.bind(coordinator), {
      runId: "sharded-mtls",
      kind: BankKind.BANK_KIND_ADVERSARIAL,
      size,
      dim,
      hyper: PAPER_HYPERPARAMETERS,
      seed: 3,
      peers: [replicas[1]!.grpcAddress],
      snapshotPrefix: { bucket: "adco-checkpoints", key: "runs/sharded-mtls/", sizeBytes: 0, sha256: "" },
    });
    assert.equal(info.shardCount, 2);
    const rows = (seed: number) => {
      const r = Float32Array.from({ length: batch * dim }, (_, i) => Math.sin(seed * 31 + i));
      for (let b = 0; b < batch; b++) {
        const row = r.subarray(b * dim, (b + 1) * dim);
        const norm = Math.hypot(...row);
        row.forEach((v, i) => (row[i] = v / norm));
      }
      return encodeTensor(r, [batch, dim]);
    };
    const answers = await new Promise<StepResponse[]>((resolve, reject) => {
      const call = coordinator.step();
      const got: StepResponse[] = [];
      call.on("error", reject);
      call.on("data", (r: StepResponse) => {
        got.push(r);
        if (got.length === 4) {
          call.on("error", () => {});
          call.cancel();
          resolve(got);
        }
      });
      for (let step = 1; step <= 4; step++)
        call.write({
          runId: "sharded-mtls",
          step,
          pairs: [{ queries: rows(step), keys: rows(step + 100) }],
          reduction: Reduction.REDUCTION_MEAN,
          update: BankUpdate.BANK_UPDATE_FILL,
        });
    });
    assert.deepEqual(
      answers.map((a) => a.step),
      [1, 2, 3, 4],
    );
    assert.equal(answers[3]!.stats!.filledAdversaries, size, "both shards' slices were filled");
    // The trainer's certificate may not run a shard's rounds itself.
    const shard = new AdversaryBankShardClient(replicas[1]!.grpcAddress, asTrainer, channelOptions());
    openClients.push(shard);
    const refused = await unaryCall(shard.partialLogSumExp.bind(shard), {
      runId: "sharded-mtls",
      step: 5,
      queries: [],
    }).then(
      () => undefined,
      (e: grpc.ServiceError) => e,
    );
    assert.equal(refused?.code, grpc.status.PERMISSION_DENIED, refused?.details);
    assert.match(
      refused!.details,
      /the caller trainer may not call it; it takes the certificate of adversary-bank/,
    );
  });
});
