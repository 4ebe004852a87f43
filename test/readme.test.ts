// The README documents every configuration key the services read.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { it } from "node:test";
import { adversaryBankConfig } from "@adco/adversary-bank";
import { dataWorkerConfig } from "@adco/data-worker";
import { evaluatorConfig } from "@adco/evaluator";
import { envName } from "@adco/service-kit";
import { trainerConfig } from "@adco/trainer";
import { ROOT } from "./lib/service-process.js";

it("README lists every config key and env variable of every service", () => {
  const readme = readFileSync(join(ROOT, "README.md"), "utf8");
  for (const spec of [dataWorkerConfig, trainerConfig, adversaryBankConfig, evaluatorConfig]) {
    for (const key of Object.keys(spec)) {
      assert.ok(readme.includes(`\`${key}\``), `README does not document key ${key}`);
      assert.ok(readme.includes(`\`${envName(key)}\``), `README does not document ${envName(key)}`);
    }
  }
});
