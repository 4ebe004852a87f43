// Converts between typed arrays and `Tensor` messages: the one tensor codec of the project.
// Decoding validates dtype, shape and byte length against what the receiver expects, so a malformed
// tensor becomes a clear error naming the field instead of a silent broadcast.
import { DataType, type Tensor } from "./gen/adco/v1/common.js";

export type TypedArray = Float32Array | Uint8Array | Int32Array;

export interface DecodedTensor<T extends TypedArray = TypedArray> {
  readonly data: T;
  readonly shape: readonly number[];
}

/** A tensor that does not match what the receiver expects; `field` names it for the caller's error. */
export class TensorError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
    this.name = "TensorError";
  }
}

const BYTES_PER_ELEMENT: Record<number, number> = {
  [DataType.DATA_TYPE_FLOAT32]: 4,
  [DataType.DATA_TYPE_UINT8]: 1,
  [DataType.DATA_TYPE_INT32]: 4,
};

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

function dataTypeOf(data: TypedArray): DataType {
  if (data instanceof Float32Array) return DataType.DATA_TYPE_FLOAT32;
  if (data instanceof Uint8Array) return DataType.DATA_TYPE_UINT8;
  return DataType.DATA_TYPE_INT32;
}

function elementCount(shape: readonly number[]): number {
  return shape.reduce((n, d) => n * d, 1);
}

/** Packs a typed array of the given shape. Throws if the element count does not match the shape. */
export function encodeTensor(data: TypedArray, shape: readonly number[]): Tensor {
  if (!LITTLE_ENDIAN) throw new Error("big-endian hosts are not supported");
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0)
      throw new TensorError("shape", `dimension ${d} is not a non-negative integer`);
  }
  if (elementCount(shape) !== data.length) {
    throw new TensorError(
      "shape",
      `[${shape.join(", ")}] holds ${elementCount(shape)} elements, data has ${data.length}`,
    );
  }
  return {
    dtype: dataTypeOf(data),
    shape: [...shape],
    data: Buffer.from(data.buffer, data.byteOffset, data.byteLength),
  };
}

/**
 * Unpacks a tensor, checking it against the expected dtype and shape. `shape` entries that are
 * `undefined` accept any size (e.g. [undefined, 128] for B x 128). The result owns aligned memory.
 */
export function decodeTensor(
  tensor: Tensor | undefined,
  field: string,
  expect: { dtype: DataType.DATA_TYPE_FLOAT32; shape?: readonly (number | undefined)[] },
): DecodedTensor<Float32Array>;
export function decodeTensor(
  tensor: Tensor | undefined,
  field: string,
  expect: { dtype: DataType.DATA_TYPE_UINT8; shape?: readonly (number | undefined)[] },
): DecodedTensor<Uint8Array>;
export function decodeTensor(
  tensor: Tensor | undefined,
  field: string,
  expect: { dtype: DataType.DATA_TYPE_INT32; shape?: readonly (number | undefined)[] },
): DecodedTensor<Int32Array>;
export function decodeTensor(
  tensor: Tensor | undefined,
  field: string,
  expect: { dtype: DataType; shape?: readonly (number | undefined)[] },
): DecodedTensor {
  if (tensor === undefined) throw new TensorError(field, "is required");
  if (tensor.dtype !== expect.dtype) {
    throw new TensorError(
      field,
      `dtype is ${DataType[tensor.dtype] ?? tensor.dtype}, expected ${DataType[expect.dtype]}`,
    );
  }
  const shape = tensor.shape;
  if (expect.shape !== undefined) {
    const want = expect.shape;
    const shown = `[${want.map((d) => d ?? "*").join(", ")}]`;
    if (shape.length !== want.length) {
      throw new TensorError(field, `shape [${shape.join(", ")}] has rank ${shape.length}, expected ${shown}`);
    }
    want.forEach((d, i) => {
      if (d !== undefined && shape[i] !== d) {
        throw new TensorError(field, `shape [${shape.join(", ")}] does not match ${shown} at dimension ${i}`);
      }
    });
  }
  const bytesPerElement = BYTES_PER_ELEMENT[expect.dtype]!;
  const expectedBytes = elementCount(shape) * bytesPerElement;
  if (tensor.data.byteLength !== expectedBytes) {
    throw new TensorError(
      field,
      `data has ${tensor.data.byteLength} bytes, shape [${shape.join(", ")}] needs ${expectedBytes}`,
    );
  }
  // Copy into a fresh buffer: the wire buffer is not aligned for 4-byte views, and the caller may keep it.
  const bytes = new Uint8Array(expectedBytes);
  bytes.set(tensor.data);
  switch (expect.dtype) {
    case DataType.DATA_TYPE_FLOAT32:
      return { data: new Float32Array(bytes.buffer), shape };
    case DataType.DATA_TYPE_INT32:
      return { data: new Int32Array(bytes.buffer), shape };
    default:
      return { data: bytes, shape };
  }
}
