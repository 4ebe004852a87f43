// The adco CLI as a user runs it: a child process against an S3 server process on loopback.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { BUNDLED_FASHION_MNIST } from "@adco/datasets";
import { launchService } from "@adco/service-kit";
import { ObjectStore, readManifest, readShard } from "@adco/storage";
import { startS3Server, type S3ServerProcess } from "@adco/storage/testing";

const MAIN = join(import.meta.dirname, "main.ts");
let server: S3ServerProcess;

before(async () => {
  server = await startS3Server();
});
after(async () => {
  await server.stop();
});

/** The environment that points a process at the S3 server (or, with `endpoint`, somewhere else). */
const s3Env = (endpoint = server.settings.endpoint) => ({
  ADCO_S3_ENDPOINT: endpoint,
  ADCO_S3_ACCESS_KEY: server.settings.accessKey,
  ADCO_S3_SECRET_KEY: server.settings.secretKey,
});

function adco(args: string[], env: Record<string, string> = {}) {
  return spawnSync(process.execPath, ["--conditions=development", "--import", "tsx", MAIN, ...args], {
    encoding: "utf8",
    env: {
      ...process.env,
      ...s3Env(),
      ...env,
    },
  });
}

describe("adco dataset", () => {
  it("imports IDX files, then ls and inspect show what is stored; a re-import is safe", () => {
    for (let run = 0; run < 2; run++) {
      const result = adco([
        "dataset",
        "import",
        "--format",
        "idx",
        "--name",
        "fmnist-small",
        "--shard-mib",
        "1",
        BUNDLED_FASHION_MNIST,
      ]);
      assert.equal(result.status, 0, result.stderr);
      assert.match(result.stdout, /train: 6000 samples in 5 shards/);
      assert.match(result.stdout, /test: 1000 samples in 1 shards/);
      assert.match(result.stderr, /import train \[#+\] 6000\/6000/);
    }
    const ls = adco(["dataset", "ls"]);
    assert.equal(ls.status, 0, ls.stderr);
    assert.match(ls.stdout, /^fmnist-small\tgray8\t10 classes\ttrain 6000, test 1000$/m);
    const inspect = adco(["dataset", "inspect", "fmnist-small"]);
    assert.match(inspect.stdout, /gray8 28x28, 10 classes/);
  });

  it("stores every record with its label, readable and verified", async () => {
    const store = new ObjectStore(server.settings);
    const manifest = await readManifest(store, "adco-datasets", "fmnist-small");
    assert.deepEqual(manifest.classes.slice(0, 2), ["T-shirt/top", "Trouser"]);
    const ids = new Set<number>();
    for (const shard of manifest.splits.train!.shards)
      for (const r of await readShard(store, shard)) ids.add(r.sampleId);
    assert.equal(ids.size, 6000);
    assert.deepEqual(manifest.splits.train!.classCounts, new Array(10).fill(600));
  });

  it("counts and reports a corrupt CIFAR batch instead of dying", () => {
    const dir = mkdtempSync(join(tmpdir(), "adco-cifar-"));
    const record = new Uint8Array(3073).fill(7);
    record[0] = 3;
    writeFileSync(join(dir, "data_batch_1.bin"), Buffer.concat([record, record]));
    writeFileSync(join(dir, "data_batch_2.bin"), new Uint8Array(100));
    const result = adco(["dataset", "import", "--format", "cifar10", "--name", "tiny-cifar", dir]);
    assert.equal(result.status, 0, result.stderr);
    assert.match(result.stdout, /train: 2 samples/);
    assert.match(
      result.stdout,
      /skipped: 1\n.*data_batch_2\.bin: 100 bytes is not a whole number of 3073-byte records/,
    );
  });

  it("imports an ImageFolder tree, skipping and naming a JPEG of random bytes and a truncated PNG", async () => {
    const sharp = (await import("sharp")).default;
    const root = mkdtempSync(join(tmpdir(), "adco-folder-"));
    for (const [split, cls, n] of [
      ["train", "cat", 3],
      ["train", "dog", 2],
      ["val", "cat", 1],
      ["val", "dog", 1],
    ] as const) {
      mkdirSync(join(root, split, cls), { recursive: true });
      for (let i = 0; i < n; i++) {
        const raw = Buffer.alloc(40 * 30 * 3, (i * 40 + cls.length * 13) % 256);
        writeFileSync(
          join(root, split, cls, `${i}.jpg`),
          await sharp(raw, { raw: { width: 40, height: 30, channels: 3 } })
            .jpeg()
            .toBuffer(),
        );
      }
    }
    writeFileSync(
      join(root, "train", "cat", "noise.jpg"),
      Buffer.from(Array.from({ length: 500 }, (_, i) => (i * 37) % 256)),
    );
    const png = await sharp(Buffer.alloc(40 * 30 * 3, 9), { raw: { width: 40, height: 30, channels: 3 } })
      .png()
      .toBuffer();
    writeFileSync(join(root, "train", "dog", "cut.png"), png.subarray(0, png.length - 20));
    const result = adco(["dataset", "import", "--format", "imagefolder", "--name", "folder", root]);
    assert.equal(result.status, 0, result.stderr);
    assert.match(result.stdout, /folder: encoded, 2 classes/);
    assert.match(result.stdout, /train: 5 samples/);
    assert.match(result.stdout, /val: 2 samples/);
    assert.match(result.stdout, /skipped: 2/);
    // One line per skipped file, its path once: "<path>: cannot decode (<libvips' reason>)".
    for (const name of ["noise.jpg", "cut.png"]) {
      const lines = result.stdout.split("\n").filter((line) => line.includes(name));
      assert.equal(lines.length, 1, result.stdout);
      assert.match(lines[0]!, new RegExp(`^\\s+\\S*${name.replace(".", "\\.")}: cannot decode \\(`));
      assert.equal(lines[0]!.split(name).length, 2, `${name} printed twice: ${lines[0]}`);
    }
  });

  it("gives clear errors: wrong credentials, unknown data set, bad usage", () => {
    const denied = adco(["dataset", "ls"], { ADCO_S3_ACCESS_KEY: "nobody" });
    assert.equal(denied.status, 1);
    assert.match(denied.stderr, /refused the credentials.*check the access key and secret/);
    const missing = adco(["dataset", "inspect", "nope"]);
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /dataset nope: no manifest/);
    const usage = adco(["dataset", "import", "--format", "tiff", "--name", "x", "/tmp"]);
    assert.equal(usage.status, 2);
    assert.match(usage.stderr, /--format: one of idx, cifar10, cifar100/);
    const noDir = adco(["dataset", "import", "--format", "idx", "--name", "x", "/nonexistent"]);
    assert.equal(noDir.status, 1);
    assert.match(noDir.stderr, /\/nonexistent: no such directory/);
  });
});

describe("adco eval", () => {
  it("prints random init beside the raw pixels, and the difference in points", async () => {
    const evaluator = await launchService("evaluator", { env: s3Env() });
    try {
      const result = adco([
        "eval",
        "--random-init",
        "resnet-mini",
        "--train",
        "fmnist-small:train",
        "--test",
        "fmnist-small:test",
        "--no-linear",
        "--evaluator",
        evaluator.grpcAddress,
      ]);
      assert.equal(result.status, 0, result.stderr);
      const row = (name: string) => {
        const m = new RegExp(
          `^${name}\\s+kNN \\(k 200\\): top-1 (\\d+\\.\\d)% \\(1000 test images\\)$`,
          "m",
        ).exec(result.stdout);
        assert.ok(m, `no ${name} row in:\n${result.stdout}`);
        return Number(m[1]);
      };
      const encoder = row("random init");
      const pixels = row("raw pixels");
      assert.match(result.stdout, /^\s+linear probe: not run$/m);
      const versus = /^vs raw pixels: ([+-]\d+\.\d) points \(kNN\)$/m.exec(result.stdout);
      assert.ok(versus, result.stdout);
      assert.equal(Number(versus[1]), Number((encoder - pixels).toFixed(1)));
      assert.match(result.stderr, /^raw_pixels:knn 1000\/1000$/m);
    } finally {
      await evaluator.stop();
    }
  });
});

describe("adco eval --plots", () => {
  it("refuses --plots for random weights, which are scored without plots, before any call", () => {
    const args = ["eval", "--random-init", "resnet-mini", "--train", "x:train", "--test", "x:test"];
    const result = adco([
      ...args,
      "--plots",
      mkdtempSync(join(tmpdir(), "adco-plots-")),
      "--evaluator",
      "127.0.0.1:1",
    ]);
    assert.equal(result.status, 2, result.stderr);
    assert.match(result.stderr, /--plots: only a run's checkpoint is evaluated with plots \(adco eval RUN\)/);
  });
});

describe("adco run commands", () => {
  it("reject a run config with an unknown key, naming it and the known ones", () => {
    const dir = mkdtempSync(join(tmpdir(), "adco-config-"));
    const path = join(dir, "run.json");
    writeFileSync(path, JSON.stringify({ preset: "fashion-mnist", dataset: { name: "x" }, epoch: 3 }));
    const result = adco(["train", "--config", path]);
    assert.equal(result.status, 2, result.stderr);
    assert.match(result.stderr, /unknown key epoch; a RunConfig has preset, dataset, method/);
  });

  it("watch a run the trainer does not know: NOT_FOUND in one line, no stack trace", async () => {
    const trainer = await launchService("trainer", { env: s3Env() });
    try {
      const result = adco(["watch", "nope", "--trainer", trainer.grpcAddress]);
      assert.equal(result.status, 2, result.stderr);
      assert.match(result.stderr, /trainer: NOT_FOUND: no run "nope"/);
      assert.doesNotMatch(result.stderr, /\n\s+at /, "no stack trace");
    } finally {
      await trainer.stop();
    }
  });

  it("tell a trainer that answers UNAVAILABLE (its object store is down) from no trainer at all", async () => {
    const trainer = await launchService("trainer", { env: s3Env("http://127.0.0.1:1") }); // nothing listens there
    try {
      const result = adco(["runs", "--trainer", trainer.grpcAddress]);
      assert.equal(result.status, 2, result.stderr);
      assert.match(result.stderr, /^adco: trainer: UNAVAILABLE: .*object stor/im, result.stderr);
      assert.doesNotMatch(result.stderr, /cannot reach the trainer/);
    } finally {
      await trainer.stop();
    }
  });

  it("say how to start the system when the trainer is not there", () => {
    const result = adco(["runs", "--trainer", "127.0.0.1:1"]);
    assert.equal(result.status, 2, result.stderr);
    assert.match(
      result.stderr,
      /cannot reach the trainer at 127\.0\.0\.1:1: start the system with `adco up`/,
    );
  });
});
