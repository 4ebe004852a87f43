// docs/configuration.md documents every configuration key the services read, and every ADCO_
// variable the CLI reads; the README points to it.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { it } from "node:test";
import { adversaryBankConfig } from "@adco/adversary-bank";
import { dataWorkerConfig } from "@adco/data-worker";
import { evaluatorConfig } from "@adco/evaluator";
import { CONFIG_FILE_ENV, envName } from "@adco/service-kit";
import { trainerConfig } from "@adco/trainer";
import { ROOT } from "./lib/service-process.js";

const PAGE = "docs/configuration.md";
const page = () => readFileSync(join(ROOT, PAGE), "utf8");
const SPECS = { dataWorkerConfig, trainerConfig, adversaryBankConfig, evaluatorConfig };

it(`${PAGE} lists every config key and env variable of every service`, () => {
  const doc = page();
  for (const spec of Object.values(SPECS)) {
    for (const key of Object.keys(spec)) {
      assert.ok(doc.includes(`\`${key}\``), `${PAGE} does not document key ${key}`);
      assert.ok(doc.includes(`\`${envName(key)}\``), `${PAGE} does not document ${envName(key)}`);
    }
  }
  assert.ok(doc.includes(`\`${CONFIG_FILE_ENV}\``), `${PAGE} does not document ${CONFIG_FILE_ENV}`);
});

it(`${PAGE} gives each key's default as the code has it`, () => {
  const rows = page()
    .split("\n")
    .filter((line) => line.startsWith("| `"));
  for (const [name, spec] of Object.entries(SPECS)) {
    for (const [key, field] of Object.entries(spec)) {
      const row = rows.find((line) => line.startsWith(`| \`${key}\` `));
      assert.ok(row, `${PAGE} has no table row for key ${key}`);
      const shown =
        field.default === undefined
          ? "required"
          : typeof field.default === "string"
            ? JSON.stringify(field.default)
            : String(field.default);
      assert.ok(
        row.split("|").some((cell) => cell.includes(shown)),
        `${PAGE}: the row of ${key} does not show ${name}'s default ${shown}`,
      );
    }
  }
});

it(`${PAGE} lists every ADCO_ variable the CLI reads`, () => {
  const doc = page();
  const dir = join(ROOT, "libs/cli/src");
  const read = new Set<string>();
  for (const file of readdirSync(dir).filter((f) => f.endsWith(".ts") && !f.endsWith(".test.ts"))) {
    for (const m of readFileSync(join(dir, file), "utf8").matchAll(/process\.env\.(ADCO_[A-Z0-9_]+)/g))
      read.add(m[1]!);
  }
  assert.ok(read.size > 0, "found no process.env.ADCO_ reads in libs/cli/src: has the CLI moved?");
  for (const name of read) assert.ok(doc.includes(`\`${name}\``), `${PAGE} does not document ${name}`);
});

it("README.md points to the configuration page", () => {
  const readme = readFileSync(join(ROOT, "README.md"), "utf8");
  assert.ok(readme.includes(`(${PAGE})`), `README.md does not link ${PAGE}`);
});
