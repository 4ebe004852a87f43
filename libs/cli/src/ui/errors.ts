// Errors as the dashboard's browser sees them: the gRPC status name and the service's message,
// with the HTTP status that says the same to a browser or curl.
import * as grpc from "@grpc/grpc-js";

/** An error the browser sees: the gRPC status name and the service's message. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

// gRPC status -> HTTP status, for the browser and for curl; the JSON body carries the gRPC name.
const HTTP_OF_GRPC: Partial<Record<grpc.status, number>> = {
  [grpc.status.INVALID_ARGUMENT]: 400,
  [grpc.status.FAILED_PRECONDITION]: 409,
  [grpc.status.ALREADY_EXISTS]: 409,
  [grpc.status.RESOURCE_EXHAUSTED]: 429,
  [grpc.status.NOT_FOUND]: 404,
  [grpc.status.UNAUTHENTICATED]: 401,
  [grpc.status.PERMISSION_DENIED]: 403,
  [grpc.status.UNAVAILABLE]: 503,
  [grpc.status.DEADLINE_EXCEEDED]: 504,
};

export function apiErrorOf(e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  const grpcError = e as Partial<grpc.ServiceError>;
  if (typeof grpcError.code === "number" && grpc.status[grpcError.code])
    return new ApiError(
      HTTP_OF_GRPC[grpcError.code] ?? 502,
      grpc.status[grpcError.code]!,
      grpcError.details || grpcError.message || "",
    );
  return new ApiError(500, "INTERNAL", (e as Error).message ?? String(e));
}
