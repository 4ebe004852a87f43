// A float64 reference of one AdCo step, written from the definition in FORMAT.md with plain loops and
// the bank in K x D rows: independent of the tfjs code in adco.ts (other layout, other formulas).
// Used to generate golden cases of any shape and seed.
import type { GoldenCase } from "./golden.js";
import { SeededRandom } from "./random.js";

type Matrix = number[][];

function unit(v: number[]): number[] {
  const n = Math.hypot(...v);
  return v.map((x) => x / n);
}

/** Row i: cross-entropy pieces of query i at temperature t: probabilities over [keys, adversaries]. */
function probabilities(q: Matrix, k: Matrix, d: Matrix, t: number): Matrix {
  return q.map((qi) => {
    const logits = [...k, ...d].map((v) => v.reduce((s, x, c) => s + x * qi[c]!, 0) / t);
    const max = Math.max(...logits);
    const e = logits.map((l) => Math.exp(l - max));
    const sum = e.reduce((a, b) => a + b, 0);
    return e.map((x) => x / sum);
  });
}

export function referenceExpected(c: Omit<GoldenCase, "expected">): GoldenCase["expected"] {
  const { q, k, bank, velocity, hyper } = c;
  const n = q.length;
  const dim = q[0]!.length;
  const d = bank.map(unit);
  const norms = bank.map((w) => Math.hypot(...w));

  const p = probabilities(q, k, d, hyper.t);
  let loss = 0;
  for (let i = 0; i < n; i++) loss -= Math.log(p[i]![i]!) / n;
  // dL/dq_i = sum_j (p_ij - [i=j]) v_j / (N t) over v = [keys, adversaries]
  const dq = q.map((_, i) =>
    Array.from({ length: dim }, (_, c) => {
      let s = 0;
      [...k, ...d].forEach((v, j) => (s += (p[i]![j]! - (i === j ? 1 : 0)) * v[c]!));
      return s / (n * hyper.t);
    }),
  );

  const pm = probabilities(q, k, d, hyper.mem_t);
  // dL/dd_j = sum_i pm_i,N+j q_i / (N t_mem); dL/dw_j = (I - d_j d_j^T) dL/dd_j / |w_j|
  const bankGrad = d.map((dj, j) => {
    const g = Array.from(
      { length: dim },
      (_, c) => q.reduce((s, qi, i) => s + pm[i]![n + j]! * qi[c]!, 0) / (n * hyper.mem_t),
    );
    const along = g.reduce((s, x, c) => s + x * dj[c]!, 0);
    return g.map((x, c) => (x - along * dj[c]!) / norms[j]!);
  });
  const velocityNext = velocity.map((v, j) =>
    v.map((x, c) => hyper.momentum * x - bankGrad[j]![c]! + hyper.wd * bank[j]![c]!),
  );
  const bankNext = bank.map((w, j) => w.map((x, c) => x - hyper.mem_lr * velocityNext[j]![c]!));
  return { loss, dq, bank_grad: bankGrad, velocity_next: velocityNext, bank_next: bankNext };
}

export interface CaseShape {
  readonly n: number;
  readonly dim: number;
  readonly size: number;
  readonly seed: number;
  readonly hyper?: GoldenCase["hyper"];
  /** Adversaries close to the queries (the hard case for precision and overflow). */
  readonly aligned?: boolean;
}

/** A golden case of any shape, with float64 expectations from the reference. */
export function makeGoldenCase(shape: CaseShape): GoldenCase {
  const rng = new SeededRandom(shape.seed);
  const gauss = (rows: number, cols: number) =>
    Array.from({ length: rows }, () => Array.from({ length: cols }, () => rng.normal()));
  const q = gauss(shape.n, shape.dim).map(unit);
  const k = q.map((qi) => unit(qi.map((x) => x + (0.5 * rng.normal()) / Math.sqrt(shape.dim))));
  const bank = shape.aligned
    ? Array.from({ length: shape.size }, (_, j) =>
        q[j % shape.n]!.map(
          (x) =>
            (x + (0.01 * rng.normal()) / Math.sqrt(shape.dim)) * Math.sqrt(shape.dim) * (0.5 + rng.next()),
        ),
      )
    : gauss(shape.size, shape.dim);
  const velocity = gauss(shape.size, shape.dim).map((r) => r.map((x) => 0.01 * x));
  const hyper = shape.hyper ?? { t: 0.12, mem_t: 0.02, mem_lr: 3, momentum: 0.9, wd: 1e-4 };
  const inputs = { format: "adco-golden/1" as const, hyper, q, k, bank, velocity };
  return { ...inputs, expected: referenceExpected(inputs) };
}
