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
