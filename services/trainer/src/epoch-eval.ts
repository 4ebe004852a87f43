// kNN accuracy of each epoch's checkpoint, by the evaluator service, while training goes on: the
// MoCo-style monitor people watch a run by. One evaluation at a time; a checkpoint that arrives while
// one runs waits, and a newer one replaces it. Results and plots are stored next to the checkpoint;
// the accuracy comes back as an EvalEvent on the run's WatchRun stream.
import * as grpc from "@grpc/grpc-js";
import type { CheckpointRef, DatasetRef } from "@adco/proto/common";
import { type EvaluateEvent, EvaluateRequest, EvaluatorClient } from "@adco/proto/evaluator";
import type { EvalEvent } from "@adco/proto/trainer";
import { channelOptions, clientCredentials, type Logger } from "@adco/service-kit";

/** Longest an evaluation may take before it is given up (a kNN of ImageNet features is minutes). */
const EVALUATION_TIMEOUT_MS = 30 * 60_000;

export class EpochEvaluator {
  private readonly client: EvaluatorClient;
  private running: Promise<void> | undefined;
  private waiting: CheckpointRef | undefined;
  private disabled = false;

  constructor(
    private readonly address: string,
    private readonly runId: string,
    /** The run's dataset name without a split: splits `train` and `test` are scored. */
    private readonly dataset: DatasetRef,
    private readonly emit: (event: EvalEvent) => void,
    private readonly log: Logger,
  ) {
    this.client = new EvaluatorClient(address, clientCredentials("evaluator"), channelOptions());
  }

  /** Queues a checkpoint for evaluation (replacing one that has not started). */
  evaluate(checkpoint: CheckpointRef): void {
    if (this.disabled) return;
    this.waiting = checkpoint;
    this.running ??= this.drain();
  }

  /** Resolves when the queued and running evaluations are done (or `signal` aborts the wait). */
  async settled(signal: AbortSignal): Promise<void> {
    const aborted = new Promise<void>((resolve) =>
      signal.addEventListener("abort", () => resolve(), { once: true }),
    );
    while (this.running && !signal.aborted) await Promise.race([this.running, aborted]);
  }

  close(): void {
    this.client.close();
  }

  private async drain(): Promise<void> {
    try {
      while (this.waiting && !this.disabled) {
        const checkpoint = this.waiting;
        this.waiting = undefined;
        await this.evaluateNow(checkpoint);
      }
    } finally {
      this.running = undefined;
    }
  }

  private async evaluateNow(checkpoint: CheckpointRef): Promise<void> {
    const name = this.dataset.name.split(":")[0]!;
    const request = EvaluateRequest.fromPartial({
      checkpoint,
      train: { bucket: this.dataset.bucket, name: `${name}:train` },
      test: { bucket: this.dataset.bucket, name: `${name}:test` },
      knn: { enabled: true, k: 200, temperature: 0.1 },
      // The linear probe trains for minutes; `adco eval` runs it on the checkpoint you pick.
      linear: { enabled: false },
      writeResults: true,
    });
    try {
      const result = await new Promise<EvaluateEvent["result"]>((resolve, reject) => {
        const call = this.client.evaluate(request, { deadline: Date.now() + EVALUATION_TIMEOUT_MS });
        let last: EvaluateEvent["result"];
        call.on("data", (event: EvaluateEvent) => (last = event.result ?? last));
        call.on("error", reject);
        call.on("end", () => resolve(last));
      });
      if (!result) throw new Error("the evaluator ended without a result");
      this.emit({ checkpoint, knn: result.knn, linear: undefined });
      this.log.info(
        { runId: this.runId, step: checkpoint.step, knnTop1: result.knn?.top1 },
        "epoch evaluated",
      );
    } catch (e) {
      const err = e as grpc.ServiceError;
      // A dataset without labels or a test split will not get better: stop asking for this run.
      if (
        err.code === grpc.status.INVALID_ARGUMENT ||
        err.code === grpc.status.NOT_FOUND ||
        err.code === grpc.status.FAILED_PRECONDITION
      ) {
        this.disabled = true;
      }
      this.log.warn(
        {
          runId: this.runId,
          step: checkpoint.step,
          evaluator: this.address,
          err: err.details ?? err.message,
          disabled: this.disabled,
        },
        "epoch evaluation failed",
      );
    }
  }
}
