// Checkpoints of a run in object storage (the layout is libs/storage run-layout.ts): a bundle of
// query/ and key/ encoders (tfjs LayersModel format) and optimizer.bin/.json, with the run's state in
// its manifest's meta, then the run's latest pointer.
// A crash at any point leaves the previous checkpoint readable: the pointer moves only after a whole
// bundle is in place, and retention deletes old checkpoints only after that.
import type { SerializedCursor } from "@adco/dataplane";
import type { CheckpointRef, ObjectRef } from "@adco/proto/common";
import {
  type Bundle,
  checkpointPrefix,
  checkpointsIn,
  latestPointerKey,
  type LatestPointer,
  listRunIds,
  type ObjectStore,
  openBundle,
  readLatestPointer,
  runPrefix,
  stepOfKey,
  writeBundle,
} from "@adco/storage";

/** One point of the loss curve. */
export interface HistoryPoint {
  readonly step: number;
  readonly loss: number;
  readonly contrastAccuracy: number;
  readonly lr: number;
}

/** Everything besides the model files that a run needs to continue: the bundle's meta. */
export interface CheckpointState {
  readonly runId: string;
  readonly step: number;
  /** Epoch in progress (or the next one when `cursor` is complete). */
  readonly epoch: number;
  /** Records of `epoch` already trained on. */
  readonly cursor: SerializedCursor;
  /** Sum of step losses and samples trained in `epoch` so far, and when it started. */
  readonly epochLossSum: number;
  readonly epochSteps: number;
  readonly epochSamples: number;
  readonly totalSteps: number;
  /** RunConfig as JSON (resolved, every field set). */
  readonly config: unknown;
  readonly createdUnixMs: number;
  readonly bankSnapshot: ObjectRef | undefined;
  readonly history: HistoryPoint[];
  /** Seconds of training so far (for images/s over the whole run). */
  readonly trainSeconds: number;
}

/** The CheckpointRef of an opened checkpoint (size and checksum of its manifest left unset). */
export function checkpointRef(checkpoint: Bundle<CheckpointState>): CheckpointRef {
  return {
    runId: checkpoint.meta.runId,
    step: checkpoint.meta.step,
    manifest: { ...checkpoint.manifestRef, sizeBytes: 0, sha256: "" },
  };
}

export class CheckpointStore {
  constructor(
    private readonly store: ObjectStore,
    readonly bucket: string,
  ) {}

  /** Writes the files and state as a bundle, then moves the run's pointer to it. */
  async write(state: CheckpointState, files: ReadonlyMap<string, Uint8Array>): Promise<CheckpointRef> {
    const ref = await writeBundle(
      this.store,
      this.bucket,
      checkpointPrefix(state.runId, state.step),
      files,
      state,
    );
    const pointer: LatestPointer = { step: state.step, manifest: ref.key };
    await this.store.putJson(this.bucket, latestPointerKey(state.runId), pointer);
    return {
      runId: state.runId,
      step: state.step,
      manifest: { bucket: ref.bucket, key: ref.key, sizeBytes: ref.size, sha256: ref.sha256 },
    };
  }

  /** The newest checkpoint of a run, or undefined when it has none. */
  async latest(runId: string): Promise<Bundle<CheckpointState> | undefined> {
    const pointer = await readLatestPointer(this.store, this.bucket, runId);
    return pointer && openBundle<CheckpointState>(this.store, this.bucket, pointer.manifest);
  }

  /** Runs that have a checkpoint in this bucket. */
  runIds(): Promise<string[]> {
    return listRunIds(this.store, this.bucket);
  }

  /**
   * Deletes all but the newest `keep` checkpoints and the bank snapshots they do not name. Manifests
   * go first, so a half-deleted checkpoint is never seen as published.
   */
  async prune(runId: string, keep: number): Promise<number> {
    const all = await this.store.list(this.bucket, runPrefix(runId));
    const manifests = checkpointsIn(all);
    const keptSteps = new Set(manifests.slice(-keep).map((m) => m.step));
    const doomed = all.filter((o) => {
      const step = stepOfKey(o.key);
      return step !== undefined && !keptSteps.has(step);
    });
    if (doomed.length === 0) return 0;
    const isManifest = (k: string) => k.endsWith("manifest.json");
    await this.store.remove(
      this.bucket,
      doomed.filter((o) => isManifest(o.key)).map((o) => o.key),
    );
    await this.store.remove(
      this.bucket,
      doomed.filter((o) => !isManifest(o.key)).map((o) => o.key),
    );
    return manifests.length - keptSteps.size;
  }
}

/** CheckpointNow callers, each waiting for the run's next checkpoint (written at a step boundary). */
export class CheckpointRequests {
  private waiters: { resolve: (ref: CheckpointRef) => void; reject: (e: Error) => void }[] = [];

  /** Whether someone waits: the run then checkpoints after its current step. */
  get waiting(): boolean {
    return this.waiters.length > 0;
  }

  next(): Promise<CheckpointRef> {
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  /** Answers everyone waiting with a checkpoint just written. */
  written(ref: CheckpointRef): void {
    for (const w of this.waiters.splice(0)) w.resolve(ref);
  }

  /** The run failed: no checkpoint is coming. */
  failed(error: Error): void {
    for (const w of this.waiters.splice(0)) w.reject(error);
  }
}
