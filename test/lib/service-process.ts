// Services as real processes (from their TypeScript sources) on free loopback ports, through the one
// launcher (@adco/service-kit's launchService): ready at the "listening" log line, which carries the
// bound ports; every stdout line kept (parsed JSON) and all of stderr.
import { once } from "node:events";
import {
  launchService,
  MONOREPO_ROOT,
  MONOREPO_SERVICES,
  spawnService as spawnMonorepoService,
  type LaunchedService,
  type MonorepoService,
} from "@adco/service-kit";
import type { ChildProcess } from "node:child_process";

export const ROOT = MONOREPO_ROOT;
export const SERVICES = MONOREPO_SERVICES;
export type ServiceName = MonorepoService;
export type ServiceProcess = LaunchedService;

/** Spawns `services/<name>/src/main.ts` with the given environment (ADCO_* keys, ADCO_CONFIG). */
export function spawnService(name: ServiceName, env: Record<string, string> = {}): ChildProcess {
  return spawnMonorepoService(name, { env });
}

/** Starts the service and waits until it listens; stop("SIGKILL") kills it as a crash would. */
export function startService(name: ServiceName, env: Record<string, string> = {}): Promise<ServiceProcess> {
  return launchService(name, { env });
}

/** Runs a service expecting it to fail at start; resolves with its exit code and stderr. */
export async function failedStart(
  name: ServiceName,
  env: Record<string, string>,
): Promise<{ code: number | null; stderr: string }> {
  const child = spawnService(name, env);
  let stderr = "";
  child.stdout!.resume();
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
