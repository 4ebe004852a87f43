// The owner of each run, as far as this bank knows: the highest fence (token, then owner) it has been
// called with. A call with a lower fence comes from a trainer that another has taken the run over
// from; it is refused as ABORTED so that the stale trainer stops without touching the bank. Fences
// outlive DeleteBank (a takeover may delete and recreate the bank); a restarted bank starts empty and
// learns the owner again from the first fenced call.
import { compareFences, fenceText } from "@adco/proto";
import type { Fence } from "@adco/proto/adversary_bank";
import { RpcError, status } from "@adco/service-kit";

export class Fences {
  private readonly highest = new Map<string, Fence>();

  /** Lets a call of `runId` through, raising the run's fence to `fence`; ABORTED for a stale one. */
  admit(runId: string, fence: Fence | undefined, what: string): void {
    const known = this.highest.get(runId);
    if (!fence || fence.token === 0) {
      if (!known) return;
      throw new RpcError(
        status.ABORTED,
        `${what} of run ${runId} has no fence, but the run is owned by ${fenceText(known)}`,
      );
    }
    if (known && compareFences(fence, known) < 0) {
      throw new RpcError(
        status.ABORTED,
        `${what} of run ${runId} comes from a stale owner (${fenceText(fence)}): the run was taken over by ${fenceText(known)}`,
      );
    }
    this.highest.set(runId, { token: fence.token, owner: fence.owner });
  }
}
