import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { AsyncQueue } from "./queue.js";

describe("AsyncQueue", () => {
  it("hands items to a waiting consumer in order and ends after end()", async () => {
    const queue = new AsyncQueue<number>();
    const taken: number[] = [];
    const consumer = (async () => {
      for await (const n of queue) taken.push(n);
    })();
    queue.push(1);
    await new Promise((r) => setImmediate(r));
    queue.push(2);
    queue.push(3);
    queue.end();
    await consumer;
    assert.deepEqual(taken, [1, 2, 3]);
  });

  it("delivers what is queued before a failure, then throws it", async () => {
    const queue = new AsyncQueue<string>();
    queue.push("a");
    queue.fail(new Error("boom"));
    assert.deepEqual(await queue.next(), { value: "a", done: false });
    await assert.rejects(queue.next(), /boom/);
  });
});
