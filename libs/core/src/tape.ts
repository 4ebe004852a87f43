// Reverse-mode gradients with an await between the forward and the backward pass.
//
// tfjs records gradients only inside one synchronous call: engine.gradients(f, xs, dy) is
//   startTape(); y = tidy("forward", f); endTape();
//   tape = getFilteredNodesXToY(activeTape, xs, y);
//   tidy("backward", () => backpropagateGradients({ [y.id]: dy }, tape, ...)); dispose every saved tensor
// so dy must be known before f returns. A step whose dLoss/dq comes from another service (the
// adversary bank) knows dy only after an await, and with the public API has to run f again under the
// tape once the answer is in. This module splits that call in two:
//   recordForward(f, xs)   runs f with the engine's tape on and returns its outputs and the recorded
//                          tape. The tensors the kernels saved for their backward stay alive; the
//                          engine's tape is switched off and detached before it returns, so whatever
//                          runs during the await (other tensors, the data pipeline, even another
//                          tf.grad) is not recorded into it.
//   backward(recording, dys) later pulls dys (one per output, dLoss/doutput) back to the gradients of
//                          xs, then disposes every saved tensor.
// A recording that is never backpropagated (the service call failed) is freed with dispose().
//
// Gradients equal tf.grads / tf.variableGrads of the same f with the same dy: the same kernels'
// gradient functions run on the same saved tensors in the same order. The two pure functions of
// tfjs-core's tape.ts, getFilteredNodesXToY and backpropagateGradients, are written out below rather
// than imported: "@tensorflow/tfjs-core" resolves to the Node bundle (dist/tf-core.node.js), which
// does not export them, and the ESM file that does (dist/tape.js) neither loads under Node (its
// imports have no file extensions) nor would be the bundle's module: it would bring a second copy of
// tfjs-core's util and environment modules. Here they take several outputs instead of one y, which
// the library's do not. What this module reads of the engine (state.activeTape, gradientDepth,
// kernelDepth, startTape, endTape) is declared in tfjs-core 4.22's engine.d.ts; the version is pinned.
import * as tf from "@tensorflow/tfjs-core";

/** One recorded kernel call, as tfjs-core's tape.ts declares TapeNode (not exported by the bundle). */
interface TapeNode {
  readonly id: number;
  readonly kernelName: string;
  inputs: tf.NamedTensorMap;
  readonly outputs: tf.Tensor[];
  /** dys (one per output, zeros for outputs off the path) -> a gradient thunk per input. */
  readonly gradient?: (dys: (tf.Tensor | null)[]) => Record<string, () => tf.Tensor>;
  readonly saved?: tf.Tensor[];
}

/** The parts of tfjs's Engine this module drives (public members of Engine in engine.d.ts). */
interface TapeEngine {
  readonly state: { activeTape: TapeNode[] | null; gradientDepth: number; kernelDepth: number };
  startTape(): void;
  endTape(): void;
}

const engine = (): TapeEngine => tf.engine() as unknown as TapeEngine;

/** A forward pass recorded for one later `backward`. The caller owns `outputs`; the recording owns the rest. */
export class ForwardRecording<O extends tf.Tensor | tf.Tensor[]> {
  private tape: TapeNode[] | null;

  constructor(
    /** What f returned. Not disposed by backward or dispose: the caller owns them. */
    readonly outputs: O,
    /** The tensors the gradients are taken with respect to. */
    readonly xs: readonly tf.Tensor[],
    tape: TapeNode[],
  ) {
    this.tape = tape;
  }

  /** True until backward or dispose has released the saved tensors. */
  get live(): boolean {
    return this.tape !== null;
  }

  /** The nodes on paths from xs to the outputs; throws once released. */
  take(): TapeNode[] {
    if (!this.tape) throw new Error("this forward recording was already backpropagated or disposed");
    const tape = this.tape;
    this.tape = null;
    return tape;
  }

  /** Frees the saved tensors without a backward (e.g. the service call failed). Idempotent. */
  dispose(): void {
    if (this.tape) disposeSaved(this.take());
  }
}

/**
 * Runs f with gradients recorded with respect to xs (variables, or any tensors f reads), and returns
 * its outputs with the recording. Nodes that lead from no x to no output are pruned at once and their
 * saved tensors freed, so only what the backward needs lives through the await. Not for use inside
 * another gradient computation (tf.grad, variableGrads, customGrad, a kernel): their tape is not ours.
 */
export function recordForward<O extends tf.Tensor | tf.Tensor[]>(
  f: () => O,
  xs: readonly tf.Tensor[],
): ForwardRecording<O> {
  if (xs.length === 0) throw new Error("recordForward: no xs to take gradients with respect to");
  const e = engine();
  const { state } = e;
  if (state.gradientDepth !== 0 || state.kernelDepth !== 0) {
    throw new Error("recordForward: cannot record inside another gradient computation or kernel");
  }
  const detached = state.activeTape;
  e.startTape(); // depth 0 -> 1: a fresh activeTape that every kernel of f appends to
  const tape = state.activeTape!;
  let outputs: O;
  try {
    // As engine.gradients: intermediates not saved for backward are disposed at the end of f.
    outputs = tf.tidy("forward", f);
  } catch (error) {
    disposeSaved(tape);
    throw error;
  } finally {
    // Off (depth back to 0) and detached: later ops are neither recorded nor pushed onto our array.
    e.endTape();
    state.activeTape = detached;
  }
  const ys: tf.Tensor[] = Array.isArray(outputs) ? outputs : [outputs as tf.Tensor];
  if (!ys.every((y) => y instanceof tf.Tensor)) {
    disposeSaved(tape);
    throw new Error("recordForward: f must return a tensor or an array of tensors");
  }
  const kept = filterNodesXToYs(tape, xs, ys);
  const keptIds = new Set(kept.map((node) => node.id));
  disposeSaved(tape.filter((node) => !keptIds.has(node.id)));
  return new ForwardRecording(outputs, xs, kept);
}

/**
 * The gradients of sum_i <outputs_i, dys_i> with respect to each x of the recording (null where an x
 * does not reach the outputs); then the recording's saved tensors are disposed, whether or not this
 * succeeds. dys are not disposed. The caller owns the gradients.
 */
export function backward(
  recording: ForwardRecording<tf.Tensor | tf.Tensor[]>,
  dys: tf.Tensor | readonly tf.Tensor[],
): (tf.Tensor | null)[] {
  const tape = recording.take();
  try {
    const ys = Array.isArray(recording.outputs) ? recording.outputs : [recording.outputs];
    const seeds = Array.isArray(dys) ? dys : [dys as tf.Tensor];
    if (seeds.length !== ys.length) {
      throw new Error(`backward: ${seeds.length} dys for ${ys.length} outputs`);
    }
    seeds.forEach((dy, i) => {
      if (dy.dtype !== "float32") throw new Error(`backward: dys[${i}] must be float32, got ${dy.dtype}`);
      if (!sameShape(dy.shape, ys[i]!.shape)) {
        throw new Error(`backward: dys[${i}] has shape [${dy.shape}], output ${i} [${ys[i]!.shape}]`);
      }
    });
    // tf.tidy's type has no null, but it skips nulls in what it returns (walkTensorContainer).
    return tf.tidy("backward", () => {
      const accumulated: Record<number, tf.Tensor> = {};
      ys.forEach((y, i) => {
        // A clone (same data, own handle): backpropagation disposes a gradient it accumulates into.
        const seed = seeds[i]!;
        const previous = accumulated[y.id];
        accumulated[y.id] = previous ? tf.add(previous, seed) : tf.clone(seed);
      });
      backpropagate(accumulated, tape);
      return recording.xs.map((x) => accumulated[x.id] ?? null) as tf.Tensor[];
    }) as (tf.Tensor | null)[];
  } finally {
    disposeSaved(tape);
  }
}

function disposeSaved(tape: readonly TapeNode[]): void {
  for (const node of tape) for (const t of node.saved ?? []) t.dispose();
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/**
 * tfjs-core's getFilteredNodesXToY for several outputs: the nodes, in tape order, that are reached
 * from some x and lead to some y, each with its inputs pruned to those reached from an x.
 */
function filterNodesXToYs(tape: readonly TapeNode[], xs: readonly tf.Tensor[], ys: readonly tf.Tensor[]) {
  const fromX = new Set(xs.map((x) => x.id));
  const nodesFromX = new Set<number>();
  for (const node of tape) {
    if (inputsOf(node).some(([, input]) => fromX.has(input.id))) {
      for (const output of node.outputs) fromX.add(output.id);
      nodesFromX.add(node.id);
    }
  }
  const toY = new Set(ys.map((y) => y.id));
  const nodesToY = new Set<number>();
  for (let i = tape.length - 1; i >= 0; i--) {
    const node = tape[i]!;
    if (node.outputs.some((output) => toY.has(output.id))) {
      for (const [, input] of inputsOf(node)) toY.add(input.id);
      nodesToY.add(node.id);
    }
  }
  const filtered: TapeNode[] = [];
  for (const node of tape) {
    if (!nodesFromX.has(node.id) || !nodesToY.has(node.id)) continue;
    const inputs: tf.NamedTensorMap = {};
    for (const [name, input] of inputsOf(node)) if (fromX.has(input.id)) inputs[name] = input;
    filtered.push({ ...node, inputs });
  }
  return filtered;
}

/** A node's named inputs, without absent optional ones. */
function inputsOf(node: TapeNode): [string, tf.Tensor][] {
  return Object.entries(node.inputs).filter((entry): entry is [string, tf.Tensor] => entry[1] != null);
}

/**
 * tfjs-core's backpropagateGradients: walks the tape backwards, each node's dys (its outputs'
 * accumulated gradients) to its inputs' gradients, summed where a tensor feeds several nodes.
 */
function backpropagate(accumulated: Record<number, tf.Tensor>, tape: readonly TapeNode[]): void {
  for (let i = tape.length - 1; i >= 0; i--) {
    const node = tape[i]!;
    const dys = node.outputs.map((output) => accumulated[output.id] ?? null);
    if (!node.gradient) {
      throw new Error(`Cannot compute gradient: gradient function not found for ${node.kernelName}.`);
    }
    const inputGradients = node.gradient(dys);
    for (const [name, x] of Object.entries(node.inputs)) {
      const thunk = inputGradients[name];
      if (!thunk) {
        throw new Error(`Cannot backprop through input ${name} of ${node.kernelName}.`);
      }
      const dx = tf.tidy(thunk);
      if (dx.dtype !== "float32") {
        throw new Error(`The gradient of input ${name} of ${node.kernelName} is ${dx.dtype}, not float32`);
      }
      if (!sameShape(dx.shape, x.shape)) {
        throw new Error(
          `The gradient of input ${name} of ${node.kernelName} has shape [${dx.shape}], not [${x.shape}]`,
        );
      }
      const current = accumulated[x.id];
      if (current) {
        accumulated[x.id] = tf.add(current, dx);
        current.dispose();
      } else {
        accumulated[x.id] = dx;
      }
    }
  }
}
