// The generated code in libs/proto must match proto/: regenerating (buf + ts-proto from
// node_modules, offline) gives byte-identical files.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { it } from "node:test";
import { ROOT } from "./lib/service-process.js";

it("libs/proto/src/gen is up to date with proto/ (and buf lint passes)", () => {
  const result = spawnSync(process.execPath, [join(ROOT, "tools/proto-gen.mjs"), "--check"], {
    encoding: "utf8",
  });
  assert.equal(result.status, 0, result.stderr + result.stdout);
});
