// Which trainer owns a run: exactly one at a time. A trainer that starts or resumes a run takes it
// over: it reads the run's owner record (runs/<run>/owner.json in the trainer's bucket), refuses while
// another trainer holds a live lease there, and writes itself in with the next fence token. While it
// trains it renews the lease every third of the lease time and checks that the record still names
// it; the bank refuses calls with an older fence (ABORTED). A trainer that finds itself taken over
// stops without writing anything (FencedError). The object store has no compare-and-swap, so two
// trainers may take the same token at once: the order of fences (token, then owner) picks one, the
// same way at the bank and here.
import { compareFences, fenceText } from "@adco/proto";
import type { Fence } from "@adco/proto/adversary_bank";
import { failedPrecondition, type Logger } from "@adco/service-kit";
import { type ObjectStore, runOwnerKey, StorageError } from "@adco/storage";

/** runs/<run>/owner.json. */
export interface OwnerRecord extends Fence {
  /** When the owner last renewed its lease (its clock). */
  readonly renewedUnixMs: number;
  /** How long the lease lasts after a renewal. */
  readonly leaseMs: number;
  /** The owner let the run go (shutdown, stop, end): the next trainer takes it at once. */
  readonly released: boolean;
}

/** This trainer was taken over: it must stop the run without writing. */
export class FencedError extends Error {
  override name = "FencedError";
}

export interface OwnershipOptions {
  readonly store: Pick<ObjectStore, "getJson" | "putJson">;
  /** The trainer's bucket, where every run's status and owner record live. */
  readonly bucket: string;
  /** This trainer's id (config trainerId). */
  readonly trainerId: string;
  readonly leaseMs: number;
  readonly log: Logger;
}

export async function readOwner(
  store: Pick<ObjectStore, "getJson">,
  bucket: string,
  runId: string,
): Promise<OwnerRecord | undefined> {
  try {
    return await store.getJson<OwnerRecord>(bucket, runOwnerKey(runId));
  } catch (e) {
    if (e instanceof StorageError && e.kind === "not-found") return undefined;
    throw e;
  }
}

/** Milliseconds left of another trainer's lease on the run; 0 when `trainerId` may take it now. */
export function leaseLeftMs(record: OwnerRecord | undefined, trainerId: string, nowUnixMs: number): number {
  if (!record || record.released || record.owner === trainerId) return 0;
  return Math.max(0, record.renewedUnixMs + record.leaseMs - nowUnixMs);
}

export class RunOwnership {
  private timer: NodeJS.Timeout | undefined;
  private takenOver: FencedError | undefined;

  private constructor(
    readonly runId: string,
    readonly fence: Fence,
    private readonly options: OwnershipOptions,
  ) {}

  /**
   * Takes the run over with the next token: FAILED_PRECONDITION while another trainer's lease is
   * live (a trainer with the same id, a restart of this one, takes it at once).
   */
  static async take(options: OwnershipOptions, runId: string): Promise<RunOwnership> {
    const found = await readOwner(options.store, options.bucket, runId);
    const left = leaseLeftMs(found, options.trainerId, Date.now());
    if (left > 0) {
      throw failedPrecondition(
        `run ${runId} is being trained by trainer ${JSON.stringify(found!.owner)} (its lease ends in ${Math.ceil(left / 1000)} s unless renewed); stop it there, or wait until that trainer is gone`,
      );
    }
    const fence: Fence = { token: (found?.token ?? 0) + 1, owner: options.trainerId };
    const ownership = new RunOwnership(runId, fence, options);
    await ownership.write(false);
    if (found && !found.released && found.owner !== options.trainerId) {
      options.log.warn(
        { runId, from: fenceText(found), to: fenceText(fence) },
        "took the run over from a trainer whose lease ended",
      );
    }
    return ownership;
  }

  /**
   * Throws FencedError when the record names a newer owner (or this trainer was found taken over by
   * the bank or an earlier check). A record older than this trainer's (a racing taker that lost) is
   * written over with this trainer's, which renews the lease.
   */
  async check(): Promise<void> {
    if (this.takenOver) throw this.takenOver;
    const found = await readOwner(this.options.store, this.options.bucket, this.runId);
    if (found && compareFences(found, this.fence) > 0) {
      throw this.fenced(`the run was taken over by ${fenceText(found)}`);
    }
    await this.write(false);
  }

  /** Records a takeover found elsewhere (the bank's ABORTED): every later check throws it. */
  fenced(reason: string): FencedError {
    this.takenOver ??= new FencedError(
      `${reason}; this trainer (${fenceText(this.fence)}) stops the run without writing`,
    );
    return this.takenOver;
  }

  /** The takeover found so far (by a check, or by the bank), if any. */
  get lost(): FencedError | undefined {
    return this.takenOver;
  }

  /** Renews the lease every third of its length until close(); `onLost` once when taken over. */
  keepRenewed(onLost: (error: FencedError) => void): void {
    const every = Math.max(200, Math.floor(this.options.leaseMs / 3));
    this.timer = setInterval(() => {
      this.check().catch((e: unknown) => {
        if (e instanceof FencedError) {
          this.close();
          onLost(e);
        } else {
          // The store is down: the lease may run out, and then a takeover fences this trainer.
          this.options.log.warn(
            { runId: this.runId, err: (e as Error).message },
            "could not renew the run's lease",
          );
        }
      });
    }, every);
    this.timer.unref();
  }

  /** Lets the run go, so that the next trainer takes it at once (not when still owned: nothing written). */
  async release(): Promise<void> {
    this.close();
    if (this.takenOver) return;
    const found = await readOwner(this.options.store, this.options.bucket, this.runId);
    if (found && compareFences(found, this.fence) !== 0) return;
    await this.write(true);
  }

  close(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private async write(released: boolean): Promise<void> {
    const record: OwnerRecord = {
      ...this.fence,
      renewedUnixMs: Date.now(),
      leaseMs: this.options.leaseMs,
      released,
    };
    await this.options.store.putJson(this.options.bucket, runOwnerKey(this.runId), record);
  }
}
