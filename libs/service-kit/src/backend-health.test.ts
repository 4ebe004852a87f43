import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { TrainerService } from "@adco/proto/trainer";
import {
  checkHealth,
  commonConfig,
  createLogger,
  invalidArgument,
  loadConfig,
  register,
  RpcError,
  serviceNameOf,
  status,
  ServiceHost,
  unavailable,
} from "./index.js";
import { BROKEN_BACKEND_EXIT, isBackendBroken, leaveBrokenBackend } from "./backend-health.js";

/** A module whose `oob` loads past its one page of memory and whose `trap` is `unreachable`. */
const TRAPS = new Uint8Array([
  0x00,
  0x61,
  0x73,
  0x6d,
  0x01,
  0x00,
  0x00,
  0x00, // magic, version
  0x01,
  0x05,
  0x01,
  0x60,
  0x00,
  0x01,
  0x7f, // type: () -> i32
  0x03,
  0x03,
  0x02,
  0x00,
  0x00, // two functions of it
  0x05,
  0x03,
  0x01,
  0x00,
  0x01, // one memory of one page
  0x07,
  0x0e,
  0x02,
  0x03,
  0x6f,
  0x6f,
  0x62,
  0x00,
  0x00,
  0x04,
  0x74,
  0x72,
  0x61,
  0x70,
  0x00,
  0x01,
  0x0a,
  0x0f,
  0x02,
  0x09,
  0x00,
  0x41,
  0xf0,
  0xa2,
  0x04,
  0x28,
  0x02,
  0x00,
  0x0b, // i32.load (i32.const 70000)
  0x03,
  0x00,
  0x00,
  0x0b, // unreachable
]);

/** The global WebAssembly (the trainer's tsconfig has no DOM types). */
const wasm = (
  globalThis as unknown as {
    WebAssembly: {
      Module: new (bytes: Uint8Array) => object;
      Instance: new (module: object) => { exports: Record<string, unknown> };
    };
  }
).WebAssembly;

function trapOf(name: "oob" | "trap"): unknown {
  const instance = new wasm.Instance(new wasm.Module(TRAPS));
  try {
    (instance.exports[name] as () => number)();
  } catch (e) {
    return e;
  }
  throw new Error(`${name} did not trap`);
}

describe("isBackendBroken", () => {
  it("is true for a WebAssembly trap, and for an error caused by one", () => {
    const oob = trapOf("oob");
    assert.match((oob as Error).message, /memory access out of bounds/);
    assert.equal(isBackendBroken(oob), true);
    assert.equal(isBackendBroken(trapOf("trap")), true);
    assert.equal(isBackendBroken(new Error("step 3 failed", { cause: oob })), true);
    // What emscripten's abort() throws in the tfjs wasm backend.
    assert.equal(isBackendBroken(new Error("Aborted(). Build with -sASSERTIONS for more info.")), true);
  });

  it("is false for the errors a run fails with and the process survives", () => {
    assert.equal(isBackendBroken(invalidArgument("config.batch_size: too large")), false);
    assert.equal(isBackendBroken(new TypeError("x is undefined")), false);
    assert.equal(isBackendBroken(new RangeError("Invalid typed array length: 68719476736")), false);
    assert.equal(isBackendBroken(undefined), false);
    // The bank's abort, as the bank link reports it: the bank's process is broken, not this one.
    const bankAbort = new RpcError(status.INTERNAL, "Step 3: the bank refused it: internal error: Aborted()");
    assert.equal(isBackendBroken(bankAbort), false);
    assert.equal(isBackendBroken(new Error("run failed", { cause: bankAbort })), false);
  });
});

const methods = ["startRun", "stopRun", "listRuns", "getRun", "watchRun", "checkpointNow"];
const refuse = async () => {
  throw unavailable("not in this test");
};

describe("leaveBrokenBackend", () => {
  it("turns health NOT_SERVING over the wire, shuts the host down and exits 70", async () => {
    const config = loadConfig(commonConfig({ grpcPort: 0, metricsPort: 0 }), {
      env: { ADCO_TLS_MODE: "plaintext" },
    });
    const log = createLogger("trainer", "fatal");
    const host = await ServiceHost.start({
      name: "trainer",
      config: { ...config, shutdownGraceMs: 1000 },
      services: [register(TrainerService, Object.fromEntries(methods.map((m) => [m, refuse])) as never)],
      log,
    });
    const address = `127.0.0.1:${host.grpcPort}`;
    const name = serviceNameOf(TrainerService);
    assert.equal(await checkHealth(address, name), "SERVING");
    let exitCode: number | undefined;
    let health: string | undefined;
    // The first probe after the abort: what Kubernetes sees before the process is gone.
    const shutdown = host.shutdown.bind(host);
    const probed = {
      health: host.health,
      shutdown: async (reason: string) => {
        health = await checkHealth(address, name);
        await shutdown(reason);
      },
    };
    await leaveBrokenBackend(probed, [name], trapOf("oob") as Error, log, (code) => (exitCode = code));
    assert.equal(health, "NOT_SERVING");
    assert.equal(exitCode, BROKEN_BACKEND_EXIT);
    await assert.rejects(checkHealth(address, name, 500));
  });
});
