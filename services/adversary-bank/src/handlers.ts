// AdversaryBank handlers: one bank per run on this replica (CreateBank, Step with replay of a retried
// step, Snapshot/Restore through object storage, GetStats, DeleteBank).
import { type AdversaryBankService, BankStats } from "@adco/proto/adversary_bank";
import {
  alreadyExists,
  failedPrecondition,
  notFound,
  requireId,
  requirePresent,
  type ServiceHandlers,
  unimplemented,
} from "@adco/service-kit";
import { type ObjectStore, withStorageStatus } from "@adco/storage";
import * as tf from "@tensorflow/tfjs-core";
import { Bank } from "./bank.js";
import { readSnapshot, writeSnapshot } from "./snapshot.js";
import { checkCreateBank } from "./validate.js";

export function adversaryBankHandlers(deps: {
  store: ObjectStore;
}): ServiceHandlers<typeof AdversaryBankService> {
  const banks = new Map<string, Bank>();
  const bankOf = (runId: string): Bank => {
    requireId(runId, "run_id");
    const bank = banks.get(runId);
    if (!bank)
      throw notFound(`run ${JSON.stringify(runId)} has no bank on this replica; call CreateBank first`);
    return bank;
  };
  return {
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
      if (request.peers.length > 0 || (request.shard && request.shard.count > 1)) {
        throw unimplemented("CreateBank: sharded banks are not built yet (issue 5); omit peers and shard");
      }
      const bank = new Bank(request);
      banks.set(request.runId, bank);
      return bank.info();
    },
    async *step(requests) {
      for await (const request of requests) yield bankOf(request.runId).apply(request);
    },
    async snapshot(request) {
      const bank = bankOf(request.runId);
      if (request.step !== bank.appliedStep) {
        throw failedPrecondition(
          `snapshot at step ${request.step}: the bank's last applied step is ${bank.appliedStep}`,
        );
      }
      const prefix = bank.request.snapshotPrefix;
      if (!prefix?.bucket)
        throw failedPrecondition(
          "the bank was created without snapshot_prefix; CreateBank with one to snapshot",
        );
      const manifest = await withStorageStatus(() => writeSnapshot(deps.store, bank, prefix));
      return { manifest, step: bank.appliedStep };
    },
    async restore(request) {
      requireId(request.runId, "run_id");
      const manifest = requirePresent(request.manifest, "manifest");
      const { request: created, state } = await withStorageStatus(() => readSnapshot(deps.store, manifest));
      try {
        if (created.runId !== request.runId) {
          throw failedPrecondition(
            `snapshot ${manifest.key} is of run ${JSON.stringify(created.runId)}, not ${JSON.stringify(request.runId)}`,
          );
        }
        let bank = banks.get(request.runId);
        if (bank && !bank.sameAs(created)) {
          bank.dispose();
          banks.delete(request.runId);
          bank = undefined;
        }
        if (!bank) {
          bank = new Bank(created);
          banks.set(request.runId, bank);
        }
        bank.restore(state);
        return bank.info();
      } finally {
        tf.dispose([state.negatives.weights, state.negatives.velocity].filter((t) => t !== undefined));
      }
    },
    async getStats(request) {
      const bank = bankOf(request.runId);
      return bank.lastStats() ?? BankStats.fromPartial({ filledRows: bank.info().filledRows });
    },
    async deleteBank(request) {
      bankOf(request.runId).dispose();
      banks.delete(request.runId);
      return {};
    },
  };
}
