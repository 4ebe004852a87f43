import assert from "node:assert/strict";
import { it } from "node:test";
import { WorkerRetry } from "./worker-retry.js";

it("a worker that keeps failing is retried after 3, 6, 12 ... 60 s; one that served a while at once", () => {
  let now = 1_000_000;
  const retry = new WorkerRetry(() => now);
  const address = "10.0.0.1:50051";
  assert.ok(retry.due(address), "a new address is tried at once");
  const waits: number[] = [];
  for (let i = 0; i < 7; i++) {
    retry.added(address);
    now += 100; // the stream breaks right away: the worker is down
    retry.lost(address);
    let waited = 0;
    while (!retry.due(address)) {
      now += 1000;
      waited += 1000;
    }
    waits.push(waited);
  }
  assert.deepEqual(waits, [3000, 6000, 12000, 24000, 48000, 60000, 60000]);
  retry.added(address);
  now += 30_000; // it served for half a minute, then restarted
  retry.lost(address);
  assert.ok(retry.due(address), "a worker that was serving is re-added at once");
});
