// AdversaryBank handlers: one bank per run on this replica (CreateBank, Step with replay of a retried
// step, Snapshot/Restore through object storage, GetStats, DeleteBank). A run's bank here is whole
// (`Bank`), the coordinator of a sharded bank (`ShardedBank`, the trainer named peers), or one slice
// of a sharded bank that a coordinator created (`ShardReplica`, served by AdversaryBankShard).
import {
  type AdversaryBankService,
  type AdversaryBankShardService,
  BankStats,
  type CreateBankRequest,
} from "@adco/proto/adversary_bank";
import type { ObjectRef } from "@adco/proto/common";
import {
  alreadyExists,
  failedPrecondition,
  notFound,
  requireId,
  requirePresent,
  type ServiceHandlers,
} from "@adco/service-kit";
import { type ObjectStore, withStorageStatus } from "@adco/storage";
import { Bank } from "./bank.js";
import { ShardedBank, PeerLostError } from "./sharded-bank.js";
import { ShardReplica } from "./shard-replica.js";
import {
  disposeSnapshot,
  readSnapshot,
  type Snapshot,
  writeShardedSnapshot,
  writeShardSnapshot,
  writeSnapshot,
} from "./snapshot.js";
import { checkCreateBank, isShardRequest } from "./validate.js";

type RunBank = Bank | ShardedBank | ShardReplica;

export function adversaryBankHandlers(deps: { store: ObjectStore }): {
  bank: ServiceHandlers<typeof AdversaryBankService>;
  shard: ServiceHandlers<typeof AdversaryBankShardService>;
} {
  const banks = new Map<string, RunBank>();
  const bankOf = (runId: string): RunBank => {
    requireId(runId, "run_id");
    const bank = banks.get(runId);
    if (!bank)
      throw notFound(`run ${JSON.stringify(runId)} has no bank on this replica; call CreateBank first`);
    return bank;
  };
  const steppable = (runId: string): Bank | ShardedBank => {
    const bank = bankOf(runId);
    if (bank instanceof ShardReplica)
      throw failedPrecondition(`this replica holds ${bank.describe()}; send steps to shard 0`);
    return bank;
  };
  const shardOf = (runId: string): ShardReplica => {
    const bank = bankOf(runId);
    if (!(bank instanceof ShardReplica))
      throw failedPrecondition(`run ${JSON.stringify(runId)} is not sharded on this replica`);
    return bank;
  };
  const drop = (runId: string) => {
    banks.get(runId)?.dispose();
    banks.delete(runId);
  };
  /** Bank, shard or coordinator for a request, created anew. */
  const create = async (request: CreateBankRequest): Promise<RunBank> => {
    if (isShardRequest(request)) return new ShardReplica(request);
    if (request.peers.length > 0) return ShardedBank.create(request);
    return new Bank(request);
  };

  const restoreSharded = async (snapshot: Snapshot, existing: RunBank | undefined): Promise<ShardedBank> => {
    const shards = snapshot.shards ?? [];
    if (shards.length !== snapshot.request.peers.length + 1) {
      throw failedPrecondition(
        `the snapshot names ${shards.length} shards for ${snapshot.request.peers.length + 1}`,
      );
    }
    const own = await withStorageStatus(() => readSnapshot(deps.store, shards[0]!));
    try {
      const bank = existing instanceof ShardedBank ? existing : await ShardedBank.create(snapshot.request);
      banks.set(snapshot.request.runId, bank);
      await bank.restore(
        snapshot.state,
        { step: own.state.step, negatives: own.state.negatives! },
        shards.slice(1),
      );
      return bank;
    } finally {
      disposeSnapshot(own);
    }
  };

  const bank: ServiceHandlers<typeof AdversaryBankService> = {
    async createBank(request) {
      checkCreateBank(request);
      const existing = banks.get(request.runId);
      if (existing) {
        if (!existing.sameAs(request)) {
          throw alreadyExists(
            `run ${JSON.stringify(request.runId)} already has a bank with another configuration`,
          );
        }
        return existing.info();
      }
      const created = await create(request);
      banks.set(request.runId, created);
      return created.info();
    },
    async *step(requests) {
      for await (const request of requests) {
        const target = steppable(request.runId);
        try {
          yield await target.apply(request);
        } catch (e) {
          // A lost shard loses the whole bank: the trainer restores every slice from a snapshot.
          if (e instanceof PeerLostError) drop(request.runId);
          throw e;
        }
      }
    },
    async snapshot(request) {
      const target = bankOf(request.runId);
      if (request.step !== target.appliedStep) {
        throw failedPrecondition(
          `snapshot at step ${request.step}: the bank's last applied step is ${target.appliedStep}`,
        );
      }
      if (!target.request.snapshotPrefix?.bucket)
        throw failedPrecondition(
          "the bank was created without snapshot_prefix; CreateBank with one to snapshot",
        );
      const manifest: ObjectRef = await withStorageStatus(() =>
        target instanceof Bank
          ? writeSnapshot(deps.store, target)
          : target instanceof ShardReplica
            ? writeShardSnapshot(deps.store, target)
            : writeShardedSnapshot(deps.store, target),
      );
      return { manifest, step: target.appliedStep };
    },
    async restore(request) {
      requireId(request.runId, "run_id");
      const manifest = requirePresent(request.manifest, "manifest");
      const snapshot = await withStorageStatus(() => readSnapshot(deps.store, manifest));
      try {
        const created = snapshot.request;
        if (created.runId !== request.runId) {
          throw failedPrecondition(
            `snapshot ${manifest.key} is of run ${JSON.stringify(created.runId)}, not ${JSON.stringify(request.runId)}`,
          );
        }
        let existing = banks.get(request.runId);
        if (existing && !existing.sameAs(created)) {
          drop(request.runId);
          existing = undefined;
        }
        if (created.peers.length > 0) return (await restoreSharded(snapshot, existing)).info();
        const negatives = requirePresent(snapshot.state.negatives, "snapshot weights");
        if (isShardRequest(created)) {
          const replica = existing instanceof ShardReplica ? existing : new ShardReplica(created);
          banks.set(request.runId, replica);
          replica.restore({ step: snapshot.state.step, negatives });
          return replica.info();
        }
        const whole = existing instanceof Bank ? existing : new Bank(created);
        banks.set(request.runId, whole);
        whole.restore({ ...snapshot.state, negatives });
        return whole.info();
      } finally {
        disposeSnapshot(snapshot);
      }
    },
    async getStats(request) {
      const target = bankOf(request.runId);
      if (target instanceof ShardReplica) return BankStats.fromPartial({ step: target.appliedStep });
      return target.lastStats() ?? BankStats.fromPartial({ filledRows: target.info().filledRows });
    },
    async deleteBank(request) {
      const target = bankOf(request.runId);
      if (target instanceof ShardedBank) await target.deletePeers();
      drop(request.runId);
      return {};
    },
  };

  const shard: ServiceHandlers<typeof AdversaryBankShardService> = {
    async partialLogSumExp(request) {
      return shardOf(request.runId).partialLogSumExp(request);
    },
    async applyShard(request) {
      return shardOf(request.runId).applyShard(request);
    },
  };
  return { bank, shard };
}
