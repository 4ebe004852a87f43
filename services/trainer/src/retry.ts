// Trying a call again while its peer (the bank, object storage) cannot be reached, and only then:
// the classification is @adco/service-kit's isRetryable, so a final error (INVALID_ARGUMENT,
// FAILED_PRECONDITION, an INTERNAL check, a corrupt or missing object) fails at once with its own
// status and message. The wait is bounded by retryTimeoutSeconds, and cut short by the run's stop.
import { setTimeout as sleep } from "node:timers/promises";
import { isRetryable, unavailable } from "@adco/service-kit";
import { withStorageStatus } from "@adco/storage";

/** A retry given up because the run was asked to stop: the run ends stopped, not failed. */
export class RetryAbandonedError extends Error {
  override name = "RetryAbandonedError";
  constructor(what: string, cause: unknown) {
    super(`${what}: given up by the stop (${(cause as Error).message})`, { cause });
  }
}

export interface RetryOptions {
  /** Give up after this long of retryable failures. */
  readonly timeoutMs: number;
  /** First wait between attempts, doubling up to maxWaitMs. */
  readonly firstWaitMs?: number;
  readonly maxWaitMs?: number;
  /** Aborted: no more waits; a retryable failure then ends as RetryAbandonedError. */
  readonly signal?: AbortSignal;
  /** Each retryable failure, with the error and how long the retry goes on at most. */
  readonly onRetry?: (error: unknown, attempt: number) => void;
  /** The error thrown once timeoutMs has passed. */
  readonly timedOut: (error: unknown) => Error;
  /** Classification of a failure; isRetryable by default. */
  readonly retryable?: (error: unknown) => boolean;
}

export async function retrying<T>(what: string, work: () => Promise<T>, options: RetryOptions): Promise<T> {
  const giveUp = Date.now() + options.timeoutMs;
  const retryable = options.retryable ?? isRetryable;
  let wait = options.firstWaitMs ?? 200;
  for (let attempt = 1; ; attempt++) {
    try {
      return await work();
    } catch (e) {
      if (!retryable(e)) throw e;
      if (options.signal?.aborted) throw new RetryAbandonedError(what, e);
      if (Date.now() + wait > giveUp) throw options.timedOut(e);
      options.onRetry?.(e, attempt);
      await sleep(wait, undefined, { signal: options.signal }).catch(() => {});
      if (options.signal?.aborted) throw new RetryAbandonedError(what, e);
      wait = Math.min(options.maxWaitMs ?? 5000, wait * 2);
    }
  }
}

/** What a run's object-store calls need: its budget, its stop, and where to say that it waits. */
export interface StoreRetry {
  readonly timeoutMs: number;
  readonly signal?: AbortSignal;
  /** Once per outage: "object store unreachable (...), retrying for up to N s". */
  readonly onOutage?: (message: string) => void;
  /** Every retry (for the log). */
  readonly onRetry?: (what: string, error: string) => void;
}

/**
 * Storage work of a run, tried again while the object store cannot be reached (the storage client
 * has already retried for ~3 s), for up to `timeoutMs`. Errors come out as gRPC statuses
 * (withStorageStatus): UNAVAILABLE naming how long the store was unreachable, or the final error.
 */
export function storeRetrying<T>(what: string, work: () => Promise<T>, options: StoreRetry): Promise<T> {
  const seconds = Math.round(options.timeoutMs / 1000);
  return retrying(what, () => withStorageStatus(work), {
    timeoutMs: options.timeoutMs,
    firstWaitMs: 250,
    maxWaitMs: 2000,
    signal: options.signal,
    onRetry: (e, attempt) => {
      const message = (e as Error).message;
      if (attempt === 1)
        options.onOutage?.(`object store unreachable (${what}), retrying for up to ${seconds} s: ${message}`);
      options.onRetry?.(what, message);
    },
    timedOut: (e) =>
      unavailable(`${what}: the object store was unreachable for ${seconds} s: ${(e as Error).message}`),
  });
}
