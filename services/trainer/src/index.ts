export { trainerConfig } from "./config.js";
export { CheckpointStore } from "./checkpoints.js";
export { checkRunConfig, type TrainerControl, trainerControl } from "./handlers.js";
export { resolveRunConfig } from "./run-config.js";
export { trainingMetrics } from "./metrics.js";
