#!/usr/bin/env node
// Runs the node test runner over every *.test.ts under the given directories (default: the whole
// workspace), from TypeScript sources via tsx. Node 20's --test does not expand globs and silently
// finds no .ts file in a directory, so the files are listed here and passed by name.
//   node tools/run-tests.mjs [dir ...]
import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const dirs = process.argv.slice(2);
const roots =
  dirs.length > 0 ? dirs.map((d) => resolve(d)) : ["libs", "services", "test"].map((d) => join(root, d));
const skip = new Set(["node_modules", "dist", ".nx", "gen"]);

function collect(dir, out) {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      if (!skip.has(entry.name)) collect(path, out);
    } else if (entry.name.endsWith(".test.ts")) out.push(path);
  }
}

const files = [];
for (const r of roots) collect(r, files);
files.sort();
if (files.length === 0) {
  console.error(`no *.test.ts files under ${roots.map((r) => relative(root, r) || ".").join(", ")}`);
  process.exit(1);
}
const result = spawnSync(
  process.execPath,
  ["--conditions=development", "--import", "tsx", "--test", ...files],
  { stdio: "inherit", env: { ...process.env, ADCO_LOG_LEVEL: process.env.ADCO_LOG_LEVEL ?? "warn" } },
);
process.exit(result.status ?? 1);
