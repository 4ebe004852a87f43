// One step of Adversarial Contrast (Hu et al., CVPR 2021; official code maple-research-lab/AdCo) on the
// bank's side: the only copy of it. The in-process negatives, the bank service and every shard of a
// sharded bank run `adcoStep`; a whole bank is the one-shard case.
//
// Glossary, one word per thing:
//   query       q, the query encoder's L2-normalised embedding of a view (N x D)
//   key         k, the momentum encoder's embedding of another view of the same N images (N x D)
//   pair        one (query, key) set of a step: 2 for the symmetric loss, more for multi-crop
//   reduction   how the pairs' losses combine: "mean" (symmetric) or "sum" (multi-crop)
//   adversary   one learned negative, w_j, a column of the bank; its direction d_j = w_j / |w_j|
//   negatives   what a query is contrasted with: the batch's other keys and every adversary
//   bank        the K adversaries and their momentum, stored D x K
//   shard       a contiguous slice of the bank's adversaries, held by one process
//   normaliser  per query, log Z = log sum_v exp(q.v / t) over its positive and its negatives
//   round       one exchange with every shard: 1 gathers the parts of log Z, 2 applies the step
//   init_memory the first ceil(K / N) steps, which write keys into the bank instead of ascending
//
// The step, per pair:
//   logits = [q k^T, q d^T] / t          query i's positive is key i
//   loss   = mean_i (log Z_i - q_i.k_i / t)
//   dLoss/dq_i = sum over negatives v of p_iv (v - k_i) / (N t),   p_iv = exp(q_i.v / t - log Z_i)
// and the adversaries ascend the same loss at t_mem, with momentum, from the bank as the step found it:
//   v <- momentum v - dLoss_mem/dW + wd W;    W <- W - mem_lr v
// Only log Z couples the adversaries of different shards, so the step is two rounds: each shard
// sends its parts of log Z (round 1), the coordinator merges the exact normalisers, and each shard
// sends back its sum_j p_ij d_j and ascends its own adversaries (round 2). `adcoStep` yields each
// round; `stepInProcess` answers it from shards in this process, `stepOverPeers` from shards anywhere.
import * as tf from "@tensorflow/tfjs-core";
import { checkFinite, checkRank2, CoreInputError } from "./checks.js";
import { type AdcoHyperparameters, checkHyperparameters } from "./hyperparameters.js";
import {
  type AdversaryShard,
  disposePartials,
  type LogSumExpPart,
  type Normalizers,
  type ShardApplied,
  type ShardApply,
  type ShardPartial,
  type ShardSlice,
  type ShardWrite,
  splitWrite,
} from "./shard.js";

export interface ContrastPair {
  readonly query: tf.Tensor2D;
  readonly key: tf.Tensor2D;
}

/**
 * How the losses of several pairs combine: "mean" for the symmetric loss (both views as queries),
 * "sum" for multi-crop (several query crops against one key), as in the official code.
 */
export type PairReduction = "mean" | "sum";

export interface ContrastStats {
  readonly loss: number;
  /** Fraction of queries whose positive scores highest (AdCo: ~0.8-0.9 is healthy, ~0.99 means weak adversaries). */
  readonly accuracy: number;
  /** Mean softmax mass on the negatives that are not batch keys (adversaries or queue). */
  readonly adversaryProbability: number;
  /** Geometry of the first pair against the negatives as the step found them, for people watching a run. */
  readonly similarity: SimilarityStats;
}

export interface SimilarityStats {
  /** Mean cosine similarity of queries and normalised negatives. */
  readonly meanAdversary: number;
  /** Mean over queries of the largest cosine similarity to any negative. */
  readonly maxAdversary: number;
  /** Mean cosine similarity of each query to its positive key. */
  readonly meanPositive: number;
  /** Mean L2 norm of the raw negatives. */
  readonly meanAdversaryNorm: number;
}

export interface ContrastOutcome extends ContrastStats {
  /** dLoss/dq of each pair, already scaled by the reduction; the caller owns them. */
  readonly queryGrads: tf.Tensor2D[];
}

/** What the step asks of every shard in a round. */
export type ShardRound =
  | { readonly round: 1; readonly queries: readonly tf.Tensor2D[] }
  | { readonly round: 2; readonly inputs: readonly ShardApply[] };

/** Each shard's answer to a round, in shard order: its partials per pair (1) or what it applied (2). */
export type ShardAnswers = ShardPartial[][] | ShardApplied[];

export type StepRounds = Generator<ShardRound, ContrastOutcome, ShardAnswers>;

/**
 * One AdCo step over the bank's shards. `update` false leaves the adversaries as they are (init_memory
 * steps), and `write` then puts keys into the bank from an adversary index, after the computation.
 */
export function* adcoStep(
  pairs: readonly ContrastPair[],
  slices: readonly ShardSlice[],
  hyper: AdcoHyperparameters,
  reduction: PairReduction,
  update: boolean,
  write?: ShardWrite,
): StepRounds {
  checkStepInputs(pairs, slices, hyper);
  const size = slices[0]!.size; //                                              K
  const queries = pairs.map((p) => p.query); //                                 P x (N x D)
  const weight = reduction === "mean" ? 1 / pairs.length : 1;

  // Round 1: each shard's max and sum of exp(logit - max) over its adversaries, at t and t_mem.
  const partials = (yield { round: 1, queries }) as ShardPartial[][]; //         S x P
  const writes = write ? splitWrite(write.keys, write.start, slices) : slices.map(() => undefined);
  const keyCosines: tf.Tensor2D[] = [];
  const normalizers: Normalizers[] = [];
  try {
    const ofPair = (i: number) => partials.map((shard) => shard[i]!); //       S parts of pair i
    for (const pair of pairs) keyCosines.push(tf.matMul(pair.query, pair.key, false, true)); // P x (N x N)
    pairs.forEach((_, i) => normalizers.push(mergeNormalizers(keyCosines[i]!, ofPair(i), hyper))); // P x (N, N)

    // Round 2: each shard's sum_j p_ij d_j (N x D per pair), then the ascent of its adversaries.
    const pairWeights = pairs.map(() => weight);
    const inputs = writes.map((w) => ({ queries, normalizers, pairWeights, update, write: w }));
    const applied = (yield { round: 2, inputs }) as ShardApplied[]; //         S
    try {
      const results = pairs.map((pair, i) =>
        pairOutcome(
          pair,
          keyCosines[i]!,
          normalizers[i]!,
          ofPair(i),
          applied.map((a) => a.gradParts[i]!),
          hyper,
          size,
        ),
      );
      const mean = (f: (r: PairOutcome) => number) => results.reduce((s, r) => s + f(r), 0) / results.length;
      return {
        loss: results.reduce((s, r) => s + r.loss * weight, 0),
        accuracy: mean((r) => r.accuracy),
        adversaryProbability: mean((r) => r.adversaryProbability),
        similarity: {
          ...results[0]!.similarity,
          meanAdversaryNorm: applied.reduce((s, a) => s + a.normSum, 0) / size,
        },
        queryGrads: results.map((r) => {
          const scaled = tf.mul(r.queryGrad, weight) as tf.Tensor2D; //       N x D
          r.queryGrad.dispose();
          return scaled;
        }),
      };
    } finally {
      tf.dispose(applied.flatMap((a) => a.gradParts));
    }
  } finally {
    disposePartials(partials.flat());
    tf.dispose([
      ...keyCosines,
      ...normalizers.flatMap((n) => [n.encoder, n.memory]),
      ...writes.flatMap((w) => (w ? [w.keys] : [])),
    ]);
  }
}

/** Answers each round of a step from shards in this process, in order. */
export function stepInProcess(rounds: StepRounds, shards: readonly AdversaryShard[]): ContrastOutcome {
  const key = ++inProcessRounds;
  let next = rounds.next();
  while (!next.done) {
    const request = next.value;
    let answers: ShardAnswers;
    try {
      answers =
        request.round === 1
          ? answerAll(shards, (s) => s.partials(request.queries, key), disposePartials)
          : answerAll(
              shards,
              (s, i) => s.apply(request.inputs[i]!, key),
              (applied) => tf.dispose(applied.gradParts),
            );
    } catch (e) {
      rounds.throw(e); // lets the step free what it holds; rethrows e
      throw e;
    }
    next = rounds.next(answers);
  }
  return next.value;
}

/** Each shard's answer in order; when one fails, frees the answers before it. */
function answerAll<T>(
  shards: readonly AdversaryShard[],
  answer: (shard: AdversaryShard, index: number) => T,
  free: (answer: T) => void,
): T[] {
  const answers: T[] = [];
  try {
    shards.forEach((s, i) => answers.push(answer(s, i)));
    return answers;
  } catch (e) {
    answers.forEach(free);
    throw e;
  }
}

/** Round keys of in-process steps: a shard reuses round 1's exponentials in round 2 of the same key. */
let inProcessRounds = 0;

/** A shard as a coordinator sees it: a peer over the network, or a slice of its own behind the wire format. */
export interface ShardPeer {
  partials(queries: readonly tf.Tensor2D[]): Promise<ShardPartial[]>;
  apply(input: ShardApply): Promise<ShardApplied>;
}

/** Answers each round of a step from shards anywhere, all shards of a round at once. */
export async function stepOverPeers(
  rounds: StepRounds,
  peers: readonly ShardPeer[],
): Promise<ContrastOutcome> {
  let next = rounds.next();
  while (!next.done) {
    const request = next.value;
    let answers: ShardAnswers;
    try {
      answers =
        request.round === 1
          ? await settleAll(
              peers.map((p) => p.partials(request.queries)),
              disposePartials,
            )
          : await settleAll(
              peers.map((p, i) => p.apply(request.inputs[i]!)),
              (applied) => tf.dispose(applied.gradParts),
            );
    } catch (e) {
      rounds.throw(e);
      throw e;
    }
    next = rounds.next(answers);
  }
  return next.value;
}

/** Promise.all that, when one fails, waits for the others and frees what they answered. */
async function settleAll<T>(pending: readonly Promise<T>[], free: (answer: T) => void): Promise<T[]> {
  const settled = await Promise.allSettled(pending);
  const failed = settled.find((s) => s.status === "rejected");
  if (!failed) return settled.map((s) => (s as PromiseFulfilledResult<T>).value);
  for (const s of settled) if (s.status === "fulfilled") free(s.value);
  throw failed.reason;
}

function checkStepInputs(
  pairs: readonly ContrastPair[],
  slices: readonly ShardSlice[],
  hyper: AdcoHyperparameters,
): void {
  checkHyperparameters(hyper);
  if (pairs.length === 0) throw new CoreInputError("pairs", "at least one (query, key) pair is needed");
  if (slices.length === 0) throw new CoreInputError("slices", "a bank has at least one shard");
  const size = slices[0]!.size;
  const [batch, dim] = pairs[0]!.query.shape;
  for (const { query, key } of pairs) {
    checkRank2(query, "q", batch, dim);
    if (batch! < 1) throw new CoreInputError("q", "the batch is empty");
    checkRank2(key, "k", batch, dim);
    checkFinite(query, "q");
    checkFinite(key, "k");
  }
  if (size < batch!) {
    throw new CoreInputError("bank", `K = ${size} adversaries is smaller than the batch N = ${batch}`);
  }
}

// ---- The coordinator's part: normalisers from the parts, then the encoder's side of each pair.

/** Per query: the max of the logits and the sum of exp(logit - max). */
function logSumExpPart(logits: tf.Tensor2D): LogSumExpPart {
  return tf.tidy(() => {
    const max = tf.max(logits, 1) as tf.Tensor1D; //                                          N
    const sumExp = tf.sum(tf.exp(tf.sub(logits, tf.expandDims(max, 1))), 1) as tf.Tensor1D; // N
    return { max, sumExp };
  });
}

/** log sum exp over the union of the parts' logits, per query (N). */
function mergeLogSumExp(parts: readonly LogSumExpPart[]): tf.Tensor1D {
  return tf.tidy(() => {
    const max = parts.map((p) => p.max).reduce((a, b) => tf.maximum(a, b)); //           N
    const sum = parts.map((p) => tf.mul(p.sumExp, tf.exp(tf.sub(p.max, max)))).reduce((a, b) => tf.add(a, b));
    return tf.add(max, tf.log(sum)) as tf.Tensor1D; //                                        N
  });
}

/** The exact normalisers of one pair at t and t_mem from its keys' cosines (N x N) and every shard's parts. */
function mergeNormalizers(
  keyCosines: tf.Tensor2D,
  partials: readonly ShardPartial[],
  hyper: AdcoHyperparameters,
): Normalizers {
  return tf.tidy(() => {
    const keysAt = (t: number) => logSumExpPart(tf.div(keyCosines, t) as tf.Tensor2D);
    return {
      encoder: mergeLogSumExp([keysAt(hyper.temperature), ...partials.map((p) => p.encoder)]),
      memory: mergeLogSumExp([keysAt(hyper.memoryTemperature), ...partials.map((p) => p.memory)]),
    };
  });
}

interface PairOutcome {
  readonly loss: number;
  /** dLoss/dq (N x D), not yet scaled by the pair's weight. */
  readonly queryGrad: tf.Tensor2D;
  readonly accuracy: number;
  readonly adversaryProbability: number;
  readonly similarity: Omit<SimilarityStats, "meanAdversaryNorm">;
}

/** Loss, dLoss/dq and statistics of one pair from its normaliser and the shards' answers. */
function pairOutcome(
  pair: ContrastPair,
  keyCosines: tf.Tensor2D,
  normalizers: Normalizers,
  partials: readonly ShardPartial[],
  gradParts: readonly tf.Tensor2D[],
  hyper: AdcoHyperparameters,
  size: number,
): PairOutcome {
  const t = hyper.temperature;
  const [batch] = pair.query.shape;
  const { queryGrad, values } = tf.tidy(() => {
    const logZ = normalizers.encoder; //                                                       N
    const keyLogits = tf.div(keyCosines, t); //                                              N x N
    const positiveCosines = tf.sum(tf.mul(pair.query, pair.key), 1); //                      N
    const positives = tf.div(positiveCosines, t) as tf.Tensor1D; //                          N
    const offDiagonal = tf.sub(1, tf.eye(batch));
    const keyProbs = tf.mul(tf.exp(tf.sub(keyLogits, tf.expandDims(logZ, 1))), offDiagonal); // N x N
    const bankMass = partials
      .map((p) => tf.mul(p.encoder.sumExp, tf.exp(tf.sub(p.encoder.max, logZ))))
      .reduce((a, b) => tf.add(a, b)); //                                                      N
    const bankSum = gradParts.reduce((a, b) => tf.add(a, b)); //                            N x D
    const contrast = contrastGradient({
      key: pair.key,
      positives,
      logZ,
      negativeSum: tf.add(tf.matMul(keyProbs, pair.key), bankSum) as tf.Tensor2D, //       N x D
      negativeMass: tf.add(tf.sum(keyProbs, 1), bankMass) as tf.Tensor1D, //                  N
      temperature: t,
    });
    // The positive wins when it leads the keys (argMax takes the first of equals, so a tie with
    // another key is lost only to an earlier one) and no adversary beats it.
    const bankMax = partials.map((p) => p.encoder.max).reduce((a, b) => tf.maximum(a, b)); //  N
    const leadsKeys = tf.equal(tf.argMax(keyLogits, 1), tf.range(0, batch, 1, "int32"));
    const accuracy = tf.mean(
      tf.cast(tf.logicalAnd(leadsKeys, tf.greaterEqual(positives, bankMax)), "float32"),
    );
    const similaritySum = partials.map((p) => p.similaritySum).reduce((a, b) => tf.add(a, b)); // N
    return {
      queryGrad: contrast.queryGrad,
      values: tf.stack([
        contrast.loss,
        accuracy,
        tf.mean(bankMass),
        tf.mul(tf.mean(bankMax), t),
        tf.sum(similaritySum),
        tf.mean(positiveCosines),
      ]),
    };
  });
  const [loss, accuracy, mass, maxAdversary, similarityTotal, meanPositive] = values.dataSync();
  values.dispose();
  return {
    loss: loss!,
    queryGrad,
    accuracy: accuracy!,
    adversaryProbability: mass!,
    similarity: {
      meanAdversary: similarityTotal! / (batch * size),
      maxAdversary: maxAdversary!,
      meanPositive: meanPositive!,
    },
  };
}

/**
 * The encoder's loss and dLoss/dq from a pair's normaliser, for any negatives (AdCo's keys and
 * adversaries, MoCo's queue):
 *   loss = mean_i (log Z_i - positive_i)
 *   dLoss/dq_i = sum over negatives v of p_iv (v - k_i) / (N t) = (sum_v p_iv v - m_i k_i) / (N t)
 * with m_i the negatives' probability mass. It is the same as (sum over all v of p_iv v - k_i) / (N t),
 * but without the positive's term p_ii k_i, which nearly cancels -k_i: when the positive dominates
 * (p_ii ~ 1) or the negatives' mean nearly equals k_i (aligned adversaries), forming it loses the
 * small result to rounding at the scale of k.
 */
export function contrastGradient(c: {
  /** N x D */
  readonly key: tf.Tensor2D;
  /** q_i.k_i / t, N */
  readonly positives: tf.Tensor1D;
  /** log Z_i, N */
  readonly logZ: tf.Tensor1D;
  /** sum over negatives v of p_iv v, N x D */
  readonly negativeSum: tf.Tensor2D;
  /** sum over negatives v of p_iv, N */
  readonly negativeMass: tf.Tensor1D;
  readonly temperature: number;
}): { loss: tf.Scalar; queryGrad: tf.Tensor2D } {
  return tf.tidy(() => {
    const batch = c.key.shape[0];
    const loss = tf.mean(tf.sub(c.logZ, c.positives)) as tf.Scalar;
    const queryGrad = tf.div(
      tf.sub(c.negativeSum, tf.mul(tf.expandDims(c.negativeMass, 1), c.key)), //           N x D
      batch * c.temperature,
    ) as tf.Tensor2D;
    return { loss, queryGrad };
  });
}
