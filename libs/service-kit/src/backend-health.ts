// A tfjs backend that aborted is broken for good: after a wasm trap ("Aborted()", "memory access
// out of bounds", any WebAssembly.RuntimeError) its memory and kernels are in an unknown state, and
// every later call of the process fails the same way. A service whose backend broke (the trainer: it
// fails the run first, so that no trainer resumes it into the same abort; the bank) turns its health
// NOT_SERVING, says why, and exits non-zero, so that Kubernetes restarts the pod with a fresh backend.
import { statusOf } from "./errors.js";
import type { Logger } from "./logger.js";
import type { ServiceHost } from "./server.js";

const ABORT =
  /Aborted\(|memory access out of bounds|RuntimeError|unreachable executed|table index is out of bounds/;

/**
 * Whether an error (or one of its causes) is an abort of this process's WebAssembly. An error with a
 * gRPC status is not, whatever its text: it is a peer's answer (the bank's own abort, sent as
 * INTERNAL, is the bank's to restart from) or a check of ours.
 */
export function isBackendBroken(error: unknown): boolean {
  let e: unknown = error;
  for (let depth = 0; e !== undefined && e !== null && depth < 8; depth++) {
    if (statusOf(e) !== undefined) return false;
    if (ABORT.test(e instanceof Error ? `${e.name}: ${e.message}` : String(e))) return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

/** The exit code of a service whose backend broke (EX_SOFTWARE). */
export const BROKEN_BACKEND_EXIT = 70;

/**
 * NOT_SERVING at once (every service of the host), a fatal log line with the error, a graceful
 * shutdown (bounded by shutdownGraceMs), then exit(BROKEN_BACKEND_EXIT).
 */
export async function leaveBrokenBackend(
  host: Pick<ServiceHost, "health" | "shutdown">,
  serviceNames: readonly string[],
  error: Error,
  log: Logger,
  exit: (code: number) => void = (code) => process.exit(code),
): Promise<void> {
  for (const name of ["", ...serviceNames]) host.health.setStatus(name, "NOT_SERVING");
  log.fatal(
    { err: error.message, stack: error.stack, exitCode: BROKEN_BACKEND_EXIT },
    "the tfjs backend is broken (a WebAssembly abort); every later call would fail the same way: NOT_SERVING, exiting so that the process is restarted",
  );
  try {
    await host.shutdown("the tfjs backend is broken");
  } finally {
    exit(BROKEN_BACKEND_EXIT);
  }
}
