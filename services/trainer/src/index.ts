export { trainerConfig } from "./config.js";
export { checkRunConfig, trainerHandlers } from "./handlers.js";
