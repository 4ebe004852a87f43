// Results files: each bench and experiment (and `npm start`) writes what it measured as JSON, one file
// per command, docs/results/<name>.json (<name>: the npm script with ":" as "-"), which the docs cite
// (docs/development.md, "Where numbers come from"; test/docs-results.test.ts checks each citation).
// The shape:
//   {
//     "command": "npm run -s bench:bank",          // the npm script, with its arguments if any
//     "commit": "<git rev-parse HEAD>[-dirty]",    // -dirty: tracked files besides docs differed
//     "date": "2025-01-31T12:00:00.000Z",          // ISO 8601, when the file was written
//     "machine": { "cpu": "<os.cpus()[0].model>", "cores": 2, "node": "v20.20.2", "backend": "wasm" },
//     "results": { ... }                           // named numbers (units in the key names), nested
//   }
// "backend" is the tfjs backend, present only where one ran in this process. Key names are stable:
// change one only together with the docs that cite it. A smoke run (--smoke) never writes to
// docs/results: it writes to $ADCO_RESULTS_DIR, else a temporary directory.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus, tmpdir } from "node:os";
import { dirname, join } from "node:path";

/** The monorepo's root (this file is libs/cli/src/results.ts or libs/cli/dist/results.js). */
const REPO_ROOT = join(import.meta.dirname, "../../..");
export const RESULTS_DIRECTORY = join(REPO_ROOT, "docs/results");

/** A named number (or a label), an array of them, or a nested object of them. */
export type ResultsValue =
  number | string | boolean | null | readonly ResultsValue[] | { readonly [key: string]: ResultsValue };
export type Results = { readonly [key: string]: ResultsValue };

export interface ResultsFile {
  readonly command: string;
  readonly commit: string;
  readonly date: string;
  readonly machine: {
    readonly cpu: string;
    readonly cores: number;
    readonly node: string;
    readonly backend?: string;
  };
  readonly results: Results;
}

/** `npm run -s <script>`, with the arguments after `--` when there are any. */
export function npmCommand(script: string, args: readonly string[] = process.argv.slice(2)): string {
  return `npm run -s ${script}${args.length > 0 ? ` -- ${args.join(" ")}` : ""}`;
}

/** HEAD's commit, with -dirty when tracked files other than docs differ from it; "unknown" outside git. */
export function gitCommit(cwd = REPO_ROOT): string {
  try {
    const git = (...args: string[]) =>
      execFileSync("git", args, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
    const head = git("rev-parse", "HEAD");
    // Edits to the docs (the pages citing these files, the files themselves) cannot change a result.
    const changed = git(
      "status",
      "--porcelain",
      "--untracked-files=no",
      "--",
      ".",
      ":(exclude)docs",
      ":(exclude)*.md",
    );
    return changed === "" ? head : `${head}-dirty`;
  } catch {
    return "unknown";
  }
}

export function resultsFile(command: string, results: Results, backend?: string): ResultsFile {
  return {
    command,
    commit: gitCommit(),
    date: new Date().toISOString(),
    machine: {
      cpu: cpus()[0]?.model.trim() ?? "unknown",
      cores: availableParallelism(),
      node: process.version,
      ...(backend !== undefined ? { backend } : {}),
    },
    results,
  };
}

export interface WriteResultsOptions {
  /** The file's name without .json: the script's name with ":" as "-" (bench-bank, start). */
  readonly name: string;
  /** What was run, usually npmCommand(script). */
  readonly command: string;
  readonly results: Results;
  /** The tfjs backend, where one ran. */
  readonly backend?: string;
  /** A smoke run: never docs/results. */
  readonly smoke?: boolean;
}

/** The longest line prettier keeps on one line here (.prettierrc's printWidth). */
const PRINT_WIDTH = 110;
const SCALAR = String.raw`(?:-?[\d.eE+-]+|"(?:[^"\\]|\\.)*"|true|false|null)`;
const SCALAR_ARRAY = new RegExp(String.raw`^( *)([^\n]*)\[\n((?:\1  ${SCALAR},?\n)+)\1\]`, "gm");

/**
 * JSON as prettier lays it out, so a results file written by a run passes `prettier --check`:
 * JSON.stringify's two-space layout, with an array of scalars on one line where that line fits,
 * and a longer array of numbers filled, as many a line as fit.
 */
export function formatJson(value: unknown): string {
  const text = JSON.stringify(value, null, 2);
  return text.replace(
    SCALAR_ARRAY,
    (match: string, indent: string, head: string, body: string, at: number) => {
      const items = body
        .split("\n")
        .filter((line) => line.trim() !== "")
        .map((line) => line.trim().replace(/,$/, ""));
      const line = `${indent}${head}[${items.join(", ")}]`;
      const comma = text[at + match.length] === "," ? 1 : 0;
      if (line.length + comma <= PRINT_WIDTH) return line;
      if (!items.every((item) => /^-?[\d.eE+-]+$/.test(item))) return match;
      const lines: string[] = [];
      let current = "";
      for (const item of items) {
        const next = current === "" ? `${indent}  ${item},` : `${current} ${item},`;
        if (current !== "" && next.length > PRINT_WIDTH) {
          lines.push(current);
          current = `${indent}  ${item},`;
        } else current = next;
      }
      lines.push(current.replace(/,$/, ""));
      return `${indent}${head}[\n${lines.join("\n")}\n${indent}]`;
    },
  );
}

/** Where writeResults puts <name>.json: $ADCO_RESULTS_DIR, else docs/results (smoke: a temp directory). */
export function resultsPath(name: string, smoke = false): string {
  const directory =
    process.env.ADCO_RESULTS_DIR ?? (smoke ? join(tmpdir(), "adco-smoke-results") : RESULTS_DIRECTORY);
  return join(directory, `${name}.json`);
}

/** The results file that writeResults would replace, if there is one. */
export function readResults(name: string, smoke = false): ResultsFile | undefined {
  const path = resultsPath(name, smoke);
  return existsSync(path) ? (JSON.parse(readFileSync(path, "utf8")) as ResultsFile) : undefined;
}

/** `value` as a results file holds it once written and read back (undefined members dropped). */
export function asResultsValue(value: unknown): ResultsValue {
  return JSON.parse(JSON.stringify(value ?? {})) as ResultsValue;
}

/** Writes resultsPath(name, smoke) and returns it. */
export function writeResults(options: WriteResultsOptions): string {
  const path = resultsPath(options.name, options.smoke);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, `${formatJson(resultsFile(options.command, options.results, options.backend))}\n`);
  return path;
}

/** x rounded to `digits` decimals (results keep what the printed lines show, and a little more). */
export function roundTo(x: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}
