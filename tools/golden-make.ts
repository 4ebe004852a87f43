// npm run -s golden:make -- --n 256 --dim 128 --size 8192 --seed 7 [--aligned] [--t 0.12 --mem-t 0.02] > case.json
// Writes a golden case (format adco-golden/1) of any shape with float64 expectations from the
// core's independent reference (libs/core/src/reference.ts), for `npm run conformance`.
import { parseArgs } from "node:util";
import { makeGoldenCase } from "@adco/core/testing";

const { values } = parseArgs({
  options: {
    n: { type: "string", default: "8" },
    dim: { type: "string", default: "16" },
    size: { type: "string", default: "64" },
    seed: { type: "string", default: "1" },
    aligned: { type: "boolean", default: false },
    t: { type: "string", default: "0.12" },
    "mem-t": { type: "string", default: "0.02" },
    "mem-lr": { type: "string", default: "3" },
    momentum: { type: "string", default: "0.9" },
    wd: { type: "string", default: "0.0001" },
  },
});
const number = (name: keyof typeof values) => {
  const v = Number(values[name]);
  if (!Number.isFinite(v)) {
    console.error(`--${name}: not a number: ${values[name]}`);
    process.exit(2);
  }
  return v;
};
const c = makeGoldenCase({
  n: number("n"),
  dim: number("dim"),
  size: number("size"),
  seed: number("seed"),
  aligned: values.aligned,
  hyper: {
    t: number("t"),
    mem_t: number("mem-t"),
    mem_lr: number("mem-lr"),
    momentum: number("momentum"),
    wd: number("wd"),
  },
});
process.stdout.write(JSON.stringify(c) + "\n");
