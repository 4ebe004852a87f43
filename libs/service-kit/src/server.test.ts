import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { TrainerClient, TrainerService, type RunEvent } from "@adco/proto/trainer";
import { channelOptions, checkHealth, unaryCall } from "./client.js";
import { loadConfig } from "./config.js";
import { failedPrecondition, status } from "./errors.js";
import { createLogger } from "./logger.js";
import { DrainingStream, type ServiceHandlers } from "./handlers.js";
import { commonConfig, register, ServiceHost } from "./server.js";

// A trainer definition with test handlers: each method exercises one path of the kit.
function testHandlers(
  streamStarted: () => void,
  watchRun?: ServiceHandlers<typeof TrainerService>["watchRun"],
) {
  return register(TrainerService, {
    async startRun() {
      throw failedPrecondition("precondition says no");
    },
    async stopRun() {
      throw new Error("a bug");
    },
    async listRuns() {
      return { runs: [] };
    },
    async getRun(request) {
      return {
        runId: request.runId,
        state: 0,
        step: 7,
        epoch: 0,
        totalSteps: 0,
        createdUnixMs: 0,
        error: "",
      };
    },
    async *watchRun(request, ctx) {
      let sequence = 0;
      streamStarted();
      while (!ctx.signal.aborted) {
        yield { runId: request.runId, sequence: ++sequence, unixMs: Date.now() } satisfies RunEvent;
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    async checkpointNow() {
      return { runId: "r", step: 0 };
    },
    ...(watchRun ? { watchRun } : {}),
  });
}

/** A watchRun stream's messages as they come, and the error it ends with (none for a clean end). */
function watchToEnd(client: InstanceType<typeof TrainerClient>) {
  const events: RunEvent[] = [];
  const stream = client.watchRun({ runId: "r1", replay: false });
  stream.on("data", (e: RunEvent) => events.push(e));
  const ended = new Promise<grpc.ServiceError | undefined>((resolve) => {
    stream.on("error", (e: grpc.ServiceError) => resolve(e));
    stream.on("end", () => resolve(undefined));
  });
  return { events, ended };
}

describe("ServiceHost", () => {
  let host: ServiceHost;
  let address: string;
  let client: InstanceType<typeof TrainerClient>;
  let streamStarted!: () => void;
  const started = new Promise<void>((resolve) => (streamStarted = resolve));

  before(async () => {
    const config = loadConfig(commonConfig({ grpcPort: 0, metricsPort: 0 }), {
      env: { ADCO_GRPC_PORT: "0", ADCO_TLS_MODE: "plaintext" },
    });
    host = await ServiceHost.start({
      name: "test",
      config: { ...config, shutdownGraceMs: 2000 },
      log: createLogger("test", "silent"),
      services: [testHandlers(streamStarted)],
    });
    address = `127.0.0.1:${host.grpcPort}`;
    client = new TrainerClient(address, grpc.credentials.createInsecure(), channelOptions());
  });
  after(async () => {
    client.close();
    await host.shutdown("test over");
  });

  it("answers health checks for the server and each service", async () => {
    assert.equal(await checkHealth(address, ""), "SERVING");
    assert.equal(await checkHealth(address, "adco.v1.Trainer"), "SERVING");
  });

  it("serves a unary call", async () => {
    const run = await unaryCall(client.getRun.bind(client), { runId: "abc" });
    assert.equal(run.runId, "abc");
    assert.equal(run.step, 7);
  });

  it("sends a thrown RpcError as its status code", async () => {
    await assert.rejects(unaryCall(client.startRun.bind(client), { runId: "" }), (e: grpc.ServiceError) => {
      return e.code === status.FAILED_PRECONDITION && e.details === "precondition says no";
    });
  });

  it("sends any other error as INTERNAL and keeps serving", async () => {
    await assert.rejects(unaryCall(client.stopRun.bind(client), { runId: "x" }), (e: grpc.ServiceError) => {
      return e.code === status.INTERNAL && /a bug/.test(e.details);
    });
    await unaryCall(client.listRuns.bind(client), {});
  });

  it("answers undecodable request bytes with INVALID_ARGUMENT, not INTERNAL", async () => {
    const raw = new grpc.Client(address, grpc.credentials.createInsecure());
    // Field 1 (run_id), length-delimited, claims 5 bytes but carries 1.
    const truncated = Buffer.from([0x0a, 0x05, 0x61]);
    const error = await new Promise<grpc.ServiceError>((resolve) =>
      raw.makeUnaryRequest(
        "/adco.v1.Trainer/GetRun",
        (b: Buffer) => b,
        (b: Buffer) => b,
        truncated,
        (e) => resolve(e!),
      ),
    );
    assert.equal(error.code, status.INVALID_ARGUMENT);
    assert.match(error.details, /malformed request/);
    raw.close();
  });

  it("exposes Prometheus metrics, counting calls by method and code", async () => {
    const body = await (await fetch(`http://127.0.0.1:${host.metricsPort}/metrics`)).text();
    assert.match(
      body,
      /adco_grpc_server_handled_total\{method="\/adco.v1.Trainer\/StartRun",code="FAILED_PRECONDITION",service="test"\} 1/,
    );
    assert.match(body, /adco_process_cpu_seconds_total/);
  });

  it("ends open streams on shutdown with UNAVAILABLE and drains", async () => {
    const { events, ended } = watchToEnd(client);
    await started;
    await new Promise((r) => setTimeout(r, 100));
    const t0 = performance.now();
    await host.shutdown("test");
    const error = await ended;
    assert.ok(performance.now() - t0 < 1500, "shutdown drained within the grace period");
    assert.ok(events.length >= 2, `got ${events.length} events before shutdown`);
    assert.equal(error?.code, status.UNAVAILABLE);
  });
});

describe("ServiceHost shutdown with a DrainingStream", () => {
  it("writes the stream's last messages after the shutdown begins, then UNAVAILABLE", async () => {
    const config = loadConfig(commonConfig({ grpcPort: 0, metricsPort: 0 }), {
      env: { ADCO_GRPC_PORT: "0", ADCO_TLS_MODE: "plaintext" },
    });
    let opened!: () => void;
    const open = new Promise<void>((resolve) => (opened = resolve));
    // A run that takes three more events to stop once the server shuts down.
    const handlers = testHandlers(
      () => {},
      (request, ctx) =>
        new DrainingStream(
          (async function* () {
            let sequence = 0;
            opened();
            while (!ctx.shutdown.aborted && !ctx.cancelled.aborted) {
              yield { runId: request.runId, sequence: ++sequence, unixMs: Date.now() } satisfies RunEvent;
              await new Promise((r) => setTimeout(r, 20));
            }
            for (let i = 0; i < 3; i++) {
              await new Promise((r) => setTimeout(r, 50));
              yield { runId: "after-shutdown", sequence: ++sequence, unixMs: Date.now() } satisfies RunEvent;
            }
          })(),
        ),
    );
    const host = await ServiceHost.start({
      name: "test",
      config: { ...config, shutdownGraceMs: 2000 },
      log: createLogger("test", "silent"),
      services: [handlers],
    });
    const client = new TrainerClient(
      `127.0.0.1:${host.grpcPort}`,
      grpc.credentials.createInsecure(),
      channelOptions(),
    );
    try {
      const { events, ended } = watchToEnd(client);
      await open;
      await new Promise((r) => setTimeout(r, 100));
      const t0 = performance.now();
      await host.shutdown("test");
      const error = await ended;
      assert.ok(performance.now() - t0 < 1500, "shutdown waited for the stream, not for the grace period");
      assert.deepEqual(
        events.filter((e) => e.runId === "after-shutdown").map((e) => e.sequence),
        [events.length - 2, events.length - 1, events.length],
        "the three last messages came after the shutdown began, in order",
      );
      assert.equal(error?.code, status.UNAVAILABLE);
    } finally {
      client.close();
      await host.shutdown("test over");
    }
  });
});
