// Following a run over every trainer that holds it at one address: a rollout (the trainer's
// SIGTERM: it leaves the run, still running in storage) does not end it. When a trainer's WatchRun
// ends and GetRun says the run goes on, it waits up to 10 minutes for a trainer at the same address
// (a Kubernetes Service: the next pod) to take the run up, and streams from that one. The next
// trainer replays the epochs the last one reported (from the checkpoint); they are not delivered
// twice. `adco watch` and the dashboard's run page both follow runs this way.
import { setTimeout as sleep } from "node:timers/promises";
import * as grpc from "@grpc/grpc-js";
import { type Run, type RunEvent, RunState, type TrainerClient } from "@adco/proto/trainer";
import { unaryCall } from "@adco/service-kit";

/** How long a run is waited for after its trainer left it. */
const RESUME_WAIT_MS = 10 * 60_000;
/** How often the address is asked meanwhile. */
const RESUME_POLL_MS = 2000;
const FINAL_STATES = [RunState.RUN_STATE_COMPLETED, RunState.RUN_STATE_FAILED, RunState.RUN_STATE_STOPPED];
/** What a trainer that is restarting, shutting down or not yet holding the run answers. */
const BETWEEN_TRAINERS = [grpc.status.UNAVAILABLE, grpc.status.NOT_FOUND];

export interface RunFollower {
  /** Each event, in order; an epoch's report once. */
  event(event: RunEvent): void;
  /** Once per wait: no trainer at the address holds the run, which is still running in storage. */
  waiting(): void;
}

/**
 * The run's events over every trainer that holds it at `client`'s address, until it ends: the final
 * Run. Throws a call's error other than a trainer between pods, a NOT_FOUND of GetRun (no such run),
 * an Error after RESUME_WAIT_MS without a trainer, or `signal`'s reason once it is aborted.
 */
export async function followRun(
  client: TrainerClient,
  runId: string,
  follower: RunFollower,
  signal?: AbortSignal,
): Promise<Run> {
  const epochs = new Set<number>();
  // When the wait for a trainer here ends (one deadline for GetRun and WatchRun alike), whether the
  // address has been asked again at once, and whether the wait has been said; an event ends the wait.
  let giveUp: number | undefined;
  let askedAgain = false;
  let said = false;
  const wait = () => {
    if (said) return;
    said = true;
    follower.waiting();
  };
  for (;;) {
    const { error } = await streamOnce(client, runId, signal, (event) => {
      giveUp = undefined;
      askedAgain = said = false;
      if (event.epoch) {
        if (epochs.has(event.epoch.epoch)) return;
        epochs.add(event.epoch.epoch);
      }
      follower.event(event);
    });
    signal?.throwIfAborted();
    if (error && !BETWEEN_TRAINERS.includes(error.code)) throw error;
    giveUp ??= Date.now() + RESUME_WAIT_MS;
    // GetRun answers from storage while no trainer here holds the run: a left run still says running.
    const run = await runBetweenTrainers(client, runId, giveUp, wait, signal);
    if (FINAL_STATES.includes(run.state)) return run;
    // The first time, look again at once: the next trainer may have resumed the run meanwhile.
    if (!askedAgain) {
      askedAgain = true;
      continue;
    }
    wait();
    if (Date.now() > giveUp) {
      throw new Error(
        `run ${runId}: no trainer has resumed it in ${RESUME_WAIT_MS / 60_000} minutes; it is still running in storage (watch it again to look)`,
      );
    }
    await sleep(RESUME_POLL_MS, undefined, { signal });
  }
}

/** One WatchRun call with replay, to its end: the error it ended with, if any. */
function streamOnce(
  client: TrainerClient,
  runId: string,
  signal: AbortSignal | undefined,
  onEvent: (event: RunEvent) => void,
): Promise<{ error?: grpc.ServiceError }> {
  // Opened next to its listeners: a stream's error with no listener yet (NOT_FOUND for a run the
  // trainer does not hold) would crash the process instead of being reported.
  const call = client.watchRun({ runId, replay: true });
  const cancel = () => call.cancel();
  signal?.addEventListener("abort", cancel, { once: true });
  return new Promise<{ error?: grpc.ServiceError }>((resolve) => {
    call.on("data", onEvent);
    call.on("error", (e: grpc.ServiceError) => resolve(e.code === grpc.status.CANCELLED ? {} : { error: e }));
    call.on("end", () => resolve({}));
  }).finally(() => signal?.removeEventListener("abort", cancel));
}

/** GetRun, waiting out a trainer that is restarting (UNAVAILABLE) until `giveUp`. */
async function runBetweenTrainers(
  client: TrainerClient,
  runId: string,
  giveUp: number,
  onWait: () => void,
  signal: AbortSignal | undefined,
): Promise<Run> {
  for (;;) {
    try {
      return await unaryCall(client.getRun.bind(client), { runId });
    } catch (e) {
      if ((e as grpc.ServiceError).code !== grpc.status.UNAVAILABLE || Date.now() > giveUp) throw e;
      onWait();
      await sleep(RESUME_POLL_MS, undefined, { signal });
    }
  }
}
