// Benchmark of the adversary bank over gRPC on loopback: wall time of one training step (symmetric
// loss, two pairs) as the trainer sees it, for a bank in 1, 2 and 3 shards (each shard its own
// process). Measures, never asserts. On one machine the shards share its cores: this shows what
// sharding costs in messages and merging, not what it gains on separate pods.
//   npm run -s bench:bank [-- --size 65536 --batch 256 --dim 128 --steps 10 --shards 1,2,3]
//   npm run -s bench:bank -- --smoke     (seconds: K 512, B 8, D 16, 2 steps, 1 and 2 shards)
// Writes docs/results/bench-bank.json (a smoke run: a temporary directory; see libs/cli/src/results.ts).
import { parseArgs } from "node:util";
import * as grpc from "@grpc/grpc-js";
import { PAPER_HYPERPARAMETERS } from "@adco/core";
import { encodeTensor } from "@adco/proto";
import {
  AdversaryBankClient,
  BankUpdate,
  Reduction,
  type StepRequest,
  type StepResponse,
} from "@adco/proto/adversary_bank";
import { BankKind } from "@adco/proto/common";
import { npmCommand, roundTo, writeResults } from "@adco/cli";
import { Mulberry32 } from "@adco/random";
import { channelOptions, launchService, unaryCall } from "@adco/service-kit";

const { values } = parseArgs({
  options: {
    size: { type: "string", default: "65536" },
    batch: { type: "string", default: "256" },
    dim: { type: "string", default: "128" },
    steps: { type: "string", default: "10" },
    shards: { type: "string", default: "1,2,3" },
    smoke: { type: "boolean", default: false },
  },
});
const smoke = values.smoke;
const SIZE = smoke ? 512 : Number(values.size);
const BATCH = smoke ? 8 : Number(values.batch);
const DIM = smoke ? 16 : Number(values.dim);
const STEPS = smoke ? 2 : Number(values.steps);
const SHARDS = smoke ? [1, 2] : values.shards.split(",").map(Number);

const startBank = () =>
  launchService("adversary-bank", { inheritEnv: ["ADCO_BACKEND"], echoStderr: true, keepLogs: false });

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
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
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
  },
});
console.log(`results: ${file}`);
