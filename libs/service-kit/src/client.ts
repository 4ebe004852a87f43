// Client side of the kit: channel options that match the servers' message limits, and a deadline on
// every call (a call without one can hang forever on a dead peer).
import * as grpc from "@grpc/grpc-js";
import { service as healthService } from "grpc-health-check";

export const DEFAULT_CALL_TIMEOUT_MS = 30_000;

export function channelOptions(maxMessageBytes = 64 << 20): grpc.ChannelOptions {
  return {
    "grpc.max_receive_message_length": maxMessageBytes,
    "grpc.max_send_message_length": maxMessageBytes,
    "grpc.keepalive_time_ms": 30_000,
    "grpc.keepalive_timeout_ms": 10_000,
  };
}

/** Call options with a deadline `timeoutMs` from now. */
export function deadline(timeoutMs = DEFAULT_CALL_TIMEOUT_MS): grpc.CallOptions {
  return { deadline: new Date(Date.now() + timeoutMs) };
}

type UnaryMethod<Req, Res> = (
  request: Req,
  metadata: grpc.Metadata,
  options: Partial<grpc.CallOptions>,
  callback: (error: grpc.ServiceError | null, response: Res) => void,
) => grpc.ClientUnaryCall;

/** Promise form of a generated unary client method, always with a deadline. */
export function unaryCall<Req, Res>(
  method: UnaryMethod<Req, Res>,
  request: Req,
  timeoutMs = DEFAULT_CALL_TIMEOUT_MS,
): Promise<Res> {
  return new Promise((resolve, reject) => {
    method(request, new grpc.Metadata(), deadline(timeoutMs), (error, response) =>
      error ? reject(error) : resolve(response),
    );
  });
}

/** Resolves when the channel is ready, or rejects after timeoutMs. */
export function waitForReady(client: grpc.Client, timeoutMs = DEFAULT_CALL_TIMEOUT_MS): Promise<void> {
  return new Promise((resolve, reject) =>
    client.waitForReady(Date.now() + timeoutMs, (error) => (error ? reject(error) : resolve())),
  );
}

type HealthClient = grpc.Client & {
  check(
    request: { service: string },
    options: grpc.CallOptions,
    callback: (error: grpc.ServiceError | null, response: { status: string }) => void,
  ): void;
};
const HealthClientConstructor = grpc.makeGenericClientConstructor(healthService, "Health");

/**
 * grpc.health.v1.Health/Check of `service` ("" = the whole server) at host:port. Resolves with the
 * status name (SERVING, NOT_SERVING); rejects with the gRPC error (NOT_FOUND for an unknown service).
 */
export function checkHealth(
  address: string,
  service = "",
  timeoutMs = 5000,
  credentials: grpc.ChannelCredentials = grpc.credentials.createInsecure(),
): Promise<string> {
  const client = new HealthClientConstructor(address, credentials) as unknown as HealthClient;
  return new Promise<string>((resolve, reject) =>
    client.check({ service }, deadline(timeoutMs), (error, response) => {
      client.close();
      if (error) reject(error);
      else resolve(response.status);
    }),
  );
}

/**
 * `channel` with `Authorization: Bearer <token>` on every call. grpc-js sends call credentials only
 * over TLS, so a token never leaves in plaintext.
 */
export function withBearerToken(channel: grpc.ChannelCredentials, token: string): grpc.ChannelCredentials {
  return channel.compose(
    grpc.credentials.createFromMetadataGenerator((_params, callback) => {
      const metadata = new grpc.Metadata();
      metadata.set("authorization", `Bearer ${token}`);
      callback(null, metadata);
    }),
  );
}
