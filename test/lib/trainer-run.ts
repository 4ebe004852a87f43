// A run as the tests drive it over the trainer's gRPC API: start, stop and read it, watch its events
// (replayed from its start), and wait for a condition, each call on a client of its own.
import * as grpc from "@grpc/grpc-js";
import { trainerAt } from "@adco/cli";
import { type RunEvent, RunState, StartRunRequest, type TrainerClient } from "@adco/proto/trainer";
import { unaryCall } from "@adco/service-kit";
import type { ServiceProcess } from "./service-process.js";

/** Polls probe (a throw counts as not yet) until it gives a value, or fails after timeoutMs. */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs = 120_000,
): Promise<T> {
  const giveUp = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > giveUp) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** The run's events (replayed from its start) until `until` says stop or the stream ends. */
export function watch(
  trainer: ServiceProcess,
  runId: string,
  until: (e: RunEvent) => boolean,
): Promise<RunEvent[]> {
  const client = trainerAt(trainer.grpcAddress);
  const call = client.watchRun({ runId, replay: true });
  const events: RunEvent[] = [];
  return new Promise((resolve, reject) => {
    const done = (error?: grpc.ServiceError) => {
      call.cancel();
      client.close();
      if (error && error.code !== grpc.status.CANCELLED) reject(error);
      else resolve(events);
    };
    call.on("data", (e: RunEvent) => {
      events.push(e);
      if (until(e)) done();
    });
    call.on("error", done);
    call.on("end", () => done());
  });
}

const FINAL = [RunState.RUN_STATE_STOPPED, RunState.RUN_STATE_COMPLETED, RunState.RUN_STATE_FAILED];
export const ended = (e: RunEvent) => e.state !== undefined && FINAL.includes(e.state.state);
export const stepAtLeast = (n: number) => (e: RunEvent) => (e.step?.step ?? 0) >= n || ended(e);
export const stateMessages = (events: RunEvent[]) =>
  events.flatMap((e) => (e.state ? [e.state.message] : []));

export async function onTrainer<T>(
  trainer: ServiceProcess,
  work: (c: TrainerClient) => Promise<T>,
): Promise<T> {
  const client = trainerAt(trainer.grpcAddress);
  try {
    return await work(client);
  } finally {
    client.close();
  }
}
export const startRun = (trainer: ServiceProcess, request: Partial<StartRunRequest> & { runId: string }) =>
  onTrainer(trainer, (c) => unaryCall(c.startRun.bind(c), StartRunRequest.fromPartial(request)));
export const getRun = (trainer: ServiceProcess, runId: string) =>
  onTrainer(trainer, (c) => unaryCall(c.getRun.bind(c), { runId }));
export const stopRun = (trainer: ServiceProcess, runId: string) =>
  onTrainer(trainer, (c) => unaryCall(c.stopRun.bind(c), { runId }));
