import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Logger } from "@adco/service-kit";
import { type Lookup, WorkerDiscovery } from "./worker-discovery.js";
import { WorkerRetry } from "./worker-retry.js";

const warnings: string[] = [];
const log = { warn: (fields: { entry: string }) => warnings.push(fields.entry) } as unknown as Logger;
const HOSTS: Record<string, { address: string; family: number }[]> = {
  "data-worker": [
    { address: "10.0.0.1", family: 4 },
    { address: "10.0.0.2", family: 4 },
  ],
  "data-worker-alias": [{ address: "10.0.0.2", family: 4 }],
  v6: [{ address: "fd00::1", family: 6 }],
};
const lookup: Lookup = async (host) => {
  const found = HOSTS[host];
  if (!found) throw new Error(`getaddrinfo ENOTFOUND ${host}`);
  return found;
};

describe("WorkerDiscovery", () => {
  it("gives every address of every name once, IPv6 in brackets; a name that does not resolve is logged", async () => {
    warnings.length = 0;
    const entries = ["data-worker:50051", "data-worker-alias:50051", "v6:7000", "gone:50051"];
    const discovery = new WorkerDiscovery(entries, log, { lookup });
    assert.deepEqual(await discovery.resolve(), ["10.0.0.1:50051", "10.0.0.2:50051", "[fd00::1]:7000"]);
    assert.deepEqual(warnings, ["gone:50051"]);
  });

  it("keeps adding the addresses that are due until it is stopped, and no more after", async () => {
    const discovery = new WorkerDiscovery(["data-worker:50051"], log, { lookup, intervalMs: 5 });
    const retry = new WorkerRetry();
    retry.added("10.0.0.2:50051");
    retry.lost("10.0.0.2:50051"); // lost right after it joined: not due for 3 s
    const added: string[] = [];
    const control = discovery.keepConnected({ addWorker: (a) => added.push(a) }, retry);
    while (added.length < 3) await new Promise((r) => setTimeout(r, 5));
    control.abort();
    const seen = added.length;
    await new Promise((r) => setTimeout(r, 30));
    assert.equal(added.length, seen, "nothing is added once stopped");
    assert.ok(
      added.every((a) => a === "10.0.0.1:50051"),
      "the failing worker waits",
    );
  });
});
