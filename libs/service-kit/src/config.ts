// The one config loader: a service declares its keys once (type, default, bounds, doc); values come
// from the defaults, then an optional JSON/YAML file, then ADCO_* environment variables. Unknown keys
// and ill-typed values fail at start with a message that names the key and where it came from.
import { readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

/** One configuration key. `parse` accepts a file value (any JSON type) or an env string. */
export interface Field<T> {
  readonly type: string;
  readonly doc: string;
  readonly default: T | undefined;
  parse(value: unknown, fromEnv: boolean): T;
}

export type ConfigSpec = Record<string, Field<unknown>>;
export type ConfigOf<S extends ConfigSpec> = {
  readonly [K in keyof S]: S[K] extends Field<infer T> ? T : never;
};

function numberField(integer: boolean, opts: { default?: number; min?: number; max?: number; doc: string }) {
  const range = `${opts.min ?? "-inf"}..${opts.max ?? "inf"}`;
  const type = `${integer ? "integer" : "number"} in ${range}`;
  return {
    type,
    doc: opts.doc,
    default: opts.default,
    parse(value: unknown, fromEnv: boolean): number {
      const n = fromEnv && typeof value === "string" && value.trim() !== "" ? Number(value) : value;
      if (typeof n !== "number" || !Number.isFinite(n) || (integer && !Number.isInteger(n))) {
        throw new Error(`expected ${type}, got ${JSON.stringify(value)}`);
      }
      if ((opts.min !== undefined && n < opts.min) || (opts.max !== undefined && n > opts.max)) {
        throw new Error(`${n} is outside ${range}`);
      }
      return n;
    },
  };
}

export const field = {
  int: (opts: { default?: number; min?: number; max?: number; doc: string }): Field<number> =>
    numberField(true, opts),
  number: (opts: { default?: number; min?: number; max?: number; doc: string }): Field<number> =>
    numberField(false, opts),
  string: (opts: { default?: string; doc: string; pattern?: RegExp }): Field<string> => ({
    type: opts.pattern ? `string matching ${opts.pattern}` : "string",
    doc: opts.doc,
    default: opts.default,
    parse(value: unknown): string {
      if (typeof value !== "string") throw new Error(`expected a string, got ${JSON.stringify(value)}`);
      if (opts.pattern && !opts.pattern.test(value)) {
        throw new Error(`${JSON.stringify(value)} does not match ${opts.pattern}`);
      }
      return value;
    },
  }),
  boolean: (opts: { default?: boolean; doc: string }): Field<boolean> => ({
    type: "boolean",
    doc: opts.doc,
    default: opts.default,
    parse(value: unknown, fromEnv: boolean): boolean {
      if (typeof value === "boolean") return value;
      if (fromEnv && (value === "true" || value === "1")) return true;
      if (fromEnv && (value === "false" || value === "0")) return false;
      throw new Error(`expected true or false, got ${JSON.stringify(value)}`);
    },
  }),
  oneOf: <const V extends string>(values: readonly V[], opts: { default?: V; doc: string }): Field<V> => ({
    type: `one of ${values.join(", ")}`,
    doc: opts.doc,
    default: opts.default,
    parse(value: unknown): V {
      if (typeof value !== "string" || !(values as readonly string[]).includes(value)) {
        throw new Error(`expected one of ${values.join(", ")}, got ${JSON.stringify(value)}`);
      }
      return value as V;
    },
  }),
};

/** ADCO_ + the key in SCREAMING_SNAKE_CASE: grpcPort -> ADCO_GRPC_PORT. */
export function envName(key: string): string {
  return "ADCO_" + key.replace(/([a-z0-9])([A-Z])/g, "$1_$2").toUpperCase();
}

/** The env var that names a config file; not a key itself. */
export const CONFIG_FILE_ENV = "ADCO_CONFIG";

export interface LoadOptions {
  env?: NodeJS.ProcessEnv;
  /** Path of a JSON (.json) or YAML (.yaml/.yml) file; defaults to $ADCO_CONFIG. */
  file?: string;
  /**
   * Skip ADCO_* variables the spec does not know (for a CLI that shares an environment with
   * services); services keep the default and reject them, so a typo never passes silently.
   */
  ignoreUnknownEnv?: boolean;
}

function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new ConfigError(`config file ${path}: cannot read it (${(e as Error).message})`);
  }
  let parsed: unknown;
  try {
    parsed = /\.ya?ml$/i.test(path) ? parseYaml(text) : JSON.parse(text);
  } catch (e) {
    throw new ConfigError(
      `config file ${path}: not valid ${/\.ya?ml$/i.test(path) ? "YAML" : "JSON"} (${(e as Error).message})`,
    );
  }
  if (parsed === null || parsed === undefined) return {};
  if (typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new ConfigError(`config file ${path}: expected a mapping of keys to values`);
  }
  return parsed as Record<string, unknown>;
}

/** Loads and validates a configuration. Every problem is collected and reported at once. */
export function loadConfig<S extends ConfigSpec>(spec: S, options: LoadOptions = {}): ConfigOf<S> {
  const env = options.env ?? process.env;
  const file = options.file ?? env[CONFIG_FILE_ENV];
  const keys = Object.keys(spec);
  const byEnv = new Map(keys.map((k) => [envName(k), k]));
  const problems: string[] = [];
  const values: Record<string, unknown> = {};

  const fromFile = file ? readConfigFile(file) : {};
  for (const [key, raw] of Object.entries(fromFile)) {
    const f = spec[key];
    if (!f) {
      problems.push(`config file ${file}: unknown key "${key}" (known keys: ${keys.join(", ")})`);
      continue;
    }
    try {
      values[key] = f.parse(raw, false);
    } catch (e) {
      problems.push(`config file ${file}: key "${key}": ${(e as Error).message}`);
    }
  }

  for (const [name, raw] of Object.entries(env)) {
    if (!name.startsWith("ADCO_") || name === CONFIG_FILE_ENV || raw === undefined) continue;
    const key = byEnv.get(name);
    if (!key) {
      if (options.ignoreUnknownEnv) continue;
      problems.push(`environment: unknown variable ${name} (known: ${[...byEnv.keys()].join(", ")})`);
      continue;
    }
    try {
      values[key] = spec[key]!.parse(raw, true);
    } catch (e) {
      problems.push(`environment: ${name} (key "${key}"): ${(e as Error).message}`);
    }
  }

  for (const key of keys) {
    if (key in values) continue;
    const d = spec[key]!.default;
    if (d === undefined)
      problems.push(`missing required key "${key}" (set ${envName(key)} or "${key}" in the config file)`);
    else values[key] = d;
  }

  if (problems.length > 0) throw new ConfigError(`invalid configuration:\n  - ${problems.join("\n  - ")}`);
  return values as ConfigOf<S>;
}

/** Markdown table of a spec's keys, for docs and --help. */
export function describeConfig(spec: ConfigSpec): string {
  const rows = Object.entries(spec).map(
    ([k, f]) =>
      `| \`${k}\` | \`${envName(k)}\` | ${f.type} | ${f.default === undefined ? "required" : JSON.stringify(f.default)} | ${f.doc} |`,
  );
  return ["| key | env | type | default | meaning |", "| --- | --- | --- | --- | --- |", ...rows].join("\n");
}
