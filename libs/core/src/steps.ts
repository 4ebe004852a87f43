// Long classifier work (a linear probe's SGD, a kNN over many test batches) written once, as a
// generator that yields between steps, and run two ways: to the end at once, or with the event loop
// given a turn now and then. A service runs the second, so that it still answers gRPC keepalives
// and health checks while a probe trains for a minute (a loop blocked past the keepalive timeout
// has its clients drop the connection).

/** Runs the steps to the end, synchronously; returns the generator's result. */
export function runSteps<T>(steps: Generator<void, T>): T {
  for (;;) {
    const next = steps.next();
    if (next.done) return next.value;
  }
}

/** Runs the steps to the end, letting the event loop run at least every `everyMs` milliseconds. */
export async function runStepsYielding<T>(steps: Generator<void, T>, everyMs = 50): Promise<T> {
  let last = performance.now();
  for (;;) {
    const next = steps.next();
    if (next.done) return next.value;
    if (performance.now() - last >= everyMs) {
      await new Promise((resolve) => setImmediate(resolve));
      last = performance.now();
    }
  }
}
