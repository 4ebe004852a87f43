// The GPU check (tools/gpu-check.ts) in its smoke mode on Mesa's llvmpipe, as a user runs it
// (`npm run -s gpu:check -- --smoke`), so that the one command prepared for a GPU machine is known
// to work before a GPU runs it: the adapter and its limits, the parity of one AdCo step with wasm,
// a timed step, the per-kernel profile, PyTorch found or said missing, and the results file in
// ADCO_RESULTS_DIR (never docs/results). Where no WebGPU adapter can be had it says so and skips;
// under CI=true it fails instead, as webgpu.test.ts does, since .ci/run installs llvmpipe.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it, type TestContext } from "node:test";
import { RESULTS_DIRECTORY, type ResultsFile } from "@adco/cli";
import { ROOT } from "./lib/service-process.js";

const resultsDir = mkdtempSync(join(tmpdir(), "adco-gpu-check-"));
after(() => rmSync(resultsDir, { recursive: true, force: true }));

interface SmokeResults {
  smoke: boolean;
  adapter: { device: string; software: boolean; limits: Record<string, number> } | null;
  parity: { ok: boolean; batch: number; gradient: number; failures: string[] } | null;
  pytorch: { python: string; version: string; device: string } | null;
  pytorchMissing?: string;
  steps: Record<
    string,
    {
      batch: number;
      webgpuImagesPerSecond: number | null;
      pytorchImagesPerSecond: number | null;
      profile: {
        timer: string;
        kernels: { name: string; calls: number }[];
        slowest: { name: string; share: number } | null;
      } | null;
    }
  >;
}

function skipOrFail(t: TestContext, reason: string): void {
  if (process.env.CI === "true")
    assert.fail(`CI has no WebGPU adapter (.ci/run installs llvmpipe): ${reason}`);
  t.skip(`no WebGPU adapter here: ${reason}`);
}

describe("gpu:check --smoke", () => {
  it("prints the adapter, parity with wasm, a timed step and its kernels, and writes its results", (t) => {
    const committed = join(RESULTS_DIRECTORY, "gpu-check.json");
    const before = existsSync(committed) ? statSync(committed).mtimeMs : undefined;
    const run = spawnSync("npm", ["run", "-s", "gpu:check", "--", "--smoke"], {
      cwd: ROOT,
      encoding: "utf8",
      env: { ...process.env, ADCO_RESULTS_DIR: resultsDir },
      timeout: 240_000,
    });
    const out = run.stdout;
    const detail = `status ${run.status} ${run.signal ?? ""}\n${out.slice(-3000)}\n${run.stderr.slice(-3000)}`;
    assert.equal(run.status, 0, detail);
    const none = /^adapter: none \((.*)\)$/m.exec(out);
    if (none) return skipOrFail(t, none[1]!);

    assert.match(
      out,
      /^adapter: vendor ".*", architecture ".*", device ".+", description ".*" \(Dawn /m,
      detail,
    );
    assert.match(out, /^limits: .*maxBufferSize \d+.*maxComputeWorkgroupStorageSize \d+/m, detail);
    assert.match(
      out,
      /^parity \(one AdCo step, resnet-mini b8, K 64, webgpu against wasm\): parity ok: /m,
      detail,
    );
    assert.match(out, /^(PyTorch\/CUDA missing: .+|PyTorch \S+ on .+)$/m, detail);
    const row = /^\| resnet-mini \| 28x28x1 \| 8 \| ([\d.]+) \| ([\d.]+) \| /m.exec(out);
    assert.ok(row && Number(row[1]) > 0, `no images/s for resnet-mini: ${detail}`);
    assert.match(out, /^per-kernel time of one step, resnet-mini b8: /m, detail);
    // The kernels of a training step, with the shader programs that ran them.
    assert.match(out, /^\| (Conv2D|Conv2DBackpropFilter|BatchMatMul|Multiply|Add) \| \d+ \| /m, detail);
    // llvmpipe has no timestamp-query: each kernel is timed on the wall clock, so one is the slowest.
    assert.match(out, /^slowest: \w+, [\d.]+% of the kernels' [\d.]+ ms; /m, detail);

    const file = JSON.parse(readFileSync(join(resultsDir, "gpu-check.json"), "utf8")) as ResultsFile;
    assert.equal(file.command, "npm run -s gpu:check -- --smoke");
    assert.equal(file.machine.backend, "webgpu");
    const results = file.results as unknown as SmokeResults;
    assert.equal(results.smoke, true);
    assert.ok(results.adapter && results.adapter.device.length > 0);
    assert.ok(results.adapter.limits.maxStorageBufferBindingSize! > 0);
    assert.ok(results.parity?.ok, JSON.stringify(results.parity));
    assert.deepEqual(results.parity.failures, []);
    assert.ok(results.parity.gradient <= 1e-4 && results.parity.gradient >= 0);
    assert.deepEqual(Object.keys(results.steps), ["resnet-mini"]);
    const step = results.steps["resnet-mini"]!;
    assert.equal(step.batch, 8);
    assert.equal(step.webgpuImagesPerSecond, Number(row[1]));
    // PyTorch's figure is there exactly when a CUDA PyTorch was found.
    assert.equal(step.pytorchImagesPerSecond === null, results.pytorch === null);
    if (results.pytorch === null) assert.match(results.pytorchMissing ?? "", /./);
    assert.ok(step.profile && step.profile.kernels.length > 5, JSON.stringify(step.profile));
    assert.ok(step.profile.kernels.every((k) => k.calls >= 1));
    assert.ok(step.profile.slowest && step.profile.slowest.share > 0, JSON.stringify(step.profile.slowest));
    // A smoke run leaves the committed results alone.
    assert.equal(existsSync(committed) ? statSync(committed).mtimeMs : undefined, before);
  });
});
