// GatherV2 on the wasm backend as one copy per gathered slice.
//
// tfjs-backend-wasm's Gather moves one element at a time through strides: 7.5 ms a step for the
// key encoder's shuffle of 256 x 28x28x1 images, ~20 ms for a linear-probe batch of 256 x 3136.
// Gathering along an axis copies whole contiguous slices (everything after the axis), so each is a
// copyWithin on the heap, native memmove. Small slices and batch dims go to tfjs's kernel.
import * as tf from "@tensorflow/tfjs-core";
import { heapOf, type WasmBackend } from "./wasm-heap.js";
import { replaceWasmKernel } from "./wasm-replace.js";

/** Below this many elements a slice is not worth a call of its own. */
const MIN_SLICE = 16;

interface GatherAttrs {
  axis: number;
  batchDims: number;
}

/** Replaces the wasm backend's GatherV2 (once per process; later calls do nothing). */
export function registerWasmGather(): void {
  replaceWasmKernel("GatherV2", (tfjs) => (args) => {
    const { x, indices } = args.inputs as { x: tf.TensorInfo; indices: tf.TensorInfo };
    const { axis: rawAxis, batchDims } = args.attrs as unknown as GatherAttrs;
    const axis = tf.util.parseAxisParam(rawAxis, x.shape)[0]!;
    const slice = tf.util.sizeFromShape(x.shape.slice(axis + 1));
    const plain = x.dtype === "float32" || x.dtype === "int32";
    if (batchDims !== 0 || !plain || indices.dtype !== "int32" || slice < MIN_SLICE) {
      return tfjs.kernelFunc(args);
    }
    const backend = args.backend as unknown as WasmBackend & {
      readSync(dataId: tf.DataId): Int32Array;
    };
    const picks = backend.readSync(indices.dataId);
    const dim = x.shape[axis]!;
    for (const index of picks) {
      if (!(index >= 0 && index < dim)) {
        throw new Error(`GatherV2: the index value ${index} is not in [0, ${dim - 1}]`);
      }
    }
    const out = backend.makeOutput(
      [...x.shape.slice(0, axis), ...indices.shape, ...x.shape.slice(axis + 1)],
      x.dtype,
    );
    if (picks.length === 0 || tf.util.sizeFromShape(x.shape) === 0) return out;
    // Float32 and int32 are both 4 bytes: one view of the heap copies either.
    const heap = new Int32Array(heapOf(backend, "GatherV2").buffer);
    const from = backend.getMemoryOffset(x.dataId) / 4;
    const to = backend.getMemoryOffset(out.dataId) / 4;
    const outer = tf.util.sizeFromShape(x.shape.slice(0, axis));
    for (let o = 0; o < outer; o++) {
      const source = from + o * dim * slice;
      const target = to + o * picks.length * slice;
      picks.forEach((index, i) => {
        const start = source + index * slice;
        heap.copyWithin(target + i * slice, start, start + slice);
      });
    }
    return out;
  });
}
