// A run's bank on this replica, whatever part of it the replica holds: the whole bank (`Bank`), the
// coordinator of a sharded bank (`ShardedBank`, shard 0, which the trainer named peers for), or one
// slice of a sharded bank that a coordinator created (`ShardReplica`). The handlers see only this.
import type {
  ApplyShardRequest,
  ApplyShardResponse,
  BankInfo,
  BankStats,
  CreateBankRequest,
  PartialLogSumExpRequest,
  PartialLogSumExpResponse,
  StepRequest,
  StepResponse,
} from "@adco/proto/adversary_bank";
import type { ObjectRef } from "@adco/proto/common";
import type { ObjectStore } from "@adco/storage";
import type { Snapshot } from "./snapshot.js";

export interface RunBank {
  /** The CreateBank that made it (a shard's: the coordinator's, with its slice). */
  readonly request: CreateBankRequest;
  readonly appliedStep: number;
  /** Same configuration (a retried CreateBank), ignoring fields that do not shape the bank. */
  sameAs(other: CreateBankRequest): boolean;
  info(): BankInfo;
  stats(): BankStats;
  /** One step of the trainer's (a retry of the last one is replayed). A shard refuses: steps go to shard 0. */
  apply(request: StepRequest): Promise<StepResponse>;
  /** Round 1 of a sharded step; only a shard serves it. */
  partialLogSumExp(request: PartialLogSumExpRequest): PartialLogSumExpResponse;
  /** Round 2 of a sharded step; only a shard serves it. */
  applyShard(request: ApplyShardRequest): ApplyShardResponse;
  /** Writes a snapshot at the applied step under the request's snapshot prefix. */
  snapshot(store: ObjectStore): Promise<ObjectRef>;
  /** Takes the state of a snapshot of a bank made by the same request. */
  restore(snapshot: Snapshot, store: ObjectStore): Promise<void>;
  /** Drops what the bank holds on other replicas (a coordinator: its peers' shards, best effort). */
  deletePeers(): Promise<void>;
  /** Frees the tensors it holds here. */
  dispose(): void;
}
