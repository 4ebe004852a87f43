// SGD with momentum and weight decay, as torch.optim.SGD (the official optimiser):
//   g <- grad + wd * p;   v <- momentum * v + g;   p <- p - lr * v
// Written out (not tf.train.momentum) so the velocity is ours to checkpoint and restore by name.
import * as tf from "@tensorflow/tfjs-core";

export class Sgd {
  readonly velocity = new Map<string, tf.Variable>();

  constructor(
    private readonly params: ReadonlyMap<string, tf.Variable>,
    readonly momentum: number,
    readonly weightDecay: number,
  ) {
    for (const [name, p] of params) this.velocity.set(name, tf.variable(tf.zerosLike(p), false));
  }

  /** grads by variable name, as tf.variableGrads returns them. */
  apply(grads: tf.NamedTensorMap, lr: number): void {
    tf.tidy(() => {
      for (const [name, p] of this.params) {
        const grad = grads[p.name];
        if (!grad) throw new Error(`no gradient for ${name}`);
        const v = this.velocity.get(name)!;
        v.assign(tf.add(tf.mul(v, this.momentum), tf.add(grad, tf.mul(p, this.weightDecay))));
        p.assign(tf.sub(p, tf.mul(v, lr)));
      }
    });
  }

  dispose(): void {
    tf.dispose([...this.velocity.values()]);
    this.velocity.clear();
  }
}
