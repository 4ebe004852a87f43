// Where the data workers are: each configured host:port resolved by DNS to all its addresses (a
// headless Service lists every pod), again every few seconds, so workers that start, restart or
// scale up during an epoch join its feeder. WorkerRetry decides when a lost address is tried again.
import { lookup as dnsLookup } from "node:dns/promises";
import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "@adco/service-kit";
import type { WorkerRetry } from "./worker-retry.js";

/** How often the names are resolved again while an epoch runs. */
const RESOLVE_EVERY_MS = 3000;

export type Lookup = (host: string, options: { all: true }) => Promise<{ address: string; family: number }[]>;

export interface DiscoveryOptions {
  readonly lookup?: Lookup;
  readonly intervalMs?: number;
}

export class WorkerDiscovery {
  private readonly lookup: Lookup;
  private readonly intervalMs: number;

  constructor(
    /** host:port entries; a name that resolves to several addresses gives a worker per address. */
    private readonly entries: readonly string[],
    private readonly log: Logger,
    options: DiscoveryOptions = {},
  ) {
    this.lookup = options.lookup ?? dnsLookup;
    this.intervalMs = options.intervalMs ?? RESOLVE_EVERY_MS;
  }

  /** Every address of every entry, once each; an entry that does not resolve is logged and skipped. */
  async resolve(): Promise<string[]> {
    const out: string[] = [];
    for (const entry of this.entries) {
      const at = entry.lastIndexOf(":");
      const host = entry.slice(0, at);
      const port = entry.slice(at + 1);
      try {
        for (const a of await this.lookup(host, { all: true }))
          out.push(a.family === 6 ? `[${a.address}]:${port}` : `${a.address}:${port}`);
      } catch (e) {
        this.log.warn({ entry, err: (e as Error).message }, "data worker address does not resolve");
      }
    }
    return [...new Set(out)];
  }

  /**
   * Adds every address to the feeder, now and every few seconds, when `retry` says it is due (the
   * feeder ignores one it already has), until the returned controller is aborted.
   */
  keepConnected(feeder: { addWorker(address: string): void }, retry: WorkerRetry): AbortController {
    const control = new AbortController();
    const connect = async () => {
      while (!control.signal.aborted) {
        const addresses = await this.resolve();
        // The feeder may have closed while DNS answered: a worker added now would never be closed.
        if (control.signal.aborted) break;
        for (const address of addresses) if (retry.due(address)) feeder.addWorker(address);
        await sleep(this.intervalMs, undefined, { signal: control.signal }).catch(() => {});
      }
    };
    void connect();
    return control;
  }
}
