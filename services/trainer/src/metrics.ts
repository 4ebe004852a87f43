// The run's progress as Prometheus gauges on the trainer's /metrics, from the same step events WatchRun
// streams: what a dashboard plots and what an autoscaler of the data workers can act on
// (adco_trainer_data_wait_fraction near 0 means the workers keep up; docs/deploy.md).
import { type RunEvent, RunState } from "@adco/proto/trainer";
import type { Metrics } from "@adco/service-kit";
import { Gauge } from "prom-client";

export function trainingMetrics(metrics: Metrics): (event: RunEvent) => void {
  const gauge = (name: string, help: string) =>
    new Gauge({ name, help, labelNames: ["run_id"], registers: [metrics.registry] });
  const step = gauge("adco_trainer_step", "Last trained step of the run.");
  const loss = gauge("adco_trainer_loss", "Contrastive loss of the last step.");
  const imagesPerSecond = gauge("adco_trainer_images_per_second", "Training throughput over recent steps.");
  const dataWait = gauge(
    "adco_trainer_data_wait_fraction",
    "Share of step time spent waiting for views from the data workers (0..1).",
  );
  const bankCall = gauge("adco_trainer_bank_call_ms", "Time of the last step's call to the adversary bank.");
  const contrastAccuracy = gauge(
    "adco_trainer_contrast_accuracy",
    "Fraction of queries whose positive wins against the adversaries (near 0.99: adversaries too weak).",
  );
  // 1 for the run's current state, 0 for the others: alerts ask for {state="failed"} == 1, and
  // "no step for 5 minutes" only of runs in {state="running"}.
  const runState = new Gauge({
    name: "adco_trainer_run_state",
    help: "1 for the run's current state (starting, initializing_bank, running, stopping, stopped, completed, failed), 0 for the others.",
    labelNames: ["run_id", "state"],
    registers: [metrics.registry],
  });
  const STATES = Object.values(RunState).filter(
    (v): v is RunState =>
      typeof v === "number" && v !== RunState.RUN_STATE_UNSPECIFIED && v !== RunState.UNRECOGNIZED,
  );
  const stateName = (state: RunState) => RunState[state].replace("RUN_STATE_", "").toLowerCase();
  const dataWorkers = gauge(
    "adco_trainer_data_workers",
    "Data workers serving the run (their streams open).",
  );
  return (event) => {
    if (event.worker) dataWorkers.set({ run_id: event.runId }, event.worker.workers);
    if (event.state) {
      for (const state of STATES)
        runState.set({ run_id: event.runId, state: stateName(state) }, state === event.state.state ? 1 : 0);
    }
    const s = event.step;
    if (!s) return;
    const labels = { run_id: event.runId };
    step.set(labels, s.step);
    loss.set(labels, s.loss);
    imagesPerSecond.set(labels, s.imagesPerSecond);
    dataWait.set(labels, s.dataWaitFraction);
    bankCall.set(labels, s.bankCallMs);
    if (s.bank) contrastAccuracy.set(labels, s.bank.contrastAccuracy);
  };
}
