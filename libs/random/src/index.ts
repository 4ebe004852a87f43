// The project's one seeded generator and the 32-bit mixers that turn coordinates into its seeds. No
// tfjs: augment (sharp only), the data plane (gRPC only) and the core all draw from here, so data
// order, augmentation views and initial weights come from one implementation.
//
// Each caller keeps the seed mapping it had, as a named function here, so every draw is
// bit-identical to what it was before the three copies were merged (pinned in each package's tests):
//   core        SeededRandom(seed)           = new Mulberry32(nonZeroSeed(seed))   (seed 0 -> 0x9e3779b9)
//   augment     ViewRandom(viewSeed(...))    = new Mulberry32(hashWords(...))      (raw: 0 is state 0)
//   data plane  permutation(n, mixSeeds(..)) = new Mulberry32(seed).permutation(n) (raw: 0 is state 0)
//   pretrainer  key shuffles                 = stepSeed(seed, step)

/** 2^32 / golden ratio: the offset both mixers start from, and the core's stand-in for seed 0. */
export const GOLDEN_RATIO_32 = 0x9e3779b9;
// murmur3's 32-bit multipliers.
const M1 = 0x85ebca6b;
const M2 = 0xc2b2ae35;

/** mulberry32: 32 bits of state; small, fast, good enough for data order, augmentation and init. */
export class Mulberry32 {
  private state: number;

  /** Starts from the raw seed (mod 2^32): seed 0 is state 0. */
  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** Uniform in [0, 1), a multiple of 2^-32. */
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Uniform in [min, max). */
  uniform(min: number, max: number): number {
    return min + (max - min) * this.next();
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return this.next() < p;
  }

  /** Standard normal (Box-Muller, two draws, the cosine branch). */
  normal(): number {
    const u = 1 - this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.next());
  }

  /** A uniformly random ordering of 0..n-1 (Fisher-Yates, from the last position down). */
  permutation(n: number): number[] {
    const order = Array.from({ length: n }, (_, i) => i);
    for (let i = n - 1; i > 0; i--) {
      const j = Math.floor(this.next() * (i + 1));
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    return order;
  }
}

/** The core's seed mapping: the seed mod 2^32, with 0 replaced by 0x9e3779b9. */
export function nonZeroSeed(seed: number): number {
  return seed >>> 0 || GOLDEN_RATIO_32;
}

/** A uniformly random ordering of 0..n-1 from the raw seed (the data plane's plans). */
export function permutation(n: number, seed: number): number[] {
  return new Mulberry32(seed).permutation(n);
}

/** One multiply round: a offset and spread by murmur3's first multiplier, then b xor-ed in (no avalanche). */
export function mixSeeds(a: number, b: number): number {
  return (Math.imul(a ^ GOLDEN_RATIO_32, M1) ^ b) >>> 0;
}

/** The tail of murmur3's finaliser: xor-shift 13, multiply, xor-shift 16. */
export function finalize32(h: number): number {
  h = Math.imul(h ^ (h >>> 13), M2);
  return (h ^ (h >>> 16)) >>> 0;
}

/** A seed for step `step` of a stream seeded by `seed` (so a resumed run draws what it would have). */
export function stepSeed(seed: number, step: number): number {
  return finalize32(mixSeeds(seed, step));
}

/** A running hash of 32-bit words (each taken mod 2^32) from `start`: xor in, multiply, finalise. */
export function hashWords(start: number, words: readonly number[]): number {
  let h = start;
  for (const word of words) h = finalize32(Math.imul(h ^ (word >>> 0), M1));
  return h >>> 0;
}
