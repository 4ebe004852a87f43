// Worker threads that decode records and make their RGB views, so that one data-worker process
// keeps every core it may use busy: the photo ops are TypeScript (bit-exact with torchvision), which
// runs on the thread that calls it, unlike sharp's work on libvips' own threads. Tasks go to the
// thread with the fewest in flight; a thread that dies fails its tasks and is replaced.
import { Worker } from "node:worker_threads";
import type { CropOptions } from "@adco/augment";
import type { ImageEncoding } from "@adco/storage";

export interface AugmentTask {
  readonly id: number;
  readonly data: Uint8Array;
  /** Prefix of a decode error ("sample 42"). */
  readonly label: string;
  readonly encoding: ImageEncoding;
  /** Size of raw (gray8, rgb8) records; ignored for encoded ones. */
  readonly height: number;
  readonly width: number;
  readonly crops: readonly CropOptions[];
  readonly seed: number;
  readonly epoch: number;
  readonly sampleId: number;
}

export type AugmentReply =
  { readonly id: number; readonly views: Uint8Array[] } | { readonly id: number; readonly error: string };

interface Pending {
  resolve(views: Uint8Array[]): void;
  reject(error: Error): void;
}

interface PoolThread {
  readonly worker: Worker;
  readonly pending: Map<number, Pending>;
}

/**
 * A new pool thread. Built, it runs augment-thread.js. From TypeScript sources (development, tests)
 * it first registers tsx in the thread, since Node 20 does not carry `--import tsx` into workers.
 */
function startThread(): Worker {
  if (!import.meta.url.endsWith(".ts")) return new Worker(new URL("./augment-thread.js", import.meta.url));
  const tsx = import.meta.resolve("tsx/esm/api");
  const thread = new URL("./augment-thread.ts", import.meta.url).href;
  return new Worker(
    `import(${JSON.stringify(tsx)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(thread)}); })`,
    { eval: true },
  );
}

export class AugmentPool {
  private readonly threads: (PoolThread | undefined)[];
  private nextId = 0;
  private closed = false;

  constructor(readonly size: number) {
    if (!Number.isInteger(size) || size < 1) throw new Error(`augment pool of ${size} threads`);
    this.threads = new Array<PoolThread | undefined>(size).fill(undefined);
  }

  /** Decodes the record and makes one view per crop; rejects with the decode error's message. */
  run(task: Omit<AugmentTask, "id">): Promise<Uint8Array[]> {
    if (this.closed) return Promise.reject(new Error("the augment pool is closed"));
    const id = this.nextId++;
    const thread = this.leastBusy();
    return new Promise((resolve, reject) => {
      thread.pending.set(id, { resolve, reject });
      thread.worker.postMessage({ ...task, id });
    });
  }

  /** Stops every thread; tasks in flight fail. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.threads.map((t) => t?.worker.terminate()));
  }

  private leastBusy(): PoolThread {
    let best = 0;
    for (let i = 0; i < this.size; i++) {
      const thread = this.threads[i];
      if (!thread) return this.start(i);
      if (thread.pending.size < this.threads[best]!.pending.size) best = i;
    }
    return this.threads[best]!;
  }

  private start(index: number): PoolThread {
    const worker = startThread();
    // An idle pool must not keep the process alive.
    worker.unref();
    const thread: PoolThread = { worker, pending: new Map() };
    worker.on("message", (reply: AugmentReply) => {
      const pending = thread.pending.get(reply.id);
      if (!pending) return;
      thread.pending.delete(reply.id);
      if ("error" in reply) pending.reject(new Error(reply.error));
      else pending.resolve(reply.views);
    });
    const fail = (error: Error) => {
      if (this.threads[index] === thread) this.threads[index] = undefined;
      for (const p of thread.pending.values()) p.reject(error);
      thread.pending.clear();
    };
    worker.on("error", fail);
    worker.on("exit", (code) => fail(new Error(`augment thread exited with code ${code}`)));
    this.threads[index] = thread;
    return thread;
  }
}
