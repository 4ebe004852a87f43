export { dataWorkerConfig } from "./config.js";
export { checkOpenStream, dataWorkerHandlers } from "./handlers.js";
