// Checkpoints of a run in object storage (the layout is libs/storage run-layout.ts): a bundle of
// query/ and key/ encoders (tfjs LayersModel format) and optimizer.bin/.json, with the run's state in
// its manifest's meta, then the run's latest pointer.
// A crash at any point leaves the previous checkpoint readable: the pointer moves only after a whole
// bundle is in place, and retention deletes old checkpoints only after that.
// A resume takes the newest checkpoint whose every object (and every object of the bank snapshot it
// names) matches its manifest, and says which newer ones it skipped and why. The pointer is the head
// of the run: checkpoints past it (left behind when a resume went back to an older one) are never
// resumed from, and retention deletes them.
import type { SerializedCursor } from "@adco/dataplane";
import type { CheckpointRef, ObjectRef } from "@adco/proto/common";
import type { EpochEvent } from "@adco/proto/trainer";
import { notFound, RpcError, status } from "@adco/service-kit";
import {
  type Bundle,
  checkpointManifestKey,
  checkpointPrefix,
  checkpointsIn,
  latestPointerKey,
  type LatestPointer,
  type ObjectStore,
  openBundle,
  readLatestPointer,
  runPrefix,
  StorageError,
  storageRpcError,
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
  /** Sum of step losses, the steps and the samples trained in `epoch` so far. */
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
  /** Wall seconds trainers have spent in `epoch` so far (absent in checkpoints before 2026-12: 0). */
  readonly epochSeconds?: number;
  /**
   * The report of each finished epoch, so that a later trainer's WatchRun replays them too (absent
   * in checkpoints before 2026-12-02: none).
   */
  readonly epochReports?: EpochReport[];
}

/** A finished epoch's EpochEvent and when its trainer sent it. */
export interface EpochReport extends EpochEvent {
  readonly unixMs: number;
}

/** The CheckpointRef of an opened checkpoint (size and checksum of its manifest left unset). */
export function checkpointRef(checkpoint: Bundle<CheckpointState>): CheckpointRef {
  return {
    runId: checkpoint.meta.runId,
    step: checkpoint.meta.step,
    manifest: { ...checkpoint.manifestRef, sizeBytes: 0, sha256: "" },
  };
}

/** A checkpoint every object of which has been read and checked: its bundle and its files' bytes. */
export interface VerifiedCheckpoint {
  readonly bundle: Bundle<CheckpointState>;
  readonly files: ReadonlyMap<string, Uint8Array>;
}

/** A checkpoint a resume did not take, and why (a status name and the object that did not verify). */
export interface SkippedCheckpoint {
  readonly step: number;
  readonly reason: string;
}

/** What a resume starts from: a verified checkpoint (none: the run has no checkpoint) and what it skipped. */
export interface ResumePoint {
  readonly checkpoint: VerifiedCheckpoint | undefined;
  readonly skipped: readonly SkippedCheckpoint[];
  /** Whether the checkpoint is the one the run's pointer names (else the pointer is moved to it). */
  readonly isHead: boolean;
}

/** "DATA_LOSS: <what>" for a storage error that says an object is corrupt or missing; undefined for others. */
function unverified(e: unknown): string | undefined {
  if (!(e instanceof StorageError) || (e.kind !== "corrupt" && e.kind !== "not-found")) return undefined;
  const rpc = storageRpcError(e) as RpcError;
  return `${status[rpc.code]}: ${e.message}`;
}

const RUN_OBJECT = /^runs\/([^/]+)\/(?:latest|status)\.json$/;

export class CheckpointStore {
  constructor(
    private readonly store: ObjectStore,
    readonly bucket: string,
  ) {}

  /**
   * Writes the files and state as a bundle, then moves the run's pointer to it, if `owned` (the
   * trainer still owns the run; it throws otherwise) lets it.
   */
  async write(
    state: CheckpointState,
    files: ReadonlyMap<string, Uint8Array>,
    owned: () => Promise<void> = async () => {},
  ): Promise<CheckpointRef> {
    const ref = await writeBundle(
      this.store,
      this.bucket,
      checkpointPrefix(state.runId, state.step),
      files,
      state,
    );
    const pointer: LatestPointer = { step: state.step, manifest: ref.key };
    await owned();
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

  /**
   * Runs that have a status or a checkpoint in this bucket ([] before the bucket exists). A run killed
   * before its first checkpoint has only its status.
   */
  async runIds(): Promise<string[]> {
    let keys: { key: string }[];
    try {
      keys = await this.store.list(this.bucket, "runs/");
    } catch (e) {
      if (e instanceof StorageError && e.kind === "no-bucket") return [];
      throw e;
    }
    return [...new Set(keys.flatMap((k) => RUN_OBJECT.exec(k.key)?.[1] ?? []))];
  }

  /** The steps of a run's published checkpoints, oldest first. */
  async steps(runId: string): Promise<number[]> {
    return checkpointsIn(await this.store.list(this.bucket, runPrefix(runId))).map((c) => c.step);
  }

  /**
   * Where a resume starts: with `step`, the checkpoint at that step, which must verify (NOT_FOUND
   * without one, DATA_LOSS naming the object that does not verify); otherwise the newest checkpoint up
   * to the run's pointer whose every object verifies, newer ones skipped with the reason, DATA_LOSS
   * listing them all when none does. A run with no checkpoint starts from none. Storage that cannot be
   * reached is an error, never a reason to skip.
   */
  async resumePoint(runId: string, step?: number): Promise<ResumePoint> {
    const listed = checkpointsIn(await this.store.list(this.bucket, runPrefix(runId)));
    const skipped: SkippedCheckpoint[] = [];
    let head: LatestPointer | undefined;
    try {
      head = await readLatestPointer(this.store, this.bucket, runId);
    } catch (e) {
      const reason = unverified(e);
      if (!reason) throw e;
      // Without a readable pointer every published checkpoint is a candidate.
      skipped.push({ step: -1, reason: `latest.json: ${reason}` });
    }
    if (step !== undefined) {
      if (!listed.some((c) => c.step === step))
        throw noCheckpointAt(
          runId,
          step,
          listed.map((c) => c.step),
        );
      const key = checkpointManifestKey(runId, step);
      try {
        return { checkpoint: await this.verify(key), skipped: [], isHead: head?.manifest === key };
      } catch (e) {
        const reason = unverified(e);
        if (!reason) throw e;
        throw new RpcError(
          status.DATA_LOSS,
          `DATA_LOSS: the checkpoint at step ${step} of run ${runId} does not verify: ${reason}`,
        );
      }
    }
    const candidates = head
      ? [{ step: head.step, key: head.manifest }, ...listed.filter((c) => c.step < head.step).reverse()]
      : [...listed].reverse();
    for (const candidate of candidates) {
      try {
        const checkpoint = await this.verify(candidate.key);
        return { checkpoint, skipped, isHead: head?.manifest === candidate.key };
      } catch (e) {
        const reason = unverified(e);
        if (!reason) throw e;
        skipped.push({ step: candidate.step, reason });
      }
    }
    if (candidates.length === 0) return { checkpoint: undefined, skipped, isHead: false };
    throw new RpcError(
      status.DATA_LOSS,
      `DATA_LOSS: no checkpoint of run ${runId} verifies (${describeSkipped(skipped)}); resume one with --step after repairing it, or start a new run`,
    );
  }

  /**
   * Opens a checkpoint and reads every object of it and of the bank snapshot it names, each checked
   * against its manifest (a sharded bank's snapshot: every shard's bundle too). The checkpoint's bytes
   * are kept for the restore; the bank's are only checked (the bank reads them itself).
   */
  async verify(manifestKey: string): Promise<VerifiedCheckpoint> {
    const bundle = await openBundle<CheckpointState>(this.store, this.bucket, manifestKey);
    const files = new Map<string, Uint8Array>();
    for (const name of Object.keys(bundle.manifest.files)) files.set(name, await bundle.read(name));
    if (bundle.meta.bankSnapshot) await this.verifyBankSnapshot(bundle.meta.bankSnapshot);
    return { bundle, files };
  }

  private async verifyBankSnapshot(ref: ObjectRef): Promise<void> {
    // The manifest's own size and checksum are in the ref when its writer gave them.
    if (ref.sha256) {
      await this.store.getVerified({
        bucket: ref.bucket,
        key: ref.key,
        size: ref.sizeBytes,
        sha256: ref.sha256,
      });
    }
    const bundle = await openBundle<{ shards?: ObjectRef[] }>(this.store, ref.bucket, ref.key);
    for (const name of Object.keys(bundle.manifest.files)) await bundle.read(name);
    for (const shard of bundle.meta.shards ?? []) await this.verifyBankSnapshot(shard);
  }

  /** Points the run at an older checkpoint (a resume went back to it); later ones are left behind. */
  async moveHead(runId: string, checkpoint: Bundle<CheckpointState>): Promise<void> {
    const pointer: LatestPointer = { step: checkpoint.meta.step, manifest: checkpoint.manifestRef.key };
    await this.store.putJson(this.bucket, latestPointerKey(runId), pointer);
  }

  /**
   * Deletes all but the newest `keep` checkpoints up to `head` (the step just written), every
   * checkpoint past it (left behind by a resume from an older one), and the bank snapshots of the
   * deleted steps. Manifests go first, so a half-deleted checkpoint is never seen as published.
   */
  async prune(runId: string, keep: number, head: number): Promise<number> {
    const all = await this.store.list(this.bucket, runPrefix(runId));
    const manifests = checkpointsIn(all);
    const keptSteps = new Set(
      manifests
        .filter((m) => m.step <= head)
        .slice(-keep)
        .map((m) => m.step),
    );
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

/** NOT_FOUND for a step without a checkpoint, listing the steps that have one. */
export function noCheckpointAt(runId: string, step: number, steps: readonly number[]): RpcError {
  return notFound(`run ${runId} has no checkpoint at step ${step} (it has ${steps.join(", ") || "none"})`);
}

/** "step 8: DATA_LOSS: ...; step 6: ..." (the pointer itself as latest.json). */
export function describeSkipped(skipped: readonly SkippedCheckpoint[]): string {
  return skipped.map((s) => (s.step < 0 ? s.reason : `step ${s.step}: ${s.reason}`)).join("; ");
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
