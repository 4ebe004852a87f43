// experiment:full-data in its smoke mode (seconds: 512 + 250 bundled images, batch 32, K 64, two
// epochs), as a user runs it: a results file of the documented shape in ADCO_RESULTS_DIR (never
// docs/results), kNN after each epoch, and a run stopped by SIGTERM that goes on from its checkpoint
// and ends where an uninterrupted run ends; a job another live process holds is refused, and
// --summary writes the results of what the directory holds without training, with the finished runs
// of the last results file that the directory does not hold.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { RESULTS_DIRECTORY, type ResultsFile } from "@adco/cli";
import { ROOT } from "./lib/service-process.js";

const scratch = mkdtempSync(join(tmpdir(), "adco-full-data-test-"));
after(() => rmSync(scratch, { recursive: true, force: true }));
const env = { ...process.env, ADCO_RESULTS_DIR: join(scratch, "results"), ADCO_THREADS: "1" };
const NODE_ARGS = ["--conditions=development", "--import", "tsx", "tools/full-data-study.ts"];

function study(args: string[]) {
  const run = spawnSync(process.execPath, [...NODE_ARGS, ...args], {
    cwd: ROOT,
    encoding: "utf8",
    env,
    timeout: 240_000,
  });
  return { ...run, detail: `status ${run.status}:\n${run.stdout.slice(-3000)}\n${run.stderr.slice(-3000)}` };
}

/** Runs the study and sends SIGTERM once `line` is printed; resolves with its exit code and output. */
function studyStoppedAt(args: string[], line: RegExp): Promise<{ status: number | null; stdout: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...NODE_ARGS, ...args], { cwd: ROOT, env });
    let stdout = "";
    let sent = false;
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
      if (!sent && line.test(stdout)) {
        sent = true;
        child.kill("SIGTERM");
      }
    });
    child.stderr.resume();
    child.on("error", reject);
    child.on("close", (status) => resolve({ status, stdout }));
  });
}

interface Run {
  seed: number;
  steps: number;
  monitorKnnByEpoch: number[];
  knn: number | null;
  linear: number | null;
  commit?: string;
}
interface Method {
  config: Record<string, unknown>;
  finishedSeeds: number[];
  knn: number | null;
  linear: number | null;
  knnSpread: number | null;
  monitorKnnByEpoch: number[];
  runs: Run[];
}
const resultsOf = () =>
  JSON.parse(
    readFileSync(join(scratch, "results", "experiment-full-data-e2.json"), "utf8"),
  ) as ResultsFile & {
    results: { epochs: number; rawPixels: { knn: number; linear: number }; methods: Record<string, Method> };
  };

describe("experiment:full-data --smoke", () => {
  it(
    "scores both methods over epochs, and a stopped run resumes to the same end",
    { timeout: 600_000 },
    async () => {
      const published = join(RESULTS_DIRECTORY, "experiment-full-data-e2.json");
      const before = existsSync(published) ? statSync(published).mtimeMs : undefined;

      const whole = join(scratch, "whole");
      // A lock left by a process that is gone is taken over.
      mkdirSync(join(whole, "adco-e2-seed0"), { recursive: true });
      writeFileSync(join(whole, "adco-e2-seed0", "lock"), String(spawnSync("true").pid));
      const first = study(["--smoke", "--seeds", "0", "--dir", whole]);
      assert.equal(first.status, 0, first.detail);
      for (const job of ["adco-e2-seed0", "moco-e2-seed0"]) {
        assert.match(
          first.stdout,
          new RegExp(`^${job}: epoch 1/2 kNN [\\d.]+% on 50 test images`, "m"),
          first.detail,
        );
        assert.match(
          first.stdout,
          new RegExp(
            `^${job}: epoch 2/2 kNN [\\d.]+% on 50 test images; on all 250: kNN [\\d.]+%, linear`,
            "m",
          ),
        );
      }
      const file = resultsOf();
      assert.deepEqual(Object.keys(file), ["command", "commit", "date", "machine", "results"]);
      const { results } = file;
      assert.equal(results.epochs, 2);
      for (const score of [results.rawPixels.knn, results.rawPixels.linear])
        assert.ok(score > 10 && score <= 100);
      assert.deepEqual(Object.keys(results.methods), ["adco", "moco"]);
      for (const m of Object.values(results.methods)) {
        assert.deepEqual(m.finishedSeeds, [0]);
        assert.equal(m.runs.length, 1);
        const run = m.runs[0]!;
        assert.equal(run.monitorKnnByEpoch.length, 2);
        // One seed: its scores are the means, with no spread.
        assert.deepEqual(m.monitorKnnByEpoch, run.monitorKnnByEpoch);
        assert.equal(m.knn, run.knn);
        assert.equal(m.linear, run.linear);
        assert.equal(m.knnSpread, 0);
      }
      const uninterrupted = results.methods.adco!.runs[0]!;
      const png = readFileSync(join(scratch, "results", "experiment-full-data-e2.png"));
      assert.equal(png.subarray(1, 4).toString(), "PNG");

      const again = study(["--smoke", "--seeds", "0", "--dir", whole]);
      assert.equal(again.status, 0, again.detail);
      assert.match(again.stdout, /^adco-e2-seed0: done$/m, again.detail);
      assert.match(again.stdout, /^moco-e2-seed0: done$/m, again.detail);
      assert.doesNotMatch(again.stdout, /step \d+\/\d+/, again.detail);

      // Another encoder is a study of its own: the preset encoder's jobs are not its runs.
      const wide = study([
        "--smoke",
        "--seeds",
        "0",
        "--dir",
        whole,
        "--arch",
        "resnet-mini-wide",
        "--summary",
      ]);
      assert.equal(wide.status, 0, wide.detail);
      const wideFile = JSON.parse(
        readFileSync(join(scratch, "results", "experiment-full-data-e2-resnet-mini-wide.json"), "utf8"),
      ) as { results: { methods: Record<string, Method> } };
      for (const m of Object.values(wideFile.results.methods)) {
        assert.equal(m.config.arch, "resnet-mini-wide");
        assert.deepEqual(m.runs, []);
      }
      for (const [name, why] of [
        ["resnet-huge", /arch: must be one of resnet-mini, resnet-mini-wide/],
        ["resnet50", /--arch: resnet50 takes 224x224x3 images, not 28x28 gray/],
      ] as const) {
        const refused = study(["--smoke", "--dir", whole, "--arch", name, "--summary"]);
        assert.notEqual(refused.status, 0, refused.detail);
        assert.match(refused.stderr, why, refused.detail);
      }

      // A directory without those jobs (another machine's, say) keeps the finished runs of the file it
      // replaces, marked with that file's commit; runs of another training config are left out.
      const elsewhere = join(scratch, "elsewhere");
      const kept = study(["--smoke", "--seeds", "0", "--dir", elsewhere, "--summary"]);
      assert.equal(kept.status, 0, kept.detail);
      assert.match(kept.stdout, new RegExp(`kept from ${file.commit.slice(0, 7)}`), kept.detail);
      const keptFile = resultsOf();
      for (const [method, m] of Object.entries(keptFile.results.methods)) {
        const before = results.methods[method]!;
        assert.deepEqual(m.finishedSeeds, [0]);
        assert.deepEqual(m.runs, [{ ...before.runs[0]!, commit: file.commit }]);
        assert.deepEqual([m.knn, m.linear], [before.knn, before.linear]);
      }
      const changed = structuredClone(keptFile);
      changed.results.methods.adco!.config.batchSize = 64;
      writeFileSync(join(scratch, "results", "experiment-full-data-e2.json"), JSON.stringify(changed));
      const other = study(["--smoke", "--seeds", "0", "--dir", elsewhere, "--summary"]);
      assert.equal(other.status, 0, other.detail);
      assert.match(other.stdout, /adco ran another config; none of its runs kept/, other.detail);
      const afterChange = resultsOf().results.methods;
      assert.deepEqual(afterChange.adco!.runs, []);
      assert.deepEqual(afterChange.moco!.finishedSeeds, [0]);

      const stopped = join(scratch, "stopped");
      const args = ["--smoke", "--methods", "adco", "--seeds", "0", "--dir", stopped];
      const cut = await studyStoppedAt(args, /^adco-e2-seed0: epoch 1\/2 /m);
      assert.equal(cut.status, 75, cut.stdout);
      const at = /^adco-e2-seed0: stopped at step (\d+)\/(\d+), checkpoint written/m.exec(cut.stdout);
      assert.ok(at && Number(at[1]) < Number(at[2]), cut.stdout);
      const summary = study([...args, "--summary"]);
      assert.equal(summary.status, 0, summary.detail);
      assert.doesNotMatch(summary.stdout, /resumed|step \d+\/\d+/, summary.detail);
      const partial = resultsOf().results.methods.adco!;
      assert.deepEqual(partial.finishedSeeds, []);
      assert.equal(partial.runs[0]!.monitorKnnByEpoch.length, 1);

      // A job that a live process holds is refused.
      const lock = join(stopped, "adco-e2-seed0", "lock");
      writeFileSync(lock, String(process.pid));
      const refused = study(args);
      assert.notEqual(refused.status, 0, refused.detail);
      assert.match(
        refused.stderr,
        new RegExp(`adco-e2-seed0: process ${process.pid} is running it`),
        refused.detail,
      );
      rmSync(lock);

      const resumed = study(args);
      assert.equal(resumed.status, 0, resumed.detail);
      assert.match(
        resumed.stdout,
        new RegExp(`^adco-e2-seed0: resumed at step ${at[1]}$`, "m"),
        resumed.detail,
      );
      const end = resultsOf().results.methods.adco!.runs[0]!;
      assert.deepEqual(
        { steps: end.steps, monitorKnnByEpoch: end.monitorKnnByEpoch, knn: end.knn, linear: end.linear },
        {
          steps: uninterrupted.steps,
          monitorKnnByEpoch: uninterrupted.monitorKnnByEpoch,
          knn: uninterrupted.knn,
          linear: uninterrupted.linear,
        },
      );
      assert.equal(existsSync(published) ? statSync(published).mtimeMs : undefined, before);
    },
  );
});
