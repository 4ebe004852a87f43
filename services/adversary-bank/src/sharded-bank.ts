// The coordinator of a sharded bank (shard 0): the trainer's CreateBank names the other replicas in
// `peers`; this replica holds the first slice of the K adversaries and each peer one more. A step is the
// core's adcoStep, its two rounds sent to the peers over AdversaryBankShard and to the own
// slice in process through the same messages. A peer that lost its shard (restarted) or disagrees on
// the step makes the whole bank lost (NOT_FOUND), so the trainer restores every shard from the last
// snapshot instead of training on with a bank whose slices are at different steps.
import {
  adcoStep,
  type ContrastPair,
  type ShardPeer,
  type ShardSlice,
  shardSlices,
  stepOverPeers,
} from "@adco/core";
import {
  AdversaryBankClient,
  AdversaryBankShardClient,
  BankUpdate,
  type CreateBankRequest,
  type PartialLogSumExpRequest,
  type PartialLogSumExpResponse,
  type ApplyShardRequest,
  type ApplyShardResponse,
  type StepRequest,
} from "@adco/proto/adversary_bank";
import type { ObjectRef } from "@adco/proto/common";
import {
  channelOptions,
  clientCredentials,
  failedPrecondition,
  RpcError,
  status,
  unavailable,
  unaryCall,
} from "@adco/service-kit";
import { type ObjectStore, withStorageStatus } from "@adco/storage";
import * as grpc from "@grpc/grpc-js";
import { coreHyper, reductionOf, SteppedBank, type StepLog } from "./run-bank.js";
import { ShardReplica, type ShardState } from "./shard-replica.js";
import { decodeApplied, decodePartials, encodeApply, encodeQueries } from "./shard-wire.js";
import { disposeSnapshot, readSnapshot, type Snapshot, writeShardedSnapshot } from "./snapshot.js";

/** How long the coordinator waits for a peer's round before the step fails as UNAVAILABLE. */
const PEER_TIMEOUT_MS = 60_000;

/** The two rounds of one shard, as messages: a peer over gRPC or the coordinator's own slice. */
interface ShardEndpoint {
  readonly name: string;
  partialLogSumExp(request: PartialLogSumExpRequest): Promise<PartialLogSumExpResponse>;
  applyShard(request: ApplyShardRequest): Promise<ApplyShardResponse>;
}

/** A peer replica: its AdversaryBank (create, snapshot, restore, delete) and AdversaryBankShard clients. */
export class PeerLink implements ShardEndpoint {
  readonly bank: AdversaryBankClient;
  private readonly shard: AdversaryBankShardClient;

  constructor(
    readonly index: number,
    readonly address: string,
  ) {
    this.bank = new AdversaryBankClient(address, clientCredentials("adversary-bank"), channelOptions());
    this.shard = new AdversaryBankShardClient(address, clientCredentials("adversary-bank"), channelOptions());
  }

  get name(): string {
    return `shard ${this.index} at ${this.address}`;
  }

  partialLogSumExp(request: PartialLogSumExpRequest): Promise<PartialLogSumExpResponse> {
    return this.call(unaryCall(this.shard.partialLogSumExp.bind(this.shard), request, PEER_TIMEOUT_MS));
  }

  applyShard(request: ApplyShardRequest): Promise<ApplyShardResponse> {
    return this.call(unaryCall(this.shard.applyShard.bind(this.shard), request, PEER_TIMEOUT_MS));
  }

  /** A peer's error as the status the trainer should see (see the module comment). */
  async call<T>(pending: Promise<T>): Promise<T> {
    try {
      return await pending;
    } catch (e) {
      const err = e as grpc.ServiceError;
      const detail = `${this.name}: ${err.details ?? err.message}`;
      if (err.code === status.NOT_FOUND || err.code === status.FAILED_PRECONDITION)
        throw new PeerLostError(detail);
      if (err.code === status.UNAVAILABLE || err.code === status.DEADLINE_EXCEEDED) throw unavailable(detail);
      throw new RpcError(err.code ?? status.INTERNAL, detail);
    }
  }

  close(): void {
    this.bank.close();
    this.shard.close();
  }
}

/** A peer lost its shard or is at another step: the sharded bank as a whole is lost. */
export class PeerLostError extends RpcError {
  constructor(detail: string) {
    super(status.NOT_FOUND, `the sharded bank lost a shard (${detail}); restore it from a snapshot`);
  }
}

/** The coordinator's own slice behind the same messages as a peer's. */
class LocalEndpoint implements ShardEndpoint {
  readonly name = "shard 0 (this replica)";
  constructor(readonly replica: ShardReplica) {}
  partialLogSumExp(request: PartialLogSumExpRequest) {
    return Promise.resolve(this.replica.partialLogSumExp(request));
  }
  applyShard(request: ApplyShardRequest) {
    return Promise.resolve(this.replica.applyShard(request));
  }
}

/** The core's view of an endpoint for one step. */
function peerForStep(endpoint: ShardEndpoint, runId: string, step: number): ShardPeer {
  return {
    async partials(queries) {
      const response = await endpoint.partialLogSumExp({ runId, step, queries: encodeQueries(queries) });
      return decodePartials(response, queries.length, queries[0]!.shape[0], endpoint.name);
    },
    async apply(input) {
      return decodeApplied(
        await endpoint.applyShard(encodeApply(runId, step, input)),
        input.queries,
        endpoint.name,
      );
    },
  };
}

/** What a sharded bank's snapshot holds besides the shards' own snapshots. */
export type ShardedState = StepLog;

export class ShardedBank extends SteppedBank {
  readonly slices: readonly ShardSlice[];
  private readonly local: ShardReplica;
  readonly peers: readonly PeerLink[];

  private constructor(request: CreateBankRequest) {
    super(request, request.peers.length + 1);
    this.slices = shardSlices(Number(request.size), request.peers.length + 1);
    this.local = new ShardReplica(this.shardRequest(0));
    this.peers = request.peers.map((address, i) => new PeerLink(i + 1, address));
  }

  /**
   * Creates the bank: the own slice here, and on every peer a fresh shard (a shard a peer still holds
   * from an earlier bank of the run is deleted first: a new coordinator bank starts every slice anew).
   */
  static async create(request: CreateBankRequest): Promise<ShardedBank> {
    const bank = new ShardedBank(request);
    try {
      await Promise.all(
        bank.peers.map(async (peer) => {
          await peer
            .call(unaryCall(peer.bank.deleteBank.bind(peer.bank), { runId: request.runId }))
            .catch((e) => {
              if (!(e instanceof PeerLostError)) throw e;
            });
          await peer.call(unaryCall(peer.bank.createBank.bind(peer.bank), bank.shardRequest(peer.index)));
        }),
      );
      return bank;
    } catch (e) {
      bank.dispose();
      throw e;
    }
  }

  /** The CreateBank a shard gets: the trainer's request with its slice and no peers. */
  shardRequest(index: number): CreateBankRequest {
    const slice = this.slices[index]!;
    return {
      ...this.request,
      peers: [],
      shard: { index, count: this.slices.length, adversaryOffset: slice.offset, adversaries: slice.count },
    };
  }

  snapshot(store: ObjectStore) {
    return writeShardedSnapshot(store, this);
  }

  protected async contrast(pairs: readonly ContrastPair[], request: StepRequest, fillAt: number | undefined) {
    const endpoints: ShardEndpoint[] = [new LocalEndpoint(this.local), ...this.peers];
    const rounds = adcoStep(
      pairs,
      this.slices,
      coreHyper(this.request.hyper!),
      reductionOf(request),
      request.update === BankUpdate.BANK_UPDATE_TRAIN,
      fillAt === undefined ? undefined : { keys: pairs[0]!.key, start: fillAt },
    );
    return stepOverPeers(
      rounds,
      endpoints.map((e) => peerForStep(e, request.runId, request.step)),
    );
  }

  /** The coordinator's state and its own slice's, for a snapshot. */
  snapshotState(): ShardedState & { local: ShardState } {
    return { ...this.stepLog(), local: this.local.snapshotState() };
  }

  /** Snapshots of every peer's slice at the applied step, in shard order. */
  async snapshotPeers(): Promise<ObjectRef[]> {
    return Promise.all(
      this.peers.map(async (peer) => {
        const response = await peer.call(
          unaryCall(
            peer.bank.snapshot.bind(peer.bank),
            { runId: this.request.runId, step: this.step },
            PEER_TIMEOUT_MS,
          ),
        );
        if (!response.manifest) throw failedPrecondition(`${peer.name} answered Snapshot without a manifest`);
        return response.manifest;
      }),
    );
  }

  /**
   * Restores the coordinator from its bundle, its own slice from shard 0's, and every peer's slice
   * through the peer's Restore of its bundle.
   */
  async restore(snapshot: Snapshot, store: ObjectStore): Promise<void> {
    const shards = snapshot.shards ?? [];
    if (shards.length !== this.peers.length + 1) {
      throw failedPrecondition(`the snapshot names ${shards.length} shards for ${this.peers.length + 1}`);
    }
    const own = await withStorageStatus(() => readSnapshot(store, shards[0]!));
    try {
      await Promise.all(
        this.peers.map((peer, i) =>
          peer.call(
            unaryCall(
              peer.bank.restore.bind(peer.bank),
              { runId: this.request.runId, manifest: shards[i + 1] },
              PEER_TIMEOUT_MS,
            ),
          ),
        ),
      );
      this.local.restoreState({ step: own.state.step, negatives: own.state.negatives! });
    } finally {
      disposeSnapshot(own);
    }
    this.restoreStepLog(snapshot.state);
  }

  /** Drops the peers' slices (best effort: a peer that is gone has nothing to drop). */
  async deletePeers(): Promise<void> {
    await Promise.allSettled(
      this.peers.map((peer) =>
        unaryCall(peer.bank.deleteBank.bind(peer.bank), { runId: this.request.runId }, 5000),
      ),
    );
  }

  dispose(): void {
    this.local.dispose();
    for (const peer of this.peers) peer.close();
  }
}
