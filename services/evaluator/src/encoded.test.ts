// Photo datasets (the `encoded` image encoding: JPEG, PNG, grey, CMYK, EXIF-rotated) in a real S3
// server: the evaluator scores them through the evaluation transform, exactly as it scores the same
// transformed pixels stored as rgb8 (encoder kNN and linear probe, raw-pixel baseline); a broken
// file is FAILED_PRECONDITION naming its sample; the scratch feature files are gone afterwards.
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { evalTransform } from "@adco/augment";
import { initBackend } from "@adco/core";
import { EncoderArch } from "@adco/proto/common";
import { EvaluateRequest } from "@adco/proto/evaluator";
import { RpcError } from "@adco/service-kit";
import { DatasetWriter, ObjectStore } from "@adco/storage";
import { startS3Server, type S3ServerProcess } from "@adco/storage/testing";
import { status } from "@grpc/grpc-js";
import sharp from "sharp";
import { imageBatches, openSplit } from "./data.js";
import { type EvaluationOptions, runEvaluation } from "./evaluate.js";
import { FeatureFile } from "./feature-file.js";
import { RawPixelsCache } from "./raw-pixels.js";

const BUCKET = "adco-datasets";
const CLASSES = ["red", "green", "blue", "stripes"];
const PER_CLASS = { train: 10, test: 5 } as const;

let s3: S3ServerProcess;
let store: ObjectStore;
const scratch = mkdtempSync(join(tmpdir(), "adco-eval-test-"));
const previousTmp = process.env.TMPDIR;

/**
 * Image `i` of a class as a file of one of five kinds: a 48x40 picture of the class (a tinted
 * gradient, or stripes) with per-image noise, so neighbours are of the class but never equal.
 */
async function photo(label: number, i: number): Promise<Uint8Array> {
  const [width, height] = [48, 40];
  const raw = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      const p = (y * width + x) * 3;
      const noise = ((x * 31 + y * 17 + i * 53) % 23) - 11;
      for (let c = 0; c < 3; c++) {
        const base =
          label === 3 ? ((x >> 2) % 2) * 200 + 20 : c === label ? 170 + x : 40 + ((x + y + i) % 30);
        raw[p + c] = Math.max(0, Math.min(255, base + noise));
      }
    }
  const image = sharp(raw, { raw: { width, height, channels: 3 } });
  switch (i % 5) {
    case 0:
      return image.jpeg({ quality: 90 }).toBuffer();
    case 1:
      return image.png().toBuffer();
    case 2:
      return image.grayscale().png().toBuffer();
    case 3:
      return image.toColourspace("cmyk").jpeg().toBuffer();
    default:
      // Stored turned back a quarter, with the EXIF orientation that shows it upright again.
      return image.rotate(-90).withMetadata({ orientation: 6 }).jpeg().toBuffer();
  }
}

/** The photos stored twice: encoded as they are, and as rgb8 pixels of the 32x32 evaluation transform. */
async function storePhotos(broken = false): Promise<void> {
  const names = broken ? ["photos-broken"] : ["photos", "photos-rgb8"];
  const writers = names.map(
    (name) =>
      new DatasetWriter(store, {
        name,
        bucket: BUCKET,
        source: "test",
        encoding: name.endsWith("rgb8") ? "rgb8" : "encoded",
        classes: CLASSES,
        ...(name.endsWith("rgb8") ? { height: 32, width: 32 } : {}),
      }),
  );
  let sampleId = 0;
  for (const split of ["train", "test"] as const)
    for (let label = 0; label < CLASSES.length; label++)
      for (let i = 0; i < PER_CLASS[split]; i++) {
        const id = sampleId++;
        let bytes = await photo(label, i + (split === "test" ? 100 : 0));
        if (broken && id === 7) bytes = bytes.subarray(0, 60);
        await writers[0]!.add(split, { sampleId: id, label, data: bytes });
        if (!broken)
          await writers[1]!.add(split, { sampleId: id, label, data: await evalTransform(bytes, 32, 3) });
      }
  await Promise.all(writers.map((w) => w.publish()));
}

const request = (dataset: string) =>
  EvaluateRequest.fromPartial({
    randomInit: { encoder: EncoderArch.ENCODER_ARCH_RESNET18_CIFAR, seed: 3 },
    train: { bucket: BUCKET, name: `${dataset}:train` },
    test: { bucket: BUCKET, name: `${dataset}:test` },
    knn: { enabled: true, k: 10, temperature: 0.1 },
    linear: { enabled: true, epochs: 5 },
    rawPixels: true,
  });

before(async () => {
  await initBackend("auto");
  s3 = await startS3Server();
  store = new ObjectStore(s3.settings);
  await store.ensureBucket(BUCKET);
  await storePhotos();
  await storePhotos(true);
  // The evaluations' scratch folders go here, where the test can see that they are removed.
  process.env.TMPDIR = scratch;
});

after(async () => {
  process.env.TMPDIR = previousTmp;
  await s3.stop();
});

describe("evaluation of photo datasets", () => {
  it("scores encoded photos exactly as their transformed pixels stored as rgb8", async () => {
    const phases = new Set<string>();
    const encoded = await runEvaluation(store, request("photos"), (e) => phases.add(e.progress!.phase), {
      rawPixelsCache: new RawPixelsCache(),
    });
    const pixels = await runEvaluation(store, request("photos-rgb8"), () => {}, {
      rawPixelsCache: new RawPixelsCache(),
    });
    assert.ok(phases.has("features:train") && phases.has("knn") && phases.has("raw_pixels:knn"));
    assert.equal(encoded.knn!.samples, 20);
    assert.deepEqual(encoded.knn, pixels.knn);
    assert.deepEqual(encoded.linear, pixels.linear);
    assert.deepEqual(encoded.rawPixels, pixels.rawPixels);
    assert.equal(encoded.rawPixels!.dimension, 32 * 32 * 3);
    // The classes are told apart by their colours: well above chance (25%), so the match means something.
    assert.ok(encoded.rawPixels!.knn!.top1 >= 0.75, `raw-pixel kNN ${encoded.rawPixels!.knn!.top1}`);
    assert.deepEqual(readdirSync(scratch), [], "scratch feature files left behind");
  });

  it("refuses, before any work, a linear probe whose features would not fit in memory", async () => {
    // 60 photos: 60 x 512 ResNet-18 features are 120 KiB; as raw pixels, 60 x 3072 floats, 720 KiB.
    const phases = new Set<string>();
    const limit: EvaluationOptions = {
      rawPixelsCache: new RawPixelsCache(),
      linearProbeMaxBytes: 500 * 1024,
    };
    await assert.rejects(
      runEvaluation(store, request("photos"), (e) => phases.add(e.progress!.phase), limit),
      (e: unknown) => {
        assert.ok(e instanceof RpcError, String(e));
        assert.equal(e.code, status.RESOURCE_EXHAUSTED);
        assert.match(e.message, /^raw_pixels: the linear probe holds 60 x 3072 features in memory/);
        return true;
      },
    );
    assert.ok(![...phases].some((p) => p.startsWith("features")), [...phases].join(", "));
    // The encoder's own 120 KiB fit under 200 KiB: without raw pixels the evaluation runs.
    const result = await runEvaluation(store, { ...request("photos"), rawPixels: false }, () => {}, {
      ...limit,
      linearProbeMaxBytes: 200 * 1024,
    });
    assert.equal(result.linear!.samples, 20);
  });

  it("fails with FAILED_PRECONDITION naming a broken file's sample", async () => {
    await assert.rejects(
      runEvaluation(store, request("photos-broken"), () => {}),
      (e: unknown) => {
        assert.ok(e instanceof RpcError, String(e));
        assert.equal(e.code, status.FAILED_PRECONDITION);
        assert.match(e.message, /photos-broken:train: sample 7: cannot decode/);
        return true;
      },
    );
    assert.deepEqual(readdirSync(scratch), []);
  });
});

describe("image batches", () => {
  it("come in stored order; a broken file in a batch decoded ahead fails when that batch is reached", async () => {
    const split = await openSplit(store, { bucket: BUCKET, name: "photos-broken:train" }, "train");
    const labels: number[] = [];
    await assert.rejects(
      (async () => {
        // Two images a batch: sample 7 is in the fourth, decoded while the caller works on the third.
        for await (const batch of imageBatches(store, split, [32, 32, 3], 2)) {
          assert.deepEqual(batch.shape, [2, 32, 32, 3]);
          labels.push(...batch.labels);
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      })(),
      /sample 7: cannot decode/,
    );
    assert.deepEqual(labels, [0, 0, 0, 0, 0, 0]);
  });
});

describe("feature files", () => {
  it("give back the rows appended, in blocks of any size", async () => {
    const file = await FeatureFile.create(join(scratch, "f.f32"), 7);
    try {
      const rows = Float32Array.from({ length: 7 * 3 }, (_, i) => i / 3);
      await file.append(rows.subarray(0, 4 * 3), Int32Array.from([0, 1, 2, 3]));
      await file.append(rows.subarray(4 * 3), Int32Array.from([4, 5, 6]));
      assert.equal(file.rows, 7);
      assert.equal(file.dim, 3);
      const blocks = [];
      for await (const b of file.blocks(3)) blocks.push(b);
      assert.deepEqual(
        blocks.map((b) => [...b.labels]),
        [[0, 1, 2], [3, 4, 5], [6]],
      );
      assert.deepEqual(Float32Array.from(blocks.flatMap((b) => [...b.features])), rows);
      await assert.rejects(file.append(new Float32Array(3), Int32Array.from([7])), /more than the 7 rows/);
    } finally {
      await file.close();
    }
  });
});
