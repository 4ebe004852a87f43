// Errors as gRPC status codes: handlers throw an RpcError and the kit sends its code and message.
// Anything else that escapes a handler is a bug: it is logged with its stack and sent as INTERNAL.
import { status } from "@grpc/grpc-js";
import { TensorError } from "@adco/proto";

export { status };

export class RpcError extends Error {
  constructor(
    readonly code: status,
    message: string,
  ) {
    super(message);
    this.name = "RpcError";
  }
}

export const invalidArgument = (message: string) => new RpcError(status.INVALID_ARGUMENT, message);
export const notFound = (message: string) => new RpcError(status.NOT_FOUND, message);
export const alreadyExists = (message: string) => new RpcError(status.ALREADY_EXISTS, message);
export const failedPrecondition = (message: string) => new RpcError(status.FAILED_PRECONDITION, message);
export const unavailable = (message: string) => new RpcError(status.UNAVAILABLE, message);
export const unimplemented = (message: string) => new RpcError(status.UNIMPLEMENTED, message);
export const resourceExhausted = (message: string) => new RpcError(status.RESOURCE_EXHAUSTED, message);

/** Maps a thrown value to the status sent to the client. */
export function toRpcError(error: unknown): RpcError {
  if (error instanceof RpcError) return error;
  if (error instanceof TensorError) return invalidArgument(error.message);
  return new RpcError(
    status.INTERNAL,
    `internal error: ${error instanceof Error ? error.message : String(error)}`,
  );
}

/**
 * Statuses a call may succeed on if it is tried again: the peer is down, restarting, slow or busy.
 * Every other status is final, since asking again gets the same answer: INVALID_ARGUMENT,
 * FAILED_PRECONDITION, OUT_OF_RANGE, ALREADY_EXISTS, PERMISSION_DENIED, UNAUTHENTICATED, DATA_LOSS,
 * UNIMPLEMENTED, NOT_FOUND, and INTERNAL (the kit sends INTERNAL for an exception a handler did not
 * expect, which the same request raises again). UNKNOWN is retried: no adco service sends it, so it
 * comes from the transport or a proxy between.
 */
const RETRYABLE_STATUSES: ReadonlySet<status> = new Set([
  status.UNAVAILABLE,
  status.DEADLINE_EXCEEDED,
  status.ABORTED,
  status.CANCELLED,
  status.RESOURCE_EXHAUSTED,
  status.UNKNOWN,
]);

/**
 * Failures that grpc-js reports with a final-looking status although the transport broke (a stream
 * reset by a dying peer), and RESOURCE_EXHAUSTED that is a message over the size limit (final).
 */
const TRANSPORT_INTERNAL = /RST_STREAM|Connection (dropped|closed)|socket hang up|ECONNRESET/i;
const MESSAGE_TOO_LARGE = /larger than max|message too large/i;

/** The gRPC status of an error (an RpcError, a grpc-js ServiceError), or undefined when it has none. */
export function statusOf(error: unknown): status | undefined {
  const code = (error as { code?: unknown } | undefined)?.code;
  return typeof code === "number" && status[code] !== undefined ? (code as status) : undefined;
}

/**
 * The status a grpc-js error message starts with ("3 INVALID_ARGUMENT: ..."), for errors that reach
 * us only as text (the data plane's worker-lost event).
 */
export function statusOfMessage(message: string): status | undefined {
  const match = /^(\d+) ([A-Z_]+): /.exec(message);
  if (!match) return undefined;
  const code = Number(match[1]) as status;
  return status[code] === match[2] ? code : undefined;
}

/**
 * Whether a failed call may succeed when tried again: the one classification of adco, used by the
 * trainer for bank calls, data workers and object storage (whose errors map to statuses through
 * @adco/storage's storageRpcError: an unreachable store is UNAVAILABLE, a missing or corrupt object
 * is final). An error without a status is final: it is a bug or a check of ours.
 */
export function isRetryable(error: unknown): boolean {
  const code = statusOf(error);
  if (code === undefined) return false;
  const text = errorText(error);
  if (code === status.INTERNAL) return TRANSPORT_INTERNAL.test(text);
  if (code === status.RESOURCE_EXHAUSTED) return !MESSAGE_TOO_LARGE.test(text);
  return RETRYABLE_STATUSES.has(code);
}

/** The text of an error as a peer sent it (a ServiceError's details, else its message). */
export function errorText(error: unknown): string {
  const e = error as { details?: unknown; message?: unknown } | undefined;
  if (typeof e?.details === "string" && e.details !== "") return e.details;
  return typeof e?.message === "string" ? e.message : String(error);
}
