// Bank snapshots: the adversaries (D x K), their momentum, the step and the last answer (so a retried
// step is still replayed after a restore), written as a bundle under the run's checkpoint prefix.
// The trainer snapshots at its checkpoint steps and names the snapshot in its checkpoint, so a
// restored bank and a restored trainer agree on the step.
import { CreateBankRequest, StepResponse } from "@adco/proto/adversary_bank";
import type { ObjectRef } from "@adco/proto/common";
import { bankSnapshotPrefix, openBundle, type ObjectStore, writeBundle } from "@adco/storage";
import * as tf from "@tensorflow/tfjs-core";
import type { Bank, BankState } from "./bank.js";

interface SnapshotMeta {
  readonly request: unknown;
  readonly step: number;
  readonly filledRows: number;
  readonly pointer?: number;
  readonly last?: unknown;
}

const bytesOf = (t: tf.Tensor) => {
  const data = t.dataSync() as Float32Array;
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
};

export async function writeSnapshot(store: ObjectStore, bank: Bank, prefix: ObjectRef): Promise<ObjectRef> {
  const state = bank.snapshotState();
  const files = new Map<string, Uint8Array>([["weights.f32", bytesOf(state.negatives.weights)]]);
  if (state.negatives.velocity) files.set("velocity.f32", bytesOf(state.negatives.velocity));
  const meta: SnapshotMeta = {
    request: CreateBankRequest.toJSON(bank.request),
    step: state.step,
    filledRows: state.filledRows,
    pointer: state.negatives.pointer,
    last: state.last ? StepResponse.toJSON(state.last) : undefined,
  };
  tf.dispose([state.negatives.weights, state.negatives.velocity].filter((t) => t !== undefined));
  const key = bankSnapshotPrefix(prefix.key, state.step);
  const ref = await writeBundle(store, prefix.bucket, key, files, meta);
  return { bucket: ref.bucket, key: ref.key, sizeBytes: ref.size, sha256: ref.sha256 };
}

/** Reads a snapshot: the bank's creating request and its state (tensors the caller disposes). */
export async function readSnapshot(
  store: ObjectStore,
  manifest: ObjectRef,
): Promise<{ request: CreateBankRequest; state: BankState }> {
  const bundle = await openBundle<SnapshotMeta>(store, manifest.bucket, manifest.key);
  const request = CreateBankRequest.fromJSON(bundle.meta.request);
  const shape: [number, number] = [request.dim, Number(request.size)];
  const tensor = async (name: string) => {
    const bytes = await bundle.read(name);
    const copy = new Float32Array(bytes.byteLength / 4);
    new Uint8Array(copy.buffer).set(bytes);
    return tf.tensor2d(copy, shape);
  };
  return {
    request,
    state: {
      step: bundle.meta.step,
      filledRows: bundle.meta.filledRows,
      last: bundle.meta.last ? StepResponse.fromJSON(bundle.meta.last) : undefined,
      negatives: {
        weights: await tensor("weights.f32"),
        velocity: bundle.has("velocity.f32") ? await tensor("velocity.f32") : undefined,
        pointer: bundle.meta.pointer,
      },
    },
  };
}
