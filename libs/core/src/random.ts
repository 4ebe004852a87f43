// The core's seeded generator for reproducible test data and initialisation outside tfjs: the
// project's one mulberry32 (@adco/random), with the core's seed mapping (0 becomes 0x9e3779b9).
import { Mulberry32, nonZeroSeed } from "@adco/random";

export class SeededRandom extends Mulberry32 {
  constructor(seed: number) {
    super(nonZeroSeed(seed));
  }
}
