import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { PAPER_CONFIG } from "./pretrainer.js";
import { PRESETS } from "./presets.js";
import { cosineLr, initSteps, learningRate } from "./schedule.js";

// Values of the schedule as the trainer and the in-process loop computed it before it moved here
// (`initSteps` in loop.ts and the trainer's own copy, `cosineLr` in pretrainer.ts), printed with
// full precision: the move must change no bit.
describe("the schedule", () => {
  it("fashion-mnist: 16 init steps of 4 epochs x 235, then the cosine from 0.06 to 0.0012", () => {
    const config = PRESETS["fashion-mnist"];
    const total = 4 * Math.ceil(60000 / 256);
    assert.equal(initSteps(config, total), 16);
    const pinned: [number, number][] = [
      [0, 0.06],
      [15, 0.06],
      [16, 0.06],
      [17, 0.05999983006895844],
      [470, 0.031399579528468745],
      [939, 0.0012001699310415542],
      [940, 0.0012],
    ];
    for (const [step, lr] of pinned) assert.equal(learningRate(config, step, total), lr, `step ${step}`);
  });

  it("the paper: 256 init steps of 200 epochs of ImageNet, then the cosine from 0.03 to 0.0006", () => {
    const total = 200 * Math.ceil(1281167 / 256);
    assert.equal(initSteps(PAPER_CONFIG, total), 256);
    const pinned: [number, number][] = [
      [0, 0.03],
      [255, 0.03],
      [256, 0.03],
      [257, 0.029999999999927564],
      [500500, 0.015305906825899449],
      [1000999, 0.0006000000000724342],
      [1001000, 0.0006],
    ];
    for (const [step, lr] of pinned)
      assert.equal(learningRate(PAPER_CONFIG, step, total), lr, `step ${step}`);
  });

  it("MoCo has no init steps: the cosine starts at step 0", () => {
    const config = PRESETS["fashion-mnist-moco"];
    assert.equal(initSteps(config, 940), 0);
    assert.equal(learningRate(config, 0, 940), 0.06);
    assert.equal(learningRate(config, 1, 940), 0.05999983580460655);
    assert.equal(learningRate(config, 470, 940), 0.0306);
    assert.equal(learningRate(config, 939, 940), 0.0012001641953934478);
  });

  it("init never outlasts the run, and a Pretrainer's config is read", () => {
    const config = PRESETS["fashion-mnist"];
    assert.equal(initSteps(config, 10), 10);
    assert.equal(initSteps(config), 16, "without a length: ceil(K / B)");
    assert.equal(initSteps({ config }), 16);
    assert.equal(initSteps({ ...config, negatives: 4097 }), 17);
    // A run that is all init stays at the peak.
    assert.equal(learningRate(config, 9, 10), 0.06);
  });

  it("cosineLr goes from lr to finalLr, clamped outside [0, totalSteps]", () => {
    const c = { lr: 0.03, finalLr: 0.0006 };
    assert.equal(cosineLr(c, 0, 100), 0.03);
    assert.equal(cosineLr(c, -5, 100), 0.03);
    assert.equal(cosineLr(c, 100, 100), 0.0006);
    assert.equal(cosineLr(c, 200, 100), 0.0006);
    assert.ok(Math.abs(cosineLr(c, 50, 100) - 0.0153) < 1e-12);
  });
});
