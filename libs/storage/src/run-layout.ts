// Where a run's objects live in the checkpoints bucket. The trainer writes them, the bank writes its
// snapshots there, the evaluator and the CLI read them: one definition of the layout for all.
//   runs/<run>/ckpt-<step>/...         a checkpoint bundle (manifest.json publishes it)
//   runs/<run>/bank/step-<step>/...    the bank's snapshot at the same step
//   runs/<run>/latest.json             pointer to the newest checkpoint's manifest, written last
//   runs/<run>/status.json             the run's state, for a restarted trainer and ListRuns
//   runs/<run>/owner.json              which trainer owns the run, its fence token and lease
//   runs/<run>/eval/step-<step>/...    evaluation results and plots (kept when checkpoints are pruned)
import { type ObjectStore, StorageError } from "./object-store.js";

const padded = (step: number) => String(step).padStart(10, "0");

export const runPrefix = (runId: string) => `runs/${runId}/`;
export const checkpointPrefix = (runId: string, step: number) => `${runPrefix(runId)}ckpt-${padded(step)}/`;
export const checkpointManifestKey = (runId: string, step: number) =>
  `${checkpointPrefix(runId, step)}manifest.json`;
/** Under the run prefix the bank was created with (CreateBankRequest.snapshot_prefix). */
export const bankSnapshotPrefix = (prefix: string, step: number) => `${prefix}bank/step-${padded(step)}/`;
export const latestPointerKey = (runId: string) => `${runPrefix(runId)}latest.json`;
export const runStatusKey = (runId: string) => `${runPrefix(runId)}status.json`;
export const runOwnerKey = (runId: string) => `${runPrefix(runId)}owner.json`;
export const evaluationsPrefix = (runId: string) => `${runPrefix(runId)}eval/`;
export const evaluationPrefix = (runId: string, step: number) =>
  `${evaluationsPrefix(runId)}step-${padded(step)}/`;

/** The step a checkpoint or bank-snapshot object belongs to; undefined for other keys. */
export function stepOfKey(key: string): number | undefined {
  const match = /(?:ckpt|bank\/step)-(\d+)\//.exec(key);
  return match ? Number(match[1]) : undefined;
}

export interface LatestPointer {
  readonly step: number;
  /** Key of the checkpoint's manifest. */
  readonly manifest: string;
}

/** The run's latest-checkpoint pointer, or undefined when it has none. */
export async function readLatestPointer(
  store: ObjectStore,
  bucket: string,
  runId: string,
): Promise<LatestPointer | undefined> {
  try {
    return await store.getJson<LatestPointer>(bucket, latestPointerKey(runId));
  } catch (e) {
    if (e instanceof StorageError && e.kind === "not-found") return undefined;
    throw e;
  }
}

/** The published checkpoints (those with a manifest) among a run's keys, oldest first. */
export function checkpointsIn(keys: readonly { key: string }[]): { step: number; key: string }[] {
  return keys
    .map((o) => ({ key: o.key, match: /ckpt-(\d+)\/manifest\.json$/.exec(o.key) }))
    .filter((o) => o.match)
    .map((o) => ({ step: Number(o.match![1]), key: o.key }))
    .sort((a, b) => a.step - b.step);
}

/** A run's published checkpoints, oldest first. */
export async function listCheckpoints(
  store: ObjectStore,
  bucket: string,
  runId: string,
): Promise<{ step: number; key: string }[]> {
  return checkpointsIn(await store.list(bucket, runPrefix(runId)));
}

/** Ids of the runs that have a latest-checkpoint pointer in the bucket ([] when it does not exist yet). */
export async function listRunIds(store: ObjectStore, bucket: string): Promise<string[]> {
  let keys: { key: string }[];
  try {
    keys = await store.list(bucket, "runs/");
  } catch (e) {
    if (e instanceof StorageError && e.kind === "no-bucket") return [];
    throw e;
  }
  return keys.map((k) => /^runs\/([^/]+)\/latest\.json$/.exec(k.key)?.[1]).filter((id) => id !== undefined);
}
