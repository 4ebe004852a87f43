// The training batches of the in-memory studies: fixed by the step index alone, so a run resumed
// from a checkpoint sees the same data as one that never stopped.
import assert from "node:assert/strict";
import { before, it } from "node:test";
import { SMALL_GRAY_DEFAULTS } from "@adco/augment";
import { initBackend } from "@adco/core";
import { BUNDLED_FASHION_MNIST, firstImages, readFashionMnist } from "@adco/datasets";
import * as tf from "@tensorflow/tfjs-core";
import { smallImageBatches } from "./small-images.js";

before(async () => {
  await initBackend("cpu");
});

// 20 images, batch 8: 2 steps an epoch, the last 4 images of each permutation dropped.
const set = firstImages(readFashionMnist(BUNDLED_FASHION_MNIST, "train"), 20);
const pixelsOf = (views: tf.Tensor4D[]) => views.map((v) => Array.from(v.dataSync()));

it("gives two views of batch-size images, as the augmentation sizes them", () => {
  const views = smallImageBatches(set, 8, 0)(0);
  assert.equal(views.length, 2);
  for (const v of views)
    assert.deepEqual(v.shape, [8, SMALL_GRAY_DEFAULTS.size, SMALL_GRAY_DEFAULTS.size, 1]);
  assert.notDeepEqual(pixelsOf(views)[0], pixelsOf(views)[1]);
  tf.dispose(views);
});

it("gives the same batch for a step index whether the steps before it ran or not", () => {
  const walked = smallImageBatches(set, 8, 3);
  for (let i = 0; i < 5; i++) tf.dispose(walked(i));
  const fromWalked = walked(5);
  const fromResumed = smallImageBatches(set, 8, 3)(5);
  assert.deepEqual(pixelsOf(fromResumed), pixelsOf(fromWalked));
  tf.dispose([...fromWalked, ...fromResumed]);
});

it("draws a new order each epoch and for each seed", () => {
  const batches = smallImageBatches(set, 8, 0);
  const [epoch0, epoch1] = [batches(0), batches(2)];
  const otherSeed = smallImageBatches(set, 8, 1)(0);
  assert.notDeepEqual(pixelsOf(epoch1), pixelsOf(epoch0));
  assert.notDeepEqual(pixelsOf(otherSeed), pixelsOf(epoch0));
  tf.dispose([...epoch0, ...epoch1, ...otherSeed]);
});

it("refuses a batch larger than the set", () => {
  assert.throws(() => smallImageBatches(set, 21, 0), /batch size 21 is more than the set's 20 images/);
});
