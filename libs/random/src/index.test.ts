// The merged generator and mixers against verbatim copies of the code they replaced (core's
// SeededRandom, augment's ViewRandom and viewSeed, the data plane's mulberry32 and plan mix, the
// pretrainer's stepSeed), over many seeds; each package's tests pin its own draws as well.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { hashWords, mixSeeds, Mulberry32, nonZeroSeed, permutation, stepSeed } from "./index.js";

function oldMulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    let t = (state = (state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
function oldViewSeed(runSeed: number, epoch: number, sampleId: number, view: number): number {
  let h = 0x9e3779b9 ^ runSeed;
  for (const v of [epoch, sampleId, Math.floor(sampleId / 2 ** 32), view]) {
    h = Math.imul(h ^ (v >>> 0), 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
  }
  return h >>> 0;
}
const oldPlanMix = (a: number, b: number) => (Math.imul(a ^ 0x9e3779b9, 0x85ebca6b) ^ b) >>> 0;
function oldStepSeed(seed: number, step: number): number {
  let h = Math.imul((seed ^ 0x9e3779b9) >>> 0, 0x85ebca6b) ^ step;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

const SEEDS = [0, 1, 2, 42, 1000, 0x9e3779b9, 2 ** 31, 2 ** 32 - 1, 2 ** 32 + 5, -1, -42, 123456789];

describe("@adco/random", () => {
  it("draws what the old mulberry32 copies drew, from the raw seed", () => {
    for (const seed of SEEDS) {
      const [a, b] = [new Mulberry32(seed), oldMulberry32(seed)];
      for (let i = 0; i < 100; i++) assert.equal(a.next(), b(), `seed ${seed}, draw ${i}`);
    }
  });

  it("nonZeroSeed is the core's mapping: 0 -> 0x9e3779b9, everything else mod 2^32", () => {
    assert.equal(nonZeroSeed(0), 0x9e3779b9);
    assert.equal(nonZeroSeed(2 ** 32), 0x9e3779b9);
    assert.equal(nonZeroSeed(-1), 2 ** 32 - 1);
    assert.equal(nonZeroSeed(7), 7);
  });

  it("permutation, normal, uniform and chance draw in the old order", () => {
    for (const seed of SEEDS) {
      const next = oldMulberry32(seed);
      const order = Array.from({ length: 50 }, (_, i) => i);
      for (let i = 49; i > 0; i--) {
        const j = Math.floor(next() * (i + 1));
        [order[i], order[j]] = [order[j]!, order[i]!];
      }
      assert.deepEqual(permutation(50, seed), order);
      const r = new Mulberry32(seed);
      const n = oldMulberry32(seed);
      const u = 1 - n();
      assert.equal(r.normal(), Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * n()));
      assert.equal(r.uniform(-3, 5), -3 + 8 * n());
      assert.equal(r.chance(0.5), n() < 0.5);
    }
  });

  it("the mixers equal the old view seed, plan mix and step seed", () => {
    for (const a of SEEDS) {
      for (const b of [0, 1, 7, 2 ** 31, 2 ** 32 + 3, 5_000_000_000]) {
        assert.equal(mixSeeds(a, b), oldPlanMix(a, b));
        assert.equal(stepSeed(a, b), oldStepSeed(a, b));
        assert.equal(
          hashWords(0x9e3779b9 ^ a, [b, b + 1, Math.floor(b / 2 ** 32), 1]),
          oldViewSeed(a, b, b + 1, 1),
        );
      }
    }
    assert.equal(stepSeed(2, 0), 100097173);
    assert.equal(stepSeed(44, 17), 1961382401);
  });
});
