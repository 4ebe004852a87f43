import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import * as prettier from "prettier";
import { formatJson, RESULTS_DIRECTORY } from "./results.js";

const prettierJson = (text: string) => prettier.format(text, { parser: "json", printWidth: 110 });

describe("formatJson", () => {
  it("lays results out as prettier does, so a fresh results file passes prettier --check", async () => {
    const value = {
      seeds: [0, 1, 2],
      knnBySeed: [76.9, 78.3, 78.1],
      names: ["a", 'quote " and \\ backslash', "c"],
      long: Array.from({ length: 40 }, (_, i) => i * 1000.5),
      nested: { flags: [true, false, null], empty: [], deeper: { x: [-1.5e-7, 2] } },
      rows: [{ step: 1, loss: 2.5 }, { step: 2 }],
      mixed: [1, [2, 3], { a: [4] }],
    };
    const ours = `${formatJson(value)}\n`;
    assert.equal(ours, await prettierJson(ours));
    assert.match(ours, /"seeds": \[0, 1, 2\],/);
    assert.match(ours, /"long": \[\n {4}0, 1000.5, /, "an array of numbers over the print width is filled");
    assert.deepEqual(JSON.parse(ours), value);
  });

  it("writes every committed results file exactly as it is", () => {
    for (const name of readdirSync(RESULTS_DIRECTORY).filter((f) => f.endsWith(".json"))) {
      const text = readFileSync(join(RESULTS_DIRECTORY, name), "utf8");
      assert.equal(`${formatJson(JSON.parse(text))}\n`, text, name);
    }
  });
});
