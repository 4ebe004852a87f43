import assert from "node:assert/strict";
import { describe, test } from "node:test";
import * as tf from "@tensorflow/tfjs-core";
import { initBackend } from "./backend.js";
import { aggregateProfile, programNames } from "./webgpu-profile.js";

describe("aggregateProfile", () => {
  test("sums each kernel's calls and GPU time, names its shaders, and bounds a better shader", () => {
    const summary = aggregateProfile(
      [
        { name: "Conv2DBackpropFilter", ms: 6, programs: "Conv2DDerFilterProgram: 6" },
        { name: "Conv2D", ms: 1.5, programs: "Conv2DMMProgram: 1.5" },
        { name: "Conv2DBackpropFilter", ms: 2, programs: "Conv2DDerFilterProgram: 2" },
        { name: "Relu", ms: 0.5, programs: "UnaryOpProgram: 0.25, UnaryOpProgram: 0.25" },
      ],
      20,
    );
    assert.equal(summary.kernelMs, 10);
    assert.deepEqual(
      summary.kernels.map((k) => [k.name, k.calls, k.ms, k.share, k.programs]),
      [
        ["Conv2DBackpropFilter", 2, 8, 0.8, ["Conv2DDerFilterProgram"]],
        ["Conv2D", 1, 1.5, 0.15, ["Conv2DMMProgram"]],
        ["Relu", 1, 0.5, 0.05, ["UnaryOpProgram"]],
      ],
    );
    assert.equal(summary.slowest?.name, "Conv2DBackpropFilter");
    // 10 ms with 8 of them in the filter gradient: 6 ms at half its time, 2 ms at none.
    assert.ok(Math.abs(summary.slowest!.halfSpeedup - 10 / 6) < 1e-12);
    assert.ok(Math.abs(summary.slowest!.boundSpeedup - 5) < 1e-12);
    assert.match(summary.timer, /GPU timestamps/);
  });

  test("without a timer it counts calls and names no slowest kernel", () => {
    const summary = aggregateProfile(
      [
        { name: "Add", ms: 0, programs: "" },
        { name: "MatMul", ms: 0, programs: "" },
        { name: "MatMul", ms: 0, programs: "" },
      ],
      3,
    );
    assert.equal(summary.slowest, null);
    assert.deepEqual(
      summary.kernels.map((k) => [k.name, k.calls]),
      [
        ["MatMul", 2],
        ["Add", 1],
      ],
    );
    assert.match(summary.timer, /no kernel times/);
  });

  test("program names come out of the webgpu backend's extraInfo, each once", () => {
    assert.deepEqual(programNames("BinaryOpProgram: 0.1, BinaryOpProgram: 0.2, ReduceProgram: 1e-3"), [
      "BinaryOpProgram",
      "ReduceProgram",
    ]);
    assert.deepEqual(programNames(""), []);
  });

  test("tf.profile's kernels of a real step feed it (cpu backend: wall times per kernel)", async () => {
    await initBackend("cpu");
    const x = tf.randomNormal([2, 8, 8, 3]) as tf.Tensor4D;
    const w = tf.randomNormal([3, 3, 3, 4]) as tf.Tensor4D;
    const info = await tf.profile(() => tf.grad((f) => tf.conv2d(x, f as tf.Tensor4D, 1, "same").sum())(w));
    const summary = aggregateProfile(
      info.kernels.map((k) => ({
        name: k.name,
        ms: Number(k.kernelTimeMs),
        programs: String(k.extraInfo ?? ""),
      })),
      1,
    );
    const names = summary.kernels.map((k) => k.name);
    assert.match(
      aggregateProfile([{ name: "Add", ms: 1, programs: "" }], 1, "wall").timer,
      /wall clock per kernel/,
    );
    assert.ok(names.includes("Conv2D"), names.join(", "));
    assert.ok(names.includes("Conv2DBackpropFilter"), names.join(", "));
  });
});
