// Every random choice of an augmentation derives from (run seed, epoch, sample id, view), so the same
// run re-creates the same views whichever worker makes them, in whatever order.

/** A 32-bit hash of the four coordinates (murmur3's finaliser over a running mix). */
export function viewSeed(runSeed: number, epoch: number, sampleId: number, view: number): number {
  let h = 0x9e3779b9 ^ runSeed;
  for (const v of [epoch, sampleId, Math.floor(sampleId / 2 ** 32), view]) {
    h = Math.imul(h ^ (v >>> 0), 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
  }
  return h >>> 0;
}

/** mulberry32: small, fast, good enough for augmentation parameters. */
export class ViewRandom {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  uniform(min: number, max: number): number {
    return min + (max - min) * this.next();
  }

  chance(p: number): boolean {
    return this.next() < p;
  }
}
