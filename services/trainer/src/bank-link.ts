// The trainer's side of the adversary bank: one Step stream per run, one request in flight. A step
// that fails on the way (bank restarting, connection reset, no answer in time) is sent again with
// the same step id, which the bank answers from its cache if it had applied it. A bank that answers
// NOT_FOUND has lost the run (it restarted): the run resumes from its latest checkpoint. Every call
// carries the run's fence; ABORTED means another trainer has taken the run over (FencedError).
import * as grpc from "@grpc/grpc-js";
import {
  AdversaryBankClient,
  type BankInfo,
  type CreateBankRequest,
  type Fence,
  type SnapshotResponse,
  type StepRequest,
  type StepResponse,
} from "@adco/proto/adversary_bank";
import type { ObjectRef } from "@adco/proto/common";
import {
  channelOptions,
  clientCredentials,
  errorText,
  isRetryable,
  RpcError,
  statusOf,
  unaryCall,
} from "@adco/service-kit";
import { FencedError } from "./ownership.js";
import { RetryAbandonedError, retrying } from "./retry.js";

export class BankLostError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "BankLostError";
  }
}

interface Pending {
  readonly step: number;
  resolve(response: StepResponse): void;
  reject(error: Error): void;
}

export interface BankLinkOptions {
  readonly address: string;
  /** The run's fence, sent with every call that changes the bank. */
  readonly fence?: Fence;
  /** Give up after the bank has been unreachable this long. */
  readonly retryTimeoutMs: number;
  /** No answer to a step within this long: the call is dropped and the step sent again. */
  readonly stepTimeoutMs?: number;
  readonly onRetry?: (what: string, error: string) => void;
  /** The run's stop: retries end (RetryAbandonedError) instead of waiting on. */
  readonly signal?: AbortSignal;
}

export class BankLink {
  private readonly client: AdversaryBankClient;
  private call: grpc.ClientDuplexStream<StepRequest, StepResponse> | undefined;
  private pending: Pending | undefined;

  constructor(private readonly options: BankLinkOptions) {
    this.client = new AdversaryBankClient(
      options.address,
      clientCredentials("adversary-bank"),
      channelOptions(),
    );
  }

  /**
   * Retries `work` while the bank is unreachable (isRetryable), up to retryTimeoutMs; NOT_FOUND is
   * BankLostError, ABORTED FencedError; any other error is final and fails at once with its own
   * status and message.
   */
  private async retrying<T>(what: string, work: () => Promise<T>): Promise<T> {
    const { address, retryTimeoutMs } = this.options;
    try {
      return await retrying(what, work, {
        timeoutMs: retryTimeoutMs,
        signal: this.options.signal,
        retryable: (e) => statusOf(e) !== grpc.status.ABORTED && isRetryable(e),
        onRetry: (e) => this.options.onRetry?.(what, errorText(e)),
        timedOut: (e) =>
          new RpcError(
            statusOf(e) ?? grpc.status.UNAVAILABLE,
            `${what}: the bank at ${address} was unreachable for ${retryTimeoutMs / 1000} s: ${errorText(e)}`,
          ),
      });
    } catch (e) {
      if (e instanceof RetryAbandonedError || e instanceof RpcError) throw e;
      const code = statusOf(e);
      if (code === grpc.status.NOT_FOUND) throw new BankLostError(`${what}: ${errorText(e)}`);
      if (code === grpc.status.ABORTED)
        throw new FencedError(`${what}: the bank refused it: ${errorText(e)}`);
      if (code === undefined) throw e;
      throw new RpcError(code, `${what}: the bank refused it: ${errorText(e)}`);
    }
  }

  createBank(request: CreateBankRequest): Promise<BankInfo> {
    const fenced = { ...request, fence: this.options.fence };
    return this.retrying("CreateBank", () => unaryCall(this.client.createBank.bind(this.client), fenced));
  }

  /** Drops the run's bank (every shard); a bank that does not hold the run is already so. */
  async deleteBank(runId: string): Promise<void> {
    try {
      await this.retrying("DeleteBank", () =>
        unaryCall(this.client.deleteBank.bind(this.client), { runId, fence: this.options.fence }),
      );
    } catch (e) {
      if (!(e instanceof BankLostError)) throw e;
    }
  }

  restore(runId: string, manifest: ObjectRef): Promise<BankInfo> {
    return this.retrying("Restore", () =>
      unaryCall(
        this.client.restore.bind(this.client),
        { runId, manifest, fence: this.options.fence },
        120_000,
      ),
    );
  }

  snapshot(runId: string, step: number): Promise<SnapshotResponse> {
    return this.retrying("Snapshot", () =>
      unaryCall(this.client.snapshot.bind(this.client), { runId, step, fence: this.options.fence }, 120_000),
    );
  }

  step(request: StepRequest): Promise<StepResponse> {
    const fenced = { ...request, fence: this.options.fence };
    return this.retrying(`Step ${request.step}`, () => this.send(fenced));
  }

  private openCall(): grpc.ClientDuplexStream<StepRequest, StepResponse> {
    const call = this.client.step();
    call.on("data", (response: StepResponse) => {
      const pending = this.pending;
      if (!pending || response.step !== pending.step) return;
      this.pending = undefined;
      pending.resolve(response);
    });
    const fail = (error: Error) => {
      if (this.call === call) this.call = undefined;
      const pending = this.pending;
      this.pending = undefined;
      pending?.reject(error);
    };
    call.on("error", fail);
    call.on("end", () =>
      fail(Object.assign(new Error("the bank ended the Step stream"), { code: grpc.status.UNAVAILABLE })),
    );
    return call;
  }

  private send(request: StepRequest): Promise<StepResponse> {
    this.call ??= this.openCall();
    const call = this.call;
    return new Promise<StepResponse>((resolve, reject) => {
      const timer = setTimeout(() => {
        // The answer may still come on a new call: the bank replays the step id.
        this.pending = undefined;
        if (this.call === call) this.call = undefined;
        call.cancel();
        reject(Object.assign(new Error("no answer in time"), { code: grpc.status.DEADLINE_EXCEEDED }));
      }, this.options.stepTimeoutMs ?? 120_000);
      this.pending = {
        step: request.step,
        resolve: (r) => {
          clearTimeout(timer);
          resolve(r);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      call.write(request);
    });
  }

  close(): void {
    const call = this.call;
    this.call = undefined;
    if (call) {
      call.on("error", () => {});
      call.end();
    }
    this.client.close();
  }
}
