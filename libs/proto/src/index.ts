// The hand-written side of @adco/proto: the tensor codec (typed arrays <-> Tensor messages) and the
// descriptor set for server reflection. The generated messages and services are imported per file:
// `@adco/proto/common`, `@adco/proto/adversary_bank`, ...
export { fileDescriptorSetBase64 } from "./gen/descriptor.js";
export { decodeTensor, encodeTensor, TensorError, type DecodedTensor, type TypedArray } from "./tensor.js";
export { compareFences, fenceText } from "./fence.js";
export { ENCODER_ARCH_BY_NAME, encoderArchName, type EncoderArchName } from "./names.js";
export { runConfigFromJson, startRunRequestFromJson } from "./strict-json.js";
