export { evaluatorConfig } from "./config.js";
export { checkEvaluateRequest, evaluatorHandlers } from "./handlers.js";
export { lineChart, type Series, svgToPng } from "./plots.js";
