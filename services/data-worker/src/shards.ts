// Shards of a split, read from the object store and verified, with a small cache shared by the
// streams of this worker (consecutive leases often hit the same shard, re-leases always do).
import { type DatasetRecord, type ObjectStore, readShard, type ShardRef } from "@adco/storage";
import type { ShardSource } from "./session.js";

export class ShardCache {
  private readonly entries = new Map<string, Promise<DatasetRecord[]>>();

  constructor(
    private readonly store: ObjectStore,
    private readonly capacity = 4,
  ) {}

  get(shard: ShardRef): Promise<DatasetRecord[]> {
    const key = `${shard.bucket}/${shard.key}/${shard.sha256}`;
    let entry = this.entries.get(key);
    if (entry) {
      this.entries.delete(key); // re-insert: most recently used last
    } else {
      entry = readShard(this.store, shard);
      // A failed read is not cached: the next lease tries again.
      entry.catch(() => this.entries.delete(key));
    }
    this.entries.set(key, entry);
    while (this.entries.size > this.capacity) this.entries.delete(this.entries.keys().next().value!);
    return entry;
  }

  source(shards: readonly ShardRef[]): ShardSource {
    return {
      recordCounts: shards.map((s) => s.records),
      records: (index) => this.get(shards[index]!),
    };
  }
}
