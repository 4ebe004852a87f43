// deploy/docker/Dockerfile, checked statically (no Docker engine runs here): multi-stage, pinned bases,
// non-root runtime stages that run the built service, the GPU trainer on CUDA 11.2 + cuDNN 8.1 with
// the tfjs-node-gpu our core pins, and COPY sources that exist in the repository.
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { adversaryBankConfig } from "@adco/adversary-bank";
import { dataWorkerConfig } from "@adco/data-worker";
import { evaluatorConfig } from "@adco/evaluator";
import { envName } from "@adco/service-kit";
import { trainerConfig } from "@adco/trainer";
import { ROOT, SERVICES } from "./lib/service-process.js";

interface Instruction {
  readonly op: string;
  readonly args: string;
  readonly line: number;
}

interface Stage {
  readonly base: string;
  readonly name: string | undefined;
  readonly instructions: Instruction[];
}

/** Instructions (continuation lines joined, comments dropped) grouped into stages. */
function parseDockerfile(text: string): { args: Map<string, string>; stages: Stage[] } {
  const instructions: Instruction[] = [];
  let pending = "";
  let start = 0;
  text.split("\n").forEach((raw, i) => {
    const line = raw.trim();
    if (pending === "" && (line === "" || line.startsWith("#"))) return;
    if (pending === "") start = i + 1;
    if (line.startsWith("#")) return;
    pending += (pending ? " " : "") + line.replace(/\\$/, "").trim();
    if (line.endsWith("\\")) return;
    const [op, ...rest] = pending.split(/\s+/);
    instructions.push({ op: op!.toUpperCase(), args: rest.join(" "), line: start });
    pending = "";
  });
  const args = new Map<string, string>();
  const stages: Stage[] = [];
  for (const ins of instructions) {
    if (ins.op === "FROM") {
      const [base, as, name] = ins.args.split(/\s+/);
      stages.push({ base: base!, name: as?.toUpperCase() === "AS" ? name : undefined, instructions: [] });
    } else if (stages.length === 0 && ins.op === "ARG") {
      const [k, v] = ins.args.split("=");
      if (v !== undefined) args.set(k!, v);
    } else {
      stages.at(-1)?.instructions.push(ins);
    }
  }
  return { args, stages };
}

const dockerfile = parseDockerfile(readFileSync(join(ROOT, "deploy/docker/Dockerfile"), "utf8"));
const stage = (name: string) => {
  const found = dockerfile.stages.find((s) => s.name === name);
  assert.ok(found, `stage ${name}`);
  return found;
};
const resolveBase = (base: string) =>
  base.replace(/\$\{(\w+)\}/g, (_, k: string) => dockerfile.args.get(k) ?? "");
const all = (s: Stage, op: string) => s.instructions.filter((i) => i.op === op);
const RUNTIME_STAGES = ["runtime", "trainer-gpu", "dashboard"];

describe("deploy/docker/Dockerfile", () => {
  it("is multi-stage, every base image pinned to a version (no latest)", () => {
    assert.ok(dockerfile.stages.length >= 3);
    for (const s of dockerfile.stages) {
      const base = resolveBase(s.base);
      if (dockerfile.stages.some((other) => other.name === base)) continue; // FROM an earlier stage
      assert.match(base, /^[\w./-]+:[\w.-]+$|@sha256:/, `FROM ${s.base} (stage ${s.name})`);
      assert.doesNotMatch(base, /:latest$/, `FROM ${s.base}`);
    }
    assert.equal(dockerfile.stages.at(-1)!.name, "runtime", "the default target is the CPU runtime image");
  });

  it("runtime stages are small, run as a non-root user and start the built service", () => {
    assert.match(stage("runtime").base, /^gcr\.io\/distroless\/nodejs20-debian12:nonroot$/);
    for (const name of RUNTIME_STAGES) {
      const s = stage(name);
      const user = all(s, "USER").at(-1)?.args;
      assert.ok(user, `${name}: USER`);
      const uid = Number(user.split(":")[0]);
      assert.ok(
        Number.isInteger(uid) && uid > 0,
        `${name}: USER ${user} is a numeric non-root uid (runAsNonRoot can check it)`,
      );
      const entry = JSON.parse(all(s, "ENTRYPOINT").at(-1)!.args) as string[];
      assert.equal(entry.at(-1), "dist/main.js", `${name} runs the compiled service`);
      assert.equal(all(s, "RUN").length, 0, `${name}: no RUN in a runtime stage (built in earlier stages)`);
    }
    for (const service of SERVICES) {
      const main = JSON.parse(readFileSync(join(ROOT, "services", service, "package.json"), "utf8")).bin;
      assert.equal(Object.values(main)[0], "./dist/main.js", `${service}'s entry point is dist/main.js`);
    }
    // The dashboard runs the CLI: its build (SERVICE=cli) and its entry point in libs/cli.
    const cli = JSON.parse(readFileSync(join(ROOT, "libs/cli/package.json"), "utf8"));
    assert.equal(cli.name, "@adco/cli", "the build stage's @adco/${SERVICE} is the CLI for SERVICE=cli");
    assert.equal(cli.bin.adco, "./dist/main.js");
    assert.equal(all(stage("dashboard"), "WORKDIR").at(-1)?.args, "/app/libs/cli");
    assert.ok(
      all(stage("dashboard"), "COPY").some((c) => /--from=cpu-deps \/src\/node_modules/.test(c.args)),
    );
  });

  it("sets only ADCO_* variables that every service reads, and no secret", () => {
    const specs = [dataWorkerConfig, trainerConfig, adversaryBankConfig, evaluatorConfig];
    for (const s of dockerfile.stages) {
      for (const env of all(s, "ENV")) {
        for (const [name] of env.args.split(/\s+/).map((kv) => kv.split("="))) {
          assert.doesNotMatch(name!, /KEY|SECRET|PASSWORD|TOKEN/i, `ENV ${name} (line ${env.line})`);
          if (!name!.startsWith("ADCO_")) continue;
          for (const spec of specs) {
            assert.ok(
              Object.keys(spec).map(envName).includes(name!),
              `ENV ${name} is a config key of every service`,
            );
          }
        }
      }
    }
  });

  it("the GPU trainer: CUDA 11.2 + cuDNN 8 runtime, tfjs-node-gpu installed at build time at the version core pins", () => {
    const gpu = stage("trainer-gpu");
    assert.match(gpu.base, /^nvidia\/cuda:11\.2\.\d+-cudnn8-runtime-ubuntu\d+\.\d+$/);
    const core = JSON.parse(readFileSync(join(ROOT, "libs/core/package.json"), "utf8"));
    assert.equal(
      core.optionalDependencies["@tensorflow/tfjs-node-gpu"],
      "4.22.0",
      "libtensorflow 2.9.1 wants CUDA 11.2",
    );
    const deps = stage("gpu-deps");
    const run = all(deps, "RUN")
      .map((r) => r.args)
      .join(" ");
    assert.match(run, /npm install --omit=dev --workspace @adco\/trainer/);
    assert.match(run, /optionalDependencies\.@tensorflow\/tfjs-node"/, "the CPU tfjs-node is left out");
    assert.match(
      run,
      /test -d node_modules\/@tensorflow\/tfjs-node-gpu/,
      "the build fails if tfjs-node-gpu did not install",
    );
    assert.ok(all(gpu, "COPY").some((c) => /--from=gpu-deps \/src\/node_modules/.test(c.args)));
    const cpu = all(stage("cpu-deps"), "RUN")
      .map((r) => r.args)
      .join(" ");
    assert.match(
      cpu,
      /optionalDependencies\.@tensorflow\/tfjs-node-gpu"/,
      "CPU images leave tfjs-node-gpu out",
    );
  });

  it("copies from the build context only paths that exist, and the context leaves out what is built", () => {
    for (const s of dockerfile.stages) {
      for (const copy of all(s, "COPY").filter((c) => !c.args.includes("--from="))) {
        const sources = copy.args.split(/\s+/).slice(0, -1);
        for (const source of sources)
          assert.ok(existsSync(join(ROOT, source)), `COPY ${source} (line ${copy.line})`);
      }
    }
    const ignored = readFileSync(join(ROOT, ".dockerignore"), "utf8").split("\n");
    for (const entry of ["**/node_modules", "**/dist", ".git"])
      assert.ok(ignored.includes(entry), `.dockerignore ${entry}`);
  });
});
