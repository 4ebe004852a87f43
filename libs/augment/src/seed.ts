// Every random choice of an augmentation derives from (run seed, epoch, sample id, view), so the same
// run re-creates the same views whichever worker makes them, in whatever order.
import { GOLDEN_RATIO_32, hashWords, Mulberry32 } from "@adco/random";

/** A 32-bit hash of the four coordinates (murmur3's finaliser over a running mix). */
export function viewSeed(runSeed: number, epoch: number, sampleId: number, view: number): number {
  return hashWords(GOLDEN_RATIO_32 ^ runSeed, [epoch, sampleId, Math.floor(sampleId / 2 ** 32), view]);
}

/** A view's generator: the project's one mulberry32, from the raw seed (0 is state 0). */
export { Mulberry32 as ViewRandom };
