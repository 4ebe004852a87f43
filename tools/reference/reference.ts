// The side-by-side comparison of bench:core and bench:bank (`--torch`): finds a Python with PyTorch
// (or numpy, for the bank) to run adco_step.py, the benchmark reference beside this file, and runs
// our own step in a child process with ADCO_THREADS set. Python is a reference of the benches only:
// nothing of the product imports it, and a machine without it still runs every bench (the comparison
// then says what is missing and records `pytorch: null`).
import { spawnSync } from "node:child_process";
import { join } from "node:path";

export const REFERENCE_SCRIPT = join(import.meta.dirname, "adco_step.py");
/**
 * Debian's python3-torch calls the system libblas.so.3, which is the netlib reference BLAS (a
 * 256 x 128 . 128 x 65536 product: 3.9 s, against 60 ms with OpenBLAS) unless an optimised BLAS is
 * installed as its alternative; hence both packages.
 */
export const INSTALL_HINT = "apt-get install python3-torch libopenblas0-pthread";
/** The interpreters tried, in order: the one on PATH, then Debian's (where python3-torch installs). */
export const DEFAULT_PYTHONS = ["python3", "/usr/bin/python3"] as const;
/** The thread counts both sides run at. */
export const COMPARED_THREADS = [1, 2] as const;

export interface Engine {
  /** The interpreter, as given (python3, /usr/bin/python3, --python PATH). */
  readonly python: string;
  readonly version: string;
}

export interface Engines {
  readonly torch?: Engine;
  readonly numpy?: Engine;
  /** Why each interpreter tried has no PyTorch, when none has it. */
  readonly torchMissing?: string;
}

interface Probe {
  python: string;
  torch: string | null;
  torchError: string | null;
  numpy: string | null;
  numpyError: string | null;
}

/** Probes each interpreter (adco_step.py probe) for torch and numpy; the first that has each wins. */
export function findEngines(pythons: readonly string[] = DEFAULT_PYTHONS): Engines {
  let torch: Engine | undefined;
  let numpy: Engine | undefined;
  const reasons: string[] = [];
  for (const python of pythons) {
    const run = spawnSync(python, [REFERENCE_SCRIPT, "probe"], { encoding: "utf8", timeout: 60_000 });
    if (run.error) {
      const code = (run.error as NodeJS.ErrnoException).code;
      reasons.push(`${python}: ${code === "ENOENT" ? "not found" : run.error.message}`);
      continue;
    }
    let probe: Probe;
    try {
      probe = JSON.parse(run.stdout.trim().split("\n").pop() ?? "") as Probe;
    } catch {
      reasons.push(`${python}: the probe failed (${(run.stderr || run.stdout).trim().split("\n").pop()})`);
      continue;
    }
    if (probe.torch) torch ??= { python, version: probe.torch };
    else reasons.push(`${python} ${probe.python}: ${probe.torchError}`);
    if (probe.numpy) numpy ??= { python, version: probe.numpy };
    if (torch && numpy) break;
  }
  return { torch, numpy, ...(torch ? {} : { torchMissing: reasons.join("; ") }) };
}

/** The one line a bench prints when no interpreter has PyTorch. */
export function missingLine(engines: Engines): string {
  return `PyTorch: not available (${engines.torchMissing}); install it with: ${INSTALL_HINT}`;
}

/** The line a bench prints when the reference ran on the netlib reference BLAS (adco_step.py's "blas"). */
export function blasWarning(engine: string, blas: unknown): string | undefined {
  if (blas !== "netlib reference") return undefined;
  return `warning: ${engine} ran on the netlib reference BLAS, whose matrix products are tens of times slower than an optimised BLAS's; install one with: apt-get install libopenblas0-pthread`;
}

/** Runs adco_step.py with these arguments and returns its JSON line; throws with its stderr on failure. */
export function runReference(python: string, args: readonly string[]): Record<string, unknown> {
  const run = spawnSync(python, [REFERENCE_SCRIPT, ...args], { encoding: "utf8", timeout: 1_800_000 });
  const line = run.stdout?.trim().split("\n").pop() ?? "";
  if (run.status === 0) {
    try {
      return JSON.parse(line) as Record<string, unknown>;
    } catch {
      // reported below
    }
  }
  const why = run.error?.message ?? (run.stderr ?? "").trim().slice(-1000);
  throw new Error(`${python} ${REFERENCE_SCRIPT} ${args.join(" ")} failed (status ${run.status}): ${why}`);
}

/**
 * Runs this bench's own script again in a child process with ADCO_THREADS set, and returns the JSON
 * of its last line; throws with its stderr on failure.
 */
export function runOurs(args: readonly string[], threads: number): Record<string, unknown> {
  const child = spawnSync(process.execPath, [...process.execArgv, process.argv[1]!, ...args], {
    env: { ...process.env, ADCO_THREADS: String(threads) },
    encoding: "utf8",
  });
  const line = child.stdout.trim().split("\n").pop() ?? "";
  if (child.status === 0) {
    try {
      return JSON.parse(line) as Record<string, unknown>;
    } catch {
      // reported below
    }
  }
  throw new Error(
    `our step with ADCO_THREADS=${threads} failed (status ${child.status}): ${child.stderr.slice(-1000)}`,
  );
}

/** A Markdown table row. */
export const tableRow = (cells: readonly (string | number)[]) => `| ${cells.join(" | ")} |`;
