// Benchmark of the adversary bank over gRPC on loopback: wall time of one training step (symmetric
// loss, two pairs) as the trainer sees it, for a bank in 1, 2 and 3 shards (each shard its own
// process). Measures, never asserts. On one machine the shards share its cores: this shows what
// sharding costs in messages and merging, not what it gains on separate pods.
//   npm run -s bench:bank [-- --size 65536 --batch 256 --dim 128 --steps 10 --shards 1,2,3]
//   npm run -s bench:bank -- --smoke     (seconds: K 512, B 8, D 16, 2 steps, 1 and 2 shards)
// --torch adds the bank's step in this process's backend (no wire: the compute of a one-shard step)
// side by side with the same products in PyTorch, or numpy when PyTorch is missing
// (tools/reference/adco_step.py), at K 4096 and 65536 (smoke: K 512), 1 and 2 threads, ours in child
// processes with ADCO_THREADS 1 and 2.
//   npm run -s bench:bank -- --torch [--python PATH]
// Writes docs/results/bench-bank.json (a smoke run: a temporary directory; see libs/cli/src/results.ts).
import { parseArgs } from "node:util";
import * as grpc from "@grpc/grpc-js";
import * as tf from "@tensorflow/tfjs-core";
import {
  AdversaryNegatives,
  backendFromEnv,
  initBackend,
  l2Normalize,
  PAPER_HYPERPARAMETERS,
} from "@adco/core";
import { encodeTensor } from "@adco/proto";
import {
  AdversaryBankClient,
  BankUpdate,
  Reduction,
  type StepRequest,
  type StepResponse,
} from "@adco/proto/adversary_bank";
import { BankKind } from "@adco/proto/common";
import { npmCommand, roundTo, writeResults, type ResultsValue } from "@adco/cli";
import { Mulberry32 } from "@adco/random";
import { channelOptions, launchService, unaryCall } from "@adco/service-kit";
import {
  blasWarning,
  COMPARED_THREADS,
  findEngines,
  missingLine,
  runOurs,
  runReference,
  tableRow,
} from "./reference/reference.js";

const { values } = parseArgs({
  options: {
    size: { type: "string", default: "65536" },
    batch: { type: "string", default: "256" },
    dim: { type: "string", default: "128" },
    steps: { type: "string", default: "10" },
    shards: { type: "string", default: "1,2,3" },
    smoke: { type: "boolean", default: false },
    torch: { type: "boolean", default: false },
    python: { type: "string" },
    "bank-step-only": { type: "boolean", default: false },
  },
});
const smoke = values.smoke;
const SIZE = smoke ? 512 : Number(values.size);
const BATCH = smoke ? 8 : Number(values.batch);
const DIM = smoke ? 16 : Number(values.dim);
const STEPS = smoke ? 2 : Number(values.steps);
const SHARDS = smoke ? [1, 2] : values.shards.split(",").map(Number);

const median = (xs: readonly number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

// A child of --torch: the bank's step in this process (one whole bank, the two pairs of the symmetric
// loss, the adversaries ascending), median ms of STEPS steps after a warm-up, as one JSON line.
if (values["bank-step-only"]) {
  const backend = await initBackend(backendFromEnv());
  const bank = new AdversaryNegatives(DIM, SIZE, PAPER_HYPERPARAMETERS, 1);
  const ms: number[] = [];
  for (let step = 0; step <= STEPS; step++) {
    const [q, k] = [2 * step, 2 * step + 1].map((seed) =>
      tf.tidy(() => l2Normalize(tf.randomNormal([BATCH, DIM], 0, 1, "float32", seed) as tf.Tensor2D)),
    ) as [tf.Tensor2D, tf.Tensor2D];
    const started = performance.now();
    const outcome = bank.contrast(
      [
        { query: q, key: k },
        { query: k, key: q },
      ],
      "mean",
    );
    for (const g of outcome.queryGrads) g.dataSync();
    if (step > 0) ms.push(performance.now() - started);
    tf.dispose([q, k, ...outcome.queryGrads]);
  }
  bank.dispose();
  console.log(JSON.stringify({ msPerStep: median(ms), ms, backend: backend.name, threads: backend.threads }));
  process.exit(0);
}

const startBank = () =>
  launchService("adversary-bank", {
    inheritEnv: ["ADCO_BACKEND", "ADCO_THREADS"],
    echoStderr: true,
    keepLogs: false,
  });

/** BATCH unit rows of DIM, seeded. */
function units(seed: number): Float32Array {
  const random = new Mulberry32(seed);
  const rows = Float32Array.from({ length: BATCH * DIM }, () => random.next() - 0.5);
  for (let r = 0; r < BATCH; r++) {
    const row = rows.subarray(r * DIM, (r + 1) * DIM);
    const norm = Math.hypot(...row);
    row.forEach((v, i) => (row[i] = v / norm));
  }
  return rows;
}

function stepRequest(runId: string, step: number): StepRequest {
  const [q, k] = [
    encodeTensor(units(2 * step), [BATCH, DIM]),
    encodeTensor(units(2 * step + 1), [BATCH, DIM]),
  ];
  return {
    runId,
    step,
    pairs: [
      { queries: q, keys: k },
      { queries: k, keys: q },
    ],
    reduction: Reduction.REDUCTION_MEAN,
    update: BankUpdate.BANK_UPDATE_TRAIN,
  };
}

let bankBackend: string | undefined;

async function measure(shards: number): Promise<{ median: number; bankMs: number }> {
  const banks = await Promise.all(Array.from({ length: shards }, startBank));
  bankBackend ??= banks[0]!.logs.find((l) => l.msg === "tfjs backend")?.backend as string | undefined;
  const client = new AdversaryBankClient(
    banks[0]!.grpcAddress,
    grpc.credentials.createInsecure(),
    channelOptions(),
  );
  try {
    const runId = `bench-${shards}`;
    await unaryCall(client.createBank.bind(client), {
      runId,
      kind: BankKind.BANK_KIND_ADVERSARIAL,
      size: SIZE,
      dim: DIM,
      hyper: PAPER_HYPERPARAMETERS,
      seed: 1,
      peers: banks.slice(1).map((b) => b.grpcAddress),
    });
    const call = client.step();
    const pending: ((answer: StepResponse) => void)[] = [];
    let failure: Error | undefined;
    call.on("data", (answer: StepResponse) => pending.shift()?.(answer));
    call.on("error", (e: Error) => (failure = e));
    const wall: number[] = [];
    const coordinator: number[] = [];
    for (let step = 1; step <= STEPS + 1; step++) {
      if (failure) throw failure;
      const started = performance.now();
      const answer = new Promise<StepResponse>((resolve) => pending.push(resolve));
      call.write(stepRequest(runId, step));
      const { computeMs } = await answer;
      if (step === 1) continue; // the first step warms up
      wall.push(performance.now() - started);
      coordinator.push(computeMs);
    }
    call.end();
    return { median: median(wall), bankMs: median(coordinator) };
  } finally {
    client.close();
    await Promise.all(banks.map((b) => b.stop()));
  }
}

console.log(
  `bank step over gRPC on loopback: K ${SIZE}, B ${BATCH}, D ${DIM}, 2 pairs, ${STEPS} steps after 1 warm-up`,
);
const byShards: Record<string, { msPerStep: number; coordinatorMsPerStep: number }> = {};
for (const shards of SHARDS) {
  const { median, bankMs } = await measure(shards);
  byShards[String(shards)] = { msPerStep: roundTo(median), coordinatorMsPerStep: roundTo(bankMs) };
  console.log(
    `${shards} shard${shards > 1 ? "s" : " "}: ${median.toFixed(0).padStart(6)} ms per step (median), ${bankMs.toFixed(0).padStart(6)} ms of it in the coordinator's step (median)`,
  );
}
// Side by side with PyTorch (or numpy): the products of the bank's step, no wire on either side.
let referenceComparison: ResultsValue | undefined;
if (values.torch) {
  const engines = findEngines(values.python !== undefined ? [values.python] : undefined);
  const reference = engines.torch
    ? { engine: "torch", ...engines.torch }
    : engines.numpy
      ? { engine: "numpy", ...engines.numpy }
      : undefined;
  const sizes = smoke ? [SIZE] : [4096, 65536];
  console.log(
    `\nthe bank's step in one process, side by side with a reference of the same products: B ${BATCH}, D ${DIM}, 2 pairs, median of ${STEPS} steps after a warm-up`,
  );
  if (!engines.torch) console.log(missingLine(engines));
  console.log(
    reference
      ? `reference: ${reference.engine} ${reference.version} (${reference.python}, tools/reference/adco_step.py)`
      : "reference: numpy is not available either, so only our numbers",
  );
  const name = reference?.engine === "numpy" ? "numpy" : "PyTorch";
  console.log(
    tableRow(["K", "threads", "ours ms", "ours (backend threads)", `${name} ms`, `ours / ${name} (speed)`]),
  );
  console.log(tableRow(["---", "---", "---", "---", "---", "---"]));
  const bySize: Record<string, ResultsValue> = {};
  let blas: string | undefined;
  for (const size of sizes) {
    const byThreads: Record<string, ResultsValue> = {};
    for (const threads of COMPARED_THREADS) {
      const shape = ["--batch", String(BATCH), "--dim", String(DIM), "--steps", String(STEPS)];
      const ours = runOurs(["--bank-step-only", "--size", String(size), ...shape], threads);
      const oursMs = ours.msPerStep as number;
      const oursThreads = ours.threads as number;
      const theirs = reference
        ? runReference(reference.python, [
            "bank",
            "--engine",
            reference.engine,
            "--negatives",
            String(size),
            "--pairs",
            "2",
            "--threads",
            String(threads),
            "--warmup",
            "1",
            ...shape,
          ])
        : undefined;
      blas ??= theirs ? String(theirs.blas) : undefined;
      const theirMs = theirs ? (theirs.msPerStep as number) : null;
      // A speed ratio, like bench:core's images/s one: above 1, ours is faster.
      const ratio = theirMs === null ? null : theirMs / oursMs;
      byThreads[String(threads)] = {
        oursMsPerStep: roundTo(oursMs, 2),
        oursBackend: String(ours.backend),
        oursBackendThreads: oursThreads,
        referenceMsPerStep: theirMs === null ? null : roundTo(theirMs, 2),
        referenceThreads: theirs ? (theirs.threads as number) : null,
        oursOverReference: ratio === null ? null : roundTo(ratio, 2),
      };
      console.log(
        tableRow([
          size,
          threads,
          oursMs.toFixed(1),
          `${ours.backend} (${oursThreads})`,
          theirMs === null ? "-" : theirMs.toFixed(1),
          ratio === null ? "-" : ratio.toFixed(2),
        ]),
      );
    }
    bySize[String(size)] = byThreads;
  }
  const warning = reference ? blasWarning(name, blas) : undefined;
  if (warning) console.log(warning);
  referenceComparison = {
    batch: BATCH,
    dim: DIM,
    pairs: 2,
    stepsAfterWarmup: STEPS,
    reference: reference ? { ...reference, blas: blas ?? "unknown" } : null,
    pytorch: engines.torch ? { ...engines.torch } : null,
    ...(engines.torch ? {} : { pytorchMissing: engines.torchMissing! }),
    sizes: bySize,
  };
}

const file = writeResults({
  name: "bench-bank",
  command: npmCommand("bench:bank"),
  smoke,
  backend: bankBackend,
  results: {
    bankSize: SIZE,
    batch: BATCH,
    dim: DIM,
    pairs: 2,
    steps: STEPS,
    warmupSteps: 1,
    shards: byShards,
    ...(referenceComparison !== undefined ? { referenceComparison } : {}),
  },
});
console.log(`results: ${file}`);
