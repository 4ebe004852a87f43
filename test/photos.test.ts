// Photos end to end, as a new user's ImageFolder: JPEG, PNG, grey and EXIF-rotated files (and one
// broken file, skipped at import) imported as an encoded dataset; a resnet18-cifar run trains on it
// with the trainer's epoch kNN on; then `adco eval RUN` (the CLI as a process) and FollowRun score
// its checkpoint over gRPC. Every part a real process on loopback, with an S3 server.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { importDataset } from "@adco/cli";
import { EncoderArch } from "@adco/proto/common";
import { Pipeline } from "@adco/proto/data_worker";
import { type EvaluateEvent, EvaluateRequest, EvaluatorClient } from "@adco/proto/evaluator";
import { RunConfig, RunState } from "@adco/proto/trainer";
import { channelOptions } from "@adco/service-kit";
import { ObjectStore } from "@adco/storage";
import { startS3Server, type S3ServerProcess } from "@adco/storage/testing";
import sharp from "sharp";
import { ROOT, s3Env, startService, type ServiceName, type ServiceProcess } from "./lib/service-process.js";
import { ended, getRun, startRun, stateMessages, waitFor, watch } from "./lib/trainer-run.js";

const CLASSES = ["warm", "cold"];
const PER_CLASS = { train: 32, test: 8 } as const;
const RUN = "photos";
const FINAL = [RunState.RUN_STATE_STOPPED, RunState.RUN_STATE_COMPLETED, RunState.RUN_STATE_FAILED];

let s3: S3ServerProcess;
let store: ObjectStore;
const processes: ServiceProcess[] = [];

async function start(name: ServiceName, env: Record<string, string> = {}): Promise<ServiceProcess> {
  const p = await startService(name, { ...s3Env(s3.settings), ...env });
  processes.push(p);
  return p;
}

/** Photo `i` of a class, 60x44 (warm: red-orange, cold: blue-cyan, with a per-image pattern). */
async function photo(label: number, i: number): Promise<Buffer> {
  const [width, height] = [60, 44];
  const raw = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      const p = (y * width + x) * 3;
      const wave = Math.round(40 * Math.sin((x + 3 * i) / 5) * Math.cos(y / 7));
      raw[p + (label === 0 ? 0 : 2)] = 180 + wave;
      raw[p + 1] = 90 + wave;
      raw[p + (label === 0 ? 2 : 0)] = 30;
    }
  const image = sharp(raw, { raw: { width, height, channels: 3 } });
  switch (i % 4) {
    case 0:
      return image.jpeg().toBuffer();
    case 1:
      return image.png().toBuffer();
    case 2:
      return image.grayscale().jpeg().toBuffer();
    default:
      return image.rotate(-90).withMetadata({ orientation: 6 }).jpeg().toBuffer();
  }
}

before(async () => {
  s3 = await startS3Server();
  store = new ObjectStore(s3.settings);
  const dir = mkdtempSync(join(tmpdir(), "adco-photos-"));
  for (const split of ["train", "test"] as const)
    for (const [label, name] of CLASSES.entries()) {
      mkdirSync(join(dir, split, name), { recursive: true });
      for (let i = 0; i < PER_CLASS[split]; i++) {
        const file = `${String(i).padStart(3, "0")}.${i % 4 === 1 ? "png" : "jpg"}`;
        writeFileSync(join(dir, split, name, file), await photo(label, split === "test" ? 100 + i : i));
      }
    }
  writeFileSync(join(dir, "train", "warm", "broken.jpg"), Buffer.from("not a jpeg"));
  const manifest = await importDataset(store, {
    format: "imagefolder",
    source: dir,
    name: "photos",
    bucket: "adco-datasets",
    quiet: true,
  });
  assert.equal(manifest.encoding, "encoded");
  assert.equal(manifest.splits.train!.count, 2 * PER_CLASS.train);
  assert.equal(manifest.skipped.length, 1);
});

after(async () => {
  await Promise.all(processes.map((p) => p.stop("SIGKILL")));
  await s3.stop();
});

describe("photos end to end", () => {
  it("trains resnet18-cifar on an imported ImageFolder; the epoch kNN, adco eval and FollowRun score it", async () => {
    const [worker, bank, evaluator] = [
      await start("data-worker"),
      await start("adversary-bank"),
      await start("evaluator"),
    ];
    const trainer = await start("trainer", {
      ADCO_BANK_ADDRESS: bank.grpcAddress,
      ADCO_DATA_WORKERS: worker.grpcAddress,
      ADCO_EVALUATOR_ADDRESS: evaluator.grpcAddress,
    });
    await startRun(trainer, {
      runId: RUN,
      config: RunConfig.fromPartial({
        preset: "fashion-mnist",
        encoder: EncoderArch.ENCODER_ARCH_RESNET18_CIFAR,
        dataset: { bucket: "adco-datasets", name: "photos" },
        augment: { pipeline: Pipeline.PIPELINE_TWO_VIEW, outputSize: 32, crops: [], seed: 0 },
        epochs: 1,
        batchSize: 32,
        bankSize: 64,
        checkpointEverySteps: 2,
      }),
    });
    // The run's end, polled: a resnet18-cifar step on a loaded CPU can hold the trainer's event loop
    // past a stream's keepalive timeout. Then all of its events, replayed by the idle trainer,
    // among them the epoch evaluation (the trainer waits for it before it completes).
    await waitFor(
      "the run to end",
      async () => (FINAL.includes((await getRun(trainer, RUN)).state) ? true : undefined),
      600_000,
    );
    const events = await watch(trainer, RUN, ended);
    const final = events.findLast((e) => e.state)!.state!;
    assert.equal(final.state, RunState.RUN_STATE_COMPLETED, stateMessages(events).join(" | "));
    const epochEval = events.find((e) => e.eval)?.eval;
    assert.ok(epochEval?.knn, `no epoch kNN on the watch stream: ${stateMessages(events).join(" | ")}`);
    assert.equal(epochEval.knn.samples, 2 * PER_CLASS.test);
    assert.equal(epochEval.knn.perClassTop1.length, CLASSES.length);

    // adco eval RUN: the checkpoint, random init and the raw pixels, each a kNN of the 16 test photos;
    // --plots copies the evaluation's plots into a local folder and prints the files' paths.
    const plotsDir = join(mkdtempSync(join(tmpdir(), "adco-photos-plots-")), "plots");
    const cli = spawnSync(
      process.execPath,
      [
        "--conditions=development",
        "--import",
        "tsx",
        join(ROOT, "libs/cli/src/main.ts"),
        "eval",
        RUN,
        "--no-linear",
        "--trainer",
        trainer.grpcAddress,
        "--evaluator",
        evaluator.grpcAddress,
        "--plots",
        plotsDir,
      ],
      { encoding: "utf8", env: { ...process.env, ...s3Env(s3.settings) } },
    );
    assert.equal(cli.status, 0, cli.stderr);
    for (const row of [`${RUN} step 2`, "random init", "raw pixels"])
      assert.match(
        cli.stdout,
        new RegExp(`^${row}\\s+kNN \\(k 200\\): top-1 \\d+\\.\\d% \\(16 test images\\)$`, "m"),
      );
    const stored = `s3://adco-checkpoints/runs/${RUN}/eval/step-0000000002`;
    assert.match(cli.stdout, new RegExp(`^results: ${stored}/results\\.json$`, "m"));
    assert.doesNotMatch(cli.stdout, /_S3rver_object/);
    for (const name of ["loss", "accuracy", "embedding"])
      for (const ext of ["png", "svg"]) {
        const path = join(plotsDir, `${name}.${ext}`);
        assert.ok(cli.stdout.includes(`plot: ${path} (from ${stored}/${name}.${ext})`), cli.stdout);
        const image = await sharp(readFileSync(path)).metadata();
        assert.equal(image.format, ext);
        assert.ok(image.width! >= 700, `${path}: ${image.width} px wide`);
      }
    // The embedding names the photos' classes; the accuracy chart has its labelled point.
    const embedding = readFileSync(join(plotsDir, "embedding.svg"), "utf8");
    for (const text of [...CLASSES, "PCA", "UMAP"]) assert.ok(embedding.includes(`>${text}</text>`), text);
    const accuracy = readFileSync(join(plotsDir, "accuracy.svg"), "utf8");
    assert.match(accuracy, /aria-roledescription="point"/);

    // FollowRun: the run's newest checkpoint, scored as it is published.
    const client = new EvaluatorClient(
      evaluator.grpcAddress,
      grpc.credentials.createInsecure(),
      channelOptions(),
    );
    const call = client.followRun({
      bucket: "adco-checkpoints",
      runId: RUN,
      template: EvaluateRequest.fromPartial({
        train: { bucket: "adco-datasets", name: "photos:train" },
        test: { bucket: "adco-datasets", name: "photos:test" },
        knn: { enabled: true, k: 20, temperature: 0.1 },
      }),
    });
    const followed = await new Promise<EvaluateEvent["result"]>((resolve, reject) => {
      call.on("data", (e: EvaluateEvent) => e.result && resolve(e.result));
      call.on("error", reject);
    });
    call.cancel();
    client.close();
    assert.equal(followed!.checkpoint!.step, 2);
    assert.equal(followed!.knn!.samples, 2 * PER_CLASS.test);
    // Two colour classes: any encoder, even a barely trained one, tells them apart.
    assert.ok(followed!.knn!.top1 >= 0.75, `FollowRun kNN ${followed!.knn!.top1}`);
  });
});
