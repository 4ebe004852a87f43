// The consumer side of StreamViews: hands the epoch's leases to any number of data workers, gives
// them credit as the consumer takes batches (so memory is bounded by workers x credit), and delivers
// every record of the epoch exactly once:
//   - a worker that dies or is removed mid-lease: the records it did not deliver are leased again;
//   - a sample that arrives twice anyway (a re-lease racing a late batch) is dropped;
//   - a worker that joins gets a lease at once.
// The cursor records what is done, so an epoch can be resumed from a checkpoint.
import * as grpc from "@grpc/grpc-js";
import type { DatasetRef } from "@adco/proto/common";
import {
  type AugmentSpec,
  DataWorkerClient,
  type LeaseEnded,
  LeaseEndReason,
  type ViewBatch,
  type ViewsRequest,
  type ViewsResponse,
} from "@adco/proto/data_worker";
import { channelOptions, clientCredentials } from "@adco/service-kit";
import { EpochCursor, planEpoch, type PlannedLease } from "./plan.js";

export interface FeederOptions {
  readonly consumerId: string;
  readonly dataset: DatasetRef;
  readonly augment: AugmentSpec;
  readonly batchSize: number;
  /** Record count of each shard of the split, from the manifest. */
  readonly recordCounts: readonly number[];
  readonly epoch: number;
  /** Resume: records already done in this epoch. */
  readonly cursor?: EpochCursor;
  /** Records per lease (smaller: finer balancing and less re-work when a worker dies). */
  readonly leaseRecords?: number;
  /** Batches each worker may have in flight. */
  readonly creditPerWorker?: number;
  /** Called on worker events (joined, lost, lease failed), for logs. */
  readonly onEvent?: (event: FeederEvent) => void;
}

export type FeederEvent =
  | { kind: "worker-joined"; address: string }
  | { kind: "worker-lost"; address: string; error: string; requeued: number }
  | { kind: "lease-failed"; address: string; shard: number; error: string }
  | { kind: "skipped"; sampleId: number; reason: string };

interface Lease extends PlannedLease {
  readonly id: string;
  /** Positions of `records` delivered so far. */
  covered: Set<number>;
}

interface Worker {
  readonly address: string;
  readonly client: DataWorkerClient;
  readonly call: grpc.ClientDuplexStream<ViewsRequest, ViewsResponse>;
  lease?: Lease;
  closed: boolean;
}

export interface DeliveredBatch {
  readonly batch: ViewBatch;
  readonly address: string;
}

export class ViewFeeder {
  readonly cursor: EpochCursor;
  private readonly queue: Lease[];
  private readonly workers = new Map<string, Worker>();
  private readonly ready: DeliveredBatch[] = [];
  private readonly seenSamples = new Set<number>();
  private failedRecords = 0;
  private leaseCounter = 0;
  private wake: (() => void) | undefined;
  private fatal: Error | undefined;
  private finished = false;

  constructor(private readonly options: FeederOptions) {
    this.cursor = options.cursor ?? new EpochCursor(options.epoch, options.recordCounts);
    if (this.cursor.epoch !== options.epoch)
      throw new Error(`cursor is for epoch ${this.cursor.epoch}, not ${options.epoch}`);
    this.queue = planEpoch(
      options.recordCounts,
      options.augment.seed >>> 0,
      options.epoch,
      options.leaseRecords ?? 512,
      this.cursor,
    ).map((l) => this.lease(l));
  }

  private lease(planned: PlannedLease): Lease {
    return {
      ...planned,
      id: `${this.options.consumerId}-e${this.options.epoch}-l${this.leaseCounter++}`,
      covered: new Set(),
    };
  }

  /** Connects to a worker and gives it work at once. */
  addWorker(address: string): void {
    if (this.workers.has(address)) return;
    const client = new DataWorkerClient(address, clientCredentials("data-worker"), channelOptions());
    const call = client.streamViews();
    const worker: Worker = { address, client, call, closed: false };
    this.workers.set(address, worker);
    call.write({
      open: {
        consumerId: this.options.consumerId,
        dataset: this.options.dataset,
        augment: this.options.augment,
        batchSize: this.options.batchSize,
      },
    });
    call.write({ credit: { batches: this.options.creditPerWorker ?? 2 } });
    call.on("data", (response: ViewsResponse) => this.onResponse(worker, response));
    call.on("error", (e: Error) => this.lose(worker, e.message));
    call.on("end", () => this.lose(worker, "stream ended"));
    this.options.onEvent?.({ kind: "worker-joined", address });
    this.assign(worker);
  }

  /** Takes a worker out (its unfinished lease goes back to the queue). */
  removeWorker(address: string): void {
    const worker = this.workers.get(address);
    if (worker) this.lose(worker, "removed");
  }

  get workerCount(): number {
    return this.workers.size;
  }

  private assign(worker: Worker): void {
    if (worker.closed || worker.lease) return;
    const lease = this.queue.shift();
    if (!lease) return;
    worker.lease = lease;
    worker.call.write({
      lease: { leaseId: lease.id, epoch: this.options.epoch, shard: lease.shard, records: lease.records },
    });
  }

  private onResponse(worker: Worker, response: ViewsResponse): void {
    const lease = worker.lease;
    if (response.batch) {
      const batch = response.batch;
      if (!lease || batch.leaseId !== lease.id) return; // a late batch of a lease we took back
      const end = Math.min(lease.records.length, batch.firstPosition + this.options.batchSize);
      for (let p = batch.firstPosition; p < end; p++) {
        lease.covered.add(p);
        this.cursor.markDone(lease.shard, lease.records[p]!);
      }
      this.ready.push({ batch: this.dropDuplicates(batch), address: worker.address });
    } else if (response.leaseEnded) {
      this.onLeaseEnded(worker, response.leaseEnded);
    }
    this.notify();
  }

  private dropDuplicates(batch: ViewBatch): ViewBatch {
    const keep: number[] = [];
    batch.sampleIds.forEach((id, i) => {
      if (!this.seenSamples.has(id)) {
        this.seenSamples.add(id);
        keep.push(i);
      }
    });
    if (keep.length === batch.sampleIds.length) return batch;
    const n = batch.sampleIds.length;
    return {
      ...batch,
      sampleIds: keep.map((i) => batch.sampleIds[i]!),
      labels: keep.map((i) => batch.labels[i]!),
      records: keep.map((i) => batch.records[i]!),
      views: batch.views.map((v) => {
        const per = v.data.byteLength / n;
        const data = new Uint8Array(keep.length * per);
        keep.forEach((i, j) => data.set(v.data.subarray(i * per, (i + 1) * per), j * per));
        return { ...v, shape: [keep.length, ...v.shape.slice(1)], data: Buffer.from(data.buffer) };
      }),
    };
  }

  private onLeaseEnded(worker: Worker, ended: LeaseEnded): void {
    const lease = worker.lease;
    if (!lease || ended.leaseId !== lease.id) return;
    worker.lease = undefined;
    for (const s of ended.skipped)
      this.options.onEvent?.({ kind: "skipped", sampleId: s.sampleId, reason: s.reason });
    if (ended.reason === LeaseEndReason.LEASE_END_REASON_FAILED) {
      // The shard cannot be read (corrupt or missing): its records are given up, not retried forever.
      this.options.onEvent?.({
        kind: "lease-failed",
        address: worker.address,
        shard: lease.shard,
        error: ended.error,
      });
      for (let p = 0; p < lease.records.length; p++) {
        if (!lease.covered.has(p) && this.cursor.markDone(lease.shard, lease.records[p]!))
          this.failedRecords++;
      }
    } else {
      this.requeueRest(lease);
    }
    this.assign(worker);
  }

  /** Leases again what a lease did not deliver; returns how many records. */
  private requeueRest(lease: Lease): number {
    const rest = lease.records.filter((r, p) => !lease.covered.has(p) && !this.cursor.isDone(lease.shard, r));
    if (rest.length > 0) this.queue.unshift(this.lease({ shard: lease.shard, records: rest }));
    return rest.length;
  }

  private lose(worker: Worker, error: string): void {
    if (worker.closed) return;
    worker.closed = true;
    this.workers.delete(worker.address);
    const requeued = worker.lease ? this.requeueRest(worker.lease) : 0;
    worker.lease = undefined;
    worker.call.cancel();
    worker.client.close();
    if (!this.finished)
      this.options.onEvent?.({ kind: "worker-lost", address: worker.address, error, requeued });
    for (const w of this.workers.values()) this.assign(w);
    this.notify();
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  /** Records given up because their shard was unreadable. */
  get failed(): number {
    return this.failedRecords;
  }

  /**
   * The epoch's batches, each sample once, until every record is done. Taking a batch returns one
   * credit to the worker that sent it. Waits (without failing) while no worker is connected.
   */
  async *batches(signal?: AbortSignal): AsyncGenerator<DeliveredBatch> {
    // One listener for the whole epoch (one per wait would pile up on a long-lived signal).
    const onAbort = () => this.notify();
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      for (;;) {
        if (this.fatal) throw this.fatal;
        const next = this.ready.shift();
        if (next) {
          const worker = this.workers.get(next.address);
          if (worker && !worker.closed) worker.call.write({ credit: { batches: 1 } });
          if (next.batch.sampleIds.length > 0) yield next;
          continue;
        }
        // Done when every record is, and every lease has ended (so skip reports are all in).
        if (this.cursor.complete && [...this.workers.values()].every((w) => !w.lease)) return;
        signal?.throwIfAborted();
        await new Promise<void>((resolve) => (this.wake = resolve));
      }
    } finally {
      signal?.removeEventListener("abort", onAbort);
      this.close();
    }
  }

  /** Ends every worker stream. */
  close(): void {
    this.finished = true;
    for (const worker of [...this.workers.values()]) {
      worker.closed = true;
      worker.call.end();
      worker.client.close();
    }
    this.workers.clear();
  }
}
