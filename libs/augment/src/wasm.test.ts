import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { BOX_BLUR_WAT_SHA256 } from "./box-blur-wasm.js";
import { COLOUR_WAT_SHA256 } from "./colour-wasm.js";
import { RESAMPLE_WAT_SHA256 } from "./resample-wasm.js";

describe("wasm kernels", () => {
  it("are the modules built from the committed .wat files (node tools/wasm-gen.mjs)", () => {
    for (const [name, sha] of [
      ["box-blur", BOX_BLUR_WAT_SHA256],
      ["colour", COLOUR_WAT_SHA256],
      ["resample", RESAMPLE_WAT_SHA256],
    ] as const) {
      const source = readFileSync(new URL(`../wasm/${name}.wat`, import.meta.url));
      assert.equal(createHash("sha256").update(source).digest("hex"), sha, `${name}.wat changed: rebuild`);
    }
  });
});
