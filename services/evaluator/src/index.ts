export { evaluatorConfig } from "./config.js";
export { checkEvaluateRequest, evaluatorHandlers } from "./handlers.js";
