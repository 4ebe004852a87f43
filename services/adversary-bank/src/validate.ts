// Checks of AdversaryBank requests; every failure is INVALID_ARGUMENT naming the field.
import { DataType } from "@adco/proto/common";
import { BankKind, type BankHyperparameters } from "@adco/proto/common";
import { BankUpdate, Reduction, type CreateBankRequest, type StepRequest } from "@adco/proto/adversary_bank";
import { decodeTensor, type DecodedTensor } from "@adco/proto";
import { gibText, negativesBytes } from "@adco/core";
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

/** The adversaries this replica holds of a bank: its shard's, or the coordinator's share of K. */
export function ownAdversaries(request: CreateBankRequest): number {
  if (isShardRequest(request)) return request.shard!.adversaries;
  return Math.ceil(request.size / (request.peers.length + 1));
}

/**
 * INVALID_ARGUMENT when this replica's share of the bank, and of a step of `pairs` pairs of `batch`
 * queries (none: the bank between steps), needs more than the backend holds (`limitBytes`: a wasm
 * bank's 4 GiB), which would abort it for every run.
 */
export function checkBankMemory(request: CreateBankRequest, limitBytes: number, pairs = 0, batch = 0): void {
  const k = ownAdversaries(request);
  const bytes = negativesBytes(k, request.dim, pairs, batch);
  if (bytes <= limitBytes) return;
  const held = `${k} adversaries x D ${request.dim}`;
  if (pairs === 0) {
    throw invalidArgument(
      `size: ${held} on this replica need ~${gibText(bytes)} (3 x K/S x D float32: adversaries, momentum, gradient), over the backend's ${gibText(limitBytes)}; use a smaller size or dim, or more shards (peers)`,
    );
  }
  throw invalidArgument(
    `pairs: a step of ${pairs} pair(s) of ${batch} queries against ${held} needs ~${gibText(bytes)} on this replica (3 x (K/S x D + pairs x B x K/S) float32), over the backend's ${gibText(limitBytes)}; send smaller batches, or shard the bank`,
  );
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
