// The shared trainer of AdCo and MoCo v2: a query encoder trained by SGD, a momentum key encoder, and
// the method's negatives. One call of `step` is one training step of the official code:
//   k = normalize(f_k(key view))                         (no gradient; keys shuffled for split-BN)
//   q = normalize(f_q(query view))
//   loss, dLoss/dq = negatives.contrast(q, k)             (AdCo: the adversaries then ascend)
//   SGD step of f_q with dLoss/dq pulled back through f_q (vector-Jacobian product)
//   f_k <- m f_k + (1 - m) f_q
import { stepSeed } from "@adco/random";
import * as tf from "@tensorflow/tfjs-core";
import type { ContrastOutcome, ContrastPair, ContrastStats, PairReduction } from "./adco.js";
import { checkInRange, checkPositive, CoreInputError } from "./checks.js";
import { Encoder, type EncoderArch, encoderSpec } from "./encoder.js";
import { type AdcoHyperparameters, PAPER_HYPERPARAMETERS } from "./hyperparameters.js";
import { AdversaryNegatives, type Negatives, QueueNegatives } from "./methods.js";
import { SeededRandom } from "./random.js";
import { Sgd } from "./sgd.js";
import { backward, type ForwardRecording, recordForward } from "./tape.js";

export interface PretrainConfig {
  readonly method: "adco" | "moco";
  readonly arch: EncoderArch;
  readonly projectionDim: number;
  readonly batchSize: number;
  /** Peak learning rate; cosine-annealed to `finalLr` over `totalSteps` (official: 0.03 -> 0.0006). */
  readonly lr: number;
  readonly finalLr: number;
  readonly sgdMomentum: number;
  readonly weightDecay: number;
  /** Key encoder EMA momentum m (0.999). */
  readonly encoderMomentum: number;
  /** Split-batch BatchNorm groups (keys are shuffled across groups). 1 = plain BN. */
  readonly bnGroups: number;
  /** Both views as queries, losses and bank gradients averaged. */
  readonly symmetric: boolean;
  /** K: adversaries (AdCo) or queue length (MoCo). */
  readonly negatives: number;
  /** AdCo's temperatures and adversary optimiser (ignored by MoCo except `temperature`). */
  readonly adco: AdcoHyperparameters;
  /** MoCo v2's temperature (0.2). */
  readonly mocoTemperature: number;
  readonly seed: number;
}

export const PAPER_CONFIG: PretrainConfig = {
  method: "adco",
  arch: "resnet50",
  projectionDim: 128,
  batchSize: 256,
  lr: 0.03,
  finalLr: 0.0006,
  sgdMomentum: 0.9,
  weightDecay: 1e-4,
  encoderMomentum: 0.999,
  bnGroups: 8,
  symmetric: false,
  negatives: 65536,
  adco: PAPER_HYPERPARAMETERS,
  mocoTemperature: 0.2,
  seed: 0,
};

export function checkPretrainConfig(c: PretrainConfig): void {
  if (c.method !== "adco" && c.method !== "moco") {
    throw new CoreInputError("method", `must be adco or moco, got ${String(c.method)}`);
  }
  for (const key of ["batchSize", "negatives", "bnGroups", "projectionDim"] as const) {
    if (!Number.isInteger(c[key]) || c[key] < 1) {
      throw new CoreInputError(key, `must be a positive integer, got ${c[key]}`);
    }
  }
  if (c.batchSize % c.bnGroups !== 0) {
    throw new CoreInputError("bnGroups", `${c.bnGroups} does not divide batchSize ${c.batchSize}`);
  }
  if (c.negatives < c.batchSize) {
    throw new CoreInputError("negatives", `K = ${c.negatives} is smaller than batchSize ${c.batchSize}`);
  }
  checkPositive(c.lr, "lr");
  if (!(c.finalLr >= 0 && c.finalLr <= c.lr))
    throw new CoreInputError("finalLr", `must be in [0, lr], got ${c.finalLr}`);
  checkInRange(c.sgdMomentum, "sgdMomentum", 0, 1);
  checkInRange(c.encoderMomentum, "encoderMomentum", 0, 1);
  if (!(c.weightDecay >= 0)) throw new CoreInputError("weightDecay", `must be >= 0, got ${c.weightDecay}`);
  checkPositive(c.mocoTemperature, "mocoTemperature");
}

export interface StepStats extends ContrastStats {
  readonly lr: number;
}

/**
 * The contrast of a step computed elsewhere (the adversary-bank service): loss, dLoss/dq per pair and
 * statistics for the step's (query, key) pairs. The caller decides how the negatives update.
 */
export type ContrastService = (
  pairs: readonly ContrastPair[],
  reduction: PairReduction,
) => Promise<ContrastOutcome>;

export interface RemoteStepStats extends StepStats {
  /** Wall time of the encoders' forward and backward passes and the optimizer, ms. */
  readonly computeMs: number;
  /** Wall time waiting for the contrast service, ms. */
  readonly contrastMs: number;
}

/** A seed for step `step` of a stream seeded by `seed` (so a resumed run draws what it would have). */
export interface PretrainerOptions {
  /** false: the negatives live in an adversary-bank service; only stepWith trains. */
  readonly localNegatives?: boolean;
}

/**
 * BN groups for a batch of n: the configured count when it divides n, else the largest count below it
 * that does and leaves at least 2 samples per group; 1 when none does.
 */
export function bnGroupsFor(configured: number, n: number): number {
  for (let g = Math.min(configured, Math.floor(n / 2)); g > 1; g--) if (n % g === 0) return g;
  return 1;
}

export class Pretrainer {
  readonly query: Encoder;
  readonly key: Encoder;
  readonly optimizer: Sgd;
  private readonly localNegatives: Negatives | undefined;
  /** Completed steps (init_memory steps included). */
  step = 0;

  constructor(
    readonly config: PretrainConfig,
    options: PretrainerOptions = {},
  ) {
    checkPretrainConfig(config);
    const spec = encoderSpec(config.arch, config.projectionDim);
    this.query = new Encoder(spec, config.seed);
    this.key = new Encoder(spec, config.seed);
    this.key.copyFrom(this.query);
    if (options.localNegatives ?? true) {
      this.localNegatives =
        config.method === "adco"
          ? new AdversaryNegatives(config.projectionDim, config.negatives, config.adco, config.seed + 1)
          : new QueueNegatives(
              config.projectionDim,
              config.negatives,
              config.mocoTemperature,
              config.seed + 1,
            );
    }
    this.optimizer = new Sgd(this.query.params, config.sgdMomentum, config.weightDecay);
  }

  get negatives(): Negatives {
    if (!this.localNegatives) throw new CoreInputError("negatives", "this trainer's negatives are remote");
    return this.localNegatives;
  }

  /**
   * Keys of a batch: f_k in training-mode BN, on a random permutation split into BN groups, unshuffled.
   * Groups are the configured count, or fewer when they do not divide a short (last) batch.
   */
  keys(view: tf.Tensor4D, shuffleSeed = stepSeed(this.config.seed + 2, this.step)): tf.Tensor2D {
    const shuffle = new SeededRandom(shuffleSeed);
    return tf.tidy(() => {
      const n = view.shape[0];
      const order = shuffle.permutation(n);
      const inverse = new Int32Array(n);
      order.forEach((j, i) => (inverse[j] = i));
      const shuffled = tf.gather(view, tf.tensor1d(order, "int32"));
      const k = this.key.embed(shuffled, { training: true, bnGroups: this.bnGroupsFor(n) });
      return tf.gather(k, tf.tensor1d(inverse, "int32"));
    });
  }

  /**
   * One training step. views[0] and views[1] are the two global views of the same images; further
   * views (multi-crop) are extra queries against the key of views[1], their losses summed.
   */
  trainStep(views: readonly tf.Tensor4D[], lr: number): StepStats {
    return this.runStep(views, lr);
  }

  /**
   * The official init_memory, one batch of it: train f_q with the plain contrastive loss against the
   * bank as it is (the adversaries do not move), then write this batch's keys into bank columns
   * [start, start + N). Run K/N such batches before epoch 0, then call finishInit.
   */
  initStep(views: readonly tf.Tensor4D[], lr: number, start: number): StepStats {
    if (this.config.method !== "adco") throw new CoreInputError("method", "initStep is for AdCo only");
    return this.runStep(views, lr, start);
  }

  /** BN groups for a batch of n (the short last batch of an epoch has fewer): see `bnGroupsFor`. */
  bnGroupsFor(n: number): number {
    return bnGroupsFor(this.config.bnGroups, n);
  }

  /** The step's (query view, key) pairs: view0 against key1; symmetric adds view1 against key0; crops against key1. */
  private planPairs(views: readonly tf.Tensor4D[]) {
    if (views.length < 2) throw new CoreInputError("views", `need at least 2 views, got ${views.length}`);
    const n = views[0]!.shape[0];
    if (n < 2) throw new CoreInputError("views", `a batch needs at least 2 images for BatchNorm, got ${n}`);
    views.forEach((v, i) => {
      if (v.shape[0] !== n) throw new CoreInputError(`views[${i}]`, `batch ${v.shape[0]} differs from ${n}`);
    });
    const seed = stepSeed(this.config.seed + 2, this.step);
    const keyOfView1 = this.keys(views[1]!, seed);
    const keyOfView0 = this.config.symmetric ? this.keys(views[0]!, seed ^ 0x5bd1e995) : undefined;
    const plan: { view: tf.Tensor4D; key: tf.Tensor2D }[] = [{ view: views[0]!, key: keyOfView1 }];
    if (keyOfView0) plan.push({ view: views[1]!, key: keyOfView0 });
    for (const crop of views.slice(2)) plan.push({ view: crop, key: keyOfView1 });
    const reduction: PairReduction = views.length > 2 ? "sum" : "mean";
    return {
      plan,
      reduction,
      keys: keyOfView0 ? [keyOfView1, keyOfView0] : [keyOfView1],
      bnGroups: this.bnGroupsFor(n),
    };
  }

  /** After the gradient step: SGD, BN running statistics, then f_k follows f_q. */
  private finishStep(
    grads: tf.NamedTensorMap,
    lr: number,
    batchStats: Map<string, { mean: tf.Tensor1D; variance: tf.Tensor1D }>,
  ): void {
    this.optimizer.apply(grads, lr);
    this.query.updateRunningStats(batchStats);
    this.key.momentumUpdate(this.query, this.config.encoderMomentum);
    this.step++;
  }

  /**
   * One step with the contrast done by a service. tfjs records gradients only during a synchronous
   * call, and the service answers asynchronously, so the step splits the tape (tape.ts): f_q's forward
   * over every query view is recorded, the queries are sent, and the service's dLoss/dq is pulled back
   * through that recording when it answers. f_q runs forward once, as in a local step, and its BN
   * batch statistics are taken from that one forward. The result equals trainStep with the same
   * negatives. If the service throws, the recording and the step's tensors are freed and nothing of
   * the trainer changes.
   */
  async stepWith(
    views: readonly tf.Tensor4D[],
    lr: number,
    contrast: ContrastService,
  ): Promise<RemoteStepStats> {
    let started = performance.now();
    const { plan, reduction, keys, bnGroups } = this.planPairs(views);
    const batchStats = new Map<string, { mean: tf.Tensor1D; variance: tf.Tensor1D }>();
    const params = [...this.query.params.values()];
    let recording: ForwardRecording<tf.Tensor2D[]> | undefined;
    let outcome: ContrastOutcome | undefined;
    let grads: (tf.Tensor | null)[] = [];
    try {
      recording = recordForward(
        () =>
          plan.map(({ view }, i) =>
            this.query.embed(view, {
              training: true,
              bnGroups,
              // Running statistics follow the first query view only, as in runStep.
              batchStats: i === 0 ? batchStats : undefined,
            }),
          ),
        params,
      );
      const queries = recording.outputs;
      let computeMs = performance.now() - started;
      started = performance.now();
      outcome = await contrast(
        plan.map(({ key }, i) => ({ query: queries[i]!, key })),
        reduction,
      );
      const contrastMs = performance.now() - started;
      started = performance.now();
      // The loss is sum_i q_i . g_i with g_i = dLoss/dq_i held fixed, so each query's dy is its g_i.
      grads = backward(recording, outcome.queryGrads);
      const named: tf.NamedTensorMap = {};
      params.forEach((p, i) => {
        if (grads[i]) named[p.name] = grads[i]!;
      });
      this.finishStep(named, lr, batchStats);
      computeMs += performance.now() - started;
      const { queryGrads: _, ...stats } = outcome;
      return { ...stats, lr, computeMs, contrastMs };
    } finally {
      // After a backward this frees only the step's leftovers; after a failure, everything of the step.
      recording?.dispose();
      tf.dispose([
        ...grads.filter((g): g is tf.Tensor => g !== null),
        ...(recording?.outputs ?? []),
        ...keys,
        ...(outcome?.queryGrads ?? []),
        // Empty once finishStep has folded them into the running statistics.
        ...[...batchStats.values()].flatMap((s) => [s.mean, s.variance]),
      ]);
    }
  }

  private runStep(views: readonly tf.Tensor4D[], lr: number, initColumn?: number): StepStats {
    const { plan, reduction, keys, bnGroups } = this.planPairs(views);
    const keyOfView1 = keys[0]!;
    const updateNegatives = initColumn === undefined;

    let stats: ContrastOutcome | undefined;
    const batchStats = new Map<string, { mean: tf.Tensor1D; variance: tf.Tensor1D }>();
    const { grads, value } = tf.variableGrads(
      () => {
        const queries = plan.map(({ view }, i) =>
          this.query.embed(view, {
            training: true,
            bnGroups,
            // Running statistics follow the first query view only, as a single forward would.
            batchStats: i === 0 ? batchStats : undefined,
          }),
        );
        // The contrast is a custom op: its forward runs the method (loss, dLoss/dq, negatives update),
        // its backward hands dLoss/dq to autodiff, so only f_q is differentiated.
        const contrast = tf.customGrad((...args: unknown[]) => {
          const save = args.pop() as tf.GradSaveFunc;
          const qs = args as tf.Tensor2D[];
          const pairs: ContrastPair[] = qs.map((q, i) => ({ query: q, key: plan[i]!.key }));
          const outcome = this.negatives.contrast(pairs, reduction, updateNegatives);
          stats = outcome;
          save(outcome.queryGrads);
          return {
            value: tf.scalar(outcome.loss),
            gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => saved.map((g) => tf.mul(dy, g)),
          };
        });
        return contrast(...queries) as tf.Scalar;
      },
      [...this.query.params.values()] as tf.Variable[],
    );
    if (initColumn !== undefined) this.negatives.write(keyOfView1, initColumn);
    this.finishStep(grads, lr, batchStats);
    tf.dispose([value, ...Object.values(grads), ...keys]);
    const { queryGrads: _, ...rest } = stats as ContrastOutcome;
    return { ...rest, lr };
  }

  /** End of init_memory: f_k starts equal to f_q. */
  finishInit(): void {
    this.key.copyFrom(this.query);
  }

  dispose(): void {
    this.query.dispose();
    this.key.dispose();
    this.localNegatives?.dispose();
    this.optimizer.dispose();
  }
}
