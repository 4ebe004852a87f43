// AdversaryBank handlers: one bank per run on this replica (CreateBank, Step with replay of a retried
// step, Snapshot/Restore through object storage, GetStats, DeleteBank), and the two rounds of
// AdversaryBankShard. A run's bank is a RunBank: whole, the coordinator of shards, or one shard.
// Every call of the trainer's that changes a run's bank passes its fence first (fences.ts): one
// trainer owns a run. A shard's calls come from its coordinator, which has checked the fence.
import type {
  AdversaryBankService,
  AdversaryBankShardService,
  CreateBankRequest,
  Fence,
} from "@adco/proto/adversary_bank";
import type { ObjectRef } from "@adco/proto/common";
import {
  alreadyExists,
  failedPrecondition,
  isBackendBroken,
  notFound,
  requireId,
  requirePresent,
  type ServiceHandlers,
} from "@adco/service-kit";
import { type ObjectStore, withStorageStatus } from "@adco/storage";
import { Bank } from "./bank.js";
import { Fences } from "./fences.js";
import type { RunBank } from "./run-bank.js";
import { ShardedBank, PeerLostError } from "./sharded-bank.js";
import { ShardReplica } from "./shard-replica.js";
import { disposeSnapshot, readSnapshot } from "./snapshot.js";
import { checkBankMemory, checkCreateBank, isShardRequest } from "./validate.js";

/** The bank a CreateBank (or a snapshot's) asks for, created anew. */
async function createRunBank(request: CreateBankRequest): Promise<RunBank> {
  if (isShardRequest(request)) return new ShardReplica(request);
  if (request.peers.length > 0) return ShardedBank.create(request);
  return new Bank(request);
}

export interface BankDeps {
  readonly store: ObjectStore;
  /** What this replica's backend holds, in bytes (a wasm bank's 4 GiB; Infinity elsewhere). */
  readonly memoryBytes?: number;
  /** A call ended in an abort of the tfjs backend (isBackendBroken): the process must restart. */
  readonly onBackendBroken?: (error: Error) => void;
}

export function adversaryBankHandlers(deps: BankDeps): {
  bank: ServiceHandlers<typeof AdversaryBankService>;
  shard: ServiceHandlers<typeof AdversaryBankShardService>;
} {
  const banks = new Map<string, RunBank>();
  const fences = new Fences();
  /** Runs a call's work; a backend abort in it is reported (the process then leaves) and rethrown. */
  const guarded = async <T>(work: () => Promise<T>): Promise<T> => {
    try {
      return await work();
    } catch (e) {
      if (isBackendBroken(e)) deps.onBackendBroken?.(e as Error);
      throw e;
    }
  };
  /** The fence check of a trainer's call; a coordinator's call to its shard (`fromCoordinator`) skips it. */
  const admit = (runId: string, fence: Fence | undefined, what: string, fromCoordinator: boolean) => {
    if (!fromCoordinator) fences.admit(runId, fence, what);
  };
  const bankOf = (runId: string): RunBank => {
    requireId(runId, "run_id");
    const bank = banks.get(runId);
    if (!bank)
      throw notFound(`run ${JSON.stringify(runId)} has no bank on this replica; call CreateBank first`);
    return bank;
  };
  /** Forgets a run's bank here and frees its tensors (a lost or replaced bank: its peers are not asked). */
  const drop = (runId: string) => {
    banks.get(runId)?.dispose();
    banks.delete(runId);
  };

  const bank: ServiceHandlers<typeof AdversaryBankService> = {
    async createBank(request) {
      checkCreateBank(request);
      checkBankMemory(request, deps.memoryBytes ?? Infinity);
      admit(request.runId, request.fence, "CreateBank", isShardRequest(request));
      const existing = banks.get(request.runId);
      if (existing) {
        if (!existing.sameAs(request)) {
          throw alreadyExists(
            `run ${JSON.stringify(request.runId)} already has a bank with another configuration`,
          );
        }
        return existing.info();
      }
      const created = await guarded(() => createRunBank(request));
      banks.set(request.runId, created);
      return created.info();
    },
    async *step(requests) {
      for await (const request of requests) {
        const target = bankOf(request.runId);
        fences.admit(request.runId, request.fence, `Step ${request.step}`);
        const batch = request.pairs[0]?.queries?.shape[0] ?? 0;
        checkBankMemory(target.request, deps.memoryBytes ?? Infinity, request.pairs.length, batch);
        try {
          yield await guarded(() => target.apply(request));
        } catch (e) {
          // A lost shard loses the whole bank: the trainer restores every slice from a snapshot.
          if (e instanceof PeerLostError) drop(request.runId);
          throw e;
        }
      }
    },
    async snapshot(request) {
      const target = bankOf(request.runId);
      admit(request.runId, request.fence, "Snapshot", target instanceof ShardReplica);
      if (request.step !== target.appliedStep) {
        throw failedPrecondition(
          `snapshot at step ${request.step}: the bank's last applied step is ${target.appliedStep}`,
        );
      }
      if (!target.request.snapshotPrefix?.bucket)
        throw failedPrecondition(
          "the bank was created without snapshot_prefix; CreateBank with one to snapshot",
        );
      const manifest: ObjectRef = await withStorageStatus(() => target.snapshot(deps.store));
      return { manifest, step: target.appliedStep };
    },
    async restore(request) {
      requireId(request.runId, "run_id");
      const manifest = requirePresent(request.manifest, "manifest");
      const snapshot = await withStorageStatus(() => readSnapshot(deps.store, manifest));
      try {
        const created = snapshot.request;
        admit(request.runId, request.fence, "Restore", isShardRequest(created));
        if (created.runId !== request.runId) {
          throw failedPrecondition(
            `snapshot ${manifest.key} is of run ${JSON.stringify(created.runId)}, not ${JSON.stringify(request.runId)}`,
          );
        }
        const existing = banks.get(request.runId);
        if (existing?.sameAs(created)) {
          await existing.restore(snapshot, deps.store);
          return existing.info();
        }
        drop(request.runId);
        const fresh = await createRunBank(created);
        try {
          await guarded(() => fresh.restore(snapshot, deps.store));
        } catch (e) {
          fresh.dispose();
          throw e;
        }
        banks.set(request.runId, fresh);
        return fresh.info();
      } finally {
        disposeSnapshot(snapshot);
      }
    },
    async getStats(request) {
      return bankOf(request.runId).stats();
    },
    async deleteBank(request) {
      const target = bankOf(request.runId);
      admit(request.runId, request.fence, "DeleteBank", target instanceof ShardReplica);
      await target.deletePeers();
      drop(request.runId);
      return {};
    },
  };

  const shard: ServiceHandlers<typeof AdversaryBankShardService> = {
    async partialLogSumExp(request) {
      return bankOf(request.runId).partialLogSumExp(request);
    },
    async applyShard(request) {
      return bankOf(request.runId).applyShard(request);
    },
  };
  return { bank, shard };
}
