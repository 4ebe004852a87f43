// DataWorker handlers. Describe is complete; StreamViews checks its requests and answers
// UNIMPLEMENTED until the data plane lands (issue 4).
import { availableParallelism, hostname } from "node:os";
import type { DataWorkerService } from "@adco/proto/data_worker";
import { Pipeline, type OpenStream, type ViewsRequest } from "@adco/proto/data_worker";
import {
  invalidArgument,
  requireEnum,
  requireId,
  requireNonEmpty,
  requirePresent,
  requireRange,
  unimplemented,
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

export function dataWorkerHandlers(): ServiceHandlers<typeof DataWorkerService> {
  const workerId = `${hostname()}:${process.pid}`;
  return {
    async *streamViews(requests) {
      const iterator = requests[Symbol.asyncIterator]();
      const first = await iterator.next();
      checkOpenStream(first.done ? undefined : first.value);
      yield* [];
      throw unimplemented("StreamViews: the data plane is not built yet (issue 4)");
    },
    async describe() {
      return {
        workerId,
        version: VERSION,
        cores: availableParallelism(),
        pipelines: [],
        openStreams: 0,
        activeLeases: 0,
        samplesPerSecond: 0,
      };
    },
  };
}
