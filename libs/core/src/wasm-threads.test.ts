import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { test } from "node:test";

// Each thread count needs its own process (the backend initialises once per process). The child
// trains two steps of a small AdCo model from a fixed seed and prints what it got; it must exit on
// its own, which a referenced pthread worker would prevent.
const CHILD = `
import { createHash } from "node:crypto";
import * as tf from "@tensorflow/tfjs-core";
import { initBackend, PRESETS, Pretrainer } from "@adco/core";
const digest = (t) => createHash("sha256").update(t.dataSync()).digest("hex");
const backend = await initBackend("wasm", { threads: Number(process.env.THREADS) });
const trainer = new Pretrainer({ ...PRESETS["fashion-mnist"], batchSize: 32, numAdversaries: 256, seed: 7 });
const views = [1, 2].map((s) => tf.randomUniform([32, 28, 28, 1], 0, 1, "float32", s));
const losses = [0, 1].map(() => trainer.trainStep(views, 0.05).loss);
const conv = tf.conv2d(tf.randomNormal([8, 28, 28, 16], 0, 1, "float32", 3), tf.randomNormal([3, 3, 16, 32], 0, 1, "float32", 4), 1, "same");
const product = tf.matMul(tf.randomNormal([300, 200], 0, 1, "float32", 5), tf.randomNormal([200, 100], 0, 1, "float32", 6));
console.log(JSON.stringify({ threads: backend.threads, detail: backend.detail, losses, conv: digest(conv), product: digest(product) }));
`;

interface ChildResult {
  threads: number;
  detail: string;
  losses: number[];
  /** sha256 of the output's float32 bytes. */
  conv: string;
  product: string;
}

/** This process's environment without the test runner's marker, which would make a child a test too. */
function childEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const { NODE_TEST_CONTEXT: _, ...env } = process.env;
  return { ...env, ...extra };
}

function trainIn(threads: number): ChildResult {
  const child = spawnSync(
    process.execPath,
    ["--conditions=development", "--import", "tsx", "--input-type=module", "-e", CHILD],
    {
      cwd: import.meta.dirname,
      env: childEnv({ THREADS: String(threads) }),
      encoding: "utf8",
      timeout: 120_000,
    },
  );
  assert.equal(child.signal, null, `the ${threads}-thread child did not exit on its own: ${child.stderr}`);
  assert.equal(child.status, 0, child.stderr);
  return JSON.parse(child.stdout.trim().split("\n").at(-1)!) as ChildResult;
}

test("the wasm backend runs its threaded build in Node, with the outputs of the single-threaded one", () => {
  const one = trainIn(1);
  const two = trainIn(2);
  assert.equal(one.threads, 1);
  // Two threads even on a 2-core machine: the package would cap it at half of os.cpus().
  assert.equal(two.threads, 2, two.detail);
  assert.match(two.detail, /2 threads/);
  // A thread computes whole tiles of an output, so a product's sums keep their order.
  assert.equal(two.conv, one.conv);
  assert.equal(two.product, one.product);
  for (const [i, loss] of one.losses.entries()) {
    assert.ok(
      Math.abs(two.losses[i]! - loss) <= 1e-5 * Math.abs(loss),
      `step ${i + 1}: ${two.losses[i]} vs ${loss}`,
    );
  }
});

test("a thread count below 1 is refused, naming the variable", () => {
  const child = spawnSync(
    process.execPath,
    [
      "--conditions=development",
      "--import",
      "tsx",
      "--input-type=module",
      "-e",
      `import { initBackend } from "@adco/core"; await initBackend("wasm");`,
    ],
    { cwd: import.meta.dirname, env: childEnv({ ADCO_THREADS: "0" }), encoding: "utf8", timeout: 60_000 },
  );
  assert.notEqual(child.status, 0);
  assert.match(child.stderr, /ADCO_THREADS: must be a whole number of threads, 1 or more, got "0"/);
});
