// How far a run has got, as its checkpoints record it: the epoch in progress and its cursor (which
// samples of the epoch are trained on), the epoch's loss sum and counts (its EpochEvent), the loss
// curve, the seconds spent training and the reports of the finished epochs. A resumed run carries on
// from these, so an epoch cut by a restart still reports its whole mean loss and seconds, trains each
// sample once, and the epochs earlier trainers reported stay in WatchRun's replay.
import { EpochCursor } from "@adco/dataplane";
import type { EpochEvent } from "@adco/proto/trainer";
import type { CheckpointState, EpochReport, HistoryPoint } from "./checkpoints.js";

/** The loss curve keeps at most about this many points: past it, every other old point goes. */
export const HISTORY_POINTS = 4000;

/** The part of a checkpoint's state that RunProgress writes and reads. */
export type ProgressState = Pick<
  CheckpointState,
  | "epoch"
  | "cursor"
  | "epochLossSum"
  | "epochSteps"
  | "epochSamples"
  | "history"
  | "trainSeconds"
  | "epochSeconds"
  | "epochReports"
>;

/** The rest of a checkpoint's state, which the run knows. */
export type RunFields = Omit<CheckpointState, keyof ProgressState>;

/** Which samples a trained batch held (a TrainBatch). */
export interface TrainedSamples {
  readonly size: number;
  readonly shard: readonly number[];
  readonly record: readonly number[];
}

export class RunProgress {
  private epochLossSum = 0;
  private epochSteps = 0;
  private epochSamples = 0;
  /** Seconds earlier trainers spent in the epoch, and when this one took it up. */
  private epochSecondsBefore = 0;
  private epochStarted = performance.now();
  /** The report of each finished epoch, by epoch (a redone epoch's newer report replaces the older). */
  private readonly reports = new Map<number, EpochReport>();

  private constructor(
    private readonly recordCounts: readonly number[],
    private cursor: EpochCursor,
    private history: HistoryPoint[],
    private trainSeconds: number,
  ) {}

  /** A run that has trained nothing yet. */
  static start(recordCounts: readonly number[]): RunProgress {
    return new RunProgress(recordCounts, new EpochCursor(0, recordCounts), [], 0);
  }

  /** A run from its checkpoint; an epoch that checkpoint had finished moves on to the next. */
  static resume(state: ProgressState, recordCounts: readonly number[]): RunProgress {
    const progress = new RunProgress(
      recordCounts,
      EpochCursor.deserialize(state.cursor),
      [...state.history],
      state.trainSeconds,
    );
    progress.epochLossSum = state.epochLossSum;
    progress.epochSteps = state.epochSteps;
    progress.epochSamples = state.epochSamples;
    progress.epochSecondsBefore = state.epochSeconds ?? 0;
    for (const report of state.epochReports ?? []) progress.reports.set(report.epoch, report);
    if (progress.cursor.complete) progress.enter(progress.epoch + 1);
    return progress;
  }

  /** The epoch in progress (or just finished). */
  get epoch(): number {
    return this.cursor.epoch;
  }

  /** Starts `epoch` afresh, unless it is the one in progress (a run resumed mid-epoch). */
  enter(epoch: number): void {
    if (this.cursor.epoch === epoch) return;
    this.cursor = new EpochCursor(epoch, this.recordCounts);
    this.epochLossSum = this.epochSteps = this.epochSamples = this.epochSecondsBefore = 0;
    this.epochStarted = performance.now();
  }

  /** Whether every sample of the epoch in progress has been trained. */
  get complete(): boolean {
    return this.cursor.complete;
  }

  /** A copy of the cursor for the feeder, which marks samples as it delivers them, before training. */
  feederCursor(): EpochCursor {
    return EpochCursor.deserialize(this.cursor.serialize());
  }

  /** A trained step: its samples are done, its loss counts, and the curve gets a point. */
  record(batch: TrainedSamples, point: HistoryPoint, seconds: number): void {
    for (let i = 0; i < batch.size; i++) this.cursor.markDone(batch.shard[i]!, batch.record[i]!);
    this.epochLossSum += point.loss;
    this.epochSteps++;
    this.epochSamples += batch.size;
    this.trainSeconds += seconds;
    this.history.push(point);
    if (this.history.length > HISTORY_POINTS)
      this.history = this.history.filter((_, i) => i % 2 === 0 || i === this.history.length - 1);
  }

  /** The epoch so far, as WatchRun reports a finished one. */
  epochEvent(): EpochEvent {
    return {
      epoch: this.epoch,
      meanLoss: this.epochSteps > 0 ? this.epochLossSum / this.epochSteps : 0,
      samples: this.epochSamples,
      seconds: this.epochSeconds(),
    };
  }

  /** Keeps the report of a finished epoch, as WatchRun sent it at `unixMs`, for the checkpoints. */
  reported(event: EpochEvent, unixMs: number): void {
    this.reports.set(event.epoch, { ...event, unixMs });
  }

  /** The reports of the finished epochs, in epoch order. */
  get epochReports(): EpochReport[] {
    return [...this.reports.values()].sort((a, b) => a.epoch - b.epoch);
  }

  private epochSeconds(): number {
    return this.epochSecondsBefore + (performance.now() - this.epochStarted) / 1000;
  }

  /** The checkpoint's state: the run's fields and these counters, in the order checkpoints have them. */
  checkpointState(run: RunFields): CheckpointState {
    return {
      runId: run.runId,
      step: run.step,
      epoch: this.epoch,
      cursor: this.cursor.serialize(),
      epochLossSum: this.epochLossSum,
      epochSteps: this.epochSteps,
      epochSamples: this.epochSamples,
      totalSteps: run.totalSteps,
      config: run.config,
      createdUnixMs: run.createdUnixMs,
      bankSnapshot: run.bankSnapshot,
      history: [...this.history],
      trainSeconds: this.trainSeconds,
      epochSeconds: this.epochSeconds(),
      epochReports: this.epochReports,
    };
  }
}
