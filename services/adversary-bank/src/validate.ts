// Checks of AdversaryBank requests; every failure is INVALID_ARGUMENT naming the field.
import { DataType } from "@adco/proto/common";
import { BankKind, type BankHyperparameters } from "@adco/proto/common";
import { BankUpdate, Reduction, type CreateBankRequest, type StepRequest } from "@adco/proto/adversary_bank";
import { decodeTensor, type DecodedTensor } from "@adco/proto";
import {
  invalidArgument,
  requireEnum,
  requireId,
  requirePresent,
  requireRange,
  unimplemented,
} from "@adco/service-kit";

export function checkHyper(hyper: BankHyperparameters | undefined, field: string): BankHyperparameters {
  const h = requirePresent(hyper, field);
  requireRange(h.temperature, `${field}.temperature`, 0, Infinity, true);
  requireRange(h.memoryTemperature, `${field}.memory_temperature`, 0, Infinity, true);
  requireRange(h.memoryLr, `${field}.memory_lr`, 0);
  requireRange(h.memoryMomentum, `${field}.memory_momentum`, 0, 0.999999);
  requireRange(h.memoryWeightDecay, `${field}.memory_weight_decay`, 0);
  return h;
}

export function checkCreateBank(request: CreateBankRequest): CreateBankRequest {
  requireId(request.runId, "run_id");
  requireEnum(request.kind, BankKind, "kind");
  requireRange(request.size, "size", 1, 1 << 30);
  requireRange(request.dim, "dim", 1, 1 << 16);
  checkHyper(request.hyper, "hyper");
  request.peers.forEach((peer, i) => {
    if (!/^[^\s:]+:\d{1,5}$/.test(peer))
      throw invalidArgument(`peers[${i}]: ${JSON.stringify(peer)} is not host:port`);
  });
  const shards = request.peers.length + 1;
  if (shards > 1) {
    if (request.kind !== BankKind.BANK_KIND_ADVERSARIAL) {
      throw unimplemented(
        "peers: sharding is built for the adversary bank (kind ADVERSARIAL); a MoCo queue runs on one replica",
      );
    }
    if (request.shard)
      throw invalidArgument("shard: set by the coordinator only; a request with peers has none");
    if (shards > request.size)
      throw invalidArgument(`peers: ${shards} shards for a bank of ${request.size} adversaries`);
  }
  if (request.shard && request.shard.count > 1) checkShardSpec(request);
  return request;
}

/** A coordinator's CreateBank for one of its shards. */
export const isShardRequest = (request: CreateBankRequest): boolean =>
  request.shard !== undefined && request.shard.count > 1;

function checkShardSpec(request: CreateBankRequest): void {
  const { index, count, adversaryOffset, adversaries } = request.shard!;
  if (request.kind !== BankKind.BANK_KIND_ADVERSARIAL)
    throw unimplemented("shard: sharding is built for the adversary bank (kind ADVERSARIAL)");
  if (index >= count) throw invalidArgument(`shard.index: ${index} is not below shard.count ${count}`);
  if (adversaries < 1 || adversaryOffset + adversaries > request.size) {
    throw invalidArgument(
      `shard: adversaries ${adversaryOffset}..${adversaryOffset + adversaries - 1} are not inside the bank's ${request.size}`,
    );
  }
}

export interface CheckedStep {
  readonly pairs: readonly { queries: DecodedTensor<Float32Array>; keys: DecodedTensor<Float32Array> }[];
  readonly batch: number;
}

/** Checks a step against the bank's feature dimension; all pairs must share one batch size. */
export function checkStep(request: StepRequest, dim: number): CheckedStep {
  requireId(request.runId, "run_id");
  if (request.pairs.length === 0) throw invalidArgument("pairs: at least one pair is required");
  requireEnum(request.update, BankUpdate, "update");
  if (request.pairs.length > 1) requireEnum(request.reduction, Reduction, "reduction");
  let batch: number | undefined;
  const pairs = request.pairs.map((pair, i) => {
    const shape = [batch, dim];
    const queries = decodeTensor(pair.queries, `pairs[${i}].queries`, {
      dtype: DataType.DATA_TYPE_FLOAT32,
      shape,
    });
    batch ??= queries.shape[0];
    const keys = decodeTensor(pair.keys, `pairs[${i}].keys`, {
      dtype: DataType.DATA_TYPE_FLOAT32,
      shape: [batch, dim],
    });
    if (batch === 0) throw invalidArgument(`pairs[${i}].queries: the batch is empty`);
    for (const [name, t] of [
      ["queries", queries],
      ["keys", keys],
    ] as const) {
      if (!t.data.every(Number.isFinite))
        throw invalidArgument(`pairs[${i}].${name}: contains NaN or Infinity`);
    }
    return { queries, keys };
  });
  return { pairs, batch: batch! };
}
