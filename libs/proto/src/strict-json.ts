// Proto JSON for files people write (a run config, a start request): ts-proto's fromJSON drops keys
// it does not know, so a typo would silently train with a default. These readers refuse them first.
import { RunConfig, StartRunRequest } from "./gen/adco/v1/trainer.js";

/** The camelCase and the proto (snake_case) name of each field of a message, as proto JSON accepts both. */
function acceptedKeys(fields: readonly string[]): string[] {
  return fields.flatMap((k) => [k, k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)]);
}

function checkKeys(json: unknown, fields: readonly string[], what: string): Record<string, unknown> {
  if (typeof json !== "object" || json === null || Array.isArray(json))
    throw new Error(`expected a JSON object (a ${what})`);
  const accepted = acceptedKeys(fields);
  const unknown = Object.keys(json).filter((k) => !accepted.includes(k));
  if (unknown.length > 0) {
    throw new Error(
      `unknown key${unknown.length > 1 ? "s" : ""} ${unknown.join(", ")}; a ${what} has ${fields.join(", ")}`,
    );
  }
  return json as Record<string, unknown>;
}

/** A RunConfig from parsed JSON; throws naming any key a RunConfig lacks. */
export function runConfigFromJson(json: unknown): RunConfig {
  return RunConfig.fromJSON(checkKeys(json, Object.keys(RunConfig.create()), "RunConfig"));
}

/** A StartRunRequest ({ runId, config }) from parsed JSON; unknown keys at either level are refused. */
export function startRunRequestFromJson(json: unknown): StartRunRequest {
  const request = checkKeys(json, Object.keys(StartRunRequest.create()), "StartRunRequest");
  const config = request.config === undefined ? undefined : runConfigFromJson(request.config);
  return { ...StartRunRequest.fromJSON(request), config };
}
