// Starts a service as a real process (from its TypeScript sources) on free loopback ports and
// waits for its "listening" log line, which carries the bound ports.
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "../..");
export const SERVICES = ["data-worker", "trainer", "adversary-bank", "evaluator"] as const;
export type ServiceName = (typeof SERVICES)[number];

export interface ServiceProcess {
  readonly name: ServiceName;
  readonly child: ChildProcess;
  readonly grpcAddress: string;
  readonly metricsUrl: string;
  /** Every stdout line, parsed when it is JSON. */
  readonly logs: Array<Record<string, unknown>>;
  readonly stderr: () => string;
  /** Sends a signal and resolves with the exit code and how long the exit took. */
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; ms: number }>;
}

/** Spawns `services/<name>/src/main.ts` with the given environment (ADCO_* keys, ADCO_CONFIG). */
export function spawnService(name: ServiceName, env: Record<string, string> = {}): ChildProcess {
  const main = join(ROOT, "services", name, "src/main.ts");
  const cleanEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("ADCO_")));
  return spawn(process.execPath, ["--conditions=development", "--import", "tsx", main], {
    cwd: ROOT,
    env: { ...cleanEnv, ADCO_GRPC_PORT: "0", ADCO_METRICS_PORT: "0", ADCO_LOG_LEVEL: "info", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
}

export async function startService(
  name: ServiceName,
  env: Record<string, string> = {},
): Promise<ServiceProcess> {
  const child = spawnService(name, env);
  const logs: Array<Record<string, unknown>> = [];
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  const lines = createInterface({ input: child.stdout! });
  const listening = new Promise<Record<string, unknown>>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${name} did not start in 30 s; stderr:\n${stderr}`)),
      30_000,
    );
    lines.on("line", (line) => {
      let entry: Record<string, unknown>;
      try {
        entry = JSON.parse(line) as Record<string, unknown>;
      } catch {
        entry = { raw: line };
      }
      logs.push(entry);
      if (typeof entry.grpcPort === "number") {
        clearTimeout(timer);
        resolve(entry);
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited with ${code} before listening; stderr:\n${stderr}`));
    });
  });
  const ready = await listening;
  return {
    name,
    child,
    grpcAddress: `127.0.0.1:${ready.grpcPort as number}`,
    metricsUrl: `http://127.0.0.1:${ready.metricsPort as number}/metrics`,
    logs,
    stderr: () => stderr,
    async stop(signal = "SIGTERM") {
      const t0 = performance.now();
      if (child.exitCode !== null || child.signalCode !== null) return { code: child.exitCode, ms: 0 };
      const exited = once(child, "exit") as Promise<[number | null]>;
      child.kill(signal);
      const [code] = await exited;
      return { code, ms: performance.now() - t0 };
    },
  };
}

/** Runs a service expecting it to fail at start; resolves with its exit code and stderr. */
export async function failedStart(
  name: ServiceName,
  env: Record<string, string>,
): Promise<{ code: number | null; stderr: string }> {
  const child = spawnService(name, env);
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
  const [code] = (await once(child, "exit")) as [number | null];
  clearTimeout(timer);
  return { code, stderr };
}

/** The environment that points a service at an object store. */
export function s3Env(settings: {
  endpoint: string;
  accessKey: string;
  secretKey: string;
}): Record<string, string> {
  return {
    ADCO_S3_ENDPOINT: settings.endpoint,
    ADCO_S3_ACCESS_KEY: settings.accessKey,
    ADCO_S3_SECRET_KEY: settings.secretKey,
  };
}
