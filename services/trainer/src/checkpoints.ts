// Checkpoints of a run in object storage:
//   runs/<run>/ckpt-<step>/...           a bundle: query/ and key/ encoders (tfjs LayersModel format),
//                                        optimizer.bin/.json, manifest.json (state in its meta)
//   runs/<run>/bank/step-<step>/...      the bank's snapshot at the same step (written by the bank)
//   runs/<run>/latest.json               pointer to the newest checkpoint's manifest, written last
// A crash at any point leaves the previous checkpoint readable: the pointer moves only after a whole
// bundle is in place, and retention deletes old checkpoints only after that.
import type { SerializedCursor } from "@adco/dataplane";
import type { CheckpointRef, ObjectRef } from "@adco/proto/common";
import { Bundle, type ObjectStore, openBundle, StorageError, writeBundle } from "@adco/storage";

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

interface LatestPointer {
  readonly step: number;
  readonly manifest: string;
}

export const runPrefix = (runId: string) => `runs/${runId}/`;
const checkpointPrefix = (runId: string, step: number) =>
  `${runPrefix(runId)}ckpt-${String(step).padStart(10, "0")}/`;

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
    await this.store.putJson(this.bucket, `${runPrefix(state.runId)}latest.json`, pointer);
    return {
      runId: state.runId,
      step: state.step,
      manifest: { bucket: ref.bucket, key: ref.key, sizeBytes: ref.size, sha256: ref.sha256 },
    };
  }

  /** The newest checkpoint of a run, or undefined when it has none. */
  async latest(runId: string): Promise<Bundle<CheckpointState> | undefined> {
    let pointer: LatestPointer;
    try {
      pointer = await this.store.getJson<LatestPointer>(this.bucket, `${runPrefix(runId)}latest.json`);
    } catch (e) {
      if (e instanceof StorageError && e.kind === "not-found") return undefined;
      throw e;
    }
    return openBundle<CheckpointState>(this.store, this.bucket, pointer.manifest);
  }

  async open(manifestKey: string): Promise<Bundle<CheckpointState>> {
    return openBundle<CheckpointState>(this.store, this.bucket, manifestKey);
  }

  /** Runs that have a checkpoint in this bucket. */
  async runIds(): Promise<string[]> {
    let keys: { key: string }[];
    try {
      keys = await this.store.list(this.bucket, "runs/");
    } catch (e) {
      // No bucket yet: no run has written a checkpoint.
      if (e instanceof StorageError && e.kind === "no-bucket") return [];
      throw e;
    }
    return keys.map((k) => /^runs\/([^/]+)\/latest\.json$/.exec(k.key)?.[1]).filter((id) => id !== undefined);
  }

  /** Manifests of a run's published checkpoints, oldest first. */
  async manifests(runId: string): Promise<{ step: number; key: string }[]> {
    const keys = await this.store.list(this.bucket, runPrefix(runId));
    return keys
      .map((k) => ({ key: k.key, match: /ckpt-(\d+)\/manifest\.json$/.exec(k.key) }))
      .filter((k) => k.match)
      .map((k) => ({ step: Number(k.match![1]), key: k.key }))
      .sort((a, b) => a.step - b.step);
  }

  /**
   * Deletes all but the newest `keep` checkpoints and the bank snapshots they do not name. Manifests
   * go first, so a half-deleted checkpoint is never seen as published.
   */
  async prune(runId: string, keep: number): Promise<number> {
    const all = await this.store.list(this.bucket, runPrefix(runId));
    const manifests = await this.manifests(runId);
    const kept = manifests.slice(-keep);
    const keptSteps = new Set(kept.map((m) => m.step));
    const stepOf = (key: string) => /(?:ckpt|bank\/step)-(\d+)\//.exec(key)?.[1];
    const doomed = all.filter((o) => {
      const step = stepOf(o.key);
      return step !== undefined && !keptSteps.has(Number(step));
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
    return manifests.length - kept.length;
  }
}
