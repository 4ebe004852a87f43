// Starting and stopping a service, the same way for every service: a grpc-js server with the
// standard health service and server reflection, Prometheus metrics over HTTP, JSON logs, and a
// graceful shutdown on SIGTERM (health NOT_SERVING, streams told to end, drain, then exit).
import * as grpc from "@grpc/grpc-js";
import { loadFileDescriptorSetFromBuffer } from "@grpc/proto-loader";
import { ReflectionService } from "@grpc/reflection";
import { HealthImplementation } from "grpc-health-check";
import { fileDescriptorSetBase64 } from "@adco/proto";
import { type AccessPolicy, authConfig, Authorizer } from "./auth.js";
import { unavailable } from "./errors.js";
import { ConfigError, field, loadConfig, type ConfigOf, type ConfigSpec } from "./config.js";
import { serviceNameOf, toGrpcService, type ServiceHandlers } from "./handlers.js";
import { createLogger, LOG_LEVELS, type Logger } from "./logger.js";
import { Metrics } from "./metrics.js";
import { checkTlsSettings, serverCredentials, tlsConfig, useTlsSettings } from "./tls.js";

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
    healthPort: field.int({
      default: -1,
      min: -1,
      max: 65535,
      doc: "Plaintext gRPC port that serves only grpc.health.v1, for the kubelet's gRPC probe (which cannot do TLS); -1: none, 0 picks a free one.",
    }),
    ...tlsConfig(),
    ...authConfig(),
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
  /** Who may call each method; required when the service runs with mtls. */
  readonly access?: Record<string, unknown>;
}

/**
 * Pairs a definition with its handlers and the access of each of its methods, checking the handler
 * types against the definition. A service that runs with mtls refuses to start when a method has no
 * declared access.
 */
export function register<S extends Registration["definition"]>(
  definition: S,
  handlers: ServiceHandlers<S>,
  access?: AccessPolicy<S>,
): Registration {
  return { definition, handlers, ...(access ? { access } : {}) };
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
    private readonly healthServer: grpc.Server | undefined,
    /** The plaintext health port; -1 when there is none. */
    readonly healthPort: number,
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
    checkTlsSettings(config);
    const authorizer = new Authorizer(config);
    if (!authorizer.enabled) {
      const loopback = /^(127\.|::1$|localhost$)/.test(config.host);
      log.warn(
        { host: config.host },
        loopback
          ? "tlsMode plaintext: no encryption and no authentication of callers (loopback development only)"
          : `tlsMode plaintext on ${config.host}, not loopback: anyone who reaches this port can call every method`,
      );
    }
    const env = { log, metrics, shutdown: shutdownController.signal, authorizer };
    for (const s of options.services) {
      const { definition, implementation } = toGrpcService(
        s.definition,
        s.handlers as never,
        env,
        s.access as never,
      );
      server.addService(definition, implementation);
    }

    const bind = (target: grpc.Server, port: number, credentials: grpc.ServerCredentials) =>
      new Promise<number>((resolve, reject) =>
        target.bindAsync(`${config.host}:${port}`, credentials, (err, bound) =>
          err ? reject(new Error(`cannot listen on ${config.host}:${port}: ${err.message}`)) : resolve(bound),
        ),
      );
    const grpcPort = await bind(server, config.grpcPort, serverCredentials(config));
    // The kubelet's gRPC probe speaks plaintext only: health alone, on a port of its own.
    let healthServer: grpc.Server | undefined;
    let healthPort = -1;
    if (config.healthPort >= 0) {
      healthServer = new grpc.Server();
      health.addToServer(healthServer);
      try {
        healthPort = await bind(healthServer, config.healthPort, grpc.ServerCredentials.createInsecure());
      } catch (e) {
        server.forceShutdown();
        throw e;
      }
    }
    let metricsServer: { port: number; close: () => Promise<void> };
    try {
      metricsServer = await metrics.listen(config.host, config.metricsPort);
    } catch (e) {
      server.forceShutdown();
      healthServer?.forceShutdown();
      throw new Error(
        `cannot serve metrics on ${config.host}:${config.metricsPort}: ${(e as Error).message}`,
      );
    }

    for (const n of ["", ...serviceNames]) health.setStatus(n, "SERVING");
    log.info(
      {
        grpcPort,
        metricsPort: metricsServer.port,
        ...(healthServer ? { healthPort } : {}),
        host: config.host,
        tls: config.tlsMode,
        services: serviceNames,
      },
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
      healthServer,
      healthPort,
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
      this.healthServer?.forceShutdown();
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
    // Bad certificate mounts and a token over plaintext stop the service before it loads anything.
    checkTlsSettings(config);
    new Authorizer(config);
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`${options.name}: ${e.message}\n`);
      process.exit(2);
    }
    throw e;
  }
  const log = createLogger(options.name, config.logLevel);
  const metrics = new Metrics(options.name);
  // The clients this service makes (to the bank, the workers, the evaluator) use its certificate.
  useTlsSettings(config);
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
