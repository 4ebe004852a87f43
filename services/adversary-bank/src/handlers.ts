// AdversaryBank handlers: one bank per run on this replica (CreateBank, Step with replay of a retried
// step, GetStats, DeleteBank). Snapshots to object storage and sharding across replicas come next
// (issue 5) and answer UNIMPLEMENTED until then.
import { type AdversaryBankService, BankStats } from "@adco/proto/adversary_bank";
import { alreadyExists, notFound, requireId, type ServiceHandlers, unimplemented } from "@adco/service-kit";
import { Bank } from "./bank.js";
import { checkCreateBank } from "./validate.js";

export function adversaryBankHandlers(): ServiceHandlers<typeof AdversaryBankService> {
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
      bankOf(request.runId);
      throw unimplemented("Snapshot: not built yet (issue 5)");
    },
    async restore(request) {
      bankOf(request.runId);
      throw unimplemented("Restore: not built yet (issue 5)");
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
