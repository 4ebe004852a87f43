// @adco/core/testing: what tests, fixtures and the conformance tools need, kept off the core's main
// entry: golden cases of one AdCo step (run through the production step) and the independent float64
// reference that generates them.
export {
  compare,
  type GoldenCase,
  type OutputAgreement,
  parseGoldenCase,
  runGoldenCase,
  TOLERANCE,
} from "./golden.js";
export { type CaseShape, makeGoldenCase, referenceExpected } from "./reference.js";
export {
  compareParitySteps,
  PARITY_TOLERANCE,
  type ParityReport,
  type ParityStep,
  parityLine,
  recordParityStep,
} from "./webgpu-parity.js";
export {
  aggregateProfile,
  type KernelRecord,
  type KernelTimer,
  type KernelTotal,
  type ProfileSummary,
  programNames,
} from "./webgpu-profile.js";
