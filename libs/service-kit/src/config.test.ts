import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { ConfigError, describeConfig, envName, field, loadConfig } from "./config.js";

const spec = {
  grpcPort: field.int({ default: 50051, min: 0, max: 65535, doc: "port" }),
  ratio: field.number({ default: 0.5, min: 0, max: 1, doc: "a fraction" }),
  bucket: field.string({ doc: "required, no default" }),
  verbose: field.boolean({ default: false, doc: "chatty" }),
  mode: field.oneOf(["fast", "exact"], { default: "exact", doc: "how" }),
};

function file(name: string, text: string): string {
  const dir = mkdtempSync(join(tmpdir(), "adco-config-"));
  writeFileSync(join(dir, name), text);
  return join(dir, name);
}

const fails = (fn: () => unknown, pattern: RegExp) =>
  assert.throws(fn, (e: unknown) => e instanceof ConfigError && pattern.test(e.message));

describe("loadConfig", () => {
  it("takes defaults, then the file, then the environment", () => {
    const path = file("c.json", JSON.stringify({ bucket: "from-file", ratio: 0.25, mode: "fast" }));
    const config = loadConfig(spec, {
      file: path,
      env: { ADCO_RATIO: "0.75", ADCO_VERBOSE: "true", HOME: "/x" },
    });
    assert.deepEqual(config, {
      grpcPort: 50051,
      ratio: 0.75,
      bucket: "from-file",
      verbose: true,
      mode: "fast",
    });
  });

  it("reads YAML files and names the file from ADCO_CONFIG", () => {
    const path = file("c.yaml", "bucket: b\ngrpcPort: 7000\n");
    assert.equal(loadConfig(spec, { env: { ADCO_CONFIG: path } }).grpcPort, 7000);
  });

  it("rejects an unknown key in the file, naming it", () => {
    const path = file("c.json", JSON.stringify({ bucket: "b", grpcPrt: 1 }));
    fails(() => loadConfig(spec, { file: path, env: {} }), /unknown key "grpcPrt"/);
  });

  it("rejects an ill-typed key in the file, naming it and the expected type", () => {
    const path = file("c.json", JSON.stringify({ bucket: "b", grpcPort: "50051" }));
    fails(
      () => loadConfig(spec, { file: path, env: {} }),
      /key "grpcPort": expected integer in 0\.\.65535, got "50051"/,
    );
  });

  it("rejects an unknown ADCO_ variable (a typo must not be ignored)", () => {
    fails(
      () => loadConfig(spec, { env: { ADCO_BUCKET: "b", ADCO_GRCP_PORT: "1" } }),
      /unknown variable ADCO_GRCP_PORT/,
    );
  });

  it("rejects ill-typed and out-of-range environment values", () => {
    fails(
      () => loadConfig(spec, { env: { ADCO_BUCKET: "b", ADCO_GRPC_PORT: "12.5" } }),
      /ADCO_GRPC_PORT .*integer/,
    );
    fails(
      () => loadConfig(spec, { env: { ADCO_BUCKET: "b", ADCO_RATIO: "2" } }),
      /ADCO_RATIO .*outside 0\.\.1/,
    );
    fails(
      () => loadConfig(spec, { env: { ADCO_BUCKET: "b", ADCO_VERBOSE: "yes" } }),
      /ADCO_VERBOSE .*true or false/,
    );
    fails(
      () => loadConfig(spec, { env: { ADCO_BUCKET: "b", ADCO_MODE: "slow" } }),
      /one of fast, exact, got "slow"/,
    );
    fails(() => loadConfig(spec, { env: { ADCO_BUCKET: "b", ADCO_GRPC_PORT: "" } }), /ADCO_GRPC_PORT/);
  });

  it("reports a missing required key with both ways to set it", () => {
    fails(() => loadConfig(spec, { env: {} }), /missing required key "bucket" \(set ADCO_BUCKET or "bucket"/);
  });

  it("reports every problem at once", () => {
    try {
      loadConfig(spec, { env: { ADCO_GRPC_PORT: "x", ADCO_NOPE: "1" } });
      assert.fail("expected a ConfigError");
    } catch (e) {
      const message = (e as Error).message;
      for (const part of ["ADCO_GRPC_PORT", "ADCO_NOPE", '"bucket"']) assert.match(message, new RegExp(part));
    }
  });

  it("rejects a file that is not a mapping, or not parseable", () => {
    fails(() => loadConfig(spec, { file: file("c.json", "[1]"), env: {} }), /expected a mapping/);
    fails(() => loadConfig(spec, { file: file("c.json", "{"), env: {} }), /not valid JSON/);
    fails(() => loadConfig(spec, { file: "/nonexistent/adco.json", env: {} }), /cannot read it/);
  });

  it("names env variables in SCREAMING_SNAKE_CASE and documents every key", () => {
    assert.equal(envName("maxMessageBytes"), "ADCO_MAX_MESSAGE_BYTES");
    const doc = describeConfig(spec);
    for (const key of Object.keys(spec)) assert.match(doc, new RegExp(`\`${key}\``));
  });
});
