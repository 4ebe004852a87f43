import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import * as tf from "@tensorflow/tfjs-core";
import { initBackend } from "./backend.js";
import { SeededRandom } from "./random.js";
import { backward, recordForward } from "./tape.js";

before(async () => {
  await initBackend("auto");
});

interface Net {
  readonly vars: tf.Variable[];
  /** Two heads, so a recording has several outputs, as the symmetric and multi-crop steps. */
  readonly f: () => [tf.Tensor2D, tf.Tensor2D];
}

/** A small conv + BN (batch statistics) + custom-gradient op + dense net on random shapes. */
function makeNet(random: SeededRandom, seed: number): Net {
  const n = 2 + Math.floor(random.next() * 4);
  const h = 4 + Math.floor(random.next() * 5);
  const c = 1 + Math.floor(random.next() * 3);
  const f1 = 2 + Math.floor(random.next() * 4);
  const d = 2 + Math.floor(random.next() * 5);
  const x = tf.randomNormal([n, h, h, c], 0, 1, "float32", seed) as tf.Tensor4D;
  const kernel = tf.variable(tf.randomNormal([3, 3, c, f1], 0, 0.5, "float32", seed + 1));
  const gamma = tf.variable(tf.randomUniform([f1], 0.5, 1.5, "float32", seed + 2));
  const beta = tf.variable(tf.randomNormal([f1], 0, 0.1, "float32", seed + 3));
  const dense = tf.variable(tf.randomNormal([f1, d], 0, 0.5, "float32", seed + 4));
  const head = tf.variable(tf.randomNormal([d, d], 0, 0.5, "float32", seed + 5));
  // A custom op, as the encoder's split BatchNorm: y = x^3 with dy 3x^2, x saved.
  const cube = tf.customGrad((...args: unknown[]) => {
    const input = args[0] as tf.Tensor;
    (args[1] as tf.GradSaveFunc)([input]);
    return {
      value: tf.pow(input, 3),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.mul(dy, tf.mul(tf.square(saved[0]!), 3)),
    };
  });
  const f = (): [tf.Tensor2D, tf.Tensor2D] => {
    const conv = tf.conv2d(x, kernel as tf.Tensor4D, 1, "same");
    const { mean, variance } = tf.moments(conv, [0, 1, 2]);
    const bn = tf.batchNorm(conv, mean, variance, beta as tf.Tensor1D, gamma as tf.Tensor1D, 1e-5);
    const pooled = tf.mean(cube(tf.relu(bn)), [1, 2]) as tf.Tensor2D;
    const features = tf.matMul(pooled, dense as tf.Tensor2D);
    return [tf.tanh(features) as tf.Tensor2D, tf.matMul(features, head as tf.Tensor2D)];
  };
  return { vars: [kernel, gamma, beta, dense, head], f };
}

/** What tf.variableGrads gives for the same function and the same dys: the loss sum_i <y_i, dy_i>. */
function reference(net: Net, dys: tf.Tensor[]): tf.Tensor[] {
  const { grads, value } = tf.variableGrads(
    () => tf.addN(net.f().map((y, i) => tf.sum(tf.mul(y, dys[i]!)))) as tf.Scalar,
    net.vars,
  );
  value.dispose();
  return net.vars.map((v) => grads[v.name]!);
}

function assertClose(got: (tf.Tensor | null)[], expected: tf.Tensor[], what: string): void {
  assert.equal(got.length, expected.length);
  got.forEach((g, i) => {
    assert.ok(g, `${what}: no gradient for x ${i}`);
    const e = expected[i]!;
    assert.deepEqual(g.shape, e.shape);
    const diff = tf.tidy(() => tf.max(tf.abs(tf.sub(g, e))).dataSync()[0]!);
    const scale = tf.tidy(() => tf.max(tf.abs(e)).dataSync()[0]!);
    assert.ok(diff <= 1e-6 * Math.max(1, scale), `${what}: x ${i} differs by ${diff} (scale ${scale})`);
  });
}

function disposeNet(net: Net): void {
  tf.dispose(net.vars);
}

describe("a forward recorded now and backpropagated later", () => {
  it("gives the gradients tf.variableGrads gives, on random shapes", () => {
    const random = new SeededRandom(7);
    for (let trial = 0; trial < 4; trial++) {
      const net = makeNet(random, 100 + 10 * trial);
      const recording = recordForward(net.f, net.vars);
      const dys = recording.outputs.map((y, i) => tf.randomNormal(y.shape, 0, 1, "float32", trial * 2 + i));
      const got = backward(recording, dys);
      const expected = reference(net, dys);
      assertClose(got, expected, `trial ${trial}`);
      assert.equal(recording.live, false);
      tf.dispose([...got.filter((g) => g !== null), ...expected, ...dys, ...recording.outputs]);
      disposeNet(net);
    }
  });

  it("across an await with unrelated ops and gradients in between: same gradients, nothing recorded or left", async () => {
    const net = makeNet(new SeededRandom(3), 40);
    const dys = net.f().map((y, i) => {
      const dy = tf.randomNormal(y.shape, 0, 1, "float32", 50 + i);
      y.dispose();
      return dy;
    });
    const expected = reference(net, dys);
    const count = tf.memory().numTensors;

    const recording = recordForward(net.f, net.vars);
    const state = (tf.engine() as unknown as { state: { gradientDepth: number } }).state;
    assert.equal(state.gradientDepth, 0, "the tape is off after recordForward");
    await new Promise((r) => setTimeout(r, 5));
    // Ops on the same variables while the recording waits: had the tape stayed on, each would keep a
    // saved copy of its inputs and the tensor count below would not return to where it was.
    const unrelated = tf.tidy(() => tf.sum(tf.mul(net.f()[0], 2)));
    const other = tf.variableGrads(() => tf.sum(tf.square(net.vars[3]!)) as tf.Scalar, [net.vars[3]!]);
    await Promise.resolve();
    const got = backward(recording, dys);

    assertClose(got, expected, "after an await");
    tf.dispose([unrelated, other.value, ...Object.values(other.grads), ...recording.outputs]);
    tf.dispose(got.filter((g) => g !== null));
    assert.equal(tf.memory().numTensors, count, "every saved tensor was disposed");
    assert.equal(state.gradientDepth, 0);
    tf.dispose([...expected, ...dys]);
    disposeNet(net);
  });

  it("disposed without a backward (the service call failed), or after f throws, leaves no tensor", async () => {
    const net = makeNet(new SeededRandom(5), 60);
    const count = tf.memory().numTensors;
    const recording = recordForward(net.f, net.vars);
    assert.ok(tf.memory().numTensors > count + 2, "saved tensors live until the backward");
    await Promise.reject(new Error("bank unavailable")).catch(() => recording.dispose());
    recording.dispose(); // idempotent
    tf.dispose(recording.outputs);
    assert.equal(tf.memory().numTensors, count);
    assert.throws(() => backward(recording, []), /already backpropagated or disposed/);

    assert.throws(
      () =>
        recordForward(() => {
          net.f();
          throw new Error("forward failed");
        }, net.vars),
      /forward failed/,
    );
    assert.equal(tf.memory().numTensors, count);
    const state = (tf.engine() as unknown as { state: { gradientDepth: number } }).state;
    assert.equal(state.gradientDepth, 0);
    disposeNet(net);
  });

  it("rejects dys that do not match the outputs, and still frees the recording", () => {
    const net = makeNet(new SeededRandom(9), 80);
    const count = tf.memory().numTensors;
    const recording = recordForward(net.f, net.vars);
    const wrong = tf.zeros([1, 1]);
    assert.throws(() => backward(recording, [wrong, wrong]), /has shape/);
    assert.equal(recording.live, false);
    tf.dispose([wrong, ...recording.outputs]);
    assert.equal(tf.memory().numTensors, count);
    disposeNet(net);
  });

  it("refuses to record inside another gradient computation", () => {
    const net = makeNet(new SeededRandom(11), 90);
    const w = net.vars[4]!;
    assert.throws(
      () => tf.grad((x: tf.Tensor) => tf.sum(tf.mul(x, recordForward(net.f, net.vars).outputs[1])))(w),
      /inside another gradient computation/,
    );
    disposeNet(net);
  });
});
