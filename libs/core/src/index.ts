// @adco/core: the AdCo algorithm on TensorFlow.js, no I/O. Named exports only, so the public surface
// is this list; golden cases and the float64 reference are on @adco/core/testing.

// The AdCo step (one copy: in-process negatives, the bank service, every shard) and its shards.
export {
  adcoStep,
  type ContrastOutcome,
  type ContrastPair,
  type ContrastStats,
  type PairReduction,
  type ShardPeer,
  type SimilarityStats,
  stepInProcess,
  stepOverPeers,
} from "./adco.js";
export { type AdcoHyperparameters, checkHyperparameters, PAPER_HYPERPARAMETERS } from "./hyperparameters.js";
export {
  AdversaryShard,
  disposePartials,
  type NegativesState,
  type Normalizers,
  type ShardApplied,
  type ShardApply,
  type ShardPartial,
  type ShardSlice,
  shardSlices,
  type ShardWrite,
} from "./shard.js";
export { AdversaryNegatives, type Negatives, QueueNegatives } from "./methods.js";

// Encoders, training and its schedule.
export {
  Encoder,
  type EncoderArch,
  type EncoderSpec,
  encoderSpec,
  groupBatchNorm,
  l2Normalize,
  nodesFor,
} from "./encoder.js";
export {
  bnGroupsFor,
  type ContrastService,
  type PretrainConfig,
  Pretrainer,
  type PretrainerOptions,
  type RemoteStepStats,
  type StepStats,
} from "./pretrainer.js";
export { initSteps, learningRate } from "./schedule.js";
export { type LoopOptions, type LoopProgress, runPretraining } from "./loop.js";
export { preset, type PresetName, PRESETS } from "./presets.js";
export { SeededRandom } from "./random.js";

// Backends, checkpoints, export, evaluation.
export {
  type ActiveBackend,
  BACKEND_CHOICES,
  type BackendChoice,
  type BackendOptions,
  backendFromEnv,
  initBackend,
  threadsFromEnv,
} from "./backend.js";
export { replacedWasmKernels } from "./wasm-replace.js";
export { GROUP_BATCH_NORM, GROUP_BATCH_NORM_GRAD } from "./wasm-batchnorm.js";
export { defaultThreads, MAX_WASM_THREADS } from "./wasm-threads.js";
export { activeWebGpuAdapter, type WebGpuAdapter } from "./webgpu.js";
export { pretrainerFiles, restorePretrainer } from "./checkpoint.js";
export { artifactsFromFiles, encoderFromArtifacts } from "./export.js";
export { pixelsToTensor } from "./pixels.js";
export {
  type ChunkedKnnOptions,
  type FeatureBlock,
  type FeatureBlocks,
  featureBlocksOf,
  KNN_DEFAULTS,
  knnClassify,
  knnClassifyAsync,
  knnClassifyChunked,
  type KnnOptions,
  type KnnResult,
} from "./knn.js";
export {
  LINEAR_PROBE_DEFAULTS,
  linearProbe,
  linearProbeAsync,
  type LinearProbeOptions,
  type LinearProbeResult,
} from "./linear-probe.js";
export { backendMemoryBytes, gibText, negativesBytes, WASM_MEMORY_BYTES } from "./memory.js";
