// Bank snapshots: the adversaries (D x K), their momentum, the step and the last answer (so a retried
// step is still replayed after a restore), written as a bundle under the run's checkpoint prefix.
// The trainer snapshots at its checkpoint steps and names the snapshot in its checkpoint, so a
// restored bank and a restored trainer agree on the step.
// A sharded bank writes one bundle per shard (each replica its own slice, under shard-<i>/) and then
// the coordinator's bundle, which names them: it is written last, so it publishes the whole set.
import type { NegativesState } from "@adco/core";
import { CreateBankRequest, StepResponse } from "@adco/proto/adversary_bank";
import type { ObjectRef } from "@adco/proto/common";
import { bankSnapshotPrefix, openBundle, type ObjectStore, writeBundle } from "@adco/storage";
import * as tf from "@tensorflow/tfjs-core";
import type { Bank, BankState } from "./bank.js";
import type { ShardReplica } from "./shard-replica.js";
import type { ShardedBank } from "./sharded-bank.js";

interface SnapshotMeta {
  readonly request: unknown;
  readonly step: number;
  readonly filledAdversaries: number;
  /** The same, as snapshots written before the field's rename call it. */
  readonly filledRows?: number;
  readonly pointer?: number;
  readonly last?: unknown;
  /** A sharded bank's coordinator: every shard's snapshot, shard 0 first. */
  readonly shards?: ObjectRef[];
}

export interface Snapshot {
  /** The request that created the bank (or the shard). */
  readonly request: CreateBankRequest;
  /** The state; `negatives` is absent for a sharded bank's coordinator (its slice is shards[0]). */
  readonly state: Omit<BankState, "negatives"> & { negatives?: NegativesState };
  readonly shards?: ObjectRef[];
}

const bytesOf = (t: tf.Tensor) => {
  const data = t.dataSync() as Float32Array;
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
};

async function writeSnapshotBundle(
  store: ObjectStore,
  request: CreateBankRequest,
  key: string,
  negatives: NegativesState | undefined,
  meta: Omit<SnapshotMeta, "request" | "pointer">,
): Promise<ObjectRef> {
  const files = new Map<string, Uint8Array>();
  if (negatives) {
    files.set("weights.f32", bytesOf(negatives.weights));
    if (negatives.velocity) files.set("velocity.f32", bytesOf(negatives.velocity));
    tf.dispose([negatives.weights, negatives.velocity].filter((t) => t !== undefined));
  }
  const bucket = request.snapshotPrefix!.bucket;
  const full: SnapshotMeta = {
    ...meta,
    request: CreateBankRequest.toJSON(request),
    pointer: negatives?.pointer,
  };
  const ref = await writeBundle(store, bucket, key, files, full);
  return { bucket: ref.bucket, key: ref.key, sizeBytes: ref.size, sha256: ref.sha256 };
}

const stepPrefix = (request: CreateBankRequest, step: number) =>
  bankSnapshotPrefix(request.snapshotPrefix!.key, step);

/** A whole bank on one replica. */
export async function writeSnapshot(store: ObjectStore, bank: Bank): Promise<ObjectRef> {
  const state = bank.snapshotState();
  return writeSnapshotBundle(store, bank.request, stepPrefix(bank.request, state.step), state.negatives, {
    step: state.step,
    filledAdversaries: state.filledAdversaries,
    last: state.last ? StepResponse.toJSON(state.last) : undefined,
  });
}

/** One shard's slice, by the replica that holds it. */
export async function writeShardSnapshot(store: ObjectStore, replica: ShardReplica): Promise<ObjectRef> {
  const state = replica.snapshotState();
  const key = `${stepPrefix(replica.request, state.step)}shard-${replica.index}/`;
  return writeSnapshotBundle(store, replica.request, key, state.negatives, {
    step: state.step,
    filledAdversaries: 0,
  });
}

/** A sharded bank: the coordinator's slice, then every peer's (each by its replica), then the coordinator's bundle. */
export async function writeShardedSnapshot(store: ObjectStore, bank: ShardedBank): Promise<ObjectRef> {
  const { local, ...state } = bank.snapshotState();
  const prefix = stepPrefix(bank.request, state.step);
  const own = await writeSnapshotBundle(store, bank.shardRequest(0), `${prefix}shard-0/`, local.negatives, {
    step: local.step,
    filledAdversaries: 0,
  });
  const peers = await bank.snapshotPeers();
  return writeSnapshotBundle(store, bank.request, prefix, undefined, {
    step: state.step,
    filledAdversaries: state.filledAdversaries,
    last: state.last ? StepResponse.toJSON(state.last) : undefined,
    shards: [own, ...peers],
  });
}

/** Reads a snapshot: the creating request and the state (tensors the caller disposes). */
export async function readSnapshot(store: ObjectStore, manifest: ObjectRef): Promise<Snapshot> {
  const bundle = await openBundle<SnapshotMeta>(store, manifest.bucket, manifest.key);
  const request = CreateBankRequest.fromJSON(bundle.meta.request);
  const columns =
    request.shard && request.shard.count > 1 ? Number(request.shard.adversaries) : Number(request.size);
  const tensor = async (name: string) => {
    const bytes = await bundle.read(name);
    const copy = new Float32Array(bytes.byteLength / 4);
    new Uint8Array(copy.buffer).set(bytes);
    return tf.tensor2d(copy, [request.dim, columns]);
  };
  const negatives = bundle.has("weights.f32")
    ? {
        weights: await tensor("weights.f32"),
        velocity: bundle.has("velocity.f32") ? await tensor("velocity.f32") : undefined,
        pointer: bundle.meta.pointer,
      }
    : undefined;
  return {
    request,
    shards: bundle.meta.shards,
    state: {
      step: bundle.meta.step,
      filledAdversaries: bundle.meta.filledAdversaries ?? bundle.meta.filledRows ?? 0,
      last: bundle.meta.last ? StepResponse.fromJSON(bundle.meta.last) : undefined,
      negatives,
    },
  };
}

export function disposeSnapshot(snapshot: Snapshot): void {
  const n = snapshot.state.negatives;
  if (n) tf.dispose([n.weights, n.velocity].filter((t) => t !== undefined));
}
