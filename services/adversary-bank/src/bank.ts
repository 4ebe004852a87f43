// A whole bank on one replica: the core's negatives (AdCo adversaries, run through the one step as a
// single shard, or the MoCo queue), stepped by the trainer (SteppedBank: steps in order, a retried
// step replayed, never applied twice).
import {
  AdversaryNegatives,
  type ContrastPair,
  type Negatives,
  type NegativesState,
  QueueNegatives,
} from "@adco/core";
import { BankUpdate, type CreateBankRequest, type StepRequest } from "@adco/proto/adversary_bank";
import { BankKind } from "@adco/proto/common";
import { requirePresent } from "@adco/service-kit";
import type { ObjectStore } from "@adco/storage";
import { coreHyper, reductionOf, SteppedBank, type StepLog } from "./run-bank.js";
import { type Snapshot, writeSnapshot } from "./snapshot.js";

/** Everything a snapshot holds besides the creating request. */
export interface BankState extends StepLog {
  readonly negatives: NegativesState;
}

export class Bank extends SteppedBank {
  readonly negatives: Negatives;

  constructor(request: CreateBankRequest) {
    super(request, 1);
    const hyper = request.hyper!;
    const size = Number(request.size);
    const seed = Number(request.seed) >>> 0;
    this.negatives =
      request.kind === BankKind.BANK_KIND_QUEUE
        ? new QueueNegatives(request.dim, size, hyper.temperature, seed)
        : new AdversaryNegatives(request.dim, size, coreHyper(hyper), seed);
  }

  protected async contrast(pairs: readonly ContrastPair[], request: StepRequest, fillAt: number | undefined) {
    const update = request.update === BankUpdate.BANK_UPDATE_TRAIN;
    const outcome = this.negatives.contrast(pairs, reductionOf(request), update);
    if (fillAt !== undefined) this.negatives.write(pairs[0]!.key, fillAt);
    return outcome;
  }

  snapshotState(): BankState {
    return { ...this.stepLog(), negatives: this.negatives.state() };
  }

  async restore(snapshot: Snapshot): Promise<void> {
    this.negatives.restore(requirePresent(snapshot.state.negatives, "snapshot weights"));
    this.restoreStepLog(snapshot.state);
  }

  snapshot(store: ObjectStore) {
    return writeSnapshot(store, this);
  }

  async deletePeers(): Promise<void> {}

  dispose(): void {
    this.negatives.dispose();
  }
}
