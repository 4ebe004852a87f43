import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { before, describe, it } from "node:test";
import * as tf from "@tensorflow/tfjs-core";
import { adcoStep, PAPER_HYPERPARAMETERS, type AdversaryBank } from "./adco.js";
import { initBackend } from "./backend.js";
import { CoreInputError } from "./checks.js";
import { parseGoldenCase, runGoldenCase } from "./golden.js";
import { makeGoldenCase, referenceExpected } from "./reference.js";

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
    it(`agrees with the shared case ${file}`, () => {
      assertAgrees(
        runGoldenCase(parseGoldenCase(JSON.parse(readFileSync(join(fixtures, file), "utf8")), file)),
        file,
      );
    });
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
      assertAgrees(runGoldenCase(makeGoldenCase(shape)), JSON.stringify(shape));
    });
  }
});

describe("bad input", () => {
  const bank = (dim: number, size: number): AdversaryBank => ({
    weights: tf.randomNormal([dim, size]),
    velocity: tf.zeros([dim, size]),
  });
  const unit = (n: number, dim: number) => tf.div(tf.randomNormal([n, dim]), Math.sqrt(dim)) as tf.Tensor2D;
  const throwsNaming = (fn: () => unknown, argument: string, pattern: RegExp) =>
    assert.throws(
      fn,
      (e: unknown) => e instanceof CoreInputError && e.argument === argument && pattern.test(e.message),
    );

  it("names a query of the wrong feature dimension", () => {
    throwsNaming(
      () => adcoStep(unit(4, 16), unit(4, 16), bank(8, 32), PAPER_HYPERPARAMETERS),
      "q",
      /\[4, 16\] does not match \[\*, 8\]/,
    );
  });
  it("names keys whose batch differs from the queries'", () => {
    throwsNaming(() => adcoStep(unit(4, 8), unit(5, 8), bank(8, 32), PAPER_HYPERPARAMETERS), "k", /\[5, 8\]/);
  });
  it("rejects NaN features", () => {
    const q = tf.tensor2d([
      [NaN, 0],
      [0, 1],
    ]);
    throwsNaming(() => adcoStep(q, unit(2, 2), bank(2, 4), PAPER_HYPERPARAMETERS), "q", /element 0 is NaN/);
  });
  it("rejects a bank smaller than the batch", () => {
    throwsNaming(
      () => adcoStep(unit(8, 4), unit(8, 4), bank(4, 7), PAPER_HYPERPARAMETERS),
      "bank.weights",
      /K = 7 .* N = 8/,
    );
  });
  it("rejects non-positive temperatures and a momentum of 1", () => {
    const args = [unit(2, 4), unit(2, 4), bank(4, 8)] as const;
    throwsNaming(
      () => adcoStep(...args, { ...PAPER_HYPERPARAMETERS, temperature: 0 }),
      "temperature",
      /> 0, got 0/,
    );
    throwsNaming(
      () => adcoStep(...args, { ...PAPER_HYPERPARAMETERS, memoryTemperature: -1 }),
      "memoryTemperature",
      /> 0/,
    );
    throwsNaming(
      () => adcoStep(...args, { ...PAPER_HYPERPARAMETERS, memoryMomentum: 1 }),
      "memoryMomentum",
      /\[0, 1\)/,
    );
  });
  it("rejects a velocity whose shape differs from the bank's", () => {
    const b = { weights: tf.randomNormal([4, 8]) as tf.Tensor2D, velocity: tf.zeros([8, 4]) as tf.Tensor2D };
    throwsNaming(
      () => adcoStep(unit(2, 4), unit(2, 4), b, PAPER_HYPERPARAMETERS),
      "bank.velocity",
      /\[8, 4\]/,
    );
  });
});

describe("memory", () => {
  it("holds the same number of tensors over 100 steps", () => {
    let current = bank0();
    const q = tf.div(tf.randomNormal([16, 32]), Math.sqrt(32)) as tf.Tensor2D;
    const counts: number[] = [];
    for (let step = 0; step < 100; step++) {
      const result = adcoStep(q, q, current, PAPER_HYPERPARAMETERS);
      tf.dispose([
        current.weights,
        current.velocity,
        result.loss,
        result.queryGrad,
        result.bankGrad,
        result.accuracy,
        result.adversaryProbability,
      ]);
      current = result.bank;
      counts.push(tf.memory().numTensors);
    }
    assert.equal(
      new Set(counts).size,
      1,
      `tensor count varied: ${Math.min(...counts)}..${Math.max(...counts)}`,
    );
    function bank0(): AdversaryBank {
      return { weights: tf.randomNormal([32, 64]), velocity: tf.zeros([32, 64]) };
    }
  });
});
