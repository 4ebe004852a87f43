// What mutual TLS costs. Measures, never asserts.
//   npm run -s bench:tls [-- --images 2048 --epochs 1 --rounds 3 --seconds 5]
//   npm run -s bench:tls -- --smoke    (seconds: 256 images at batch 32, one round, 0.5 s a wire part)
// The wire parts alternate plaintext and mTLS, at least 3 times each; the results are their medians.
// Writes docs/results/bench-tls.json (a smoke run: a temporary directory; see libs/cli/src/results.ts).
// 1. The wire, in one process on loopback: MB/s of a stream of ViewBatch-sized messages and the round
//    trip of a Step-sized call (B 256 x D 128 float32 queries and keys in, the gradients out), with
//    plaintext and with mTLS (P-256 certificates from a throwaway CA, what `adco up` uses).
// 2. The system as `adco up` runs it, once with plaintext and once with mTLS (alternating, --rounds
//    times each): a pre-training run on the bundled Fashion-MNIST subset, and from its WatchRun step
//    events the trainer's images/s, the bank call per step, the encoders' compute per step and the
//    data wait. Reported as mTLS / plaintext ratios; the machine is shared, so read them as such.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import * as grpc from "@grpc/grpc-js";
import {
  importDataset,
  type LocalSystem,
  npmCommand,
  type ResultsValue,
  roundTo,
  startLocalSystem,
  trainerAt,
  writeResults,
} from "@adco/cli";
import { BUNDLED_FASHION_MNIST, encodeIdx, firstImages, readFashionMnist } from "@adco/datasets";
import { RunConfig, type RunEvent, RunState } from "@adco/proto/trainer";
import {
  channelCredentialsFor,
  channelOptions,
  createLocalCa,
  issueCertificate,
  serverCredentials,
  type TlsSettings,
  unaryCall,
} from "@adco/service-kit";
import { ObjectStore } from "@adco/storage";

const { values } = parseArgs({
  options: {
    images: { type: "string", default: "2048" },
    epochs: { type: "string", default: "1" },
    rounds: { type: "string", default: "3" },
    seconds: { type: "string", default: "5" },
    smoke: { type: "boolean", default: false },
  },
});
const smoke = values.smoke;
const images = smoke ? 256 : Number(values.images);
const epochs = smoke ? 1 : Number(values.epochs);
const rounds = smoke ? 1 : Number(values.rounds);
const seconds = smoke ? 0.5 : Number(values.seconds);
const batch = smoke ? 32 : 256;
const results: Record<string, ResultsValue> = {};
const median = (xs: readonly number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0
    ? NaN
    : s.length % 2
      ? s[(s.length - 1) / 2]!
      : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

// 1. The wire.
const dir = mkdtempSync(join(tmpdir(), "adco-bench-tls-"));
const ca = createLocalCa(join(dir, "ca"));
const identity = issueCertificate(ca, "bench");
const PLAINTEXT: TlsSettings = {
  tlsMode: "plaintext",
  tlsCertFile: "",
  tlsKeyFile: "",
  tlsCaFile: "",
  tlsRefreshSeconds: 60,
};
const MTLS: TlsSettings = {
  tlsMode: "mtls",
  tlsCertFile: identity.certFile,
  tlsKeyFile: identity.keyFile,
  tlsCaFile: ca.caFile,
  tlsRefreshSeconds: 60,
};

const raw = (path: string, requestStream: boolean, responseStream: boolean) => ({
  path,
  requestStream,
  responseStream,
  requestSerialize: (b: Buffer) => b,
  requestDeserialize: (b: Buffer) => b,
  responseSerialize: (b: Buffer) => b,
  responseDeserialize: (b: Buffer) => b,
});
const WIRE = { stream: raw("/bench.Wire/Stream", false, true), step: raw("/bench.Wire/Step", false, false) };
/** A ViewBatch of the fashion-mnist preset: two 256 x 28 x 28 uint8 views. */
const VIEW_BATCH = Buffer.alloc(2 * batch * 28 * 28, 7);
/** A Step of it: queries and keys, B x 128 float32 each, in; the gradients, B x 128, out. */
const STEP_REQUEST = Buffer.alloc(2 * batch * 128 * 4, 3);
const STEP_RESPONSE = Buffer.alloc(batch * 128 * 4, 5);

async function wire(settings: TlsSettings): Promise<{ streamMBps: number; stepRoundTripMs: number }> {
  const server = new grpc.Server(channelOptions());
  server.addService(WIRE as unknown as grpc.ServiceDefinition, {
    stream: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
      let open = true;
      call.on("cancelled", () => (open = false));
      const pump = () => {
        while (open && call.write(VIEW_BATCH));
        if (open) call.once("drain", pump);
      };
      pump();
    },
    step: (_call: unknown, callback: grpc.sendUnaryData<Buffer>) => callback(null, STEP_RESPONSE),
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", serverCredentials(settings), (e, p) => (e ? reject(e) : resolve(p))),
  );
  const Client = grpc.makeGenericClientConstructor(WIRE as unknown as grpc.ServiceDefinition, "Wire");
  const client = new Client(`127.0.0.1:${port}`, channelCredentialsFor(settings, "bench"), {
    ...channelOptions(),
    "grpc.ssl_target_name_override": "bench",
  }) as unknown as grpc.Client & {
    stream(request: Buffer): grpc.ClientReadableStream<Buffer>;
    step: (
      request: Buffer,
      metadata: grpc.Metadata,
      options: Partial<grpc.CallOptions>,
      callback: (error: grpc.ServiceError | null, response: Buffer) => void,
    ) => grpc.ClientUnaryCall;
  };
  // Round trips first (a warm connection), then the stream.
  await unaryCall(client.step.bind(client), STEP_REQUEST);
  const trips: number[] = [];
  for (const end = performance.now() + seconds * 1000; performance.now() < end;) {
    const t0 = performance.now();
    await unaryCall(client.step.bind(client), STEP_REQUEST);
    trips.push(performance.now() - t0);
  }
  const bytes = await new Promise<number>((resolve, reject) => {
    const call = client.stream(Buffer.alloc(0));
    let received = 0;
    let t0 = 0;
    call.on("data", (b: Buffer) => {
      if (t0 === 0)
        t0 = performance.now(); // from the first message: the handshake is not the rate
      else received += b.length;
      if (t0 && performance.now() - t0 > seconds * 1000) {
        call.cancel();
        resolve((received / (performance.now() - t0)) * 1000);
      }
    });
    call.on("error", (e: grpc.ServiceError) => (e.code === grpc.status.CANCELLED ? undefined : reject(e)));
  });
  client.close();
  server.forceShutdown();
  return { streamMBps: bytes / 1e6, stepRoundTripMs: median(trips) };
}

// Alternating, --rounds each, medians: a shared machine's load moves within seconds.
const wireRuns: Record<"plaintext" | "mtls", { streamMBps: number; stepRoundTripMs: number }[]> = {
  plaintext: [],
  mtls: [],
};
for (let round = 0; round < Math.max(rounds, 3); round++) {
  wireRuns.plaintext.push(await wire(PLAINTEXT));
  wireRuns.mtls.push(await wire(MTLS));
}
const wireMedian = (runs: { streamMBps: number; stepRoundTripMs: number }[]) => ({
  streamMBps: median(runs.map((r) => r.streamMBps)),
  stepRoundTripMs: median(runs.map((r) => r.stepRoundTripMs)),
});
const wirePlain = wireMedian(wireRuns.plaintext);
const wireTls = wireMedian(wireRuns.mtls);
results.wire = {
  rounds: wireRuns.mtls.length,
  viewBatchBytes: VIEW_BATCH.length,
  stepRequestBytes: STEP_REQUEST.length,
  plaintext: {
    streamMBps: roundTo(wirePlain.streamMBps, 0),
    stepRoundTripMs: roundTo(wirePlain.stepRoundTripMs, 2),
  },
  mtls: { streamMBps: roundTo(wireTls.streamMBps, 0), stepRoundTripMs: roundTo(wireTls.stepRoundTripMs, 2) },
  mtlsOverPlaintext: {
    streamMBps: roundTo(wireTls.streamMBps / wirePlain.streamMBps, 2),
    stepRoundTripMs: roundTo(wireTls.stepRoundTripMs / wirePlain.stepRoundTripMs, 2),
  },
};
console.log(
  `wire, ${(VIEW_BATCH.length / 1024).toFixed(0)} KiB ViewBatches streamed: plaintext ${wirePlain.streamMBps.toFixed(0)} MB/s, mTLS ${wireTls.streamMBps.toFixed(0)} MB/s (x${(wireTls.streamMBps / wirePlain.streamMBps).toFixed(2)})`,
);
console.log(
  `wire, ${(STEP_REQUEST.length / 1024).toFixed(0)} KiB Step round trip: plaintext ${wirePlain.stepRoundTripMs.toFixed(2)} ms, mTLS ${wireTls.stepRoundTripMs.toFixed(2)} ms (x${(wireTls.stepRoundTripMs / wirePlain.stepRoundTripMs).toFixed(2)})`,
);

// 2. The system.
const source = join(dir, "idx");
for (const [split, count, imageFile, labelFile] of [
  ["train", images, "train-images-idx3-ubyte", "train-labels-idx1-ubyte"],
  ["test", Math.min(images, 1000), "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"],
] as const) {
  const set = firstImages(readFashionMnist(BUNDLED_FASHION_MNIST, split), count);
  mkdirSync(source, { recursive: true });
  writeFileSync(join(source, imageFile), encodeIdx([set.count, set.height, set.width], set.images));
  writeFileSync(join(source, labelFile), encodeIdx([set.count], set.labels));
}

interface Steps {
  imagesPerSecond: number[];
  bankCallMs: number[];
  computeMs: number[];
  dataWaitFraction: number[];
}

async function trainOnce(plaintext: boolean, round: number): Promise<Steps> {
  const directory = join(dir, `system-${plaintext ? "plain" : "mtls"}-${round}`);
  const system: LocalSystem = await startLocalSystem({ directory, freePorts: true, plaintext });
  try {
    await importDataset(new ObjectStore(system.s3), {
      format: "idx",
      source,
      name: "bench",
      bucket: "adco-datasets",
      quiet: true,
    });
    const trainer = trainerAt(system.services.trainer.address, system.credentials("trainer"));
    const run = await unaryCall(trainer.startRun.bind(trainer), {
      runId: "",
      config: RunConfig.fromPartial({
        preset: "fashion-mnist",
        dataset: { bucket: "adco-datasets", name: "bench" },
        epochs,
        batchSize: batch,
      }),
    });
    const steps: Steps = { imagesPerSecond: [], bankCallMs: [], computeMs: [], dataWaitFraction: [] };
    await new Promise<void>((resolve, reject) => {
      const call = trainer.watchRun({ runId: run.runId, replay: true });
      call.on("data", (e: RunEvent) => {
        // The first two steps warm the backends and the connections up.
        if (e.step && e.step.step > 2) {
          steps.imagesPerSecond.push(e.step.imagesPerSecond);
          steps.bankCallMs.push(e.step.bankCallMs);
          steps.computeMs.push(e.step.computeMs);
          steps.dataWaitFraction.push(e.step.dataWaitFraction);
        }
        const state = e.state?.state;
        if (state === RunState.RUN_STATE_COMPLETED) {
          call.cancel();
          resolve();
        } else if (state === RunState.RUN_STATE_FAILED || state === RunState.RUN_STATE_STOPPED) {
          call.cancel();
          reject(new Error(`the run ended ${RunState[state]}: ${e.state!.message}`));
        }
      });
      call.on("error", (e: grpc.ServiceError) => (e.code === grpc.status.CANCELLED ? undefined : reject(e)));
    });
    trainer.close();
    return steps;
  } finally {
    await system.stop();
  }
}

const byMode: Record<"plaintext" | "mtls", Steps> = {
  plaintext: { imagesPerSecond: [], bankCallMs: [], computeMs: [], dataWaitFraction: [] },
  mtls: { imagesPerSecond: [], bankCallMs: [], computeMs: [], dataWaitFraction: [] },
};
for (let round = 0; round < rounds; round++) {
  for (const mode of ["plaintext", "mtls"] as const) {
    const steps = await trainOnce(mode === "plaintext", round);
    for (const key of Object.keys(steps) as (keyof Steps)[]) byMode[mode][key].push(...steps[key]);
    console.log(
      `round ${round + 1}, ${mode}: ${steps.imagesPerSecond.length} steps, ${median(steps.imagesPerSecond).toFixed(0)} images/s, bank ${median(steps.bankCallMs).toFixed(0)} ms per step`,
    );
  }
}
const summary = (s: Steps) => ({
  steps: s.imagesPerSecond.length,
  imagesPerSecond: roundTo(median(s.imagesPerSecond), 0),
  bankCallMsPerStep: roundTo(median(s.bankCallMs), 0),
  computeMsPerStep: roundTo(median(s.computeMs), 0),
  dataWaitPercent: roundTo(median(s.dataWaitFraction) * 100, 1),
});
const plain = summary(byMode.plaintext);
const tls = summary(byMode.mtls);
results.system = {
  trainImages: images,
  epochs,
  batch,
  rounds,
  plaintext: plain,
  mtls: tls,
  mtlsOverPlaintext: {
    imagesPerSecond: roundTo(tls.imagesPerSecond / plain.imagesPerSecond, 2),
    bankCallMsPerStep: roundTo(tls.bankCallMsPerStep / plain.bankCallMsPerStep, 2),
    computeMsPerStep: roundTo(tls.computeMsPerStep / plain.computeMsPerStep, 2),
  },
};
console.log(
  `system, ${images} images at batch ${batch}, median over ${tls.steps} and ${plain.steps} steps: mTLS / plaintext images/s x${(tls.imagesPerSecond / plain.imagesPerSecond).toFixed(2)}, bank call per step x${(tls.bankCallMsPerStep / plain.bankCallMsPerStep).toFixed(2)}, data wait ${plain.dataWaitPercent}% and ${tls.dataWaitPercent}%`,
);

rmSync(dir, { recursive: true, force: true });
const file = writeResults({ name: "bench-tls", command: npmCommand("bench:tls"), smoke, results });
console.log(`results: ${file}`);
process.exit(0);
