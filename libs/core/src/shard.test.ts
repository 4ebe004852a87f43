// A bank split over shards computes the one-bank step: same loss, dLoss/dq, statistics and updated
// adversaries, to float32 rounding of the merged normalisers, in process and over (async) peers.
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import * as tf from "@tensorflow/tfjs-core";
import {
  adcoStep,
  type ContrastOutcome,
  type ContrastPair,
  type PairReduction,
  type ShardPeer,
  stepInProcess,
  stepOverPeers,
} from "./adco.js";
import { initBackend } from "./backend.js";
import { l2Normalize } from "./encoder.js";
import { PAPER_HYPERPARAMETERS } from "./hyperparameters.js";
import { AdversaryNegatives } from "./methods.js";
import { AdversaryShard, disposePartials, type ShardSlice, shardSlices, splitWrite } from "./shard.js";

const DIM = 16;
const SIZE = 61; // not a multiple of the shard counts or the batch
const BATCH = 8;
const SEED = 7;

before(async () => {
  await initBackend("cpu");
});

const units = (seed: number) =>
  l2Normalize(tf.randomNormal([BATCH, DIM], 0, 1, "float32", seed) as tf.Tensor2D) as tf.Tensor2D;

function pairsFor(step: number, count: number): ContrastPair[] {
  return Array.from({ length: count }, (_, i) => ({
    query: units(1000 * step + 2 * i),
    key: units(1000 * step + 2 * i + 1),
  }));
}

/** Largest difference relative to the tensor's scale (its largest magnitude, at least 1). */
function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tolerance: number,
  what: string,
) {
  assert.equal(actual.length, expected.length, `${what}: length`);
  let worst = 0;
  let scale = 1;
  for (let i = 0; i < actual.length; i++) {
    worst = Math.max(worst, Math.abs(actual[i]! - expected[i]!));
    scale = Math.max(scale, Math.abs(expected[i]!));
  }
  assert.ok(
    worst <= tolerance * scale,
    `${what}: differs by ${(worst / scale).toExponential(2)} of its scale (tolerance ${tolerance})`,
  );
}

function assertSameOutcome(sharded: ContrastOutcome, single: ContrastOutcome, what: string) {
  assertClose([sharded.loss], [single.loss], 1e-6, `${what} loss`);
  assertClose([sharded.accuracy], [single.accuracy], 0, `${what} accuracy`);
  assertClose([sharded.adversaryProbability], [single.adversaryProbability], 1e-6, `${what} adversary mass`);
  const s = sharded.similarity;
  const o = single.similarity;
  assertClose(
    [s.meanAdversary, s.maxAdversary, s.meanPositive, s.meanAdversaryNorm],
    [o.meanAdversary, o.maxAdversary, o.meanPositive, o.meanAdversaryNorm],
    1e-6,
    `${what} similarity statistics`,
  );
  sharded.queryGrads.forEach((g, i) =>
    assertClose(g.dataSync(), single.queryGrads[i]!.dataSync(), 1e-5, `${what} dLoss/dq of pair ${i}`),
  );
}

function bankOf(shards: readonly AdversaryShard[]): Float32Array {
  return tf.tidy(
    () =>
      tf
        .concat(
          shards.map((s) => s.state().weights),
          1,
        )
        .dataSync() as Float32Array,
  );
}

/** The shards as peers a coordinator awaits, each round answered on a later tick. */
function asPeers(shards: readonly AdversaryShard[]): ShardPeer[] {
  let key = 0;
  const later = <T>(f: () => T) => new Promise<T>((resolve) => setImmediate(() => resolve(f())));
  return shards.map((shard) => ({
    partials: (queries) => later(() => shard.partials(queries, ++key)),
    apply: (input) => later(() => shard.apply(input, key)),
  }));
}

type Driver = "in process" | "over peers";

function stepWith(
  driver: Driver,
  shards: readonly AdversaryShard[],
  slices: readonly ShardSlice[],
  ...args: [readonly ContrastPair[], PairReduction, boolean, { keys: tf.Tensor2D; start: number }?]
): Promise<ContrastOutcome> {
  const [pairs, reduction, update, write] = args;
  const rounds = adcoStep(pairs, slices, PAPER_HYPERPARAMETERS, reduction, update, write);
  return driver === "in process"
    ? Promise.resolve(stepInProcess(rounds, shards))
    : stepOverPeers(rounds, asPeers(shards));
}

async function compare(shardCount: number, pairCount: number, reduction: PairReduction, driver: Driver) {
  const single = new AdversaryNegatives(DIM, SIZE, PAPER_HYPERPARAMETERS, SEED);
  const slices = shardSlices(SIZE, shardCount);
  const shards = slices.map((slice) => new AdversaryShard(DIM, slice, PAPER_HYPERPARAMETERS, SEED));
  try {
    assertClose(bankOf(shards), single.state().weights.dataSync(), 0, "initial bank");
    for (let step = 1; step <= 4; step++) {
      const pairs = pairsFor(step, pairCount);
      const expected = single.contrast(pairs, reduction, true);
      const got = await stepWith(driver, shards, slices, pairs, reduction, true);
      assertSameOutcome(got, expected, `${shardCount} shards, step ${step}`);
      tf.dispose([...got.queryGrads, ...expected.queryGrads, ...pairs.flatMap((p) => [p.query, p.key])]);
    }
    assertClose(bankOf(shards), single.state().weights.dataSync(), 1e-5, "bank after 4 ascent steps");
    const velocity = tf.tidy(() =>
      tf
        .concat(
          shards.map((s) => s.state().velocity!),
          1,
        )
        .dataSync(),
    );
    assertClose(velocity, single.state().velocity!.dataSync(), 1e-5, "momentum after 4 ascent steps");
  } finally {
    single.dispose();
    shards.forEach((s) => s.dispose());
  }
}

describe("sharded adversary bank", () => {
  it("splits K as evenly as it can and refuses more shards than adversaries", () => {
    assert.deepEqual(
      shardSlices(61, 3).map((s) => [s.offset, s.count]),
      [
        [0, 21],
        [21, 20],
        [41, 20],
      ],
    );
    assert.throws(() => shardSlices(2, 3), /3 shards for a bank of 2 adversaries/);
  });

  it("2 shards equal one bank over training steps of the symmetric loss", () =>
    compare(2, 2, "mean", "in process"));
  it("3 uneven shards equal one bank with multi-crop (sum) pairs", () => compare(3, 3, "sum", "in process"));
  it("3 shards answering as peers equal one bank", () => compare(3, 2, "mean", "over peers"));

  it("a peer that fails a round fails the step and leaks no tensor", async () => {
    const pairs = pairsFor(3, 2);
    const before = tf.memory().numTensors;
    const slices = shardSlices(SIZE, 2);
    const shards = slices.map((slice) => new AdversaryShard(DIM, slice, PAPER_HYPERPARAMETERS, SEED));
    const [good] = asPeers(shards);
    for (const round of ["partials", "apply"] as const) {
      const failing: ShardPeer = {
        ...asPeers([shards[1]!])[0]!,
        [round]: () => Promise.reject(new Error(`peer lost in ${round}`)),
      };
      const rounds = adcoStep(pairs, slices, PAPER_HYPERPARAMETERS, "mean", false);
      await assert.rejects(stepOverPeers(rounds, [good!, failing]), new RegExp(`peer lost in ${round}`));
    }
    // What a shard keeps of round 1 for a retry is its own, freed with it.
    shards.forEach((s) => s.dispose());
    assert.equal(tf.memory().numTensors, before, "no tensor left after failed rounds");
  });

  it("round 2 from round 1's kept exponentials equals round 2 computed afresh, and leaks no tensor", () => {
    const slice = shardSlices(SIZE, 2)[1]!;
    const [kept, fresh] = [1, 2].map(() => new AdversaryShard(DIM, slice, PAPER_HYPERPARAMETERS, SEED));
    const pairs = pairsFor(5, 2);
    const queries = pairs.map((p) => p.query);
    const before = tf.memory().numTensors;
    const partials = kept!.partials(queries, 1);
    const normalizers = partials.map((p) => ({ encoder: p.encoder.max, memory: p.memory.max }));
    const input = { queries, normalizers, pairWeights: [0.5, 0.5], update: true };
    const a = kept!.apply(input, 1);
    const b = fresh!.apply(input, 2);
    a.gradParts.forEach((g, i) => assertClose(g.dataSync(), b.gradParts[i]!.dataSync(), 1e-6, `pair ${i}`));
    const [x, y] = [kept!.state(), fresh!.state()];
    assertClose(x.weights.dataSync(), y.weights.dataSync(), 1e-6, "bank after ascent");
    tf.dispose([...a.gradParts, ...b.gradParts, x.weights, x.velocity!, y.weights, y.velocity!]);
    disposePartials(partials);
    assert.equal(tf.memory().numTensors, before, "every tensor of both rounds is freed");
    [kept, fresh].forEach((s) => s!.dispose());
  });

  it("writes keys (init_memory) that wrap at K into the same columns as one bank", async () => {
    const single = new AdversaryNegatives(DIM, SIZE, PAPER_HYPERPARAMETERS, SEED);
    const slices = shardSlices(SIZE, 2);
    const shards = slices.map((slice) => new AdversaryShard(DIM, slice, PAPER_HYPERPARAMETERS, SEED));
    const pairs = pairsFor(9, 1);
    const key = pairs[0]!.key;
    // Column 57 with 8 keys: 57..60, then 0..3 (the first shard) — and, for 40 keys from column 25,
    // a wrap that ends back in the shard it started in.
    for (const [start, keys] of [
      [57, key],
      [25, tf.concat([key, key, key, key, key], 0) as tf.Tensor2D],
    ] as const) {
      const expected = single.contrast(pairs, "mean", false);
      single.write(keys, start);
      const got = await stepWith("in process", shards, slices, pairs, "mean", false, { keys, start });
      assertSameOutcome(got, expected, `write at ${start}`);
      assertClose(bankOf(shards), single.state().weights.dataSync(), 0, `bank after a write at ${start}`);
    }
    const writes = splitWrite(key, 57, slices);
    assert.deepEqual(
      writes.map((w) => [w?.start, w?.keys.shape[0]]),
      [
        [0, 4],
        [26, 4],
      ],
    );
    single.dispose();
    shards.forEach((s) => s.dispose());
  });
});
