// One shard of a sharded bank, as the replica that holds it sees it: the core's AdversaryShard behind
// the two rounds of AdversaryBankShard, with the same step rules as a whole bank. Each round's last
// answer is kept, so a coordinator that retries a step after a failure on another shard gets the
// answer this shard gave before it updated, and the shard never applies a step twice.
import { AdversaryShard, disposePartials, type NegativesState } from "@adco/core";
import {
  type ApplyShardRequest,
  type ApplyShardResponse,
  type BankInfo,
  BankStats,
  type CreateBankRequest,
  type PartialLogSumExpRequest,
  type PartialLogSumExpResponse,
} from "@adco/proto/adversary_bank";
import { failedPrecondition, invalidArgument, requirePresent } from "@adco/service-kit";
import type { ObjectStore } from "@adco/storage";
import * as tf from "@tensorflow/tfjs-core";
import { bankInfo, coreHyper, type RunBank, sameBank } from "./run-bank.js";
import { decodeApply, decodeQueries, encodeApplied, encodePartials } from "./shard-wire.js";
import { type Snapshot, writeShardSnapshot } from "./snapshot.js";

export interface ShardState {
  readonly step: number;
  readonly negatives: NegativesState;
}

export class ShardReplica implements RunBank {
  readonly shard: AdversaryShard;
  readonly index: number;
  private step = 0;
  private round1: { step: number; response: PartialLogSumExpResponse } | undefined;
  private round2: { step: number; response: ApplyShardResponse } | undefined;

  /** `request` is the coordinator's CreateBank for this shard (its `shard` set). */
  constructor(readonly request: CreateBankRequest) {
    const spec = request.shard!;
    this.index = spec.index;
    this.shard = new AdversaryShard(
      request.dim,
      { offset: Number(spec.adversaryOffset), count: Number(spec.adversaries), size: Number(request.size) },
      coreHyper(request.hyper!),
      Number(request.seed) >>> 0,
    );
  }

  sameAs(other: CreateBankRequest): boolean {
    return sameBank(this.request, other);
  }

  get appliedStep(): number {
    return this.step;
  }

  describe(): string {
    return `shard ${this.index} of run ${JSON.stringify(this.request.runId)}`;
  }

  info(): BankInfo {
    return bankInfo(this.request, this.step, 0, this.request.shard!.count);
  }

  /** The step may be the next one, or the last one again (a retry, answered from the cache). */
  private checkOrder(step: number, round: string): "next" | "again" {
    if (step === this.step + 1) return "next";
    if (step === this.step) return "again";
    throw failedPrecondition(
      `${round} of step ${step} on ${this.describe()}: its last applied step is ${this.step}`,
    );
  }

  partialLogSumExp(request: PartialLogSumExpRequest): PartialLogSumExpResponse {
    const order = this.checkOrder(request.step, "PartialLogSumExp");
    const cached = this.round1?.step === request.step ? this.round1.response : undefined;
    if (cached) return cached;
    if (order === "again") {
      throw failedPrecondition(
        `PartialLogSumExp of step ${request.step} on ${this.describe()}: the step is applied and its round-1 answer is gone`,
      );
    }
    const queries = decodeQueries(request.queries, this.request.dim);
    try {
      const partials = this.shard.partials(queries, request.step);
      const response = encodePartials(partials);
      disposePartials(partials);
      this.round1 = { step: request.step, response };
      return response;
    } finally {
      tf.dispose(queries);
    }
  }

  applyShard(request: ApplyShardRequest): ApplyShardResponse {
    const order = this.checkOrder(request.step, "ApplyShard");
    if (order === "again") {
      if (this.round2?.step === request.step) return this.round2.response;
      throw failedPrecondition(
        `ApplyShard of step ${request.step} on ${this.describe()}: the step is applied and its answer is gone`,
      );
    }
    const inputs = decodeApply(request, this.request.dim);
    try {
      const count = this.shard.slice.count;
      if (inputs.write && (inputs.write.start >= count || inputs.write.keys.shape[0] > count)) {
        throw invalidArgument(
          `write_keys: ${inputs.write.keys.shape[0]} keys at ${inputs.write.start} do not fit ${this.describe()} (${count} adversaries)`,
        );
      }
      const applied = this.shard.apply(inputs, request.step);
      const response = encodeApplied(applied);
      tf.dispose(applied.gradParts);
      this.step = request.step;
      this.round2 = { step: request.step, response };
      return response;
    } finally {
      tf.dispose([
        ...inputs.queries,
        ...inputs.normalizers.flatMap((n) => [n.encoder, n.memory]),
        ...(inputs.write ? [inputs.write.keys] : []),
      ]);
    }
  }

  snapshotState(): ShardState {
    return { step: this.step, negatives: this.shard.state() };
  }

  restoreState(state: ShardState): void {
    this.shard.restore(state.negatives);
    this.step = state.step;
    this.round1 = undefined;
    this.round2 = undefined;
  }

  async restore(snapshot: Snapshot): Promise<void> {
    const negatives = requirePresent(snapshot.state.negatives, "snapshot weights");
    this.restoreState({ step: snapshot.state.step, negatives });
  }

  snapshot(store: ObjectStore) {
    return writeShardSnapshot(store, this);
  }

  stats(): BankStats {
    return BankStats.fromPartial({ step: this.step });
  }

  apply(): never {
    throw failedPrecondition(`this replica holds ${this.describe()}; send steps to shard 0`);
  }

  async deletePeers(): Promise<void> {}

  dispose(): void {
    this.shard.dispose();
  }
}
