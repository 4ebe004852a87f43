// What a run's config asks of memory, checked at StartRun against the backend's limit, so that a
// config inside the accepted ranges cannot end in a wasm abort ("memory access out of bounds",
// "Aborted()") that leaves the process broken for every later run.
//
// The limit and the bank's estimate are @adco/core's (memory.ts): wasm32 holds at most 4 GiB, and
// every tensor of the process lives in it. The estimates, in float32 bytes:
//   trainer: 3 x B x views x A, where A is the floats of every node's output of the encoder for one
//     view at its size (walked from the encoder's node list): f_q's activations kept for the
//     backward, their gradients, and f_k's forward, each about the size of the kept activations;
//   bank (each shard, K/S of the adversaries): 3 x K/S x D (adversaries, momentum, gradient)
//     + 3 x P x B x K/S (per pair of the step: the logits, their softmax and its gradient).
// They leave out what is small beside them (weights, the optimizer, the batch's pixels). The bank's
// backend is not known to the trainer; its default (auto: wasm where tensorflow is not installed)
// sets the bank's limit, and bankPeers split K.
import {
  encoderSpec,
  gibText as GiB,
  negativesBytes,
  nodesFor,
  type PretrainConfig,
  WASM_MEMORY_BYTES,
} from "@adco/core";
import { type AugmentSpec, Pipeline } from "@adco/proto/data_worker";
import { invalidArgument } from "@adco/service-kit";

/** Floats of every node's output of the encoder for one view of size x size. */
export function activationFloats(pretrain: PretrainConfig, size: number): number {
  const spec = encoderSpec(pretrain.arch, pretrain.projectionDim);
  const shapes = new Map<string, [number, number, number]>([["input", [size, size, spec.inputShape[2]]]]);
  let total = 0;
  // A step computes what the projection needs (features on a grid are for evaluation only).
  const computed = nodesFor(spec, [spec.projection]);
  for (const node of spec.nodes) {
    if (!computed.has(node.name)) continue;
    const [h, w, c] = shapes.get(node.kind === "add" ? node.inputs[0]! : node.input)!;
    let out: [number, number, number];
    switch (node.kind) {
      case "conv":
        out = [Math.ceil(h / node.stride), Math.ceil(w / node.stride), node.filters];
        break;
      case "maxpool":
        out = [Math.ceil(h / node.stride), Math.ceil(w / node.stride), c];
        break;
      case "gap":
        out = [1, 1, c];
        break;
      case "dense":
        out = [1, 1, node.units];
        break;
      default:
        out = [h, w, c];
    }
    shapes.set(node.name, out);
    total += out[0] * out[1] * out[2];
  }
  return total;
}

/** The size of each view of a step, and the number of (query, key) pairs sent to the bank. */
function viewsOf(pretrain: PretrainConfig, augment: AugmentSpec): { sizes: number[]; pairs: number } {
  if (augment.pipeline === Pipeline.PIPELINE_MULTI_CROP) {
    const sizes = augment.crops.flatMap((c) => Array<number>(c.count).fill(c.size));
    return { sizes, pairs: Math.max(1, sizes.length - 1) };
  }
  // PIPELINE_NONE sends the records as they are, which StartRun checks are the encoder's size.
  const size =
    augment.pipeline === Pipeline.PIPELINE_NONE
      ? encoderSpec(pretrain.arch, pretrain.projectionDim).inputShape[0]
      : augment.outputSize;
  return { sizes: [size, size], pairs: pretrain.symmetric ? 2 : 1 };
}

export interface StepMemory {
  readonly trainerBytes: number;
  readonly bankShardBytes: number;
}

export function stepMemory(pretrain: PretrainConfig, augment: AugmentSpec, shards: number): StepMemory {
  const { sizes, pairs } = viewsOf(pretrain, augment);
  const B = pretrain.batchSize;
  const perSample = sizes.reduce((sum, s) => sum + activationFloats(pretrain, s), 0);
  const k = Math.ceil(pretrain.negatives / shards);
  return {
    trainerBytes: 4 * 3 * B * perSample,
    bankShardBytes: negativesBytes(k, pretrain.projectionDim, pairs, B),
  };
}

/**
 * INVALID_ARGUMENT when a step of this config needs more memory than the backend has: the trainer's
 * own when it runs wasm, the bank's (each shard) always.
 */
export function checkStepMemory(
  pretrain: PretrainConfig,
  augment: AugmentSpec,
  backend: string,
  shards: number,
): void {
  const m = stepMemory(pretrain, augment, shards);
  const B = pretrain.batchSize;
  const size = viewsOf(pretrain, augment).sizes[0] ?? augment.outputSize;
  if (backend === "wasm" && m.trainerBytes > WASM_MEMORY_BYTES) {
    throw invalidArgument(
      `config.batch_size: a step of ${B} samples of ${size}x${size} through ${pretrain.arch} needs ~${GiB(m.trainerBytes)} (3 x B x views x the encoder's activations, float32), over the wasm backend's ${GiB(WASM_MEMORY_BYTES)} address space; use a smaller batch_size`,
    );
  }
  if (m.bankShardBytes > WASM_MEMORY_BYTES) {
    const K = pretrain.negatives;
    const D = pretrain.projectionDim;
    throw invalidArgument(
      `config.bank_size: K ${K} x D ${D} with batch ${B} needs ~${GiB(m.bankShardBytes)} on each of ${shards} bank shard(s) (3 x (K/S x D + pairs x B x K/S), float32: adversaries and the step's logits), over a wasm bank's ${GiB(WASM_MEMORY_BYTES)}; use a smaller bank_size, feature_dim or batch_size, or more shards (bankPeers)`,
    );
  }
}
