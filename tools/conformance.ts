// npm run -s conformance -- [--shards 1,2,3] FILE.json [FILE ...]
// Runs the production AdCo step (the one the in-process negatives, the bank service and every shard
// run) on each golden case, the bank whole and split over 2 and 3 shards, on the default backend
// (ADCO_BACKEND to choose); prints the worst error of each output, and exits 0 only if every output
// of every case is within tolerance in every split. Writes docs/results/conformance.json (worst errors
// per case, split and output; libs/cli/src/results.ts).
import { readFileSync } from "node:fs";
import { basename } from "node:path";
import { parseArgs } from "node:util";
import { npmCommand, writeResults } from "@adco/cli";
import { backendFromEnv, initBackend } from "@adco/core";
import { parseGoldenCase, runGoldenCase, TOLERANCE } from "@adco/core/testing";

const { values, positionals: files } = parseArgs({
  options: { shards: { type: "string", default: "1,2,3" } },
  allowPositionals: true,
});
const splits = values.shards.split(",").map(Number);
if (files.length === 0 || !splits.every((s) => Number.isInteger(s) && s >= 1)) {
  console.error("usage: npm run -s conformance -- [--shards 1,2,3] FILE.json [FILE ...]");
  process.exit(2);
}
const backend = await initBackend(backendFromEnv());
console.log(
  `backend ${backend.name}; tolerance: relative ${TOLERANCE.relative} where |expected| > ${TOLERANCE.relativeAbove}, absolute ${TOLERANCE.absolute} elsewhere`,
);
let failed = 0;
let run = 0;
/** case -> shards -> output -> worst errors */
const measured: Record<
  string,
  Record<string, Record<string, { worstRelative: number; worstAbsolute: number }>>
> = {};
for (const file of files)
  for (const shards of splits) {
    run++;
    const label = `${file} (${shards === 1 ? "one bank" : `${shards} shards`})`;
    let results;
    try {
      results = runGoldenCase(parseGoldenCase(JSON.parse(readFileSync(file, "utf8")), file), shards);
    } catch (e) {
      console.log(`FAIL ${label}: ${(e as Error).message}`);
      failed++;
      continue;
    }
    const ok = results.every((r) => r.ok);
    if (!ok) failed++;
    console.log(`${ok ? "ok  " : "FAIL"} ${label}`);
    for (const r of results) {
      console.log(
        `     ${r.ok ? " " : "!"} ${r.output.padEnd(14)} worst relative ${r.worstRelative.toExponential(2)}  worst absolute ${r.worstAbsolute.toExponential(2)}`,
      );
    }
    const name = basename(file, ".json");
    measured[name] ??= {};
    measured[name][String(shards)] = Object.fromEntries(
      results.map((r) => [r.output, { worstRelative: r.worstRelative, worstAbsolute: r.worstAbsolute }]),
    );
  }
const path = writeResults({
  name: "conformance",
  command: npmCommand("conformance"),
  backend: backend.name,
  results: { tolerance: { ...TOLERANCE }, passed: run - failed, failed, cases: measured },
});
console.log(`results in ${path}`);
console.log(`${run - failed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
