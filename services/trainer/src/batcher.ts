// Cuts the data workers' batches (any size, any order) into training batches of exactly batchSize
// samples. Each sample keeps its (shard, record), which the run marks done only once it has trained on
// it: samples still waiting here when a checkpoint is written are not in its cursor, so a resumed run
// fetches them again.
import { decodeTensor } from "@adco/proto";
import { DataType } from "@adco/proto/common";
import type { ViewBatch } from "@adco/proto/data_worker";

export interface TrainBatch {
  readonly size: number;
  /** One buffer per view, size x H x W x C uint8. */
  readonly views: Uint8Array[];
  /** [H, W, C] of each view. */
  readonly shapes: [number, number, number][];
  readonly shard: number[];
  readonly record: number[];
  readonly sampleIds: number[];
}

interface Sample {
  readonly views: Uint8Array[];
  readonly shard: number;
  readonly record: number;
  readonly sampleId: number;
}

export class Batcher {
  private samples: Sample[] = [];
  private shapes: [number, number, number][] | undefined;

  constructor(readonly batchSize: number) {}

  get waiting(): number {
    return this.samples.length;
  }

  add(batch: ViewBatch): void {
    const n = batch.sampleIds.length;
    if (batch.records.length !== n) {
      throw new Error(
        `a view batch has ${batch.records.length} record indices for ${n} samples (old data worker?)`,
      );
    }
    const views = batch.views.map((v, i) =>
      decodeTensor(v, `views[${i}]`, { dtype: DataType.DATA_TYPE_UINT8 }),
    );
    const shapes = views.map((v) => v.shape.slice(1) as [number, number, number]);
    if (views.some((v) => v.shape.length !== 4 || v.shape[0] !== n))
      throw new Error(`view shapes ${views.map((v) => v.shape.join("x")).join(", ")} for ${n} samples`);
    this.shapes ??= shapes;
    if (JSON.stringify(shapes) !== JSON.stringify(this.shapes))
      throw new Error(`view shapes changed from ${JSON.stringify(this.shapes)} to ${JSON.stringify(shapes)}`);
    const bytes = shapes.map(([h, w, c]) => h * w * c);
    for (let i = 0; i < n; i++) {
      this.samples.push({
        views: views.map((v, j) => v.data.subarray(i * bytes[j]!, (i + 1) * bytes[j]!)),
        shard: batch.shard,
        record: batch.records[i]!,
        sampleId: batch.sampleIds[i]!,
      });
    }
  }

  /** A full batch if one is waiting; with `flush`, whatever is left (the end of an epoch). */
  take(flush = false): TrainBatch | undefined {
    const size = flush ? Math.min(this.batchSize, this.samples.length) : this.batchSize;
    if (size === 0 || this.samples.length < size) return undefined;
    const taken = this.samples.slice(0, size);
    this.samples = this.samples.slice(size);
    const shapes = this.shapes!;
    const views = shapes.map(([h, w, c], j) => {
      const per = h * w * c;
      const out = new Uint8Array(size * per);
      taken.forEach((s, i) => out.set(s.views[j]!, i * per));
      return out;
    });
    return {
      size,
      views,
      shapes,
      shard: taken.map((s) => s.shard),
      record: taken.map((s) => s.record),
      sampleIds: taken.map((s) => s.sampleId),
    };
  }
}
