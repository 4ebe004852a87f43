// Every bench and experiment in its smoke mode (--smoke: seconds, tiny sizes, the same code path), as
// a user runs it (`npm run -s <script> -- --smoke`), so a change that breaks one fails here rather
// than on the day someone measures. Each must exit 0, print its result lines and write a results
// file of the documented shape (libs/cli/src/results.ts) to ADCO_RESULTS_DIR, never docs/results.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { RESULTS_DIRECTORY, writeResults, type ResultsFile } from "@adco/cli";
import { ROOT } from "./lib/service-process.js";

const resultsDir = mkdtempSync(join(tmpdir(), "adco-bench-smoke-"));
after(() => rmSync(resultsDir, { recursive: true, force: true }));

function npmRun(script: string, args: string[], env: Record<string, string> = {}) {
  const t0 = performance.now();
  const run = spawnSync("npm", ["run", "-s", script, "--", ...args], {
    cwd: ROOT,
    encoding: "utf8",
    env: { ...process.env, ADCO_RESULTS_DIR: resultsDir, ...env },
    timeout: 180_000,
  });
  const seconds = (performance.now() - t0) / 1000;
  const detail = `${script} ${args.join(" ")} (${seconds.toFixed(1)} s, status ${run.status} ${run.signal ?? ""}):\n${run.stdout.slice(-2000)}\n${run.stderr.slice(-4000)}`;
  return { ...run, detail };
}

/** Every leaf of the results is a finite number, a string, a boolean or null. */
function leaves(value: unknown, path: string): void {
  if (typeof value === "number") assert.ok(Number.isFinite(value), `${path} = ${value}`);
  else if (Array.isArray(value)) value.forEach((v, i) => leaves(v, `${path}[${i}]`));
  else if (value !== null && typeof value === "object")
    for (const [k, v] of Object.entries(value)) leaves(v, `${path}.${k}`);
  else assert.ok(["string", "boolean"].includes(typeof value) || value === null, `${path}: ${typeof value}`);
}

function resultsOf(
  name: string,
  script: string,
  backend: boolean,
  args = ["--smoke"],
): ResultsFile["results"] {
  const path = join(resultsDir, `${name}.json`);
  assert.ok(existsSync(path), `${script} wrote no ${path}`);
  const file = JSON.parse(readFileSync(path, "utf8")) as ResultsFile;
  assert.deepEqual(Object.keys(file), ["command", "commit", "date", "machine", "results"]);
  assert.equal(file.command, `npm run -s ${script} -- ${args.join(" ")}`);
  assert.match(file.commit, /^([0-9a-f]{40}(-dirty)?|unknown)$/);
  assert.equal(new Date(file.date).toISOString(), file.date);
  assert.equal(typeof file.machine.cpu, "string");
  assert.ok(Number.isInteger(file.machine.cores) && file.machine.cores > 0);
  assert.equal(file.machine.node, process.version);
  if (backend) assert.match(file.machine.backend ?? "", /^(tensorflow|wasm|cpu)$/);
  leaves(file.results, "results");
  return file.results;
}

/** docs/results/<name>.json's modification time, to check a smoke run left it alone. */
const mtime = (name: string) => {
  const path = join(RESULTS_DIRECTORY, `${name}.json`);
  return existsSync(path) ? statSync(path).mtimeMs : undefined;
};

/** The line a bench prints when no interpreter it tried has PyTorch (tools/reference/reference.ts). */
const TORCH_MISSING =
  /^PyTorch: not available \((.+)\); install it with: apt-get install python3-torch libopenblas0-pthread$/m;

interface ComparedThreads {
  oursBackendThreads: number | null;
  pytorchImagesPerSecond?: number | null;
  oursOverPytorch?: number | null;
  referenceMsPerStep?: number | null;
  oursOverReference?: number | null;
}

/** Both thread counts measured on our side, and the reference's numbers present exactly when it ran. */
function checkThreads(
  byThreads: Record<string, ComparedThreads>,
  ran: boolean,
  ratio: keyof ComparedThreads,
) {
  assert.deepEqual(Object.keys(byThreads), ["1", "2"]);
  for (const row of Object.values(byThreads)) {
    assert.ok(row.oursBackendThreads === null || row.oursBackendThreads >= 1);
    if (ran) assert.ok((row[ratio] as number) > 0, `${ratio} ${row[ratio]}`);
    else assert.equal(row[ratio], null);
  }
}

describe("benches and experiments, smoke mode", { concurrency: 1 }, () => {
  // Chromium as the dashboard's browser test finds it: skipped without, except under CI=true.
  const chromium = process.env.ADCO_CHROMIUM ?? "/usr/bin/chromium";
  it(
    "bench:dashboard trains with nobody watching, with Chromium on the dashboard, and with its streams",
    {
      timeout: 180_000,
      skip: existsSync(chromium) || process.env.CI === "true" ? false : `no Chromium at ${chromium}`,
    },
    () => {
      const before = mtime("bench-dashboard");
      const run = npmRun("bench:dashboard", ["--smoke"]);
      assert.equal(run.status, 0, run.detail);
      assert.match(run.stdout, /^window 2: browser [\d.]+ steps\/s$/m, run.detail);
      assert.match(run.stdout, /^window 4: events +[\d.]+ steps\/s$/m, run.detail);
      assert.match(run.stdout, /^step rate, browser \/ closed beside it: median [\d.]+/m, run.detail);
      const results = resultsOf("bench-dashboard", "bench:dashboard", false) as unknown as {
        windows: number;
        browser: { overClosedByWindow: number[] };
        events: { overClosedByWindow: number[] };
        byWindow: { client: string; stepsPerSecond: number }[];
      };
      assert.equal(results.windows, 5);
      assert.deepEqual(
        results.byWindow.map((w) => w.client),
        ["closed", "browser", "closed", "events", "closed"],
      );
      assert.equal(results.browser.overClosedByWindow.length, 1);
      assert.equal(results.events.overClosedByWindow.length, 1);
      assert.equal(mtime("bench-dashboard"), before);
    },
  );

  // --torch: the reference runs when this machine has PyTorch (or numpy) and is reported missing when
  // not, so CI (no PyTorch) takes the missing path and a machine with python3-torch the other.
  it(
    "bench:bank steps a bank of 1 and 2 shard processes over gRPC, and beside a reference",
    { timeout: 180_000 },
    () => {
      const before = mtime("bench-bank");
      const args = ["--smoke", "--torch"];
      const run = npmRun("bench:bank", args);
      assert.equal(run.status, 0, run.detail);
      assert.match(run.stdout, /^1 shard : +\d+ ms per step \(median\)/m, run.detail);
      assert.match(run.stdout, /^2 shards: +\d+ ms per step \(median\)/m, run.detail);
      assert.match(
        run.stdout,
        /^\| 512 \| 2 \| [\d.]+ \| \w+ \((\d+|\?)\) \| ([\d.]+|-) \| ([\d.]+|-) \|$/m,
        run.detail,
      );
      const results = resultsOf("bench-bank", "bench:bank", true, args) as unknown as {
        shards: Record<string, { msPerStep: number; coordinatorMsPerStep: number }>;
        referenceComparison: {
          reference: { engine: string } | null;
          pytorch: { version: string } | null;
          pytorchMissing?: string;
          sizes: Record<string, Record<string, ComparedThreads>>;
        };
      };
      assert.deepEqual(Object.keys(results.shards), ["1", "2"]);
      assert.ok(results.shards["2"]!.msPerStep > 0);
      const compared = results.referenceComparison;
      assert.deepEqual(Object.keys(compared.sizes), ["512"]);
      if (compared.pytorch === null) {
        assert.match(run.stdout, TORCH_MISSING, run.detail);
        assert.ok(compared.pytorchMissing, "the reason PyTorch is missing");
      } else {
        assert.doesNotMatch(run.stdout, TORCH_MISSING);
        assert.equal(compared.reference?.engine, "torch");
      }
      checkThreads(compared.sizes["512"]!, compared.reference !== null, "oursOverReference");
      assert.equal(mtime("bench-bank"), before);
    },
  );

  it("bench:tls times the wire and a short run with plaintext and with mTLS", { timeout: 180_000 }, () => {
    const run = npmRun("bench:tls", ["--smoke"]);
    assert.equal(run.status, 0, run.detail);
    for (const line of [
      /^wire, \d+ KiB ViewBatches streamed: plaintext \d+ MB\/s, mTLS \d+ MB\/s \(x[\d.]+\)$/m,
      /^wire, \d+ KiB Step round trip: plaintext [\d.]+ ms, mTLS [\d.]+ ms \(x[\d.]+\)$/m,
      /^round 1, plaintext: \d+ steps, \d+ images\/s/m,
      /^round 1, mtls: \d+ steps, \d+ images\/s/m,
    ])
      assert.match(run.stdout, line, run.detail);
    const results = resultsOf("bench-tls", "bench:tls", false) as unknown as {
      wire: { mtlsOverPlaintext: { streamMBps: number } };
      system: Record<"plaintext" | "mtls", { steps: number }>;
    };
    assert.ok(results.system.mtls.steps > 0 && results.system.plaintext.steps > 0, "both runs trained");
    assert.ok(results.wire.mtlsOverPlaintext.streamMBps > 0);
  });

  it("bench:data augments, encodes, streams and feeds from a worker process", { timeout: 180_000 }, () => {
    const run = npmRun("bench:data", ["--smoke"]);
    assert.equal(run.status, 0, run.detail);
    for (const line of [
      /^28x28 grayscale, two views: \d+ images\/s per core$/m,
      /^224x224 JPEG, two views: \d+ images\/s per core; per image decode [\d.]+ ms/m,
      /^loopback, 4 batches of [\d.]+ MB \(one process\): gRPC \d+ MB\/s/m,
      /^1 worker process\(es\) -> one consumer: \d+ images\/s/m,
    ])
      assert.match(run.stdout, line, run.detail);
    const results = resultsOf("bench-data", "bench:data", false) as Record<string, Record<string, unknown>>;
    assert.deepEqual(Object.keys(results.workersToOneConsumer!), ["1"]);
    assert.ok((results.jpeg224TwoViews!.encodeMsPerImage as number) > 0, "the ViewBatch encode ran");
  });

  it(
    "bench:eval imports photos and scores a tenth and all of them in evaluator processes",
    { timeout: 180_000 },
    () => {
      const run = npmRun("bench:eval", ["--smoke"]);
      assert.equal(run.status, 0, run.detail);
      for (const line of [
        /^imported 2000 \+ 500 photos \(\d+ MiB of files\) in \d+ s$/m,
        /^a tenth \(200 \+ 50\): peak RSS \d+ MiB/m,
        /^all \(2000 \+ 500\): peak RSS \d+ MiB, [\d.]+ s \(features \d+ images\/s, kNN [\d.]+ s\), kNN top-1 [\d.]+%$/m,
        /^peak RSS, all \/ a tenth: [\d.]+ \(the split is 10x\)$/m,
      ])
        assert.match(run.stdout, line, run.detail);
      const results = resultsOf("bench-eval", "bench:eval", false) as Record<string, Record<string, number>>;
      assert.equal(results.all!.testImages, 500);
      assert.ok(results.all!.peakRssMiB! > results.all!.idleRssMiB!, "the peak is read after the work");
    },
  );

  it("bench:core times the ops, a step, and a step in a child process", { timeout: 180_000 }, () => {
    const args = ["--smoke", "--torch"];
    const run = npmRun("bench:core", args);
    assert.equal(run.status, 0, run.detail);
    assert.match(run.stdout, /^\| conv forward \| 28x28x1 k3 s1 -> 16 \|/m, run.detail);
    assert.match(run.stdout, /^\| q \. d \(logits\) \| 8x128 \. 128x512 \|/m, run.detail);
    assert.match(
      run.stdout,
      /^full AdCo step, resnet-mini 28x28x1, batch 16, K \d+ \(\w+\): [\d.]+ images\/s/m,
    );
    assert.match(run.stdout, /^batch 16: \w+ [\d.]+ images\/s, \w+ [\d.]+ images\/s/m, run.detail);
    assert.match(
      run.stdout,
      /^\| 2 \| [\d.]+ \| \w+ \((\d+|\?)\) \| ([\d.]+|-) \| ([\d.]+|-) \|$/m,
      run.detail,
    );
    const results = resultsOf("bench-core", "bench:core", true, args) as Record<string, unknown>;
    assert.ok(Object.keys(results.ops as object).length > 10);
    assert.ok("cpuComparison" in results);
    const compared = results.pytorchComparison as {
      batch: number;
      pytorch: { version: string } | null;
      pytorchMissing?: string;
      threads: Record<string, ComparedThreads>;
    };
    assert.equal(compared.batch, 16);
    if (compared.pytorch === null) {
      assert.match(run.stdout, TORCH_MISSING, run.detail);
      assert.ok(compared.pytorchMissing, "the reason PyTorch is missing");
    } else assert.doesNotMatch(run.stdout, TORCH_MISSING);
    checkThreads(compared.threads, compared.pytorch !== null, "oursOverPytorch");
  });

  // The missing path on every machine: an interpreter that does not exist has no PyTorch.
  it(
    "bench:core --torch without PyTorch says so, reports ours and records pytorch: null",
    { timeout: 180_000 },
    () => {
      const args = ["--smoke", "--no-cpu", "--torch", "--python", "/nonexistent/python3"];
      const run = npmRun("bench:core", args);
      assert.equal(run.status, 0, run.detail);
      const missing = TORCH_MISSING.exec(run.stdout);
      assert.ok(missing, run.detail);
      assert.equal(missing[1], "/nonexistent/python3: not found");
      assert.match(run.stdout, /^\| 1 \| [\d.]+ \| \w+ \((\d+|\?)\) \| - \| - \|$/m, run.detail);
      const results = resultsOf("bench-core", "bench:core", true, args) as Record<string, unknown>;
      const compared = results.pytorchComparison as {
        pytorch: null;
        pytorchMissing: string;
        threads: Record<string, ComparedThreads>;
      };
      assert.equal(compared.pytorch, null);
      assert.equal(compared.pytorchMissing, "/nonexistent/python3: not found");
      checkThreads(compared.threads, false, "oursOverPytorch");
    },
  );

  it("experiment:fashion-mnist pre-trains AdCo and MoCo v2 and scores kNN", { timeout: 180_000 }, () => {
    const run = npmRun("experiment:fashion-mnist", ["--smoke"]);
    assert.equal(run.status, 0, run.detail);
    assert.match(run.stdout, /^adco: kNN [\d.]+% at random init -> [\d.]+%$/m, run.detail);
    assert.match(run.stdout, /^moco: kNN [\d.]+% at random init -> [\d.]+%$/m, run.detail);
    assert.match(run.stdout, /^\| AdCo \| 2 \+ 2 \|/m, run.detail);
    const results = resultsOf("experiment-fashion-mnist", "experiment:fashion-mnist", true) as {
      methods: Record<string, { knnTop1Trained: number }>;
    };
    assert.deepEqual(Object.keys(results.methods), ["adco", "moco"]);
    for (const m of Object.values(results.methods)) assert.ok(m.knnTop1Trained >= 0 && m.knnTop1Trained <= 1);
  });

  it(
    "golden:make writes a case that conformance passes, with the bundled cases",
    { timeout: 120_000 },
    () => {
      const made = npmRun("golden:make", ["--n", "4", "--dim", "8", "--size", "16", "--seed", "3"]);
      assert.equal(made.status, 0, made.detail);
      const file = join(resultsDir, "case.json");
      writeFileSync(file, made.stdout);
      const golden = join(ROOT, "libs/core/fixtures/golden");
      const cases = ["case-small.json", "case-aligned.json", "case-paper-temps.json"].map((f) =>
        join(golden, f),
      );
      const run = npmRun("conformance", [file, ...cases]);
      assert.equal(run.status, 0, run.detail);
      assert.match(run.stdout, /^[1-9]\d* passed, 0 failed$/m, run.detail);
    },
  );
});

describe("results files", () => {
  it("a smoke run without ADCO_RESULTS_DIR writes to a temporary directory, not docs/results", () => {
    const saved = process.env.ADCO_RESULTS_DIR;
    delete process.env.ADCO_RESULTS_DIR;
    try {
      const path = writeResults({ name: "smoke-check", command: "x", smoke: true, results: { a: 1 } });
      assert.ok(!path.startsWith(RESULTS_DIRECTORY), path);
      assert.ok(path.startsWith(tmpdir()), path);
      rmSync(path);
    } finally {
      if (saved !== undefined) process.env.ADCO_RESULTS_DIR = saved;
    }
  });
});
