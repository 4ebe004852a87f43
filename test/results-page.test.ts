// docs/results.md is generated from docs/results/*.json (tools/results-page.ts): a results file that
// changed without the page being built again fails here, with the command that fixes it.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { describe, it } from "node:test";
import { ROOT } from "./lib/service-process.js";

describe("docs/results.md", () => {
  it("is what docs/results/*.json give (npm run -s docs:results)", { timeout: 60_000 }, () => {
    const run = spawnSync("npm", ["run", "-s", "docs:results", "--", "--check"], {
      cwd: ROOT,
      encoding: "utf8",
    });
    assert.equal(run.status, 0, `${run.stdout}\n${run.stderr}`);
  });
});
