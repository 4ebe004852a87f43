// When to try a data worker again after its stream broke: at once if it had been serving for a while
// (a restart, a blip), and with a doubling wait (3 s up to 60 s) while it keeps failing right after it
// is added (it is down), so a dead address is not re-added, and logged, every few seconds.
const FIRST_WAIT_MS = 3000;
const LONGEST_WAIT_MS = 60_000;
/** A worker lost sooner than this after it was added counts as failing. */
const HEALTHY_AFTER_MS = 10_000;

export class WorkerRetry {
  private readonly workers = new Map<string, { addedAt: number; failures: number; retryAt: number }>();

  constructor(private readonly now: () => number = Date.now) {}

  /** Whether the address may be added now. */
  due(address: string): boolean {
    return (this.workers.get(address)?.retryAt ?? 0) <= this.now();
  }

  added(address: string): void {
    const entry = this.workers.get(address) ?? { addedAt: 0, failures: 0, retryAt: 0 };
    this.workers.set(address, { ...entry, addedAt: this.now() });
  }

  lost(address: string): void {
    const entry = this.workers.get(address) ?? { addedAt: 0, failures: 0, retryAt: 0 };
    const now = this.now();
    const failures = now - entry.addedAt < HEALTHY_AFTER_MS ? entry.failures + 1 : 0;
    const wait = failures === 0 ? 0 : Math.min(LONGEST_WAIT_MS, FIRST_WAIT_MS * 2 ** (failures - 1));
    this.workers.set(address, { addedAt: entry.addedAt, failures, retryAt: now + wait });
  }
}
