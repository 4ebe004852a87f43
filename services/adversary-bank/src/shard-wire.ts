// The two rounds of a sharded step on the wire: the core's shard inputs and outputs to and from the
// AdversaryBankShard messages, every incoming tensor checked (INVALID_ARGUMENT naming the field).
import type { ShardApplied, ShardApply, ShardPartial, ShardWrite } from "@adco/core";
import { decodeTensor, encodeTensor } from "@adco/proto";
import {
  type ApplyShardRequest,
  type ApplyShardResponse,
  BankUpdate,
  type PartialLogSumExpResponse,
} from "@adco/proto/adversary_bank";
import { DataType, type Tensor } from "@adco/proto/common";
import { invalidArgument } from "@adco/service-kit";
import * as tf from "@tensorflow/tfjs-core";

const F32 = DataType.DATA_TYPE_FLOAT32;

const encode = (t: tf.Tensor): Tensor => encodeTensor(t.dataSync() as Float32Array, t.shape);

function vector(tensor: Tensor | undefined, field: string, length: number): tf.Tensor1D {
  return tf.tensor1d(decodeTensor(tensor, field, { dtype: F32, shape: [length] }).data);
}

/** Queries of every pair, [B, D] each, one B for all. */
export function decodeQueries(tensors: readonly Tensor[], dim: number): tf.Tensor2D[] {
  if (tensors.length === 0) throw invalidArgument("queries: at least one pair is required");
  let batch: number | undefined;
  return tensors.map((t, i) => {
    const q = decodeTensor(t, `queries[${i}]`, { dtype: F32, shape: [batch, dim] });
    batch ??= q.shape[0];
    if (batch === 0) throw invalidArgument(`queries[${i}]: the batch is empty`);
    return tf.tensor2d(q.data, [q.shape[0]!, dim]);
  });
}

export const encodeQueries = (queries: readonly tf.Tensor2D[]): Tensor[] => queries.map(encode);

export function encodePartials(partials: readonly ShardPartial[]): PartialLogSumExpResponse {
  return {
    encoder: partials.map((p) => ({ max: encode(p.encoder.max), sumExp: encode(p.encoder.sumExp) })),
    memory: partials.map((p) => ({ max: encode(p.memory.max), sumExp: encode(p.memory.sumExp) })),
    similaritySum: partials.map((p) => encode(p.similaritySum)),
  };
}

export function decodePartials(
  response: PartialLogSumExpResponse,
  pairs: number,
  batch: number,
  from: string,
): ShardPartial[] {
  if (response.encoder.length !== pairs || response.memory.length !== pairs) {
    throw new Error(`${from}: answered ${response.encoder.length} pairs, ${pairs} were sent`);
  }
  return response.encoder.map((encoder, i) => {
    const memory = response.memory[i]!;
    return {
      encoder: {
        max: vector(encoder.max, `${from} encoder[${i}].max`, batch),
        sumExp: vector(encoder.sumExp, `${from} encoder[${i}].sum_exp`, batch),
      },
      memory: {
        max: vector(memory.max, `${from} memory[${i}].max`, batch),
        sumExp: vector(memory.sumExp, `${from} memory[${i}].sum_exp`, batch),
      },
      similaritySum: vector(response.similaritySum[i], `${from} similarity_sum[${i}]`, batch),
    };
  });
}

export function encodeApply(runId: string, step: number, inputs: ShardApply): ApplyShardRequest {
  return {
    runId,
    step,
    queries: encodeQueries(inputs.queries),
    encoderLogNormalizer: inputs.normalizers.map((n) => encode(n.encoder)),
    memoryLogNormalizer: inputs.normalizers.map((n) => encode(n.memory)),
    pairWeights: [...inputs.pairWeights],
    update: inputs.update
      ? BankUpdate.BANK_UPDATE_TRAIN
      : inputs.write
        ? BankUpdate.BANK_UPDATE_FILL
        : BankUpdate.BANK_UPDATE_NONE,
    writeKeys: inputs.write ? encode(inputs.write.keys) : undefined,
    writeOffset: inputs.write?.start ?? 0,
  };
}

/** The tensors of an ApplyShard request (the caller disposes them). */
export function decodeApply(request: ApplyShardRequest, dim: number): ShardApply {
  const queries = decodeQueries(request.queries, dim);
  const batch = queries[0]!.shape[0];
  const pairs = queries.length;
  for (const [name, list] of [
    ["encoder_log_normalizer", request.encoderLogNormalizer],
    ["memory_log_normalizer", request.memoryLogNormalizer],
    ["pair_weights", request.pairWeights],
  ] as const) {
    if (list.length !== pairs) throw invalidArgument(`${name}: ${list.length} entries for ${pairs} pairs`);
  }
  const update = request.update;
  if (
    ![BankUpdate.BANK_UPDATE_TRAIN, BankUpdate.BANK_UPDATE_FILL, BankUpdate.BANK_UPDATE_NONE].includes(update)
  ) {
    throw invalidArgument(`update: ${BankUpdate[update] ?? update} is not TRAIN, FILL or NONE`);
  }
  let write: ShardWrite | undefined;
  if (request.writeKeys) {
    const rows = decodeTensor(request.writeKeys, "write_keys", { dtype: F32, shape: [undefined, dim] });
    write = { keys: tf.tensor2d(rows.data, [rows.shape[0]!, dim]), start: request.writeOffset };
  }
  return {
    queries,
    normalizers: request.encoderLogNormalizer.map((encoder, i) => ({
      encoder: vector(encoder, `encoder_log_normalizer[${i}]`, batch),
      memory: vector(request.memoryLogNormalizer[i], `memory_log_normalizer[${i}]`, batch),
    })),
    pairWeights: [...request.pairWeights],
    update: update === BankUpdate.BANK_UPDATE_TRAIN,
    write,
  };
}

export const encodeApplied = (applied: ShardApplied): ApplyShardResponse => ({
  queryGradParts: applied.gradParts.map(encode),
  adversaryNormSum: applied.normSum,
});

export function decodeApplied(
  response: ApplyShardResponse,
  queries: readonly tf.Tensor2D[],
  from: string,
): ShardApplied {
  if (response.queryGradParts.length !== queries.length) {
    throw new Error(`${from}: answered ${response.queryGradParts.length} pairs, ${queries.length} were sent`);
  }
  return {
    gradParts: response.queryGradParts.map((t, i) => {
      const shape = queries[i]!.shape;
      return tf.tensor2d(
        decodeTensor(t, `${from} query_grad_parts[${i}]`, { dtype: F32, shape }).data,
        shape,
      );
    }),
    normSum: response.adversaryNormSum,
  };
}
