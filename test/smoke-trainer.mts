import * as grpc from "@grpc/grpc-js";
import { importDataset } from "@adco/cli";
import { BUNDLED_FASHION_MNIST } from "@adco/datasets";
import { RunConfig, TrainerClient, type RunEvent } from "@adco/proto/trainer";
import { channelOptions, unaryCall } from "@adco/service-kit";
import { ObjectStore } from "@adco/storage";
import { startS3Server } from "@adco/storage/testing";
import { s3Env, startService } from "./lib/service-process.js";

const s3 = await startS3Server();
const store = new ObjectStore(s3.settings);
await importDataset(store, {
  format: "idx",
  source: BUNDLED_FASHION_MNIST,
  name: "fmnist",
  bucket: "adco-datasets",
  quiet: true,
});
const env = s3Env(s3.settings);
const worker = await startService("data-worker", env);
const bank = await startService("adversary-bank", env);
const trainer = await startService("trainer", {
  ...env,
  ADCO_BANK_ADDRESS: bank.grpcAddress,
  ADCO_DATA_WORKERS: worker.grpcAddress,
});
const client = new TrainerClient(trainer.grpcAddress, grpc.credentials.createInsecure(), channelOptions());
const run = await unaryCall(client.startRun.bind(client), {
  runId: "smoke",
  config: RunConfig.fromPartial({
    preset: "fashion-mnist",
    dataset: { bucket: "adco-datasets", name: "fmnist" },
    epochs: 1,
    batchSize: 128,
    bankSize: 1024,
    checkpointEverySteps: 10,
  }),
});
console.log("started", run.runId, run.state);
const call = client.watchRun({ runId: "smoke", replay: true });
const t0 = Date.now();
await new Promise<void>((resolve) => {
  call.on("data", (e: RunEvent) => {
    if (e.step)
      console.log(
        ((Date.now() - t0) / 1000).toFixed(1),
        "step",
        e.step.step,
        e.step.loss.toFixed(3),
        "ips",
        e.step.imagesPerSecond.toFixed(1),
        "wait",
        e.step.dataWaitFraction.toFixed(2),
        "bank",
        e.step.bankCallMs.toFixed(0),
        "compute",
        e.step.computeMs.toFixed(0),
        "acc",
        e.step.bank?.contrastAccuracy.toFixed(3),
      );
    else console.log(JSON.stringify(e));
  });
  call.on("end", resolve);
  call.on("error", (e) => {
    console.log("watch error", e.message);
    resolve();
  });
});
console.log(await unaryCall(client.getRun.bind(client), { runId: "smoke" }));
console.log((await store.list("adco-checkpoints", "runs/")).map((o) => o.key).join("\n"));
client.close();
for (const s of [trainer, bank, worker]) {
  const r = await s.stop();
  if (s.stderr()) console.log(s.name, s.stderr().slice(0, 2000));
}
await s3.stop();
