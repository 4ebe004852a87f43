// A run's evaluations for the dashboard: the request its Evaluate button sends (the CLI's `adco eval
// RUN`: kNN, linear probe and raw pixels on the run's dataset, written next to the checkpoint), and
// the results and plots the evaluator stored under runs/<run>/eval/step-<step>/.
import { EvaluateRequest } from "@adco/proto/evaluator";
import type { Run } from "@adco/proto/trainer";
import { failedPrecondition, notFound } from "@adco/service-kit";
import { evaluationsPrefix, type ObjectStore, withStorageStatus } from "@adco/storage";

export interface EvaluationStore {
  readonly store: ObjectStore;
}

/** The latest checkpoint of the run, scored on its dataset's train and test splits. */
export function checkpointEvaluation(run: Run): EvaluateRequest {
  const checkpoint = run.latestCheckpoint;
  if (!checkpoint?.manifest) throw failedPrecondition(`run ${run.runId} has no checkpoint yet`);
  const dataset = run.config!.dataset!;
  const name = dataset.name.split(":")[0]!;
  return EvaluateRequest.fromPartial({
    checkpoint,
    train: { bucket: dataset.bucket, name: `${name}:train` },
    test: { bucket: dataset.bucket, name: `${name}:test` },
    knn: { enabled: true, k: 200, temperature: 0.1 },
    linear: { enabled: true },
    rawPixels: true,
    writeResults: true,
  });
}

const PLOT_TYPES: Record<string, string> = { ".png": "image/png", ".svg": "image/svg+xml" };
const plotType = (key: string) => PLOT_TYPES[key.slice(key.lastIndexOf("."))];

export interface StoredEvaluation {
  readonly step: number;
  /** results.json as the evaluator wrote it (scores, per-class accuracy, class names). */
  readonly results: unknown;
  readonly plots: { readonly bucket: string; readonly key: string }[];
}

/** Every stored evaluation of the run, oldest step first. */
export async function listEvaluations(stores: EvaluationStore, run: Run): Promise<StoredEvaluation[]> {
  const bucket = run.latestCheckpoint?.manifest?.bucket || run.config?.checkpointBucket;
  if (!bucket) return [];
  return withStorageStatus(async () => {
    const objects = await stores.store.list(bucket, evaluationsPrefix(run.runId));
    const evaluations: StoredEvaluation[] = [];
    for (const o of objects.filter((o) => o.key.endsWith("/results.json"))) {
      const prefix = o.key.slice(0, -"results.json".length);
      const results = await stores.store.getJson<{ step: number }>(bucket, o.key);
      const plots = objects
        .filter((p) => p.key.startsWith(prefix) && plotType(p.key) && !p.key.includes("/", prefix.length))
        .map((p) => ({ bucket, key: p.key }));
      evaluations.push({ step: results.step, results, plots });
    }
    return evaluations.sort((a, b) => a.step - b.step);
  });
}

/** A plot of an evaluation; nothing else of the store is readable through the dashboard. */
export async function readEvaluationObject(
  stores: EvaluationStore,
  bucket: string,
  key: string,
): Promise<{ bytes: Uint8Array; contentType: string }> {
  const contentType = plotType(key);
  if (!/^runs\/[^/]+\/eval\/[^/]+\/[^/]+$/.test(key) || !contentType)
    throw notFound(`${bucket}/${key} is not an evaluation's plot`);
  const bytes = await withStorageStatus(() => stores.store.get(bucket, key));
  return { bytes, contentType };
}
