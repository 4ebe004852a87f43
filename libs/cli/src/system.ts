// The whole system on one machine, on loopback: an S3 server (s3rver, on disk), a data worker, the
// adversary bank, the trainer and the evaluator, each its own process, wired to each other.
// `adco up` keeps it running; `npm start` starts it for one demonstration run.
import type { ChildProcess } from "node:child_process";
import { mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import type * as grpc from "@grpc/grpc-js";
import { launchService, usableCores } from "@adco/service-kit";
import type { StorageSettings } from "@adco/storage";
import { startS3Server, type S3ServerProcess } from "@adco/storage/testing";
import { type ClientTls, credentialsFor, tlsDirectoryOf } from "./credentials.js";
import { localTls } from "./local-tls.js";

export const SERVICE_NAMES = ["data-worker", "adversary-bank", "trainer", "evaluator"] as const;
export type ServiceName = (typeof SERVICE_NAMES)[number];

/** The fixed ports of `adco up` (0 everywhere for free ones). */
export const DEFAULT_PORTS: Record<ServiceName | "s3", number> = {
  s3: 9000,
  "data-worker": 50051,
  trainer: 50052,
  "adversary-bank": 50053,
  evaluator: 50054,
};

export interface RunningService {
  readonly name: ServiceName;
  readonly child: ChildProcess;
  readonly address: string;
  /** Its log lines up to the listening line (the rest go to its log file). */
  readonly startLogs: ReadonlyArray<Record<string, unknown>>;
  /** SIGTERM, then SIGKILL after 30 s. */
  stop(): Promise<unknown>;
}

export interface LocalSystem {
  readonly s3: StorageSettings;
  readonly services: Record<ServiceName, RunningService>;
  readonly logDirectory: string;
  /** The CA and the operators' token the CLI calls with (undefined in plaintext). */
  readonly clientTls: ClientTls | undefined;
  /** Credentials for calling one of the services as an operator (the CLI, `npm start`). */
  credentials(server: ServiceName): grpc.ChannelCredentials;
  /** Gives every service a new certificate from the same CA (a cert-manager renewal); not in plaintext. */
  rotateCertificates(): void;
  stop(): Promise<void>;
}

export interface LocalSystemOptions {
  /** Object store data and service logs live here. */
  readonly directory: string;
  /** Fixed ports (adco up) or free ones (npm start, tests). */
  readonly freePorts?: boolean;
  /** Extra environment of every service (ADCO_* keys). */
  readonly env?: Record<string, string>;
  /**
   * Have the evaluator score each epoch's checkpoint (kNN) while the trainer goes on, shown by
   * `adco watch`. Off for `npm start`, which scores the result once at the end.
   */
  readonly evaluateEpochs?: boolean;
  readonly onStarted?: (name: string, address: string) => void;
  /** Plaintext instead of mutual TLS with a throwaway CA in `<directory>/tls` (the TLS bench's baseline). */
  readonly plaintext?: boolean;
}

/** The services run from the monorepo's sources (a deployment runs their images instead). */
async function startService(
  name: ServiceName,
  port: number,
  env: Record<string, string>,
  logDirectory: string,
): Promise<RunningService> {
  const service = await launchService(name, {
    env: { ADCO_GRPC_PORT: String(port), ...env },
    logFile: join(logDirectory, `${name}.log`),
    keepLogs: false,
  });
  return {
    name,
    child: service.child,
    address: service.grpcAddress,
    startLogs: service.logs,
    stop: () => service.stop(),
  };
}

/**
 * The wasm threads of each computing service when they all share this machine. The trainer and the
 * bank take turns within a step (the trainer waits for the bank's answer, the bank idles while the
 * trainer computes), so each may use every core. The evaluator computes beside the trainer only when
 * it scores each epoch, and then gets one thread; the data worker's augmentation is JavaScript on one
 * thread of its own (a few per cent of a core at the trainer's rate).
 */
export function localThreads(
  evaluateEpochs: boolean,
  cores = usableCores(),
): Record<Exclude<ServiceName, "data-worker">, number> {
  return { trainer: cores, "adversary-bank": cores, evaluator: evaluateEpochs ? 1 : cores };
}

export async function startLocalSystem(options: LocalSystemOptions): Promise<LocalSystem> {
  const logDirectory = join(options.directory, "logs");
  mkdirSync(logDirectory, { recursive: true });
  const port = (name: ServiceName | "s3") => (options.freePorts ? 0 : DEFAULT_PORTS[name]);
  const started: RunningService[] = [];
  let s3: S3ServerProcess | undefined;
  const stop = async () => {
    // Trainer first (it checkpoints on SIGTERM while the bank and store are still up).
    for (const name of ["trainer", "evaluator", "data-worker", "adversary-bank"]) {
      const service = started.find((s) => s.name === name);
      if (service) await service.stop();
    }
    await s3?.stop();
    // The CA is thrown away with the system: its key must not outlive it.
    if (!options.plaintext) rmSync(tlsDirectoryOf(options.directory), { recursive: true, force: true });
  };
  try {
    mkdirSync(join(options.directory, "s3"), { recursive: true });
    s3 = await startS3Server({ directory: join(options.directory, "s3"), port: port("s3") });
    options.onStarted?.("s3", s3.settings.endpoint);
    const storageEnv = {
      ADCO_S3_ENDPOINT: s3.settings.endpoint,
      ADCO_S3_ACCESS_KEY: s3.settings.accessKey,
      ADCO_S3_SECRET_KEY: s3.settings.secretKey,
      ...options.env,
    };
    const threads = localThreads(options.evaluateEpochs ?? false);
    const tls = options.plaintext ? undefined : localTls(tlsDirectoryOf(options.directory));
    const up = async (name: ServiceName, env: Record<string, string> = {}) => {
      const computeEnv: Record<string, string> =
        name === "data-worker" ? {} : { ADCO_THREADS: String(threads[name]) };
      const service = await startService(
        name,
        port(name),
        { ...computeEnv, ...storageEnv, ...(tls ? tls.serviceEnv(name) : {}), ...env },
        logDirectory,
      );
      started.push(service);
      options.onStarted?.(name, service.address);
      return service;
    };
    const [worker, bank, evaluator] = await Promise.all([
      up("data-worker"),
      up("adversary-bank"),
      up("evaluator"),
    ]);
    const trainer = await up("trainer", {
      ADCO_BANK_ADDRESS: bank.address,
      ADCO_DATA_WORKERS: worker.address,
      ...(options.evaluateEpochs ? { ADCO_EVALUATOR_ADDRESS: evaluator.address } : {}),
    });
    return {
      s3: s3.settings,
      services: { "data-worker": worker, "adversary-bank": bank, trainer, evaluator },
      logDirectory,
      clientTls: tls?.client,
      credentials: (server) => credentialsFor(tls?.client, server),
      rotateCertificates: () => {
        if (!tls) throw new Error("a plaintext system has no certificates to rotate");
        tls.rotate();
      },
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}
