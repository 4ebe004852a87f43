// AdversaryBank handlers. The bank itself lands with the training services (issue 5); until then
// requests are checked and unknown runs are NOT_FOUND, as they will be.
import type { AdversaryBankService } from "@adco/proto/adversary_bank";
import { notFound, requireId, type ServiceHandlers, unimplemented } from "@adco/service-kit";
import { checkCreateBank, checkStep } from "./validate.js";

/** Banks by run id. Empty until CreateBank is built. */
const banks = new Map<string, { dim: number }>();

function bankOf(runId: string): { dim: number } {
  requireId(runId, "run_id");
  const bank = banks.get(runId);
  if (!bank)
    throw notFound(`run ${JSON.stringify(runId)} has no bank on this replica; call CreateBank first`);
  return bank;
}

export function adversaryBankHandlers(): ServiceHandlers<typeof AdversaryBankService> {
  return {
    async createBank(request) {
      checkCreateBank(request);
      throw unimplemented("CreateBank: the adversary bank is not built yet (issue 5)");
    },
    async *step(requests) {
      for await (const request of requests) {
        checkStep(request, bankOf(request.runId).dim);
        yield* [];
      }
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
      bankOf(request.runId);
      throw unimplemented("GetStats: not built yet (issue 5)");
    },
    async deleteBank(request) {
      bankOf(request.runId);
      banks.delete(request.runId);
      return {};
    },
  };
}
