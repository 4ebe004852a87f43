// One StreamViews call: leases queue up, credits allow batches, revokes take leases back. The
// producer sends a ViewBatch only while it holds credit, so a slow consumer stalls the worker
// instead of growing its memory (at most one batch is built ahead of the credit check).
import { encodeTensor } from "@adco/proto";
import {
  LeaseEndReason,
  type ShardLease,
  type SkippedSample,
  type ViewsRequest,
  type ViewsResponse,
} from "@adco/proto/data_worker";
import { invalidArgument, requireId } from "@adco/service-kit";
import { type DatasetManifest, type DatasetRecord, StorageError } from "@adco/storage";
import type { PreparedPipeline } from "./pipelines.js";

export interface ShardSource {
  /** The records of shard `index` of the stream's split, verified. */
  records(index: number): Promise<DatasetRecord[]>;
  /** Record count of each shard, from the manifest. */
  readonly recordCounts: readonly number[];
}

export interface WorkerStats {
  openStreams: number;
  activeLeases: number;
  samplesSent: number;
}

export class StreamSession {
  private readonly leases: ShardLease[] = [];
  private readonly seen = new Set<string>();
  private readonly revoked = new Set<string>();
  private credit = 0;
  private requestsEnded = false;
  private failure: Error | undefined;
  private wake: (() => void) | undefined;

  constructor(
    private readonly source: ShardSource,
    private readonly pipeline: PreparedPipeline,
    private readonly batchSize: number,
    private readonly stats: WorkerStats,
    readonly manifest: DatasetManifest,
  ) {}

  onRequest(request: ViewsRequest): void {
    try {
      if (request.open) throw invalidArgument("`open` may only be the first message");
      if (request.lease) this.addLease(request.lease);
      else if (request.credit) {
        if (request.credit.batches < 1) throw invalidArgument("credit.batches must be > 0");
        this.credit += request.credit.batches;
      } else if (request.revoke) this.revoked.add(request.revoke.leaseId);
      else throw invalidArgument("empty ViewsRequest: set lease, credit or revoke");
    } catch (e) {
      this.failure ??= e as Error;
    }
    this.notify();
  }

  endOfRequests(): void {
    this.requestsEnded = true;
    this.notify();
  }

  private addLease(lease: ShardLease): void {
    requireId(lease.leaseId, "lease.lease_id");
    if (this.seen.has(lease.leaseId))
      throw invalidArgument(`lease ${lease.leaseId} was already sent on this stream`);
    const count = this.source.recordCounts[lease.shard];
    if (count === undefined) {
      throw invalidArgument(
        `lease ${lease.leaseId}: shard ${lease.shard} does not exist (the split has ${this.source.recordCounts.length})`,
      );
    }
    if (lease.records.length === 0) throw invalidArgument(`lease ${lease.leaseId}: records is empty`);
    const bad = lease.records.find((r) => r >= count);
    if (bad !== undefined)
      throw invalidArgument(
        `lease ${lease.leaseId}: record ${bad} >= shard ${lease.shard}'s ${count} records`,
      );
    this.seen.add(lease.leaseId);
    this.leases.push(lease);
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  private async changed(signal: AbortSignal): Promise<void> {
    if (this.failure) throw this.failure;
    signal.throwIfAborted();
    await new Promise<void>((resolve) => {
      // Removed after each wait: a stream waits thousands of times on one signal.
      const onAbort = () => resolve();
      signal.addEventListener("abort", onAbort, { once: true });
      this.wake = () => {
        signal.removeEventListener("abort", onAbort);
        resolve();
      };
    });
    if (this.failure) throw this.failure;
    signal.throwIfAborted();
  }

  async *responses(signal: AbortSignal): AsyncGenerator<ViewsResponse> {
    this.stats.openStreams++;
    try {
      for (;;) {
        if (this.failure) throw this.failure;
        const lease = this.leases.shift();
        if (!lease) {
          if (this.requestsEnded) return;
          await this.changed(signal);
          continue;
        }
        this.stats.activeLeases++;
        try {
          yield* this.produce(lease, signal);
        } finally {
          this.stats.activeLeases--;
        }
      }
    } finally {
      this.stats.openStreams--;
    }
  }

  private ended(
    lease: ShardLease,
    reason: LeaseEndReason,
    sent: number,
    skipped: SkippedSample[],
    error = "",
  ): ViewsResponse {
    return { leaseEnded: { leaseId: lease.leaseId, reason, recordsSent: sent, skipped, error } };
  }

  private async *produce(lease: ShardLease, signal: AbortSignal): AsyncGenerator<ViewsResponse> {
    const skipped: SkippedSample[] = [];
    let records: DatasetRecord[];
    try {
      records = await this.source.records(lease.shard);
    } catch (e) {
      if (!(e instanceof StorageError)) throw e;
      // The shard is unreadable (missing, corrupt, store down): this lease fails, the stream lives on.
      yield this.ended(lease, LeaseEndReason.LEASE_END_REASON_FAILED, 0, skipped, e.message);
      return;
    }
    let sent = 0;
    for (let position = 0; position < lease.records.length;) {
      while (this.credit === 0 && !this.revoked.has(lease.leaseId)) {
        if (this.requestsEnded) return;
        await this.changed(signal);
      }
      if (this.revoked.has(lease.leaseId)) {
        yield this.ended(lease, LeaseEndReason.LEASE_END_REASON_REVOKED, sent, skipped);
        return;
      }
      const end = Math.min(lease.records.length, position + this.batchSize);
      const batch = await this.makeBatch(lease, records, position, end, skipped);
      this.credit--;
      sent += batch.sampleIds.length;
      this.stats.samplesSent += batch.sampleIds.length;
      yield { batch };
      position = end;
    }
    yield this.ended(lease, LeaseEndReason.LEASE_END_REASON_COMPLETED, sent, skipped);
  }

  /** Every view of each record, in record order: on the augment pool's threads when there is one. */
  private async makeViews(
    batchRecords: DatasetRecord[],
    epoch: number,
    viewBytes: number[],
  ): Promise<PromiseSettledResult<Uint8Array[]>[]> {
    const { makeAll } = this.pipeline;
    // The whole batch in flight at once, so every pool thread has work.
    if (makeAll) {
      return Promise.allSettled(
        batchRecords.map((r) => makeAll(r.data, `sample ${r.sampleId}`, r.sampleId, epoch)),
      );
    }
    // Decode the batch concurrently (sharp works on its own threads), then augment in order.
    const decoded = await Promise.allSettled(
      batchRecords.map((r) => this.pipeline.decode(r.data, `sample ${r.sampleId}`)),
    );
    return Promise.allSettled(
      batchRecords.map(async (record, i) => {
        const pixels = decoded[i]!;
        if (pixels.status === "rejected") throw pixels.reason;
        return Promise.all(
          viewBytes.map(async (bytes, v) => {
            const view = new Uint8Array(bytes);
            await this.pipeline.make(pixels.value, record.sampleId, epoch, v, view);
            return view;
          }),
        );
      }),
    );
  }

  private async makeBatch(
    lease: ShardLease,
    records: DatasetRecord[],
    start: number,
    end: number,
    skipped: SkippedSample[],
  ) {
    const shapes = this.pipeline.views;
    const viewBytes = shapes.map((s) => s.height * s.width * s.channels);
    const outputs = shapes.map((_, v) => new Uint8Array((end - start) * viewBytes[v]!));
    const sampleIds: number[] = [];
    const labels: number[] = [];
    const recordIndices: number[] = [];
    const batchRecords = lease.records.slice(start, end).map((r) => records[r]!);
    const made = await this.makeViews(batchRecords, lease.epoch, viewBytes);
    batchRecords.forEach((record, i) => {
      const result = made[i]!;
      if (result.status === "rejected") {
        skipped.push({ sampleId: record.sampleId, reason: (result.reason as Error).message });
        return;
      }
      const slot = sampleIds.length;
      result.value.forEach((view, v) => outputs[v]!.set(view, slot * viewBytes[v]!));
      sampleIds.push(record.sampleId);
      labels.push(record.label);
      recordIndices.push(lease.records[start + i]!);
    });
    const n = sampleIds.length;
    return {
      leaseId: lease.leaseId,
      epoch: lease.epoch,
      shard: lease.shard,
      sampleIds,
      labels,
      views: shapes.map((s, v) =>
        encodeTensor(outputs[v]!.subarray(0, n * viewBytes[v]!), [n, s.height, s.width, s.channels]),
      ),
      firstPosition: start,
      records: recordIndices,
    };
  }
}
