// Starting and stopping a service, the same way for every service: a grpc-js server with the
// standard health service and server reflection, Prometheus metrics over HTTP, JSON logs, and a
// graceful shutdown on SIGTERM (health NOT_SERVING, streams told to end, drain, then exit).
import * as grpc from "@grpc/grpc-js";
import { loadFileDescriptorSetFromBuffer } from "@grpc/proto-loader";
import { ReflectionService } from "@grpc/reflection";
import { HealthImplementation } from "grpc-health-check";
import { fileDescriptorSetBase64 } from "@adco/proto";
import { unavailable } from "./errors.js";
import { ConfigError, field, loadConfig, type ConfigOf, type ConfigSpec } from "./config.js";
import { serviceNameOf, toGrpcService, type ServiceHandlers } from "./handlers.js";
import { createLogger, LOG_LEVELS, type Logger } from "./logger.js";
import { Metrics } from "./metrics.js";

/** The keys every service reads, with the service's default ports. */
export function commonConfig(defaults: { grpcPort: number; metricsPort: number }) {
  return {
    host: field.string({ default: "127.0.0.1", doc: "Address to listen on (0.0.0.0 in a pod)." }),
    grpcPort: field.int({
      default: defaults.grpcPort,
      min: 0,
      max: 65535,
      doc: "gRPC port; 0 picks a free one.",
    }),
    metricsPort: field.int({
      default: defaults.metricsPort,
      min: 0,
      max: 65535,
      doc: "HTTP port of /metrics; 0 picks a free one.",
    }),
    logLevel: field.oneOf(LOG_LEVELS, { default: "info", doc: "Least severe log level written." }),
    shutdownGraceMs: field.int({
      default: 10_000,
      min: 0,
      max: 600_000,
      doc: "On SIGTERM, how long calls may drain before they are cut.",
    }),
    maxMessageBytes: field.int({
      default: 64 << 20,
      min: 4 << 20,
      max: 1 << 30,
      doc: "Largest gRPC message sent or received.",
    }),
  } satisfies ConfigSpec;
}

export type CommonConfig = ConfigOf<ReturnType<typeof commonConfig>>;

/** One gRPC service to serve: a generated definition and its handlers. */
export interface Registration {
  readonly definition: Record<
    string,
    {
      path: string;
      requestStream: boolean;
      responseStream: boolean;
      requestDeserialize(value: Buffer): unknown;
    }
  >;
  readonly handlers: unknown;
}

/** Pairs a definition with its handlers, checking the handler types against the definition. */
export function register<S extends Registration["definition"]>(
  definition: S,
  handlers: ServiceHandlers<S>,
): Registration {
  return { definition, handlers };
}

export interface StartOptions {
  readonly name: string;
  readonly config: CommonConfig;
  readonly services: readonly Registration[];
  readonly log?: Logger;
  /** The service's metrics registry, when the caller made it to add its own metrics. */
  readonly metrics?: Metrics;
  /** Runs after the gRPC server has drained (close stores, flush state). */
  readonly onShutdown?: () => Promise<void>;
}

export class ServiceHost {
  private stopping: Promise<void> | undefined;

  private constructor(
    readonly name: string,
    readonly log: Logger,
    readonly metrics: Metrics,
    readonly health: HealthImplementation,
    readonly grpcPort: number,
    readonly metricsPort: number,
    private readonly server: grpc.Server,
    private readonly serviceNames: readonly string[],
    private readonly shutdownController: AbortController,
    private readonly closeMetrics: () => Promise<void>,
    private readonly options: StartOptions,
  ) {}

  /** Aborted when shutdown begins. */
  get shutdownSignal(): AbortSignal {
    return this.shutdownController.signal;
  }

  static async start(options: StartOptions): Promise<ServiceHost> {
    const { config } = options;
    const log = options.log ?? createLogger(options.name, config.logLevel);
    const metrics = options.metrics ?? new Metrics(options.name);
    const shutdownController = new AbortController();
    const server = new grpc.Server({
      "grpc.max_receive_message_length": config.maxMessageBytes,
      "grpc.max_send_message_length": config.maxMessageBytes,
      "grpc.keepalive_time_ms": 30_000,
      "grpc.keepalive_timeout_ms": 10_000,
      "grpc.keepalive_permit_without_calls": 1,
    });
    const serviceNames = options.services.map((s) => serviceNameOf(s.definition));
    const health = new HealthImplementation({
      "": "NOT_SERVING",
      ...Object.fromEntries(serviceNames.map((n) => [n, "NOT_SERVING" as const])),
    });
    health.addToServer(server);
    const descriptors = loadFileDescriptorSetFromBuffer(Buffer.from(fileDescriptorSetBase64, "base64"));
    new ReflectionService(descriptors).addToServer(server);
    const env = { log, metrics, shutdown: shutdownController.signal };
    for (const s of options.services) {
      const { definition, implementation } = toGrpcService(s.definition, s.handlers as never, env);
      server.addService(definition, implementation);
    }

    const grpcPort = await new Promise<number>((resolve, reject) =>
      server.bindAsync(
        `${config.host}:${config.grpcPort}`,
        grpc.ServerCredentials.createInsecure(),
        (err, port) =>
          err
            ? reject(new Error(`cannot listen on ${config.host}:${config.grpcPort}: ${err.message}`))
            : resolve(port),
      ),
    );
    let metricsServer: { port: number; close: () => Promise<void> };
    try {
      metricsServer = await metrics.listen(config.host, config.metricsPort);
    } catch (e) {
      server.forceShutdown();
      throw new Error(
        `cannot serve metrics on ${config.host}:${config.metricsPort}: ${(e as Error).message}`,
      );
    }

    for (const n of ["", ...serviceNames]) health.setStatus(n, "SERVING");
    log.info(
      { grpcPort, metricsPort: metricsServer.port, host: config.host, services: serviceNames },
      `${options.name} listening`,
    );
    return new ServiceHost(
      options.name,
      log,
      metrics,
      health,
      grpcPort,
      metricsServer.port,
      server,
      serviceNames,
      shutdownController,
      metricsServer.close,
      options,
    );
  }

  /**
   * Graceful stop: health turns NOT_SERVING, streaming handlers see the shutdown signal and end,
   * in-flight calls get `shutdownGraceMs` to finish, then the rest are cut. Safe to call twice.
   */
  shutdown(reason: string): Promise<void> {
    this.stopping ??= (async () => {
      const grace = this.options.config.shutdownGraceMs;
      this.log.info({ reason, graceMs: grace }, "shutting down");
      for (const n of ["", ...this.serviceNames]) this.health.setStatus(n, "NOT_SERVING");
      this.shutdownController.abort(unavailable("server is shutting down; retry"));
      const drained = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), grace);
        this.server.tryShutdown(() => {
          clearTimeout(timer);
          resolve(true);
        });
      });
      if (!drained) {
        this.log.warn({ graceMs: grace }, "calls still open after the grace period: cutting them");
        this.server.forceShutdown();
      }
      await this.options.onShutdown?.();
      await this.closeMetrics();
      this.log.info("stopped");
    })();
    return this.stopping;
  }
}

export interface RunOptions<S extends ConfigSpec> {
  readonly name: string;
  /** The service's full config spec: commonConfig(...) plus its own keys. */
  readonly spec: S;
  readonly services: (
    config: ConfigOf<S> & CommonConfig,
    log: Logger,
    metrics: Metrics,
  ) => readonly Registration[] | Promise<readonly Registration[]>;
  readonly onShutdown?: () => Promise<void>;
}

/**
 * The whole life of a service process: load config (exit 2 with the reasons if it is bad), start,
 * and on SIGTERM or SIGINT shut down gracefully and exit 0.
 */
export async function runService<S extends ConfigSpec & ReturnType<typeof commonConfig>>(
  options: RunOptions<S>,
): Promise<ServiceHost> {
  let config: ConfigOf<S> & CommonConfig;
  try {
    config = loadConfig(options.spec) as ConfigOf<S> & CommonConfig;
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`${options.name}: ${e.message}\n`);
      process.exit(2);
    }
    throw e;
  }
  const log = createLogger(options.name, config.logLevel);
  const metrics = new Metrics(options.name);
  let host: ServiceHost;
  try {
    host = await ServiceHost.start({
      name: options.name,
      config,
      log,
      metrics,
      services: await options.services(config, log, metrics),
      ...(options.onShutdown ? { onShutdown: options.onShutdown } : {}),
    });
  } catch (e) {
    // A config file a service reads while starting (e.g. the trainer's startRun) is configuration too.
    if (e instanceof ConfigError) {
      process.stderr.write(`${options.name}: ${e.message}\n`);
      process.exit(2);
    }
    log.fatal({ err: e }, `${options.name} failed to start`);
    process.exit(1);
  }
  const stop = (signal: string) => {
    host.shutdown(signal).then(
      () => process.exit(0),
      (e: unknown) => {
        log.fatal({ err: e }, "shutdown failed");
        process.exit(1);
      },
    );
  };
  process.once("SIGTERM", () => stop("SIGTERM"));
  process.once("SIGINT", () => stop("SIGINT"));
  return host;
}
