import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { RunConfig, type RunEvent, RunState, type StepEvent } from "@adco/proto/trainer";
import type { Logger } from "@adco/service-kit";
import { CheckpointRequests } from "./checkpoints.js";
import { EVENTS_KEPT, RunLifecycle, type RunStatusRecord } from "./lifecycle.js";

const quiet = { info: () => {}, warn: () => {}, error: () => {} } as unknown as Logger;
const config = RunConfig.fromPartial({ preset: "fashion-mnist", dataset: { bucket: "d", name: "fmnist" } });

function lifecycle(putJson: (bucket: string, key: string, value: unknown) => Promise<unknown>) {
  const observed: RunEvent[] = [];
  const run = new RunLifecycle(
    "run-1",
    { bucket: "ckpt", config, createdUnixMs: 42 },
    { store: { putJson } as never, log: quiet, observe: (e) => observed.push(e) },
  );
  return { run, observed };
}

describe("RunLifecycle", () => {
  it("stamps events in sequence, keeps them for replay, and sends them to subscribers and metrics", () => {
    const { run, observed } = lifecycle(async () => ({}));
    const seen: RunEvent[] = [];
    const unsubscribe = run.subscribe((e) => seen.push(e));
    run.emit({ state: { state: RunState.RUN_STATE_RUNNING, message: "a" } });
    unsubscribe();
    run.emit({ state: { state: RunState.RUN_STATE_RUNNING, message: "b" } });
    assert.deepEqual(
      run.events.map((e) => [e.runId, e.sequence]),
      [
        ["run-1", 1],
        ["run-1", 2],
      ],
    );
    assert.equal(seen.length, 1);
    assert.equal(observed.length, 2);
  });

  it("recalls earlier trainers' epoch reports for replay and watchers, not for metrics or twice", () => {
    const { run, observed } = lifecycle(async () => ({}));
    const seen: RunEvent[] = [];
    run.subscribe((e) => seen.push(e));
    run.emit({ epoch: { epoch: 1, meanLoss: 2, samples: 5, seconds: 3 } });
    run.recall([
      { epoch: 0, meanLoss: 4, samples: 5, seconds: 6, unixMs: 1000 },
      { epoch: 1, meanLoss: 9, samples: 5, seconds: 9, unixMs: 2000 },
    ]);
    assert.deepEqual(
      run.events.map((e) => [e.sequence, e.epoch?.epoch, e.epoch?.meanLoss]),
      [
        [1, 1, 2],
        [2, 0, 4],
      ],
      "epoch 1 is this process's own report; epoch 0 comes from the checkpoint",
    );
    assert.equal(run.events[1]!.unixMs, 1000, "as its trainer sent it");
    assert.equal(seen.length, 2);
    assert.equal(observed.length, 1, "metrics counted epoch 0 in the trainer that trained it");
  });

  it("keeps the last EVENTS_KEPT events for replay, and every epoch's report", () => {
    const { run } = lifecycle(async () => ({}));
    const step = (n: number) => ({ step: { step: n } as StepEvent });
    for (let epoch = 0; epoch < 3; epoch++) {
      for (let i = 1; i <= EVENTS_KEPT; i++) run.emit(step(epoch * EVENTS_KEPT + i));
      run.emit({ epoch: { epoch, meanLoss: 1, samples: 5, seconds: 1 } });
    }
    run.emit(step(3 * EVENTS_KEPT + 1));
    assert.equal(run.events.length, EVENTS_KEPT + 3);
    assert.deepEqual(
      run.events.flatMap((e) => (e.epoch ? [e.epoch.epoch] : [])),
      [0, 1, 2],
    );
    const steps = run.events.flatMap((e) => (e.step ? [e.step.step] : []));
    assert.deepEqual([steps[0], steps.at(-1)], [2 * EVENTS_KEPT + 2, 3 * EVENTS_KEPT + 1], "the newest");
  });

  it("a run left at shutdown ends here but stays running in storage, for the next trainer", async () => {
    const stored: string[] = [];
    const { run } = lifecycle(async (_bucket, _key, value) => stored.push((value as RunStatusRecord).state));
    await run.enter(RunState.RUN_STATE_RUNNING);
    assert.ok(run.stopping());
    run.leave("the trainer is shutting down at step 7; the next trainer resumes the run");
    assert.equal(run.state, RunState.RUN_STATE_STOPPED);
    assert.equal(run.active, false);
    assert.equal(run.events.at(-1)?.state?.state, RunState.RUN_STATE_STOPPED);
    assert.deepEqual(stored, ["RUN_STATE_RUNNING"], "the stored status still says RUNNING");
  });

  it("stores each state beside the checkpoints; a status that cannot be written does not fail the run", async () => {
    const writes: [string, string, RunStatusRecord][] = [];
    const { run } = lifecycle(async (bucket, key, value) =>
      writes.push([bucket, key, value as RunStatusRecord]),
    );
    await run.enter(RunState.RUN_STATE_INITIALIZING_BANK);
    assert.equal(writes.length, 1);
    const [bucket, key, record] = writes[0]!;
    assert.equal(bucket, "ckpt");
    assert.match(key, /run-1/);
    assert.deepEqual(record, {
      state: "RUN_STATE_INITIALIZING_BANK",
      error: "",
      config: RunConfig.toJSON(config),
      createdUnixMs: 42,
    });
    const broken = lifecycle(async () => {
      throw new Error("storage down");
    }).run;
    await broken.enter(RunState.RUN_STATE_RUNNING, "resumed");
    assert.equal(broken.state, RunState.RUN_STATE_RUNNING);
    assert.equal(broken.events.at(-1)!.state!.message, "resumed");
  });

  it("a stop is STOPPING at once and not stored; an ended run cannot stop; a failure is stored with its error", async () => {
    const states: string[] = [];
    const { run } = lifecycle(async (_b, _k, value) => states.push((value as RunStatusRecord).state));
    assert.ok(run.stopping());
    assert.equal(run.state, RunState.RUN_STATE_STOPPING);
    assert.ok(run.active);
    assert.deepEqual(states, []);
    await run.fail(new Error("bank refused it"));
    assert.equal(run.error, "bank refused it");
    assert.ok(!run.active);
    assert.deepEqual(states, ["RUN_STATE_FAILED"]);
    assert.ok(!run.stopping(), "a failed run stays failed");
    assert.equal(run.state, RunState.RUN_STATE_FAILED);
  });
});

describe("CheckpointRequests", () => {
  it("answers every waiting CheckpointNow with the next checkpoint, or the run's error", async () => {
    const requests = new CheckpointRequests();
    assert.ok(!requests.waiting);
    const first = requests.next();
    const second = requests.next();
    assert.ok(requests.waiting);
    const ref = { runId: "r", step: 5, manifest: undefined };
    requests.written(ref);
    assert.deepEqual(await Promise.all([first, second]), [ref, ref]);
    assert.ok(!requests.waiting);
    const third = requests.next();
    requests.failed(new Error("run failed"));
    await assert.rejects(third, /run failed/);
  });
});
