// A queue that producers push into from callbacks (stream events, run events, progress) and one
// consumer reads as an async iterator: it waits while empty, ends after end(), throws after fail().
export class AsyncQueue<T> implements AsyncIterableIterator<T> {
  private readonly items: T[] = [];
  private ended = false;
  private failure: { error: unknown } | undefined;
  private wake: (() => void) | undefined;

  get size(): number {
    return this.items.length;
  }

  push(item: T): void {
    this.items.push(item);
    this.notify();
  }

  /** No more items: the consumer ends once it has taken what is queued. */
  end(): void {
    this.ended = true;
    this.notify();
  }

  /** The consumer throws `error` once it has taken what is queued. */
  fail(error: unknown): void {
    this.failure = { error };
    this.notify();
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  async next(): Promise<IteratorResult<T>> {
    for (;;) {
      if (this.items.length > 0) return { value: this.items.shift()!, done: false };
      if (this.failure) throw this.failure.error;
      if (this.ended) return { value: undefined, done: true };
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return this;
  }
}
