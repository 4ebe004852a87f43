import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { describe, test, type TestContext } from "node:test";
import { isSoftwareAdapter } from "./webgpu.js";
import { compareParitySteps, type ParityStep, parityLine } from "./webgpu-parity.js";

// The WebGPU backend against the wasm one. Each backend needs its own process (a backend initialises
// once), so each side runs in a child: one full AdCo step of the production trainer (keys, queries,
// the contrast with its ascent, dLoss/dq pulled back through f_q, SGD, the key encoder's EMA) from
// the same seed on each, then the golden cases through the production step on webgpu. Where no
// WebGPU adapter can be had (no Mesa llvmpipe through EGL, no GPU), the tests say so and skip; in
// CI (CI=true) they fail instead, since .ci/run installs the Debian packages that give llvmpipe.

const STEP_CHILD = `
import { initBackend } from "@adco/core";
import { recordParityStep } from "@adco/core/testing";
let backend;
try {
  backend = await initBackend(process.env.BACKEND);
} catch (e) {
  console.log(JSON.stringify({ unavailable: e.message }));
  process.exit(0);
}
const record = await recordParityStep(backend.name, 16);
// Exit only once the pipe has taken it all (a write to a pipe is asynchronous).
process.stdout.write(JSON.stringify({ ...record, detail: backend.detail }) + "\\n", () => process.exit(0));
`;

const GOLDEN_CHILD = `
import { readFileSync } from "node:fs";
import { initBackend } from "@adco/core";
import { parseGoldenCase, runGoldenCase } from "@adco/core/testing";
try {
  await initBackend("webgpu");
} catch (e) {
  console.log(JSON.stringify({ unavailable: e.message }));
  process.exit(0);
}
const results = [];
for (const file of JSON.parse(process.env.CASES)) {
  const c = parseGoldenCase(JSON.parse(readFileSync(file, "utf8")), file);
  for (const shards of [1, 2, 3]) results.push({ file, shards, outputs: runGoldenCase(c, shards) });
}
process.stdout.write(JSON.stringify({ results }) + "\\n", () => process.exit(0));
`;

/** This process's environment without the test runner's marker, which would make a child a test too. */
function childEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const { NODE_TEST_CONTEXT: _, ...env } = process.env;
  return { ...env, ADCO_THREADS: "1", ...extra };
}

type Unavailable = { unavailable: string };

function runChild<T>(script: string, env: Record<string, string>): T | Unavailable {
  const child = spawnSync(
    process.execPath,
    ["--conditions=development", "--import", "tsx", "--input-type=module", "-e", script],
    {
      cwd: import.meta.dirname,
      env: childEnv(env),
      encoding: "utf8",
      timeout: 120_000,
      // The step's parameters come back whole (about 1 MB of JSON each side).
      maxBuffer: 64 * 1024 * 1024,
    },
  );
  assert.equal(child.signal, null, `the child was killed (${child.signal}): ${child.stderr.slice(-2000)}`);
  assert.equal(child.status, 0, child.stderr.slice(-4000));
  return JSON.parse(child.stdout.trim().split("\n").at(-1)!) as T | Unavailable;
}

type StepResult = ParityStep & { detail: string };

/** No adapter: a skip that says why, except in CI, whose .ci/run installs llvmpipe. */
function skipOrFail(t: TestContext, reason: string): void {
  if (process.env.CI === "true")
    assert.fail(`CI has no WebGPU adapter (.ci/run installs llvmpipe): ${reason}`);
  t.skip(`no WebGPU adapter here: ${reason}`);
}

describe("the webgpu backend", () => {
  test("one AdCo step on webgpu equals the same step on wasm", (t) => {
    const gpu = runChild<StepResult>(STEP_CHILD, { BACKEND: "webgpu" });
    if ("unavailable" in gpu) return skipOrFail(t, gpu.unavailable);
    const wasm = runChild<StepResult>(STEP_CHILD, { BACKEND: "wasm" });
    if ("unavailable" in wasm) assert.fail(wasm.unavailable);
    assert.equal(gpu.backend, "webgpu");
    assert.equal(wasm.backend, "wasm");
    t.diagnostic(
      `${gpu.detail}: step ${gpu.stepMs.toFixed(0)} ms (first, shaders compiled); wasm ${wasm.stepMs.toFixed(0)} ms`,
    );
    const report = compareParitySteps(gpu, wasm);
    assert.deepEqual(report.failures, [], parityLine(report));
    t.diagnostic(parityLine(report));
  });

  test("the golden cases pass on webgpu, the bank whole and in 2 and 3 shards", (t) => {
    // The project's copies, and any other case in the shared set beside the checkout.
    const dirs = [
      join(import.meta.dirname, "../fixtures/golden"),
      join(import.meta.dirname, "../../../../shared/golden"),
    ];
    const cases = new Map<string, string>();
    for (const dir of dirs.filter((d) => existsSync(d))) {
      for (const f of readdirSync(dir).filter((f) => f.endsWith(".json")))
        if (!cases.has(f)) cases.set(f, join(dir, f));
    }
    assert.ok(cases.size >= 3, `golden cases: ${[...cases.keys()].join(", ")}`);
    const got = runChild<{
      results: {
        file: string;
        shards: number;
        outputs: { output: string; worstRelative: number; worstAbsolute: number; ok: boolean }[];
      }[];
    }>(GOLDEN_CHILD, { CASES: JSON.stringify([...cases.values()]) });
    if ("unavailable" in got) return skipOrFail(t, got.unavailable);
    assert.equal(got.results.length, 3 * cases.size);
    for (const { file, shards, outputs } of got.results) {
      for (const r of outputs) {
        assert.ok(
          r.ok,
          `${file}, ${shards} shard(s), ${r.output}: worst relative ${r.worstRelative.toExponential(2)}, absolute ${r.worstAbsolute.toExponential(2)}`,
        );
      }
    }
  });

  test("software adapters are told apart from GPUs (auto never takes them)", () => {
    assert.ok(
      isSoftwareAdapter({
        device: "llvmpipe-llvm-15-0-6-256-bits-",
        description: "OpenGL ES 3.2 Mesa 22.3.6",
      }),
    );
    assert.ok(isSoftwareAdapter({ vendor: "mesa", device: "lavapipe" }));
    assert.ok(isSoftwareAdapter({ vendor: "google", architecture: "swiftshader" }));
    assert.ok(isSoftwareAdapter({ device: "anything", isFallbackAdapter: true }));
    assert.ok(!isSoftwareAdapter({ vendor: "nvidia", architecture: "hopper", device: "NVIDIA H200" }));
    assert.ok(
      !isSoftwareAdapter({ vendor: "intel", architecture: "gen-12lp", device: "Mesa Intel(R) Xe Graphics" }),
    );
  });
});
