// Encoders: a ResNet backbone and the 2-layer MLP projection head of MoCo v2 / AdCo.
//
// An architecture is a list of nodes (conv, batch norm, relu, add, pool, dense). The same list drives
// the training forward pass here (plain tfjs ops, with split-batch BatchNorm) and the export to a
// tfjs LayersModel (export.ts), so an exported encoder is a standard model.json + weights that any
// tfjs program loads, and equals what was trained.
import * as tf from "@tensorflow/tfjs-core";
import { CoreInputError } from "./checks.js";
import { SeededRandom } from "./random.js";
import { BATCH_NORM_CHANNEL_MULTIPLE, GROUP_BATCH_NORM, GROUP_BATCH_NORM_GRAD } from "./wasm-batchnorm.js";

export const ENCODER_ARCHS = ["resnet-mini", "resnet-mini-wide", "resnet18-cifar", "resnet50"] as const;
export type EncoderArch = (typeof ENCODER_ARCHS)[number];

export type EncoderNode =
  | { kind: "conv"; name: string; input: string; filters: number; size: number; stride: number }
  | { kind: "bn"; name: string; input: string }
  | { kind: "relu"; name: string; input: string }
  | { kind: "add"; name: string; inputs: [string, string] }
  | { kind: "maxpool"; name: string; input: string; size: number; stride: number }
  | { kind: "gap"; name: string; input: string }
  | { kind: "gridpool"; name: string; input: string; grid: number }
  | { kind: "dense"; name: string; input: string; units: number };

export interface EncoderSpec {
  readonly arch: EncoderArch;
  /** Input image [height, width, channels]; the backbone accepts other sizes too (global pooling). */
  readonly inputShape: readonly [number, number, number];
  readonly nodes: readonly EncoderNode[];
  /** Name of the node whose output is the backbone feature (kNN / linear probe input). */
  readonly features: string;
  /** Name of the node whose output is the projection (before L2 normalisation). */
  readonly projection: string;
  readonly featureDim: number;
  readonly projectionDim: number;
}

interface ResnetLayout {
  stemFilters: number;
  stemSize: number;
  stemStride: number;
  stemPool: boolean;
  widths: number[];
  blocks: number[];
  bottleneck: boolean;
  /**
   * The backbone feature: 1 = global average pooling (the paper's); g > 1 = average pooling to a
   * g x g grid, flattened (PyTorch's AdaptiveAvgPool2d(g)), which keeps the coarse layout. The
   * projection head always reads the global average, so training is the same either way.
   */
  featureGrid: number;
}

const LAYOUTS: Record<EncoderArch, { layout: ResnetLayout; inputShape: [number, number, number] }> = {
  // The CPU default: ~90k parameters, ~23 MFLOP per 28x28 image forward.
  "resnet-mini": {
    inputShape: [28, 28, 1],
    layout: {
      stemFilters: 16,
      stemSize: 3,
      stemStride: 1,
      stemPool: false,
      widths: [16, 32, 64],
      blocks: [1, 1, 1],
      bottleneck: false,
      // The features are the whole last map (7x7x64, flattened): a 28x28 garment's layout
      // (sleeves, collar, heel) is much of what tells its class apart, and global pooling throws it
      // away. On the bundled subset, after 12 epochs, the same trained network scores kNN 70.9 /
      // linear 79.9 on its 64 global means, 76.1 / 83.4 on a 3x3 grid and 78.1 / 85.1 on the whole
      // map, against 76.4 / 80.5 for the raw pixels (docs/experiments.md, "Small data").
      featureGrid: 7,
    },
  },
  // resnet-mini with twice the channels (~0.34M parameters, 4x the compute), to see what width buys on
  // 28x28 gray (docs/experiments.md, "Small data"). Features: the whole 7x7x128 map.
  "resnet-mini-wide": {
    inputShape: [28, 28, 1],
    layout: {
      stemFilters: 32,
      stemSize: 3,
      stemStride: 1,
      stemPool: false,
      widths: [32, 64, 128],
      blocks: [1, 1, 1],
      bottleneck: false,
      featureGrid: 7,
    },
  },
  // ResNet-18 with the CIFAR stem (3x3, stride 1, no max-pool).
  "resnet18-cifar": {
    inputShape: [32, 32, 3],
    layout: {
      stemFilters: 64,
      stemSize: 3,
      stemStride: 1,
      stemPool: false,
      widths: [64, 128, 256, 512],
      blocks: [2, 2, 2, 2],
      bottleneck: false,
      featureGrid: 1,
    },
  },
  // ResNet-50 (v1.5: the stride sits on the 3x3 conv of a bottleneck), as in the paper.
  resnet50: {
    inputShape: [224, 224, 3],
    layout: {
      stemFilters: 64,
      stemSize: 7,
      stemStride: 2,
      stemPool: true,
      widths: [64, 128, 256, 512],
      blocks: [3, 4, 6, 3],
      bottleneck: true,
      featureGrid: 1,
    },
  },
};

/** The node list of an architecture, with a projection head of `projectionDim` outputs. */
export function encoderSpec(arch: EncoderArch, projectionDim = 128): EncoderSpec {
  const entry = LAYOUTS[arch];
  if (!entry) throw new CoreInputError("arch", `must be one of ${ENCODER_ARCHS.join(", ")}, got ${arch}`);
  const { layout } = entry;
  const nodes: EncoderNode[] = [];
  let last = "input";
  const convBn = (
    name: string,
    input: string,
    filters: number,
    size: number,
    stride: number,
    relu: boolean,
  ) => {
    nodes.push({ kind: "conv", name: `${name}_conv`, input, filters, size, stride });
    nodes.push({ kind: "bn", name: `${name}_bn`, input: `${name}_conv` });
    if (!relu) return `${name}_bn`;
    nodes.push({ kind: "relu", name: `${name}_relu`, input: `${name}_bn` });
    return `${name}_relu`;
  };
  last = convBn("stem", last, layout.stemFilters, layout.stemSize, layout.stemStride, true);
  if (layout.stemPool) {
    nodes.push({ kind: "maxpool", name: "stem_pool", input: last, size: 3, stride: 2 });
    last = "stem_pool";
  }
  let channels = layout.stemFilters;
  layout.widths.forEach((width, stage) => {
    for (let block = 0; block < layout.blocks[stage]!; block++) {
      const name = `stage${stage + 1}_block${block + 1}`;
      const stride = block === 0 && stage > 0 ? 2 : 1;
      const out = layout.bottleneck ? width * 4 : width;
      let body: string;
      if (layout.bottleneck) {
        body = convBn(`${name}_a`, last, width, 1, 1, true);
        body = convBn(`${name}_b`, body, width, 3, stride, true);
        body = convBn(`${name}_c`, body, out, 1, 1, false);
      } else {
        body = convBn(`${name}_a`, last, width, 3, stride, true);
        body = convBn(`${name}_b`, body, width, 3, 1, false);
      }
      const shortcut =
        stride !== 1 || channels !== out ? convBn(`${name}_proj`, last, out, 1, stride, false) : last;
      nodes.push({ kind: "add", name: `${name}_add`, inputs: [body, shortcut] });
      nodes.push({ kind: "relu", name: `${name}_out`, input: `${name}_add` });
      last = `${name}_out`;
      channels = out;
    }
  });
  const grid = layout.featureGrid;
  const pooled = grid === 1 ? "features" : "pooled";
  nodes.push({ kind: "gap", name: pooled, input: last });
  nodes.push({ kind: "dense", name: "head_hidden", input: pooled, units: channels });
  nodes.push({ kind: "relu", name: "head_relu", input: "head_hidden" });
  nodes.push({ kind: "dense", name: "projection", input: "head_relu", units: projectionDim });
  // After the projection, so that a training step (which stops there) never computes it: a small
  // multi-crop view's map is smaller than the grid.
  if (grid > 1) nodes.push({ kind: "gridpool", name: "features", input: last, grid });
  return {
    arch,
    inputShape: entry.inputShape,
    nodes,
    features: "features",
    projection: "projection",
    featureDim: grid * grid * channels,
    projectionDim,
  };
}

const BN_EPSILON = 1e-5;
/** Weight of the newest batch in the BatchNorm running statistics (PyTorch's momentum 0.1). */
const BN_MOMENTUM = 0.1;

/** The names of the nodes that the named outputs are computed from, themselves included. */
export function nodesFor(spec: EncoderSpec, outputs: readonly string[]): Set<string> {
  const byName = new Map(spec.nodes.map((node) => [node.name, node]));
  const needed = new Set<string>();
  const visit = (name: string) => {
    const node = byName.get(name);
    if (!node || needed.has(name)) return;
    needed.add(name);
    for (const input of node.kind === "add" ? node.inputs : [node.input]) visit(input);
  };
  outputs.forEach(visit);
  return needed;
}

export interface ForwardOptions {
  /** Batch statistics (training) or running statistics (inference) in BatchNorm. */
  readonly training: boolean;
  /**
   * Split-batch BatchNorm: the batch is cut into this many equal groups, each normalised with its own
   * statistics, like BN on separate devices. With keys shuffled before the split (see
   * Encoder.shuffledForward) a query and its positive key never share statistics, which is what
   * MoCo's shuffle-BN achieves on several GPUs. 1 = plain BN.
   */
  readonly bnGroups?: number;
  /** Collects each BN layer's batch mean and variance (kept tensors) to update running statistics. */
  readonly batchStats?: Map<string, { mean: tf.Tensor1D; variance: tf.Tensor1D }>;
}

/**
 * The pooling window that averages an height x width map into a grid x grid one with the windows of
 * PyTorch's AdaptiveAvgPool2d (from floor(i·n/g) to ceil((i+1)·n/g)), where those windows are one
 * size and evenly spaced, as they are for every map of n ≥ g with (n - size) divisible by g - 1.
 */
export function gridWindow(height: number, width: number, grid: number): { size: number; stride: number } {
  if (height !== width)
    throw new CoreInputError("images", `grid pooling needs a square map, got ${height}x${width}`);
  const size = Math.ceil(height / grid);
  const stride = grid === 1 ? 1 : (height - size) / (grid - 1);
  const even = Array.from({ length: grid }, (_, i) => i).every(
    (i) =>
      Math.floor((i * height) / grid) === i * stride &&
      Math.ceil(((i + 1) * height) / grid) === i * stride + size,
  );
  if (height < grid || !Number.isInteger(stride) || !even)
    throw new CoreInputError("images", `a ${height}x${width} map does not pool evenly to ${grid}x${grid}`);
  return { size, stride };
}

/** Trainable parameters and BatchNorm running statistics of one encoder, as tfjs variables. */
export class Encoder {
  readonly params = new Map<string, tf.Variable>();
  readonly runningStats = new Map<string, tf.Variable>();

  constructor(
    readonly spec: EncoderSpec,
    seed = 0,
  ) {
    const random = new SeededRandom(seed);
    const channels = new Map<string, number>([["input", spec.inputShape[2]]]);
    const channelsOf = (name: string) => channels.get(name)!;
    for (const node of spec.nodes) {
      switch (node.kind) {
        case "conv": {
          const fanIn = node.size * node.size * channelsOf(node.input);
          // He normal with fan_out, as torchvision initialises ResNets.
          const std = Math.sqrt(2 / (node.size * node.size * node.filters));
          this.addParam(
            `${node.name}/kernel`,
            [node.size, node.size, fanIn / (node.size * node.size), node.filters],
            () => random.normal() * std,
          );
          channels.set(node.name, node.filters);
          break;
        }
        case "bn": {
          const c = channelsOf(node.input);
          this.addParam(`${node.name}/gamma`, [c], () => 1);
          this.addParam(`${node.name}/beta`, [c], () => 0);
          this.runningStats.set(`${node.name}/moving_mean`, tf.variable(tf.zeros([c]), false));
          this.runningStats.set(`${node.name}/moving_variance`, tf.variable(tf.ones([c]), false));
          channels.set(node.name, c);
          break;
        }
        case "dense": {
          const fanIn = channelsOf(node.input);
          const bound = 1 / Math.sqrt(fanIn); // PyTorch's nn.Linear default
          this.addParam(`${node.name}/kernel`, [fanIn, node.units], () => (random.next() * 2 - 1) * bound);
          this.addParam(`${node.name}/bias`, [node.units], () => (random.next() * 2 - 1) * bound);
          channels.set(node.name, node.units);
          break;
        }
        case "add":
          channels.set(node.name, channelsOf(node.inputs[0]));
          break;
        default:
          channels.set(node.name, channelsOf(node.input));
      }
    }
  }

  private addParam(name: string, shape: number[], init: () => number): void {
    const size = shape.reduce((a, b) => a * b, 1);
    const values = new Float32Array(size);
    for (let i = 0; i < size; i++) values[i] = init();
    this.params.set(name, tf.variable(tf.tensor(values, shape), true));
  }

  private param(name: string): tf.Variable {
    const p = this.params.get(name);
    if (!p) throw new Error(`encoder has no parameter ${name}`);
    return p;
  }

  /** Number of trainable scalars. */
  get parameterCount(): number {
    let n = 0;
    for (const p of this.params.values()) n += p.size;
    return n;
  }

  /**
   * Runs the network on images (N x H x W x C, float32, already normalised) and returns the outputs
   * of the named nodes. Call inside tf.tidy or a gradient function.
   */
  run(images: tf.Tensor4D, outputs: readonly string[], options: ForwardOptions): tf.Tensor[] {
    const [, , , c] = images.shape;
    if (c !== this.spec.inputShape[2]) {
      throw new CoreInputError("images", `expected ${this.spec.inputShape[2]} channels, got ${c}`);
    }
    const groups = options.bnGroups ?? 1;
    if (options.training && (!Number.isInteger(groups) || groups < 1 || images.shape[0] % groups !== 0)) {
      throw new CoreInputError("bnGroups", `${groups} does not divide the batch of ${images.shape[0]}`);
    }
    const values = new Map<string, tf.Tensor>([["input", images]]);
    const get = (name: string) => values.get(name)!;
    for (const node of this.spec.nodes) {
      let out: tf.Tensor;
      switch (node.kind) {
        case "conv":
          out = tf.conv2d(
            get(node.input) as tf.Tensor4D,
            this.param(`${node.name}/kernel`) as tf.Tensor4D,
            node.stride,
            "same",
          );
          break;
        case "bn":
          out = this.batchNorm(node.name, get(node.input) as tf.Tensor4D, options, groups);
          break;
        case "relu":
          out = tf.relu(get(node.input));
          break;
        case "add":
          out = tf.add(get(node.inputs[0]), get(node.inputs[1]));
          break;
        case "maxpool":
          out = tf.maxPool(get(node.input) as tf.Tensor4D, node.size, node.stride, "same");
          break;
        case "gap":
          out = tf.mean(get(node.input), [1, 2]);
          break;
        case "gridpool": {
          const x = get(node.input) as tf.Tensor4D;
          const { size, stride } = gridWindow(x.shape[1], x.shape[2], node.grid);
          const pooled = tf.avgPool(x, size, stride, "valid");
          out = tf.reshape(pooled, [x.shape[0], -1]);
          break;
        }
        case "dense":
          out = tf.add(
            tf.matMul(get(node.input) as tf.Tensor2D, this.param(`${node.name}/kernel`) as tf.Tensor2D),
            this.param(`${node.name}/bias`),
          );
          break;
      }
      values.set(node.name, out);
      if (outputs.every((o) => values.has(o))) break;
    }
    return outputs.map((name) => {
      const value = values.get(name);
      if (!value) throw new Error(`encoder has no node ${name}`);
      return value;
    });
  }

  private batchNorm(name: string, x: tf.Tensor4D, options: ForwardOptions, groups: number): tf.Tensor {
    const gamma = this.param(`${name}/gamma`);
    const beta = this.param(`${name}/beta`);
    if (!options.training) {
      const mean = this.runningStats.get(`${name}/moving_mean`)!;
      const variance = this.runningStats.get(`${name}/moving_variance`)!;
      return tf.add(tf.mul(tf.sub(x, mean), tf.mul(tf.rsqrt(tf.add(variance, BN_EPSILON)), gamma)), beta);
    }
    const [n, h, w, c] = x.shape;
    const m = (n / groups) * h * w;
    const { y, mean, variance } = groupBatchNorm(tf.reshape(x, [groups, m, c]) as tf.Tensor3D, gamma, beta);
    if (options.batchStats) {
      options.batchStats.set(name, {
        mean: tf.keep(tf.mean(mean, 0) as tf.Tensor1D),
        // Unbiased, as PyTorch keeps it.
        variance: tf.keep(tf.mul(tf.mean(variance, 0), m / Math.max(1, m - 1)) as tf.Tensor1D),
      });
    }
    tf.dispose([mean, variance]);
    return tf.reshape(y, [n, h, w, c]);
  }

  /** Folds collected batch statistics into the running statistics and disposes them. */
  updateRunningStats(batchStats: Map<string, { mean: tf.Tensor1D; variance: tf.Tensor1D }>): void {
    tf.tidy(() => {
      for (const [name, { mean, variance }] of batchStats) {
        const movingMean = this.runningStats.get(`${name}/moving_mean`)!;
        const movingVariance = this.runningStats.get(`${name}/moving_variance`)!;
        movingMean.assign(tf.add(tf.mul(movingMean, 1 - BN_MOMENTUM), tf.mul(mean, BN_MOMENTUM)));
        movingVariance.assign(tf.add(tf.mul(movingVariance, 1 - BN_MOMENTUM), tf.mul(variance, BN_MOMENTUM)));
      }
    });
    for (const { mean, variance } of batchStats.values()) tf.dispose([mean, variance]);
    batchStats.clear();
  }

  /** L2-normalised projection (N x projectionDim). */
  embed(images: tf.Tensor4D, options: ForwardOptions): tf.Tensor2D {
    const [projection] = this.run(images, [this.spec.projection], options);
    return l2Normalize(projection as tf.Tensor2D);
  }

  /**
   * Backbone features (N x featureDim), BatchNorm in inference mode, in batches; `node` names
   * another 2-D node to read instead (the head's input, "pooled", where features are a grid).
   */
  features(images: tf.Tensor4D, batchSize = 256, node = this.spec.features): tf.Tensor2D {
    const parts: tf.Tensor2D[] = [];
    for (let start = 0; start < images.shape[0]; start += batchSize) {
      const size = Math.min(batchSize, images.shape[0] - start);
      parts.push(
        tf.tidy(() => {
          const batch = tf.slice(images, [start, 0, 0, 0], [size, -1, -1, -1]);
          return this.run(batch, [node], { training: false })[0] as tf.Tensor2D;
        }),
      );
    }
    const all = tf.concat(parts, 0) as tf.Tensor2D;
    tf.dispose(parts);
    return all;
  }

  /** Copies every parameter and running statistic of `source` (same spec) into this encoder. */
  copyFrom(source: Encoder): void {
    for (const [name, p] of this.params) p.assign(source.param(name));
    for (const [name, s] of this.runningStats) s.assign(source.runningStats.get(name)!);
  }

  /** The momentum (EMA) update of a key encoder: p <- m p + (1 - m) q, parameters only, as MoCo. */
  momentumUpdate(query: Encoder, momentum: number): void {
    tf.tidy(() => {
      for (const [name, p] of this.params) {
        p.assign(tf.add(tf.mul(p, momentum), tf.mul(query.param(name), 1 - momentum)));
      }
    });
  }

  dispose(): void {
    tf.dispose([...this.params.values(), ...this.runningStats.values()]);
    this.params.clear();
    this.runningStats.clear();
  }
}

export function l2Normalize(x: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => tf.div(x, tf.maximum(tf.norm(x, 2, 1, true), 1e-12)) as tf.Tensor2D);
}

/**
 * Training-mode BatchNorm over groups: x is G x M x C (M = samples x pixels of a group), each group
 * normalised with its own mean and variance, with the closed-form backward
 *   dx = gamma rstd / M (M dy - sum dy - xhat sum(dy xhat)),  dgamma = sum dy xhat,  dbeta = sum dy.
 * A custom op, because tfjs's autodiff of the plain formula reduces over the middle axis with Sum,
 * which on wasm is a transpose and a slow loop (measured: 2.0 s of an 8 s resnet-mini step). On wasm,
 * with C a multiple of 4, it is two SIMD kernels on the heap (wasm-batchnorm.ts); elsewhere tfjs ops.
 */
export function groupBatchNorm(x: tf.Tensor3D, gamma: tf.Tensor, beta: tf.Tensor): GroupBatchNorm {
  const kernels = tf.getKernel(GROUP_BATCH_NORM, tf.getBackend()) !== undefined;
  return kernels && x.shape[2] % BATCH_NORM_CHANNEL_MULTIPLE === 0
    ? groupBatchNormKernels(x, gamma, beta)
    : groupBatchNormOps(x, gamma, beta);
}

export interface GroupBatchNorm {
  y: tf.Tensor3D;
  mean: tf.Tensor2D;
  variance: tf.Tensor2D;
}

/** The same op on a backend with the two kernels of wasm-batchnorm.ts: one pass pair each way. */
export function groupBatchNormKernels(x: tf.Tensor3D, gamma: tf.Tensor, beta: tf.Tensor): GroupBatchNorm {
  let mean: tf.Tensor2D | undefined;
  let variance: tf.Tensor2D | undefined;
  const op = tf.customGrad((...args: unknown[]) => {
    const [input, g, b] = args as [tf.Tensor3D, tf.Tensor1D, tf.Tensor1D];
    const save = args[3] as tf.GradSaveFunc;
    const [y, xhat, mu, v, rstd] = tf
      .engine()
      .runKernel(GROUP_BATCH_NORM, { x: input, gamma: g, beta: b }, { epsilon: BN_EPSILON }) as tf.Tensor[];
    mean = tf.keep(mu as tf.Tensor2D);
    variance = tf.keep(v as tf.Tensor2D);
    save([xhat!, rstd!, g]);
    return {
      value: y!,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xh, r, gm] = saved;
        return tf
          .engine()
          .runKernel(GROUP_BATCH_NORM_GRAD, { dy, xhat: xh!, rstd: r!, gamma: gm! }, {}) as tf.Tensor[];
      },
    };
  });
  const y = op(x, gamma, beta) as tf.Tensor3D;
  return { y, mean: mean!, variance: variance! };
}

/**
 * The op from tfjs ops, for the backends without the kernels (webgpu, tensorflow, cpu): every
 * reduction a ones-vector product (G x 1 x M . G x M x C), a fast A.B.
 */
export function groupBatchNormOps(x: tf.Tensor3D, gamma: tf.Tensor, beta: tf.Tensor): GroupBatchNorm {
  const [groups, m, c] = x.shape;
  let mean: tf.Tensor2D | undefined;
  let variance: tf.Tensor2D | undefined;
  const op = tf.customGrad((...args: unknown[]) => {
    const [input, g, b] = args as [tf.Tensor3D, tf.Tensor1D, tf.Tensor1D];
    const save = args[3] as tf.GradSaveFunc;
    const ones = tf.fill([groups, 1, m], 1 / m);
    const mu = tf.matMul(ones, input); // G x 1 x C
    const centered = tf.sub(input, mu);
    const v = tf.matMul(ones, tf.square(centered));
    const rstd = tf.rsqrt(tf.add(v, BN_EPSILON));
    const xhat = tf.mul(centered, rstd);
    // Kept past the op's scope; the caller disposes them.
    mean = tf.keep(tf.reshape(mu, [groups, c]) as tf.Tensor2D);
    variance = tf.keep(tf.reshape(v, [groups, c]) as tf.Tensor2D);
    save([xhat, rstd, g]);
    return {
      value: tf.add(tf.mul(xhat, g), b),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xh, r, gm] = saved as [tf.Tensor3D, tf.Tensor3D, tf.Tensor1D];
        const sumsOnes = tf.fill([groups, 1, m], 1);
        // Per group and channel, two products: one over [dy, dy.xhat] would need a concat on the
        // channel axis, which costs wasm more than the second product (~30 ms at 28x28x16, batch 256).
        const sumDy = tf.matMul(sumsOnes, dy as tf.Tensor3D); // G x 1 x C
        const sumDyXhat = tf.matMul(sumsOnes, tf.mul(dy, xh) as tf.Tensor3D); // G x 1 x C
        const dx = tf.mul(
          tf.mul(r, tf.div(gm, m)),
          tf.sub(tf.sub(tf.mul(dy, m), sumDy), tf.mul(xh, sumDyXhat)),
        );
        return [dx, tf.reshape(tf.sum(sumDyXhat, [0, 1]), [c]), tf.reshape(tf.sum(sumDy, [0, 1]), [c])];
      },
    };
  });
  const y = op(x, gamma, beta) as tf.Tensor3D;
  return { y, mean: mean!, variance: variance! };
}
