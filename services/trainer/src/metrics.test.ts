// The trainer's gauges as Prometheus reads them, fed the run events WatchRun streams.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { RunEvent, RunState } from "@adco/proto/trainer";
import { Metrics } from "@adco/service-kit";
import { trainingMetrics } from "./metrics.js";

const stateEvent = (state: RunState) =>
  RunEvent.fromPartial({ runId: "r1", sequence: 1, state: { state, message: "" } });

/** The gauge's values by their labels, "run_id=r1,state=running" style. */
async function values(metrics: Metrics, name: string): Promise<Record<string, number>> {
  const metric = await metrics.registry.getSingleMetric(name)!.get();
  return Object.fromEntries(
    metric.values.map((v) => [
      Object.entries(v.labels)
        .filter(([k]) => k !== "service")
        .map(([k, l]) => `${k}=${l}`)
        .join(","),
      v.value,
    ]),
  );
}

describe("trainingMetrics", () => {
  it("sets the step and worker gauges and marks exactly the run's current state", async () => {
    const metrics = new Metrics("trainer");
    const observe = trainingMetrics(metrics);
    observe(stateEvent(RunState.RUN_STATE_RUNNING));
    observe(
      RunEvent.fromPartial({
        runId: "r1",
        step: { step: 7, loss: 4.5, dataWaitFraction: 0.25, bank: { contrastAccuracy: 0.5 } },
      }),
    );
    assert.deepEqual(await values(metrics, "adco_trainer_step"), { "run_id=r1": 7 });
    assert.deepEqual(await values(metrics, "adco_trainer_data_wait_fraction"), { "run_id=r1": 0.25 });
    const running = await values(metrics, "adco_trainer_run_state");
    assert.equal(running["run_id=r1,state=running"], 1);
    assert.equal(Object.keys(running).length, 7, "one series per state");
    assert.equal(
      Object.values(running).reduce((a, b) => a + b),
      1,
      "one state at a time",
    );

    observe(RunEvent.fromPartial({ runId: "r1", worker: { address: "w1:1", joined: true, workers: 1 } }));
    observe(RunEvent.fromPartial({ runId: "r1", worker: { address: "w2:1", joined: true, workers: 2 } }));
    observe(RunEvent.fromPartial({ runId: "r1", worker: { address: "w1:1", joined: false, workers: 1 } }));
    assert.deepEqual(await values(metrics, "adco_trainer_data_workers"), { "run_id=r1": 1 });

    observe(stateEvent(RunState.RUN_STATE_FAILED));
    const failed = await values(metrics, "adco_trainer_run_state");
    assert.equal(failed["run_id=r1,state=failed"], 1);
    assert.equal(failed["run_id=r1,state=running"], 0);
    assert.equal(
      Object.values(failed).reduce((a, b) => a + b),
      1,
    );
  });
});
