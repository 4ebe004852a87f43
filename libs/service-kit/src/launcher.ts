// The one way to start a service of this monorepo as its own process, for tests, benches and the
// one-machine system (`adco up`, `npm start`): node on services/<name>/src/main.ts through tsx with
// the development condition (or on the built dist/main.js), free ports unless the environment says
// otherwise, ready when its "listening" log line (which carries the bound ports) appears. Logs are
// kept in memory (tests), appended to a file (`adco up`), copied to this process's stderr (benches),
// or any mix. stop() sends SIGTERM (or the signal given) and SIGKILL after a grace period.
import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";

/** The monorepo's root (this file is libs/service-kit/src/launcher.ts or libs/service-kit/dist/launcher.js). */
export const MONOREPO_ROOT = join(import.meta.dirname, "../../..");
export const MONOREPO_SERVICES = ["data-worker", "trainer", "adversary-bank", "evaluator"] as const;
export type MonorepoService = (typeof MONOREPO_SERVICES)[number];

export interface LaunchOptions {
  /** ADCO_* keys (ADCO_CONFIG too), over the defaults: ADCO_GRPC_PORT 0, ADCO_METRICS_PORT 0, ADCO_LOG_LEVEL info, ADCO_TLS_MODE plaintext. */
  readonly env?: Record<string, string>;
  /**
   * This process's own ADCO_* variables to pass on where set (a bench run with ADCO_BACKEND). The
   * rest are dropped: a service refuses ADCO_* keys it does not know, and a test's service sees
   * exactly the keys it was given.
   */
  readonly inheritEnv?: readonly string[];
  /** "source" (default): src/main.ts through tsx; "dist": the built dist/main.js. */
  readonly entry?: "source" | "dist";
  /** Write every stdout line and all of stderr to this file (truncated first). */
  readonly logFile?: string;
  /** Keep every stdout line (parsed when JSON) and all of stderr in memory; default true (else the start's lines and stderr's tail). */
  readonly keepLogs?: boolean;
  /** Copy the service's stderr to this process's stderr as well. */
  readonly echoStderr?: boolean;
  /** How long to wait for the listening line; default 60 s. */
  readonly readyTimeoutMs?: number;
}

export interface StopResult {
  /** The exit code; null when a signal ended the process. */
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** How long the exit took after the signal, ms (0 if it had already exited). */
  readonly ms: number;
}

export interface LaunchedService {
  readonly name: MonorepoService;
  readonly child: ChildProcess;
  readonly grpcPort: number;
  /** 127.0.0.1:<grpc port>. */
  readonly grpcAddress: string;
  readonly metricsPort: number;
  readonly metricsUrl: string;
  /** Every stdout line, parsed when it is JSON ({ raw } when not); without keepLogs, those up to the listening line. */
  readonly logs: Array<Record<string, unknown>>;
  /** All of stderr with keepLogs, else its last 8 KiB. */
  stderr(): string;
  /** Resolves when the process has exited. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /**
   * Sends the signal (default SIGTERM) and resolves once the process has exited, sending SIGKILL if
   * it is still running after killAfterMs (default 30 s).
   */
  stop(signal?: NodeJS.Signals, killAfterMs?: number): Promise<StopResult>;
}

/**
 * The environment of a launched service: this process's without its ADCO_* keys, then the defaults,
 * then the inherited ADCO_* keys, then env.
 */
export function serviceEnvironment(
  options: Pick<LaunchOptions, "env" | "inheritEnv"> = {},
): NodeJS.ProcessEnv {
  const entries = Object.entries(process.env);
  const inherit = new Set(options.inheritEnv);
  return {
    ...Object.fromEntries(entries.filter(([k]) => !k.startsWith("ADCO_"))),
    ADCO_GRPC_PORT: "0",
    ADCO_METRICS_PORT: "0",
    ADCO_LOG_LEVEL: "info",
    // Tests and benches on loopback say plaintext out loud; `adco up`, `npm start` and the security
    // tests pass ADCO_TLS_MODE mtls with their certificates (a service's own default is mtls).
    ADCO_TLS_MODE: "plaintext",
    ...Object.fromEntries(entries.filter(([k]) => inherit.has(k))),
    ...options.env,
  };
}

/** The node arguments that run a service. */
export function serviceCommand(name: MonorepoService, entry: "source" | "dist" = "source"): string[] {
  const dir = join(MONOREPO_ROOT, "services", name);
  return entry === "dist"
    ? [join(dir, "dist/main.js")]
    : ["--conditions=development", "--import", "tsx", join(dir, "src/main.ts")];
}

/** Spawns the service (stdout and stderr piped, nothing read): for a start that is expected to fail. */
export function spawnService(
  name: MonorepoService,
  options: Pick<LaunchOptions, "env" | "inheritEnv" | "entry"> = {},
): ChildProcess {
  return spawn(process.execPath, serviceCommand(name, options.entry), {
    cwd: MONOREPO_ROOT,
    env: serviceEnvironment(options),
    stdio: ["ignore", "pipe", "pipe"],
  });
}

const STDERR_TAIL = 8 << 10;

/** Starts the service and resolves once it listens; rejects (and kills it) if it exits or times out first. */
export async function launchService(
  name: MonorepoService,
  options: LaunchOptions = {},
): Promise<LaunchedService> {
  const keepLogs = options.keepLogs ?? true;
  const timeoutMs = options.readyTimeoutMs ?? 60_000;
  const child = spawnService(name, options);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  const log = options.logFile ? createWriteStream(options.logFile) : undefined;
  child.once("close", () => log?.end());
  const logs: Array<Record<string, unknown>> = [];
  let stderr = "";
  child.stderr!.on("data", (chunk: Buffer) => {
    const text = chunk.toString();
    stderr += text;
    if (!keepLogs && stderr.length > STDERR_TAIL) stderr = stderr.slice(-STDERR_TAIL);
    log?.write(chunk);
    if (options.echoStderr) process.stderr.write(chunk);
  });
  const where = () => (options.logFile ? `see ${options.logFile}` : `stderr:\n${stderr.slice(-STDERR_TAIL)}`);
  const lines = createInterface({ input: child.stdout! });
  const ready = await new Promise<Record<string, unknown>>((resolve, reject) => {
    let listening = false;
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${name} did not start in ${timeoutMs / 1000} s; ${where()}`));
    }, timeoutMs);
    lines.on("line", (line) => {
      log?.write(`${line}\n`);
      let entry: Record<string, unknown> | undefined;
      if (keepLogs || !listening) {
        try {
          const parsed: unknown = JSON.parse(line);
          entry =
            parsed !== null && typeof parsed === "object"
              ? (parsed as Record<string, unknown>)
              : { raw: line };
        } catch {
          entry = { raw: line };
        }
      }
      if (keepLogs || !listening) logs.push(entry!);
      if (!listening && typeof entry?.grpcPort === "number") {
        listening = true;
        clearTimeout(timer);
        resolve(entry);
      }
    });
    child.once("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited with ${code ?? signal} before listening; ${where()}`));
    });
  });
  const grpcPort = ready.grpcPort as number;
  const metricsPort = ready.metricsPort as number;
  return {
    name,
    child,
    grpcPort,
    grpcAddress: `127.0.0.1:${grpcPort}`,
    metricsPort,
    metricsUrl: `http://127.0.0.1:${metricsPort}/metrics`,
    logs,
    stderr: () => stderr,
    exited,
    async stop(signal = "SIGTERM", killAfterMs = 30_000) {
      if (child.exitCode !== null || child.signalCode !== null)
        return { code: child.exitCode, signal: child.signalCode, ms: 0 };
      const t0 = performance.now();
      child.kill(signal);
      const timer = signal === "SIGKILL" ? undefined : setTimeout(() => child.kill("SIGKILL"), killAfterMs);
      const result = await exited;
      clearTimeout(timer);
      return { ...result, ms: performance.now() - t0 };
    },
  };
}
