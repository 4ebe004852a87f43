// npm run -s conformance -- FILE.json [FILE ...]
// Runs the core's loss, dLoss/dq, bank gradient and bank update on each golden case on the default
// backend (ADCO_BACKEND to choose), prints the worst error of each output, and exits 0 only if every
// output of every case is within tolerance.
import { readFileSync } from "node:fs";
import { backendFromEnv, initBackend, parseGoldenCase, runGoldenCase, TOLERANCE } from "@adco/core";

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error("usage: npm run -s conformance -- FILE.json [FILE ...]");
  process.exit(2);
}
const backend = await initBackend(backendFromEnv());
console.log(
  `backend ${backend.name}; tolerance: relative ${TOLERANCE.relative} where |expected| > ${TOLERANCE.relativeAbove}, absolute ${TOLERANCE.absolute} elsewhere`,
);
let failed = 0;
for (const file of files) {
  let results;
  try {
    results = runGoldenCase(parseGoldenCase(JSON.parse(readFileSync(file, "utf8")), file));
  } catch (e) {
    console.log(`FAIL ${file}: ${(e as Error).message}`);
    failed++;
    continue;
  }
  const ok = results.every((r) => r.ok);
  if (!ok) failed++;
  console.log(`${ok ? "ok  " : "FAIL"} ${file}`);
  for (const r of results) {
    console.log(
      `     ${r.ok ? " " : "!"} ${r.output.padEnd(14)} worst relative ${r.worstRelative.toExponential(2)}  worst absolute ${r.worstAbsolute.toExponential(2)}`,
    );
  }
}
console.log(`${files.length - failed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
