// The same training step on the pure-JS cpu backend (the fallback when neither libtensorflow nor
// wasm is available), in its own process since a process has one backend.
import assert from "node:assert/strict";
import { it } from "node:test";
import * as tf from "@tensorflow/tfjs-core";
import { initBackend } from "./backend.js";
import { PRESETS } from "./presets.js";
import { Pretrainer } from "./pretrainer.js";

it("an AdCo training step runs on the cpu backend", async () => {
  const backend = await initBackend("cpu");
  assert.equal(backend.name, "cpu");
  const trainer = new Pretrainer({ ...PRESETS["fashion-mnist"], batchSize: 4, bnGroups: 2, negatives: 16 });
  const views = [1, 2].map((s) => tf.randomUniform([4, 28, 28, 1], 0, 1, "float32", s) as tf.Tensor4D);
  const before = trainer.query.params.get("stem_conv/kernel")!.clone();
  const stats = trainer.trainStep(views, 0.05);
  assert.ok(Number.isFinite(stats.loss) && stats.loss > 0);
  const moved = tf.max(tf.abs(tf.sub(trainer.query.params.get("stem_conv/kernel")!, before))).dataSync()[0]!;
  assert.ok(moved > 0);
  trainer.dispose();
});
