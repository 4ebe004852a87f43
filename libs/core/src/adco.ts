// One step of Adversarial Contrast (Hu et al., CVPR 2021; official code maple-research-lab/AdCo).
//
// The bank W holds K raw adversaries; the negatives are its columns normalised, d_j = w_j / |w_j|.
// For L2-normalised queries q (N x D) and keys k (N x D):
//   logits = [q k^T, q d^T] / t      query i's positive is column i; the other keys and all d_j are negatives
//   loss   = mean_i CE(logits_i, i)
// The encoder descends the loss. The adversaries ascend the same loss at temperature t_mem, with
// momentum, from the bank as it was at the start of the step:
//   v <- momentum * v - dLoss_mem/dW + wd * W;    W <- W - memory_lr * v
//
// Layout: the bank is stored D x K (columns are adversaries), as in the official code. On the wasm
// backend a product runs ~5x faster as A.B than as A.B^T and ~40x faster than as A^T.B, so every
// product of a step is arranged as a plain A.B: q.dT (N x D . D x K), P.d (N x K . K x D, with d
// transposed once per step), and q^T.P (D x N . N x K) for the bank gradient, which comes out D x K.
import * as tf from "@tensorflow/tfjs-core";
import { checkFinite, checkInRange, checkPositive, checkRank2, CoreInputError } from "./checks.js";

export interface AdcoHyperparameters {
  /** Encoder temperature t (paper 0.12). */
  readonly temperature: number;
  /** Temperature t_mem of the loss the adversaries ascend (paper 0.02). */
  readonly memoryTemperature: number;
  /** Step size of the adversaries (paper 3), constant over the run. */
  readonly memoryLr: number;
  /** Momentum of the adversaries (paper 0.9). */
  readonly memoryMomentum: number;
  /** Weight decay of the adversaries (paper 1e-4). */
  readonly memoryWeightDecay: number;
}

export const PAPER_HYPERPARAMETERS: AdcoHyperparameters = {
  temperature: 0.12,
  memoryTemperature: 0.02,
  memoryLr: 3,
  memoryMomentum: 0.9,
  memoryWeightDecay: 1e-4,
};

/** The adversaries and their momentum, both D x K. */
export interface AdversaryBank {
  readonly weights: tf.Tensor2D;
  readonly velocity: tf.Tensor2D;
}

export interface ContrastResult {
  /** Mean cross-entropy at the encoder temperature. */
  readonly loss: tf.Scalar;
  /** dLoss/dq (N x D), q a leaf, k constant. */
  readonly queryGrad: tf.Tensor2D;
  /** Fraction of queries whose positive logit is the largest. */
  readonly accuracy: tf.Scalar;
  /** Mean softmax probability on the adversaries. */
  readonly adversaryProbability: tf.Scalar;
}

export function checkHyperparameters(h: AdcoHyperparameters): void {
  checkPositive(h.temperature, "temperature");
  checkPositive(h.memoryTemperature, "memoryTemperature");
  if (!(h.memoryLr >= 0)) throw new CoreInputError("memoryLr", `must be >= 0, got ${h.memoryLr}`);
  checkInRange(h.memoryMomentum, "memoryMomentum", 0, 1);
  if (!(h.memoryWeightDecay >= 0)) {
    throw new CoreInputError("memoryWeightDecay", `must be >= 0, got ${h.memoryWeightDecay}`);
  }
}

/** Checks q, k (N x D) against a D x K bank: shapes, dtype, finiteness, K >= N. */
export function checkContrastInputs(q: tf.Tensor, k: tf.Tensor, bank: AdversaryBank): void {
  checkRank2(bank.weights, "bank.weights");
  const [dim, size] = bank.weights.shape;
  checkRank2(bank.velocity, "bank.velocity", dim, size);
  checkRank2(q, "q", undefined, dim);
  const batch = q.shape[0]!;
  if (batch < 1) throw new CoreInputError("q", "the batch is empty");
  checkRank2(k, "k", batch, dim);
  if (size < batch) {
    throw new CoreInputError(
      "bank.weights",
      `K = ${size} adversaries is smaller than the batch N = ${batch}`,
    );
  }
  checkFinite(q, "q");
  checkFinite(k, "k");
}

/** Columns of the bank divided by their L2 norms, and the norms (1 x K). */
export function normalizeColumns(weights: tf.Tensor2D): { directions: tf.Tensor2D; norms: tf.Tensor2D } {
  return tf.tidy(() => {
    const norms = tf.sqrt(tf.sum(tf.square(weights), 0, true)) as tf.Tensor2D;
    return { directions: tf.div(weights, norms), norms };
  });
}

/**
 * Cosine similarities [q k^T, q d^T], N x (N + K): the step's largest product (q d^T) is computed
 * once and shared by the encoder's loss and the bank's gradient, which only scale it differently.
 */
export function similarities(q: tf.Tensor2D, k: tf.Tensor2D, directions: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => tf.concat([tf.matMul(q, k, false, true), tf.matMul(q, directions)], 1) as tf.Tensor2D);
}

/**
 * The encoder's side: loss and dLoss/dq. The gradient is written out (softmax minus one-hot), not
 * taken by autodiff through logSumExp, which on wasm is 4x slower.
 */
export function contrastLoss(
  q: tf.Tensor2D,
  k: tf.Tensor2D,
  directions: tf.Tensor2D,
  cosines: tf.Tensor2D,
  temperature: number,
): ContrastResult {
  return tf.tidy(() => {
    const batch = q.shape[0];
    const logits = tf.div(cosines, temperature);
    const logNormalizer = tf.logSumExp(logits, 1);
    const positives = tf.div(tf.sum(tf.mul(q, k), 1), temperature);
    const loss = tf.mean(tf.sub(logNormalizer, positives));
    const probs = tf.exp(tf.sub(logits, tf.expandDims(logNormalizer, 1)));
    const [keyProbs, adversaryProbs] = tf.split(probs, [batch, directions.shape[1]], 1) as [
      tf.Tensor2D,
      tf.Tensor2D,
    ];
    // dLoss/dq_i = sum over negatives v_j of p_ij (v_j - k_i) / (N t), the same as
    // (sum_j p_ij v_j - k_i) / (N t) since the probabilities sum to 1, but without the positive's
    // term p_ii k_i, which nearly cancels -k_i: when the positive dominates (p_ii ~ 1) or the
    // negatives' mean nearly equals k_i (aligned adversaries), forming it loses the small result to
    // rounding at the scale of k.
    const negativeKeyProbs = tf.mul(keyProbs, tf.sub(1, tf.eye(batch)));
    const negativeMass = tf.add(tf.sum(negativeKeyProbs, 1, true), tf.sum(adversaryProbs, 1, true));
    const queryGrad = tf.div(
      tf.sub(
        tf.add(tf.matMul(negativeKeyProbs, k), tf.matMul(adversaryProbs, tf.transpose(directions))),
        tf.mul(negativeMass, k),
      ),
      batch * temperature,
    ) as tf.Tensor2D;
    const accuracy = tf.mean(
      tf.cast(tf.equal(tf.argMax(logits, 1), tf.range(0, batch, 1, "int32")), "float32"),
    );
    const adversaryProbability = tf.mean(tf.sum(adversaryProbs, 1));
    return {
      loss: loss as tf.Scalar,
      queryGrad,
      accuracy: accuracy as tf.Scalar,
      adversaryProbability: adversaryProbability as tf.Scalar,
    };
  });
}

/**
 * dLoss_mem/dW (D x K): the gradient of the loss at the memory temperature with respect to the raw
 * bank, through the normalisation d = w / |w|:  dL/dw = (g - (g.d) d) / |w|  with g = dL/dd.
 */
export function bankGradient(
  q: tf.Tensor2D,
  directions: tf.Tensor2D,
  norms: tf.Tensor2D,
  cosines: tf.Tensor2D,
  memoryTemperature: number,
): tf.Tensor2D {
  return tf.tidy(() => {
    const batch = q.shape[0];
    const probs = tf.softmax(tf.div(cosines, memoryTemperature), 1);
    const adversaryProbs = tf.slice(probs, [0, batch], [batch, directions.shape[1]]) as tf.Tensor2D;
    return bankGradientFromProbs(q, directions, norms, adversaryProbs, memoryTemperature);
  });
}

/**
 * The same from the softmax probabilities (N x K) of the adversaries at t_mem: a sharded bank has its
 * columns' probabilities from the merged normaliser, and the gradient of a column needs nothing else.
 */
export function bankGradientFromProbs(
  q: tf.Tensor2D,
  directions: tf.Tensor2D,
  norms: tf.Tensor2D,
  adversaryProbs: tf.Tensor2D,
  memoryTemperature: number,
): tf.Tensor2D {
  return tf.tidy(() => {
    const batch = q.shape[0];
    // g = dL/dd, D x K: sum_i p_i,N+j q_i / (N t_mem)
    const g = tf.div(tf.matMul(tf.transpose(q), adversaryProbs), batch * memoryTemperature);
    // Project out the d component twice. When adversaries nearly equal queries, g is almost parallel
    // to d and the tangent is ~1e-3 of |g|: the first projection leaves a rounding residue along d
    // (float32 ulp of |g|) that the second removes (golden case-aligned: 1.0e-4 -> 7e-5 worst relative).
    const tangent = tf.sub(g, tf.mul(directions, tf.sum(tf.mul(g, directions), 0, true)));
    const refined = tf.sub(tangent, tf.mul(directions, tf.sum(tf.mul(tangent, directions), 0, true)));
    return tf.div(refined, norms) as tf.Tensor2D;
  });
}

/** The ascent update: v <- momentum v - grad + wd W;  W <- W - lr v. Returns new tensors. */
export function ascend(bank: AdversaryBank, gradient: tf.Tensor2D, h: AdcoHyperparameters): AdversaryBank {
  return tf.tidy(() => {
    const velocity = tf.add(
      tf.sub(tf.mul(bank.velocity, h.memoryMomentum), gradient),
      tf.mul(bank.weights, h.memoryWeightDecay),
    ) as tf.Tensor2D;
    const weights = tf.sub(bank.weights, tf.mul(velocity, h.memoryLr)) as tf.Tensor2D;
    return { weights, velocity };
  });
}

export interface AdcoStep extends ContrastResult {
  /** dLoss_mem/dW, D x K. */
  readonly bankGrad: tf.Tensor2D;
  /** The bank after the ascent update. */
  readonly bank: AdversaryBank;
}

/**
 * One AdCo step on the bank side: the encoder's loss and dLoss/dq, and the updated bank. Both use the
 * bank as it was at the start of the step. The caller owns every returned tensor (dispose the old bank).
 */
export function adcoStep(
  q: tf.Tensor2D,
  k: tf.Tensor2D,
  bank: AdversaryBank,
  h: AdcoHyperparameters,
): AdcoStep {
  checkHyperparameters(h);
  checkContrastInputs(q, k, bank);
  const { directions, norms } = normalizeColumns(bank.weights);
  const cosines = similarities(q, k, directions);
  try {
    const result = contrastLoss(q, k, directions, cosines, h.temperature);
    const bankGrad = bankGradient(q, directions, norms, cosines, h.memoryTemperature);
    return { ...result, bankGrad, bank: ascend(bank, bankGrad, h) };
  } finally {
    tf.dispose([directions, norms, cosines]);
  }
}
