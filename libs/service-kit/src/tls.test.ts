import assert from "node:assert/strict";
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { connect } from "node:tls";
import { setTimeout as sleep } from "node:timers/promises";
import * as grpc from "@grpc/grpc-js";
import { TrainerClient, TrainerService } from "@adco/proto/trainer";
import { access, Authorizer } from "./auth.js";
import { channelOptions, checkHealth, unaryCall, withBearerToken } from "./client.js";
import { ConfigError, loadConfig } from "./config.js";
import { status } from "./errors.js";
import { createLocalCa, issueCertificate, tlsEnvironment, writeToken } from "./local-ca.js";
import { createLogger } from "./logger.js";
import { commonConfig, register, ServiceHost } from "./server.js";
import { channelCredentialsFor, checkTlsSettings, type TlsSettings } from "./tls.js";

// The trainer's definition with handlers that answer, so that a refused call is the kit's doing.
const handlers = register(
  TrainerService,
  {
    async startRun(request) {
      return {
        runId: request.runId,
        state: 0,
        step: 0,
        epoch: 0,
        totalSteps: 0,
        createdUnixMs: 0,
        error: "",
      };
    },
    async stopRun(request) {
      return {
        runId: request.runId,
        state: 0,
        step: 0,
        epoch: 0,
        totalSteps: 0,
        createdUnixMs: 0,
        error: "",
      };
    },
    async listRuns() {
      return { runs: [] };
    },
    async getRun(request) {
      return {
        runId: request.runId,
        state: 0,
        step: 0,
        epoch: 0,
        totalSteps: 0,
        createdUnixMs: 0,
        error: "",
      };
    },
    async *watchRun() {},
    async checkpointNow() {
      return { runId: "r", step: 0 };
    },
  },
  {
    startRun: access.control("trainer"),
    stopRun: access.only("trainer"),
    listRuns: access.read,
    getRun: access.read,
    watchRun: access.read,
    checkpointNow: access.control(),
  },
);

const dir = mkdtempSync(join(tmpdir(), "adco-tls-test-"));
const ca = createLocalCa(join(dir, "ca"));
const other = createLocalCa(join(dir, "other"), "someone else's CA");
const server = issueCertificate(ca, "trainer", { directory: join(dir, "server") });
const trainerIdentity = issueCertificate(ca, "trainer", { directory: join(dir, "client"), stem: "trainer" });
const workerIdentity = issueCertificate(ca, "data-worker");
const foreign = issueCertificate(other, "trainer");
const expired = issueCertificate(ca, "trainer", { days: -1, stem: "expired" });
after(() => rmSync(dir, { recursive: true, force: true }));
const tokenFile = join(dir, "token");
const token = writeToken(tokenFile);

const settings = (cert?: { certFile: string; keyFile: string }, caFile = ca.caFile): TlsSettings => ({
  tlsMode: "mtls",
  tlsCertFile: cert?.certFile ?? "",
  tlsKeyFile: cert?.keyFile ?? "",
  tlsCaFile: caFile,
  tlsRefreshSeconds: 1,
});

async function startHost(env: Record<string, string>): Promise<ServiceHost> {
  const config = loadConfig(commonConfig({ grpcPort: 0, metricsPort: 0 }), {
    env: { ADCO_TLS_REFRESH_SECONDS: "1", ...tlsEnvironment(ca, server, tokenFile), ...env },
  });
  return ServiceHost.start({
    name: "test",
    config: { ...config, shutdownGraceMs: 500 },
    log: createLogger("test", "silent"),
    services: [handlers],
  });
}

describe("mutual TLS and authorisation", () => {
  let host: ServiceHost;
  let address: string;
  const clients: grpc.Client[] = [];
  const client = (credentials: grpc.ChannelCredentials) => {
    const c = new TrainerClient(address, credentials, channelOptions());
    clients.push(c);
    return c;
  };
  const refusal = async (c: TrainerClient, method: "startRun" | "stopRun" | "listRuns") => {
    const call = c[method].bind(c) as never;
    const error = await unaryCall(call, { runId: "r" }, 5000).then(
      () => undefined,
      (e: grpc.ServiceError) => e,
    );
    return error ? { code: error.code, details: error.details } : { code: status.OK, details: "" };
  };

  before(async () => {
    host = await startHost({ ADCO_HEALTH_PORT: "0" });
    address = `127.0.0.1:${host.grpcPort}`;
  });
  after(async () => {
    for (const c of clients) c.close();
    await host.shutdown("test over");
  });

  it("lets a client with the trainer's certificate call control and trainer-only methods", async () => {
    const c = client(channelCredentialsFor(settings(trainerIdentity), "trainer"));
    assert.equal((await refusal(c, "startRun")).code, status.OK);
    assert.equal((await refusal(c, "stopRun")).code, status.OK);
  });

  it("refuses a client without a certificate or token as UNAUTHENTICATED, but serves it reads", async () => {
    const c = client(channelCredentialsFor(settings(), "trainer"));
    const refused = await refusal(c, "startRun");
    assert.equal(refused.code, status.UNAUTHENTICATED);
    assert.match(
      refused.details,
      /StartRun: no valid credentials: it takes the certificate of trainer, or the bearer token/,
    );
    assert.equal((await refusal(c, "listRuns")).code, status.OK);
  });

  it("refuses a certificate from another CA and an expired one as UNAUTHENTICATED", async () => {
    for (const identity of [foreign, expired]) {
      const c = client(channelCredentialsFor(settings(identity), "trainer"));
      const refused = await refusal(c, "startRun");
      assert.equal(refused.code, status.UNAUTHENTICATED, identity.certFile);
      assert.match(refused.details, /missing, expired or not signed by the cluster CA/);
    }
  });

  it("refuses a wrong token as UNAUTHENTICATED and takes the right one for control only", async () => {
    const wrong = client(withBearerToken(channelCredentialsFor(settings(), "trainer"), "not-the-token"));
    const refused = await refusal(wrong, "startRun");
    assert.equal(refused.code, status.UNAUTHENTICATED);
    assert.match(refused.details, /the bearer token is not the one configured/);
    assert.doesNotMatch(refused.details, new RegExp(token));

    const right = client(withBearerToken(channelCredentialsFor(settings(), "trainer"), token));
    assert.equal((await refusal(right, "startRun")).code, status.OK);
    const trainerOnly = await refusal(right, "stopRun");
    assert.equal(trainerOnly.code, status.PERMISSION_DENIED);
    assert.match(
      trainerOnly.details,
      /StopRun: the bearer token may not call it; it takes the certificate of trainer/,
    );
  });

  it("refuses another service's certificate as PERMISSION_DENIED", async () => {
    const c = client(channelCredentialsFor(settings(workerIdentity), "trainer"));
    const refused = await refusal(c, "startRun");
    assert.equal(refused.code, status.PERMISSION_DENIED);
    assert.match(refused.details, /the caller data-worker may not call it/);
  });

  it("lets a client refuse a server whose certificate names another service", async () => {
    const c = client(channelCredentialsFor(settings(trainerIdentity), "adversary-bank"));
    assert.equal((await refusal(c, "listRuns")).code, status.UNAVAILABLE);
  });

  it("refuses a plaintext client (it cannot even connect)", async () => {
    const c = client(grpc.credentials.createInsecure());
    assert.equal((await refusal(c, "listRuns")).code, status.UNAVAILABLE);
  });

  it("serves health in plaintext on the health port, and nothing else there", async () => {
    assert.equal(await checkHealth(`127.0.0.1:${host.healthPort}`), "SERVING");
    const c = new TrainerClient(`127.0.0.1:${host.healthPort}`, grpc.credentials.createInsecure());
    clients.push(c);
    assert.equal((await refusal(c, "listRuns")).code, status.UNIMPLEMENTED);
  });

  it("presents a rotated certificate to new connections, and open channels keep working", async () => {
    const serialNow = () =>
      new Promise<string>((resolve, reject) => {
        const socket = connect(
          {
            host: "127.0.0.1",
            port: host.grpcPort,
            ca: [],
            rejectUnauthorized: false,
            ALPNProtocols: ["h2"],
          },
          () => {
            resolve(socket.getPeerCertificate().serialNumber);
            socket.end();
          },
        );
        socket.once("error", reject);
      });
    const open = client(channelCredentialsFor(settings(trainerIdentity), "trainer"));
    assert.equal((await refusal(open, "startRun")).code, status.OK);
    const before = await serialNow();
    const next = issueCertificate(ca, "trainer", { directory: join(dir, "next") });
    copyFileSync(next.keyFile, server.keyFile);
    copyFileSync(next.certFile, server.certFile);
    let after = before;
    for (let i = 0; i < 50 && after === before; i++) {
      await sleep(200);
      after = await serialNow();
    }
    assert.notEqual(after, before, "the server still presents the old certificate");
    assert.equal((await refusal(open, "startRun")).code, status.OK);
    const fresh = client(channelCredentialsFor(settings(trainerIdentity), "trainer"));
    assert.equal((await refusal(fresh, "startRun")).code, status.OK);
  });

  it("takes a rotated token file without a restart", async () => {
    writeFileSync(tokenFile, "the-new-token\n");
    await sleep(1100);
    const c = client(withBearerToken(channelCredentialsFor(settings(), "trainer"), "the-new-token"));
    assert.equal((await refusal(c, "startRun")).code, status.OK);
    writeFileSync(tokenFile, `${token}\n`);
  });
});

describe("authorisation settings", () => {
  it("requires authentication for reads with readAccess authenticated", () => {
    const authorizer = new Authorizer({ ...settings(), authTokenFile: "", readAccess: "authenticated" });
    assert.throws(
      () =>
        authorizer.check("/adco.v1.Trainer/ListRuns", access.read, { identity: undefined, token: undefined }),
      (e: { code: number }) => e.code === status.UNAUTHENTICATED,
    );
    authorizer.check("/adco.v1.Trainer/ListRuns", access.read, { identity: "evaluator", token: undefined });
  });

  it("refuses a token with plaintext, and mtls without its files, at start", () => {
    assert.throws(
      () =>
        new Authorizer({ ...settings(), tlsMode: "plaintext", authTokenFile: "/tmp/x", readAccess: "open" }),
      (e: Error) => e instanceof ConfigError && /would travel in the clear/.test(e.message),
    );
    assert.throws(
      () => checkTlsSettings({ ...settings(), tlsCaFile: "" }),
      (e: Error) =>
        e instanceof ConfigError && /tlsCertFile, tlsKeyFile, tlsCaFile are not set/.test(e.message),
    );
    assert.throws(
      () => checkTlsSettings(settings({ certFile: server.certFile, keyFile: workerIdentity.keyFile })),
      (e: Error) =>
        e instanceof ConfigError && /not a PEM certificate, key and CA that belong together/.test(e.message),
    );
    assert.throws(
      () => checkTlsSettings(settings({ certFile: "/nonexistent/tls.crt", keyFile: "/nonexistent/tls.key" })),
      (e: Error) =>
        e instanceof ConfigError &&
        /tlsCertFile \/nonexistent\/tls.crt: cannot read it \(ENOENT\)/.test(e.message),
    );
  });
});
