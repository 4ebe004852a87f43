// DataWorker handlers: StreamViews serves shard leases of a dataset in object storage as batches of
// augmented views, under the consumer's credit; Describe reports what this worker does.
// open.dataset.name is "NAME" (split train) or "NAME:SPLIT".
import { availableParallelism, hostname } from "node:os";
import type { DataWorkerService } from "@adco/proto/data_worker";
import { Pipeline, type OpenStream, type ViewsRequest } from "@adco/proto/data_worker";
import { type ObjectStore, readManifest, withStorageStatus } from "@adco/storage";
import type { AugmentPool } from "./augment-pool.js";
import { preparePipeline, SUPPORTED_PIPELINES } from "./pipelines.js";
import { StreamSession, type WorkerStats } from "./session.js";
import { ShardCache } from "./shards.js";
import {
  invalidArgument,
  requireEnum,
  requireId,
  requireNonEmpty,
  requirePresent,
  requireRange,
  notFound,
  VERSION,
  type ServiceHandlers,
} from "@adco/service-kit";

export function checkOpenStream(first: ViewsRequest | undefined): OpenStream {
  const open = first?.open;
  if (!open) throw invalidArgument("the first message of StreamViews must be `open`");
  requireId(open.consumerId, "open.consumer_id");
  const dataset = requirePresent(open.dataset, "open.dataset");
  requireNonEmpty(dataset.bucket, "open.dataset.bucket");
  requireNonEmpty(dataset.name, "open.dataset.name");
  const augment = requirePresent(open.augment, "open.augment");
  requireEnum(augment.pipeline, Pipeline, "open.augment.pipeline");
  if (augment.pipeline === Pipeline.PIPELINE_MULTI_CROP) {
    if (augment.crops.length === 0)
      throw invalidArgument("open.augment.crops: multi-crop needs at least one crop");
    augment.crops.forEach((c, i) => {
      requireRange(c.size, `open.augment.crops[${i}].size`, 1, 4096);
      requireRange(c.minScale, `open.augment.crops[${i}].min_scale`, 0, 1, true);
      requireRange(c.maxScale, `open.augment.crops[${i}].max_scale`, c.minScale, 1);
      requireRange(c.count, `open.augment.crops[${i}].count`, 1, 64);
    });
  } else {
    requireRange(augment.outputSize, "open.augment.output_size", 1, 4096);
    if (augment.crops.length > 0)
      throw invalidArgument("open.augment.crops: only PIPELINE_MULTI_CROP takes crops");
  }
  requireRange(open.batchSize, "open.batch_size", 1, 4096);
  return open;
}

export interface DataWorkerDeps {
  readonly store: ObjectStore;
  /** Decoded shards kept in memory, shared by all streams. */
  readonly shardCacheSize: number;
  /** Threads that decode and augment RGB views for all streams; none: on the calling thread. */
  readonly augmentPool?: AugmentPool;
}

export function dataWorkerHandlers(deps: DataWorkerDeps): ServiceHandlers<typeof DataWorkerService> {
  const workerId = `${hostname()}:${process.pid}`;
  const cache = new ShardCache(deps.store, deps.shardCacheSize);
  const stats: WorkerStats = { openStreams: 0, activeLeases: 0, samplesSent: 0 };
  const started = performance.now();
  return {
    async *streamViews(requests, ctx) {
      const iterator = requests[Symbol.asyncIterator]();
      const first = await iterator.next();
      const open = checkOpenStream(first.done ? undefined : first.value);
      const { bucket, name } = open.dataset!;
      const [datasetName, split = "train"] = name.split(":");
      const manifest = await withStorageStatus(() => readManifest(deps.store, bucket, datasetName!));
      const splitManifest = manifest.splits[split];
      if (!splitManifest) {
        throw notFound(
          `dataset ${datasetName} has no split ${split} (splits: ${Object.keys(manifest.splits).join(", ")})`,
        );
      }
      const session = new StreamSession(
        cache.source(splitManifest.shards),
        preparePipeline(open.augment!, manifest, deps.augmentPool),
        open.batchSize,
        stats,
        manifest,
      );
      ctx.log.info({ consumer: open.consumerId, dataset: name }, "stream opened");
      void (async () => {
        try {
          for (;;) {
            const next = await iterator.next();
            if (next.done) break;
            session.onRequest(next.value);
          }
        } catch {
          // The call was cancelled or broke; the producer sees the abort signal.
        }
        session.endOfRequests();
      })();
      yield* session.responses(ctx.signal);
    },
    async describe() {
      const seconds = (performance.now() - started) / 1000;
      return {
        workerId,
        version: VERSION,
        cores: availableParallelism(),
        pipelines: SUPPORTED_PIPELINES,
        openStreams: stats.openStreams,
        activeLeases: stats.activeLeases,
        samplesPerSecond: stats.samplesSent / Math.max(seconds, 1e-9),
      };
    },
  };
}
