// A real S3-protocol server process on loopback for tests and one-machine use: s3rver, keeping
// objects on disk. It does everything adco uses except multipart upload, which objects <= 64 MiB
// never need. Credentials are s3rver's fixed pair.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import type { StorageSettings } from "./object-store.js";

export const S3RVER_CREDENTIALS = { accessKey: "S3RVER", secretKey: "S3RVER" } as const;

export interface S3ServerProcess {
  readonly settings: StorageSettings;
  readonly directory: string;
  readonly process: ChildProcess;
  /** Stops the server (SIGTERM) and, if it made the directory, removes it. */
  stop(): Promise<void>;
}

const require = createRequire(import.meta.url);

export async function startS3Server(
  options: { directory?: string; port?: number } = {},
): Promise<S3ServerProcess> {
  const ownDirectory = options.directory === undefined;
  const directory = options.directory ?? mkdtempSync(join(tmpdir(), "adco-s3-"));
  const bin = join(dirname(require.resolve("s3rver/package.json")), "bin/s3rver.js");
  const child = spawn(
    process.execPath,
    [bin, "-d", directory, "-a", "127.0.0.1", "-p", String(options.port ?? 0)],
    {
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  const port = await new Promise<number>((resolve, reject) => {
    let output = "";
    const timer = setTimeout(() => reject(new Error(`s3rver did not start in 15 s: ${output}`)), 15_000);
    child.stdout!.on("data", (chunk: Buffer) => {
      output += chunk.toString();
      const match = /listening on [\d.]+:(\d+)/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(Number(match[1]));
      }
    });
    child.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`s3rver exited with ${code}: ${output}`));
    });
  });
  child.stdout!.resume();
  return {
    settings: { endpoint: `http://127.0.0.1:${port}`, region: "us-east-1", ...S3RVER_CREDENTIALS },
    directory,
    process: child,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once("exit", r));
        child.kill("SIGTERM");
        await exited;
      }
      if (ownDirectory) rmSync(directory, { recursive: true, force: true });
    },
  };
}
