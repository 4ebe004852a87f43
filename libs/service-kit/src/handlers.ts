// Small typed handlers over grpc-js, in the style of connect-es: a unary handler is an async function
// of the request; a streaming handler is an async generator. The kit turns them into grpc-js handlers
// that map thrown errors to status codes, answer undecodable requests with INVALID_ARGUMENT (grpc-js
// itself would say INTERNAL), write with backpressure, and record metrics and logs for every call.
import { once } from "node:events";
import type * as grpc from "@grpc/grpc-js";
import { type Access, type Authorizer, callerOf } from "./auth.js";
import { invalidArgument, RpcError, status, toRpcError } from "./errors.js";
import type { Logger } from "./logger.js";
import type { Metrics } from "./metrics.js";
import { AsyncQueue } from "./queue.js";

/** What a handler knows about its call. */
export interface CallContext {
  /** Aborted when the client cancels, the deadline passes, or the server shuts down. */
  readonly signal: AbortSignal;
  /** Aborted when the client cancels or the deadline passes, not at shutdown (see DrainingStream). */
  readonly cancelled: AbortSignal;
  /** Aborted only when the server shuts down: long streams end themselves on it. */
  readonly shutdown: AbortSignal;
  readonly log: Logger;
  readonly metadata: grpc.Metadata;
  readonly peer: string;
  readonly deadline: grpc.Deadline;
}

interface MethodDefinition {
  readonly path: string;
  readonly requestStream: boolean;
  readonly responseStream: boolean;
  requestDeserialize(value: Buffer): unknown;
}

type Req<M> = M extends { requestDeserialize: (value: Buffer) => infer R } ? R : never;
type Res<M> = M extends { responseSerialize: (value: infer R) => Buffer } ? R : never;

export type Handler<M> = M extends { requestStream: false; responseStream: false }
  ? (request: Req<M>, ctx: CallContext) => Promise<Res<M>>
  : M extends { requestStream: false; responseStream: true }
    ? (request: Req<M>, ctx: CallContext) => AsyncIterable<Res<M>>
    : M extends { requestStream: true; responseStream: false }
      ? (requests: AsyncIterable<Req<M>>, ctx: CallContext) => Promise<Res<M>>
      : (requests: AsyncIterable<Req<M>>, ctx: CallContext) => AsyncIterable<Res<M>>;

/**
 * A response stream that ends by itself soon after the server starts to shut down (the messages of
 * a run that stops at its next step, say). The kit goes on writing it while calls drain, so the
 * client gets those last messages before the UNAVAILABLE that sends it elsewhere; other streams stop
 * at the shutdown, and shutdownGraceMs cuts this one too. Its messages should end on ctx.cancelled.
 */
export class DrainingStream<T> implements AsyncIterable<T> {
  constructor(private readonly messages: AsyncIterable<T>) {}

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return this.messages[Symbol.asyncIterator]();
  }
}

/** The handlers of one generated service definition (e.g. DataWorkerService), one per method. */
export type ServiceHandlers<S> = { [K in keyof S]: Handler<S[K]> };

/** A request that did not decode: the handler adapter answers INVALID_ARGUMENT for it. */
class MalformedRequest {
  constructor(readonly error: Error) {}
}

export interface HandlerEnvironment {
  readonly log: Logger;
  readonly metrics: Metrics;
  readonly shutdown: AbortSignal;
  /** Checks each call against its method's declared access before the handler runs. */
  readonly authorizer?: Authorizer;
}

type AnyCall = grpc.ServerUnaryCall<unknown, unknown> & Partial<grpc.ServerDuplexStream<unknown, unknown>>;
type AnyHandler = (input: unknown, ctx: CallContext) => Promise<unknown> | AsyncIterable<unknown>;

function contextFor(call: AnyCall, env: HandlerEnvironment, method: string): CallContext {
  const cancelled = new AbortController();
  call.on("cancelled", () => cancelled.abort(new RpcError(status.CANCELLED, "cancelled by the client")));
  return {
    signal: AbortSignal.any([cancelled.signal, env.shutdown]),
    cancelled: cancelled.signal,
    shutdown: env.shutdown,
    log: env.log.child({ method }),
    metadata: call.metadata,
    peer: call.getPeer(),
    deadline: call.getDeadline(),
  };
}

function checked(message: unknown): unknown {
  if (message instanceof MalformedRequest) {
    throw invalidArgument(`malformed request: ${message.error.message}`);
  }
  return message;
}

/**
 * The messages of a client stream as an iterator. Not the stream's own async iterator: at the end of
 * the client's messages that destroys the whole duplex call, so the server's response end and status
 * never reach the client of a bidi call that half-closed. The queue pauses the call while it holds
 * more than 16 messages, so a fast client cannot grow it.
 */
function readMessages(call: grpc.ServerReadableStream<unknown, unknown>): AsyncIterator<unknown> {
  const queue = new AsyncQueue<unknown>();
  call.on("data", (message: unknown) => {
    queue.push(message);
    if (queue.size > 16) call.pause();
  });
  call.on("end", () => queue.end());
  call.on("error", (e: unknown) => queue.fail(e));
  return {
    async next() {
      const result = await queue.next();
      if (queue.size < 4 && call.isPaused()) call.resume();
      return result;
    },
  };
}

/** The client's messages; ends the handler's loop with UNAVAILABLE on shutdown (or CANCELLED). */
async function* incoming(
  call: grpc.ServerReadableStream<unknown, unknown>,
  signal: AbortSignal,
): AsyncIterable<unknown> {
  const messages = readMessages(call);
  const aborted = new Promise<never>((_, reject) => {
    const stop = () => reject(toRpcError(signal.reason));
    if (signal.aborted) stop();
    else signal.addEventListener("abort", stop, { once: true });
  });
  aborted.catch(() => undefined);
  for (;;) {
    const next = await Promise.race([messages.next(), aborted]);
    if (next.done) return;
    yield checked(next.value);
  }
}

async function writeAll(
  call: grpc.ServerWritableStream<unknown, unknown>,
  messages: AsyncIterable<unknown>,
  signal: AbortSignal,
) {
  for await (const message of messages) {
    if (signal.aborted) break;
    if (!call.write(message)) await once(call, "drain", { signal });
  }
}

/** Wraps one friendly handler as a grpc-js handler. */
function adapt(
  method: MethodDefinition,
  handler: AnyHandler,
  env: HandlerEnvironment,
  rule: Access | undefined,
): grpc.UntypedHandleCall {
  const name = method.path;
  const authorize = (call: AnyCall) => {
    if (env.authorizer && rule) env.authorizer.check(name, rule, callerOf(call));
  };
  const finish = (ctx: CallContext, started: number, error: unknown) => {
    let rpcError = error === undefined ? undefined : toRpcError(error);
    // A call ended by shutdown tells the client to retry elsewhere, not that the request was bad.
    if (rpcError && env.shutdown.aborted && ctx.signal.aborted && !(error instanceof RpcError)) {
      rpcError = new RpcError(status.UNAVAILABLE, "server is shutting down; retry");
    }
    const code = rpcError ? rpcError.code : status.OK;
    env.metrics.handled.inc({ method: name, code: status[code] });
    env.metrics.handlingSeconds.observe({ method: name }, (performance.now() - started) / 1000);
    if (rpcError?.code === status.INTERNAL) ctx.log.error({ err: error }, "handler failed");
    else if (rpcError?.code === status.UNAUTHENTICATED || rpcError?.code === status.PERMISSION_DENIED)
      ctx.log.warn({ code: status[code], details: rpcError.message, peer: ctx.peer }, "call refused");
    else if (rpcError) ctx.log.debug({ code: status[code], details: rpcError.message }, "call failed");
    return rpcError;
  };
  const asStatus = (e: RpcError): Partial<grpc.StatusObject> => ({ code: e.code, details: e.message });

  if (!method.responseStream) {
    return ((call: AnyCall, callback: grpc.sendUnaryData<unknown>) => {
      const started = performance.now();
      const ctx = contextFor(call, env, name);
      const input = method.requestStream
        ? incoming(call as grpc.ServerReadableStream<unknown, unknown>, ctx.signal)
        : call.request;
      Promise.resolve()
        .then(() => {
          authorize(call);
          return handler(method.requestStream ? input : checked(input), ctx) as Promise<unknown>;
        })
        .then(
          (response) => {
            finish(ctx, started, undefined);
            callback(null, response);
          },
          (error: unknown) => callback(asStatus(finish(ctx, started, error)!)),
        );
    }) as grpc.UntypedHandleCall;
  }

  return ((call: AnyCall) => {
    const started = performance.now();
    const ctx = contextFor(call, env, name);
    const stream = call as unknown as grpc.ServerWritableStream<unknown, unknown>;
    Promise.resolve()
      .then(() => {
        authorize(call);
        const input = method.requestStream
          ? incoming(call as grpc.ServerReadableStream<unknown, unknown>, ctx.signal)
          : checked(call.request);
        const messages = handler(input, ctx) as AsyncIterable<unknown>;
        // A draining stream is written until it ends or its client goes; the others stop at shutdown.
        return writeAll(stream, messages, messages instanceof DrainingStream ? ctx.cancelled : ctx.signal);
      })
      .then(
        () => {
          const error = env.shutdown.aborted
            ? new RpcError(status.UNAVAILABLE, "server is shutting down")
            : undefined;
          finish(ctx, started, error);
          if (error) stream.emit("error", { code: error.code, details: error.message });
          else stream.end();
        },
        (error: unknown) => {
          const rpcError = finish(ctx, started, error)!;
          stream.emit("error", { code: rpcError.code, details: rpcError.message });
        },
      );
  }) as grpc.UntypedHandleCall;
}

/**
 * The grpc-js definition and implementation of a service: the definition's request decoders are
 * wrapped so that undecodable bytes reach the adapter (and become INVALID_ARGUMENT).
 */
export function toGrpcService<S extends Record<string, MethodDefinition>>(
  definition: S,
  handlers: ServiceHandlers<S>,
  env: HandlerEnvironment,
  access?: { readonly [K in keyof S]?: Access },
): { definition: grpc.ServiceDefinition; implementation: grpc.UntypedServiceImplementation } {
  const patched: Record<string, unknown> = {};
  const implementation: grpc.UntypedServiceImplementation = {};
  for (const [key, method] of Object.entries(definition)) {
    const decode = method.requestDeserialize.bind(method);
    patched[key] = {
      ...method,
      requestDeserialize: (value: Buffer) => {
        try {
          return decode(value);
        } catch (e) {
          return new MalformedRequest(e instanceof Error ? e : new Error(String(e)));
        }
      },
    };
    const handler = (handlers as Record<string, AnyHandler>)[key];
    if (!handler) throw new Error(`no handler for ${method.path}`);
    const rule = (access as Record<string, Access | undefined> | undefined)?.[key];
    // With authorisation on, a method nobody declared access for would be open by accident.
    if (env.authorizer?.enabled && !rule) throw new Error(`no access declared for ${method.path}`);
    implementation[key] = adapt(method, handler, env, rule);
  }
  return { definition: patched as grpc.ServiceDefinition, implementation };
}

/** "/adco.v1.DataWorker/StreamViews" -> "adco.v1.DataWorker" (the name health checks use). */
export function serviceNameOf(definition: Record<string, MethodDefinition>): string {
  const first = Object.values(definition)[0];
  if (!first) throw new Error("empty service definition");
  return first.path.split("/")[1]!;
}
