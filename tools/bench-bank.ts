// Benchmark of the adversary bank over gRPC on loopback: wall time of one training step (symmetric
// loss, two pairs) as the trainer sees it, for a bank in 1, 2 and 3 shards (each shard its own
// process). Measures, never asserts. On one machine the shards share its cores: this shows what
// sharding costs in messages and merging, not what it gains on separate pods.
//   npm run -s bench:bank [-- --size 65536 --batch 256 --dim 128 --steps 10]
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { join } from "node:path";
import { createInterface } from "node:readline";
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
import { channelOptions, unaryCall } from "@adco/service-kit";

const { values } = parseArgs({
  options: {
    size: { type: "string", default: "65536" },
    batch: { type: "string", default: "256" },
    dim: { type: "string", default: "128" },
    steps: { type: "string", default: "10" },
  },
});
const SIZE = Number(values.size);
const BATCH = Number(values.batch);
const DIM = Number(values.dim);
const STEPS = Number(values.steps);
const ROOT = join(import.meta.dirname, "..");

async function startBank(): Promise<{ child: ChildProcess; address: string }> {
  const child = spawn(
    process.execPath,
    ["--conditions=development", "--import", "tsx", join(ROOT, "services/adversary-bank/src/main.ts")],
    {
      env: { ...process.env, ADCO_GRPC_PORT: "0", ADCO_METRICS_PORT: "0" },
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  for await (const line of createInterface({ input: child.stdout! })) {
    const entry = JSON.parse(line) as { grpcPort?: number };
    if (entry.grpcPort) {
      child.stdout!.resume();
      return { child, address: `127.0.0.1:${entry.grpcPort}` };
    }
  }
  throw new Error("the bank exited before it listened");
}

function units(seed: number): Float32Array {
  let state = seed * 7919 + 1;
  const rows = new Float32Array(BATCH * DIM);
  for (let i = 0; i < rows.length; i++) {
    state = (state * 1103515245 + 12345) % 2147483648;
    rows[i] = state / 2147483648 - 0.5;
  }
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

async function measure(shards: number): Promise<{ median: number; bankMs: number }> {
  const banks = await Promise.all(Array.from({ length: shards }, startBank));
  const client = new AdversaryBankClient(
    banks[0]!.address,
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
      peers: banks.slice(1).map((b) => b.address),
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
    await Promise.all(
      banks.map(async (b) => {
        const exited = once(b.child, "exit");
        b.child.kill("SIGTERM");
        await exited;
      }),
    );
  }
}

console.log(
  `bank step over gRPC on loopback: K ${SIZE}, B ${BATCH}, D ${DIM}, 2 pairs, ${STEPS} steps after 1 warm-up`,
);
for (const shards of [1, 2, 3]) {
  const { median, bankMs } = await measure(shards);
  console.log(
    `${shards} shard${shards > 1 ? "s" : " "}: ${median.toFixed(0).padStart(6)} ms per step (median), ${bankMs.toFixed(0).padStart(6)} ms of it in the coordinator's step (median)`,
  );
}
