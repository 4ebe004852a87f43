import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { before, describe, it } from "node:test";
import * as tf from "@tensorflow/tfjs-core";
import { adcoStep, stepInProcess } from "./adco.js";
import { initBackend } from "./backend.js";
import { CoreInputError } from "./checks.js";
import { parseGoldenCase, runGoldenCase } from "./golden.js";
import { PAPER_HYPERPARAMETERS } from "./hyperparameters.js";
import { AdversaryNegatives } from "./methods.js";
import { makeGoldenCase, referenceExpected } from "./reference.js";
import { AdversaryShard } from "./shard.js";

const fixtures = join(import.meta.dirname, "../fixtures/golden");

before(async () => {
  await initBackend("auto");
});

function assertAgrees(results: ReturnType<typeof runGoldenCase>, label: string) {
  for (const r of results) {
    assert.ok(
      r.ok,
      `${label} ${r.output}: worst relative ${r.worstRelative.toExponential(2)}, absolute ${r.worstAbsolute.toExponential(2)}`,
    );
  }
}

describe("AdCo step against golden cases", () => {
  for (const file of readdirSync(fixtures).filter((f) => f.endsWith(".json"))) {
    for (const shards of [1, 2, 3]) {
      it(`agrees with the shared case ${file} in ${shards} shard(s)`, () => {
        const c = parseGoldenCase(JSON.parse(readFileSync(join(fixtures, file), "utf8")), file);
        assertAgrees(runGoldenCase(c, shards), `${file}, ${shards} shard(s)`);
      });
    }
  }

  it("the float64 reference reproduces the shared cases (so generated cases mean the same thing)", () => {
    const c = parseGoldenCase(JSON.parse(readFileSync(join(fixtures, "case-paper-temps.json"), "utf8")), "x");
    const mine = referenceExpected(c);
    assert.ok(Math.abs(mine.loss - c.expected.loss) < 1e-12);
    const err = Math.max(
      ...mine.bank_grad.flat().map((x, i) => Math.abs(x - c.expected.bank_grad.flat()[i]!)),
    );
    assert.ok(err < 1e-12, `bank_grad differs by ${err}`);
  });

  const shapes = [
    { n: 2, dim: 3, size: 2, seed: 1 },
    { n: 16, dim: 32, size: 100, seed: 2, hyper: { t: 0.2, mem_t: 0.2, mem_lr: 0.5, momentum: 0, wd: 0 } },
    {
      n: 32,
      dim: 64,
      size: 512,
      seed: 3,
      aligned: true,
      hyper: { t: 0.07, mem_t: 0.05, mem_lr: 3, momentum: 0.9, wd: 1e-4 },
    },
    { n: 64, dim: 128, size: 1024, seed: 4 },
    { n: 64, dim: 128, size: 2048, seed: 5, aligned: true },
    // A dominant positive at a low temperature: dLoss/dq is ~1e-3 of its scale.
    {
      n: 64,
      dim: 64,
      size: 1024,
      seed: 13,
      hyper: { t: 0.07, mem_t: 0.01, mem_lr: 3, momentum: 0.9, wd: 1e-4 },
    },
  ];
  for (const shape of shapes) {
    it(`agrees with a generated case N=${shape.n} D=${shape.dim} K=${shape.size}${shape.aligned ? " (aligned)" : ""}`, () => {
      const c = makeGoldenCase(shape);
      for (const shards of shape.size >= 3 ? [1, 3] : [1]) {
        assertAgrees(runGoldenCase(c, shards), `${JSON.stringify(shape)}, ${shards} shard(s)`);
      }
    });
  }
});

describe("bad input", () => {
  /** One step against a whole bank of D x K adversaries. */
  const step = (q: tf.Tensor2D, k: tf.Tensor2D, dim: number, size: number, hyper = PAPER_HYPERPARAMETERS) => {
    const slice = { offset: 0, count: size, size };
    const shard = new AdversaryShard(dim, slice, PAPER_HYPERPARAMETERS, 1);
    try {
      return stepInProcess(adcoStep([{ query: q, key: k }], [slice], hyper, "mean", true), [shard]);
    } finally {
      shard.dispose();
    }
  };
  const unit = (n: number, dim: number) => tf.div(tf.randomNormal([n, dim]), Math.sqrt(dim)) as tf.Tensor2D;
  const throwsNaming = (fn: () => unknown, argument: string, pattern: RegExp) =>
    assert.throws(
      fn,
      (e: unknown) => e instanceof CoreInputError && e.argument === argument && pattern.test(e.message),
    );

  it("names a query of the wrong feature dimension", () => {
    throwsNaming(() => step(unit(4, 16), unit(4, 16), 8, 32), "queries", /\[4, 16\] does not match \[4, 8\]/);
  });
  it("names keys whose batch differs from the queries'", () => {
    throwsNaming(() => step(unit(4, 8), unit(5, 8), 8, 32), "k", /\[5, 8\]/);
  });
  it("rejects NaN features", () => {
    const q = tf.tensor2d([
      [NaN, 0],
      [0, 1],
    ]);
    throwsNaming(() => step(q, unit(2, 2), 2, 4), "q", /element 0 is NaN/);
  });
  it("rejects a bank smaller than the batch", () => {
    throwsNaming(() => step(unit(8, 4), unit(8, 4), 4, 7), "bank", /K = 7 .* N = 8/);
  });
  it("rejects non-positive temperatures and a momentum of 1", () => {
    const [q, k] = [unit(2, 4), unit(2, 4)];
    const h = PAPER_HYPERPARAMETERS;
    throwsNaming(() => step(q, k, 4, 8, { ...h, temperature: 0 }), "temperature", /> 0, got 0/);
    throwsNaming(() => step(q, k, 4, 8, { ...h, memoryTemperature: -1 }), "memoryTemperature", /> 0/);
    throwsNaming(() => step(q, k, 4, 8, { ...h, memoryMomentum: 1 }), "memoryMomentum", /\[0, 1\)/);
  });
  it("refuses a snapshot whose momentum is missing or of another shape", () => {
    const shard = new AdversaryShard(4, { offset: 0, count: 8, size: 8 }, PAPER_HYPERPARAMETERS);
    const weights = tf.randomNormal([4, 8]) as tf.Tensor2D;
    throwsNaming(() => shard.restore({ weights, velocity: tf.zeros([8, 4]) }), "shard", /8 x 4/);
    throwsNaming(() => shard.restore({ weights }), "shard", /no momentum/);
    shard.dispose();
  });
});

describe("memory", () => {
  it("holds the same number of tensors over 100 steps", () => {
    const bank = new AdversaryNegatives(32, 64, PAPER_HYPERPARAMETERS, 1);
    const q = tf.div(tf.randomNormal([16, 32]), Math.sqrt(32)) as tf.Tensor2D;
    const counts: number[] = [];
    for (let step = 0; step < 100; step++) {
      tf.dispose(bank.contrast([{ query: q, key: q }], "mean").queryGrads);
      counts.push(tf.memory().numTensors);
    }
    assert.equal(
      new Set(counts).size,
      1,
      `tensor count varied: ${Math.min(...counts)}..${Math.max(...counts)}`,
    );
    bank.dispose();
  });
});
