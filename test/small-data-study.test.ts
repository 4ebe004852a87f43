// experiment:small-data in its smoke mode (seconds: 256 + 128 bundled images, batch 32, K 64, one
// epoch), as a user runs it: it writes a results file of the documented shape to ADCO_RESULTS_DIR
// (never docs/results), with the raw-pixel bar and one entry per variant, and a second run with the
// same --dir resumes (re-runs no finished variant); a run in another directory keeps the entries of
// the variants it did not run, unless their definition changed.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { RESULTS_DIRECTORY, type ResultsFile } from "@adco/cli";
import { ROOT } from "./lib/service-process.js";

const scratch = mkdtempSync(join(tmpdir(), "adco-small-data-test-"));
after(() => rmSync(scratch, { recursive: true, force: true }));

function npmRun(args: string[]) {
  const run = spawnSync("npm", ["run", "-s", "experiment:small-data", "--", ...args], {
    cwd: ROOT,
    encoding: "utf8",
    env: { ...process.env, ADCO_RESULTS_DIR: join(scratch, "results"), ADCO_THREADS: "1" },
    timeout: 180_000,
  });
  return { ...run, detail: `status ${run.status}:\n${run.stdout.slice(-2000)}\n${run.stderr.slice(-4000)}` };
}

interface Entry {
  knn: number;
  linear: number;
  epochs: number;
  trainSeconds: number;
  config: object;
  seeds: number[];
  knnBySeed: number[];
  knnSpread: number;
  featureDim: number;
}

describe("experiment:small-data --smoke", () => {
  it("scores each variant and the raw pixels, and resumes", { timeout: 360_000 }, () => {
    const published = join(RESULTS_DIRECTORY, "experiment-small-data.json");
    const before = existsSync(published) ? statSync(published).mtimeMs : undefined;
    const args = ["--smoke", "--seeds", "0,1", "--dir", join(scratch, "work")];
    const first = npmRun(args);
    assert.equal(first.status, 0, first.detail);
    assert.match(first.stdout, /^raw pixels: kNN [\d.]+%, linear [\d.]+%$/m, first.detail);
    for (const label of ["preset-e4 seed 0", "preset-e4 seed 1", "moco-e10 seed 0", "moco-e10 seed 1"])
      assert.match(first.stdout, new RegExp(`^${label}: kNN [\\d.]+% `, "m"), first.detail);

    const file = JSON.parse(
      readFileSync(join(scratch, "results", "experiment-small-data.json"), "utf8"),
    ) as ResultsFile;
    assert.deepEqual(Object.keys(file), ["command", "commit", "date", "machine", "results"]);
    assert.equal(file.command, `npm run -s experiment:small-data -- ${args.join(" ")}`);
    const results = file.results as unknown as {
      rawPixels: { knn: number; linear: number };
      variants: Record<string, Entry>;
    };
    for (const score of [results.rawPixels.knn, results.rawPixels.linear])
      assert.ok(score >= 0 && score <= 100);
    assert.deepEqual(Object.keys(results.variants), ["preset-e4", "moco-e10"]);
    for (const v of Object.values(results.variants)) {
      assert.ok(v.knn >= 0 && v.knn <= 100 && v.linear >= 0 && v.linear <= 100);
      assert.equal(v.epochs, 1);
      // resnet-mini's features: its whole last map, 7 x 7 x 64.
      assert.equal(v.featureDim, 3136);
      assert.ok(v.trainSeconds >= 0);
      assert.deepEqual(v.seeds, [0, 1]);
      assert.equal(v.knnBySeed.length, 2);
      // The mean of the seeds' scores, and their spread.
      assert.ok(Math.abs(v.knn - (v.knnBySeed[0]! + v.knnBySeed[1]!) / 2) <= 0.051);
      assert.ok(Math.abs(v.knnSpread - Math.abs(v.knnBySeed[0]! - v.knnBySeed[1]!)) <= 0.11);
    }

    const second = npmRun(args);
    assert.equal(second.status, 0, second.detail);
    assert.match(second.stdout, /^preset-e4 seed 1: done /m, second.detail);
    assert.match(second.stdout, /^moco-e10 seed 0: done /m, second.detail);
    assert.doesNotMatch(second.stdout, /step \d+\/\d+/, second.detail);

    // Another work directory (another machine's, say) with one variant: the file keeps the other
    // variant's entry, marked with the commit that measured it, unless its definition changed.
    const resultsPath = join(scratch, "results", "experiment-small-data.json");
    const elsewhere = ["--smoke", "--seeds", "0", "--only", "preset-e4", "--dir", join(scratch, "elsewhere")];
    const third = npmRun(elsewhere);
    assert.equal(third.status, 0, third.detail);
    assert.match(
      third.stdout,
      new RegExp(`^moco-e10: kept from .* \\(commit ${file.commit.slice(0, 7)}\\)$`, "m"),
      third.detail,
    );
    const kept = (JSON.parse(readFileSync(resultsPath, "utf8")) as ResultsFile).results as unknown as {
      variants: Record<string, Entry & { commit?: string }>;
    };
    assert.deepEqual(Object.keys(kept.variants), ["preset-e4", "moco-e10"]);
    assert.deepEqual(kept.variants["preset-e4"]!.seeds, [0]);
    assert.deepEqual(kept.variants["moco-e10"], { ...results.variants["moco-e10"], commit: file.commit });
    const changed = JSON.parse(readFileSync(resultsPath, "utf8")) as ResultsFile & {
      results: { variants: Record<string, Entry> };
    };
    changed.results.variants["moco-e10"]!.epochs = 99;
    writeFileSync(resultsPath, JSON.stringify(changed));
    const fourth = npmRun(elsewhere);
    assert.equal(fourth.status, 0, fourth.detail);
    assert.match(
      fourth.stdout,
      /^moco-e10: in .*, but not as this study defines it now; left out$/m,
      fourth.detail,
    );
    const left = (JSON.parse(readFileSync(resultsPath, "utf8")) as ResultsFile).results as unknown as {
      variants: Record<string, Entry>;
    };
    assert.deepEqual(Object.keys(left.variants), ["preset-e4"]);
    assert.equal(existsSync(published) ? statSync(published).mtimeMs : undefined, before);
  });
});
