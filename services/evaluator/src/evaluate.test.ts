// The raw-pixel baseline on a tiny slice of the bundled Fashion-MNIST subset, in a real S3 server: the
// evaluator's kNN of the raw pixels equals a kNN written out here in plain JavaScript, its linear
// probe equals the core's probe on pixels flattened here, both reach the response, and the second
// request is served from the cache.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { initBackend, linearProbe } from "@adco/core";
import { BUNDLED_FASHION_MNIST, FASHION_MNIST_CLASSES, readFashionMnist } from "@adco/datasets";
import { EncoderArch } from "@adco/proto/common";
import { type EvaluateEvent, EvaluateRequest, EvaluationResult } from "@adco/proto/evaluator";
import { DatasetWriter, ObjectStore } from "@adco/storage";
import { startS3Server, type S3ServerProcess } from "@adco/storage/testing";
import * as tf from "@tensorflow/tfjs-core";
import { type EvaluationOptions, runEvaluation } from "./evaluate.js";
import { RawPixelsCache } from "./raw-pixels.js";

const BUCKET = "adco-datasets";
const PER_CLASS = { train: 40, test: 15 } as const;
const K = 50;
const TEMPERATURE = 0.1;
const EPOCHS = 20;
const NO_LINEAR = { enabled: false, epochs: 0, lr: 0, weightDecay: 0 };

interface Split {
  readonly pixels: Float64Array[];
  readonly labels: number[];
}

let s3: S3ServerProcess;
let store: ObjectStore;
const splits: Record<"train" | "test", Split> = {
  train: { pixels: [], labels: [] },
  test: { pixels: [], labels: [] },
};

/**
 * The first PER_CLASS images of each class of the bundled splits (train from `trainOffset` on),
 * stored as dataset `name`.
 */
async function storeSlice(name: string, trainOffset = 0): Promise<void> {
  const writer = new DatasetWriter(store, {
    name,
    bucket: BUCKET,
    source: "test",
    encoding: "gray8",
    classes: [...FASHION_MNIST_CLASSES],
    height: 28,
    width: 28,
  });
  for (const split of ["train", "test"] as const) {
    const data = readFashionMnist(BUNDLED_FASHION_MNIST, split);
    const taken = new Array<number>(10).fill(0);
    for (let i = split === "train" ? trainOffset : 0; i < data.count; i++) {
      const label = data.labels[i]!;
      if (taken[label]! >= PER_CLASS[split]) continue;
      taken[label]!++;
      const image = data.images.slice(i * 784, (i + 1) * 784);
      await writer.add(split, { sampleId: i, label, data: image });
      if (name === "slice") {
        // As the encoder's input: x / 255 standardised by Fashion-MNIST's mean and std.
        splits[split].pixels.push(Float64Array.from(image, (v) => (v / 255 - 0.286) / 0.353));
        splits[split].labels.push(label);
      }
    }
  }
  await writer.publish();
}

/** kNN as the MoCo monitor does it, written out: cosine similarity, top k vote with exp(sim / t). */
function plainKnn(train: Split, test: Split, k: number, t: number): { top1: number; perClass: number[] } {
  const unit = (v: Float64Array) => {
    const norm = Math.hypot(...v);
    return v.map((x) => x / norm);
  };
  const bank = train.pixels.map(unit);
  const correct = new Array<number>(10).fill(0);
  const total = new Array<number>(10).fill(0);
  test.pixels.forEach((image, i) => {
    const q = unit(image);
    const sims = bank.map((b, j) => ({
      sim: b.reduce((s, x, d) => s + x * q[d]!, 0),
      label: train.labels[j]!,
    }));
    sims.sort((a, b) => b.sim - a.sim);
    const votes = new Array<number>(10).fill(0);
    for (const { sim, label } of sims.slice(0, k)) votes[label]! += Math.exp(sim / t);
    const predicted = votes.indexOf(Math.max(...votes));
    const label = test.labels[i]!;
    total[label]!++;
    if (predicted === label) correct[label]!++;
  });
  return {
    top1: correct.reduce((a, b) => a + b, 0) / test.labels.length,
    perClass: correct.map((c, i) => c / total[i]!),
  };
}

const request = (patch: Partial<EvaluateRequest> = {}) =>
  EvaluateRequest.fromPartial({
    randomInit: { encoder: EncoderArch.ENCODER_ARCH_RESNET_MINI, seed: 0 },
    train: { bucket: BUCKET, name: "slice:train" },
    test: { bucket: BUCKET, name: "slice:test" },
    knn: { enabled: true, k: K, temperature: TEMPERATURE },
    linear: { enabled: true, epochs: EPOCHS },
    rawPixels: true,
    ...patch,
  });

async function evaluate(
  r: EvaluateRequest,
  cache: EvaluationOptions["rawPixelsCache"],
): Promise<{ result: EvaluationResult; phases: Set<string> }> {
  const phases = new Set<string>();
  const result = await runEvaluation(store, r, (e: EvaluateEvent) => phases.add(e.progress!.phase), {
    rawPixelsCache: cache,
  });
  // What goes over the wire: the result survives the proto encoding.
  return { result: EvaluationResult.decode(EvaluationResult.encode(result).finish()), phases };
}

before(async () => {
  await initBackend("auto");
  s3 = await startS3Server();
  store = new ObjectStore(s3.settings);
  await store.ensureBucket(BUCKET);
  await storeSlice("slice");
  await storeSlice("other-slice", 1000);
});

after(async () => {
  await s3.stop();
});

describe("raw-pixel baseline", () => {
  const cache: EvaluationOptions["rawPixelsCache"] = new RawPixelsCache();

  it("scores the pixels by the same kNN and linear probe, beside the encoder", async () => {
    const { result, phases } = await evaluate(request(), cache);
    const raw = result.rawPixels!;
    assert.ok(raw, "the response has raw_pixels");
    assert.equal(raw.dimension, 784);
    assert.equal(raw.cached, false);
    assert.ok(phases.has("raw_pixels:knn") && phases.has("raw_pixels:linear"), [...phases].join(", "));

    const expected = plainKnn(splits.train, splits.test, K, TEMPERATURE);
    assert.equal(raw.knn!.samples, 150);
    assert.ok(
      Math.abs(raw.knn!.top1 - expected.top1) <= 1 / 150 + 1e-9,
      `raw-pixel kNN ${raw.knn!.top1} vs ${expected.top1} written out`,
    );
    const perClassGap = raw.knn!.perClassTop1.map((v, i) => Math.abs(v - expected.perClass[i]!));
    assert.ok(Math.max(...perClassGap) <= 1 / 15 + 1e-9, `per class: ${perClassGap.join(", ")}`);

    const flat = (s: Split) =>
      tf.tensor2d(Float32Array.from(s.pixels.flatMap((p) => [...p])), [s.pixels.length, 784]);
    const [trainX, testX] = [flat(splits.train), flat(splits.test)];
    const probe = linearProbe(
      trainX,
      Int32Array.from(splits.train.labels),
      testX,
      Int32Array.from(splits.test.labels),
      {
        classes: 10,
        epochs: EPOCHS,
      },
    );
    tf.dispose([trainX, testX]);
    assert.equal(raw.linear!.top1, probe.top1);
    assert.equal(raw.linear!.top5, probe.top5);
    assert.deepEqual(raw.linear!.perClassTop1, probe.perClass);

    // The encoder's own scores are there too, and differ from the pixels'.
    assert.ok(result.knn && result.linear);
    assert.notDeepEqual(result.knn.perClassTop1, raw.knn!.perClassTop1);
  });

  it("serves the same scores from the cache, and computes them again for other data or options", async () => {
    const first = (await evaluate(request(), cache)).result.rawPixels!;
    const { result, phases } = await evaluate(request(), cache);
    assert.equal(result.rawPixels!.cached, true);
    assert.ok(!phases.has("raw_pixels:knn") && !phases.has("raw_pixels:linear"));
    assert.deepEqual({ ...result.rawPixels!, cached: false }, { ...first, cached: false });

    // kNN alone: its cached score, the linear probe not asked.
    const knnOnly = (await evaluate(request({ linear: NO_LINEAR }), cache)).result.rawPixels!;
    assert.equal(knnOnly.cached, true);
    assert.equal(knnOnly.linear, undefined);
    assert.deepEqual(knnOnly.knn, first.knn);

    const otherK = await evaluate(
      request({ knn: { enabled: true, k: 10, temperature: TEMPERATURE } }),
      cache,
    );
    assert.equal(otherK.result.rawPixels!.cached, false);
    assert.ok(otherK.phases.has("raw_pixels:knn") && !otherK.phases.has("raw_pixels:linear"));

    const other = await evaluate(
      request({ train: { bucket: BUCKET, name: "other-slice:train" }, linear: NO_LINEAR }),
      cache,
    );
    assert.equal(other.result.rawPixels!.cached, false);
  });

  it("is left out when not asked", async () => {
    const { result, phases } = await evaluate(request({ rawPixels: false, linear: NO_LINEAR }), cache);
    assert.equal(result.rawPixels, undefined);
    assert.ok(![...phases].some((p) => p.startsWith("raw_pixels:")));
  });
});
