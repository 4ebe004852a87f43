// The architecture's rules are lint rules (eslint.config.js): each forbidden import planted in a
// file where it is forbidden fails the lint, and the same import where it is allowed does not.
import assert from "node:assert/strict";
import { join } from "node:path";
import { describe, it } from "node:test";
import { ESLint } from "eslint";
import { ROOT } from "./lib/service-process.js";

const eslint = new ESLint({ cwd: ROOT });

/** The no-restricted-imports messages for `source` as if it were the file at `path`. */
async function restricted(path: string, source: string): Promise<string[]> {
  const [result] = await eslint.lintText(`${source}\nexport const planted = 1;\n`, {
    filePath: join(ROOT, path),
  });
  return result!.messages.filter((m) => m.ruleId === "no-restricted-imports").map((m) => m.message);
}

describe("architecture rules in the lint", () => {
  const forbidden: [string, string, RegExp][] = [
    ["libs/core/src/planted.ts", 'import * as grpc from "@grpc/grpc-js";', /no gRPC/],
    ["libs/core/src/planted.ts", 'import { readFileSync } from "node:fs";', /file system/],
    ["libs/core/src/planted.ts", 'import { Client } from "minio";', /object storage/],
    ["libs/core/src/planted.ts", 'import { ObjectStore } from "@adco/storage";', /object storage/],
    ["libs/core/src/planted.ts", 'import { encodeTensor } from "@adco/proto";', /wire format/],
    ["libs/core/src/planted.ts", 'import { logger } from "@adco/service-kit";', /no gRPC/],
    [
      "libs/core/src/planted.ts",
      'import { trainerConfig } from "@adco/trainer";',
      /libs never import services/,
    ],
    [
      "libs/augment/src/planted.ts",
      'import { ViewBatch } from "@adco/proto/data_worker";',
      /augment makes pixels/,
    ],
    [
      "libs/storage/src/planted.ts",
      'import { x } from "../../../services/evaluator/src/main.js";',
      /never import/,
    ],
    [
      "services/trainer/src/planted.ts",
      'import { Bank } from "@adco/adversary-bank";',
      /no service imports another/,
    ],
    [
      "services/evaluator/src/planted.ts",
      'import { x } from "../../trainer/src/run.js";',
      /no service imports another/,
    ],
  ];
  for (const [path, source, message] of forbidden) {
    it(`refuses ${source} in ${path}`, async () => {
      const messages = await restricted(path, source);
      assert.ok(
        messages.some((m) => message.test(m)),
        `expected a no-restricted-imports error matching ${message}, got ${JSON.stringify(messages)}`,
      );
    });
  }

  const allowed: [string, string][] = [
    ["libs/core/src/planted.test.ts", 'import { readFileSync } from "node:fs";'],
    ["libs/core/src/planted.ts", 'import { SeededRandom } from "@adco/random";'],
    ["libs/dataplane/src/planted.ts", 'import { ViewBatch } from "@adco/proto/data_worker";'],
    ["services/trainer/src/planted.ts", 'import { adcoStep } from "@adco/core";'],
    ["services/trainer/src/planted.ts", 'import { x } from "./run.js";'],
  ];
  for (const [path, source] of allowed) {
    it(`allows ${source} in ${path}`, async () => {
      assert.deepEqual(await restricted(path, source), []);
    });
  }
});
