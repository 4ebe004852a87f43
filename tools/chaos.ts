// The chaos suite: training runs on loopback while a seeded schedule SIGKILLs and SIGTERMs the
// trainer, the bank and one of its shards, data workers and the object store (test/lib/chaos.ts says
// how and what it checks). Two schedules per seed: `random` (two data workers, hits at random steps)
// and `boundary` (one data worker, hits on checkpoint steps), whose final encoder must equal the
// undisturbed reference's. Prints the figures, writes docs/results/chaos.json, exits 1 when an
// invariant did not hold.
//   npm run -s chaos [-- --seeds 1,2,3 --epochs 3 --disruptions 8 --images 1024 --schedules random,boundary]
//   npm run -s chaos -- --smoke      (one seed, 2 epochs of 512 images, 3 random hits: ~3 minutes)
import { parseArgs } from "node:util";
import { npmCommand, roundTo, writeResults, type ResultsValue } from "@adco/cli";
import { type ChaosReport, runChaos } from "../test/lib/chaos.js";

const { values } = parseArgs({
  options: {
    seeds: { type: "string", default: "1,2,3" },
    epochs: { type: "string", default: "3" },
    disruptions: { type: "string", default: "8" },
    images: { type: "string", default: "1024" },
    schedules: { type: "string", default: "random,boundary" },
    smoke: { type: "boolean", default: false },
  },
});
const smoke = values.smoke;
const seeds = (smoke ? "1" : values.seeds).split(",").map(Number);
const epochs = smoke ? 2 : Number(values.epochs);
const disruptions = smoke ? 3 : Number(values.disruptions);
const images = smoke ? 512 : Number(values.images);
for (const [name, n] of [
  ["epochs", epochs],
  ["disruptions", disruptions],
  ["images", images],
] as const) {
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, not ${n}`);
}
if (seeds.some((s) => !Number.isInteger(s))) throw new Error(`--seeds must be integers: ${values.seeds}`);
const schedules = values.schedules.split(",");
if (schedules.some((s) => s !== "random" && s !== "boundary"))
  throw new Error(`--schedules: random and/or boundary, not ${values.schedules}`);

const summary = (r: ChaosReport) =>
  `seed ${r.seed} ${r.boundary ? "boundary" : "random"}: ${r.killsSurvived}/${r.schedule.length} hits survived, ` +
  `${r.stepsRedone} of ${r.steps} steps redone, ${roundTo(r.secondsLost)} s lost ` +
  `(${roundTo(r.chaosSeconds)} vs ${roundTo(r.referenceSeconds)} s), runs lost ${r.runsLost}, ` +
  `encoder max |diff| ${r.encoderMaxDifference.toExponential(2)}, ${r.checkpointsVerified} checkpoints verified, ` +
  `SIGTERM ${r.terminated} (SIGKILL needed ${r.sigkillNeeded})`;

const reports: ChaosReport[] = [];
for (const seed of seeds) {
  for (const boundary of schedules.map((s) => s === "boundary")) {
    const report = await runChaos({
      seed,
      epochs,
      trainImages: images,
      disruptions,
      boundary,
      log: (line) => console.log(`  [seed ${seed}${boundary ? " boundary" : ""}] ${line}`),
    });
    console.log(summary(report));
    for (const v of report.violations) console.log(`  VIOLATION: ${v}`);
    reports.push(report);
  }
}

const total = (f: (r: ChaosReport) => number) => reports.reduce((n, r) => n + f(r), 0);
const runs: ResultsValue[] = reports.map((r) => ({
  seed: r.seed,
  schedule: r.boundary ? "boundary" : "random",
  steps: r.steps,
  hits: r.schedule.map((d) => `${d.step}:${d.signal}:${d.target}`),
  killsSurvived: r.killsSurvived,
  stepsRedone: r.stepsRedone,
  secondsLost: roundTo(r.secondsLost),
  runsLost: r.runsLost,
  encoderMaxDifference: r.encoderMaxDifference,
  checkpointsVerified: r.checkpointsVerified,
  sigkillNeeded: r.sigkillNeeded,
  violations: r.violations,
}));
const file = writeResults({
  name: "chaos",
  command: npmCommand("chaos"),
  smoke,
  results: {
    epochs,
    images,
    disruptions,
    runs,
    totals: {
      runs: reports.length,
      killsSurvived: total((r) => r.killsSurvived),
      stepsRedone: total((r) => r.stepsRedone),
      secondsLost: roundTo(total((r) => r.secondsLost)),
      runsLost: total((r) => r.runsLost),
      sigkillNeeded: total((r) => r.sigkillNeeded),
      violations: total((r) => r.violations.length),
    },
  },
});
console.log(`wrote ${file}`);
if (reports.some((r) => r.violations.length > 0)) process.exitCode = 1;
