// The epoch plan and cursor. The plan is a function of (seed, epoch, shard sizes): the order of shards
// and of records within each shard, cut into leases. The cursor is which records of the epoch are
// done, one bit per record: small (60,000 samples = 7.5 KB), serialisable, and enough to resume an
// epoch without repeating or skipping a sample.

import { mixSeeds, permutation } from "@adco/random";

/** A uniformly random ordering of 0..n-1 from the raw seed (the project's one mulberry32). */
export { permutation };

export interface PlannedLease {
  readonly shard: number;
  /** Record indices within the shard, in epoch order. */
  readonly records: number[];
}

/** Leases of at most leaseRecords records, in epoch order, leaving out what the cursor has done. */
export function planEpoch(
  recordCounts: readonly number[],
  seed: number,
  epoch: number,
  leaseRecords: number,
  cursor?: EpochCursor,
): PlannedLease[] {
  const leases: PlannedLease[] = [];
  for (const shard of permutation(recordCounts.length, mixSeeds(seed, epoch))) {
    const order = permutation(recordCounts[shard]!, mixSeeds(mixSeeds(seed, epoch), shard + 1)).filter(
      (r) => !cursor?.isDone(shard, r),
    );
    for (let i = 0; i < order.length; i += leaseRecords)
      leases.push({ shard, records: order.slice(i, i + leaseRecords) });
  }
  return leases;
}

export interface SerializedCursor {
  readonly epoch: number;
  readonly recordCounts: number[];
  /** Base64 of one bit per record, shards concatenated. */
  readonly done: string;
}

export class EpochCursor {
  private readonly offsets: number[];
  private readonly bits: Uint8Array;
  private doneCount = 0;

  constructor(
    readonly epoch: number,
    readonly recordCounts: readonly number[],
    bits?: Uint8Array,
  ) {
    this.offsets = [];
    let total = 0;
    for (const c of recordCounts) {
      this.offsets.push(total);
      total += c;
    }
    this.total = total;
    this.bits = bits ?? new Uint8Array(Math.ceil(total / 8));
    if (this.bits.length !== Math.ceil(total / 8))
      throw new Error(`cursor: ${this.bits.length} bytes for ${total} records`);
    for (let i = 0; i < total; i++) if (this.bits[i >> 3]! & (1 << (i & 7))) this.doneCount++;
  }

  readonly total: number;

  get done(): number {
    return this.doneCount;
  }

  get complete(): boolean {
    return this.doneCount === this.total;
  }

  isDone(shard: number, record: number): boolean {
    const i = this.offsets[shard]! + record;
    return (this.bits[i >> 3]! & (1 << (i & 7))) !== 0;
  }

  /** Marks a record done; false if it already was (a duplicate). */
  markDone(shard: number, record: number): boolean {
    const i = this.offsets[shard]! + record;
    if (this.bits[i >> 3]! & (1 << (i & 7))) return false;
    this.bits[i >> 3]! |= 1 << (i & 7);
    this.doneCount++;
    return true;
  }

  serialize(): SerializedCursor {
    return {
      epoch: this.epoch,
      recordCounts: [...this.recordCounts],
      done: Buffer.from(this.bits).toString("base64"),
    };
  }

  static deserialize(s: SerializedCursor): EpochCursor {
    return new EpochCursor(s.epoch, s.recordCounts, new Uint8Array(Buffer.from(s.done, "base64")));
  }
}
