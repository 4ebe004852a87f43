export { adversaryBankConfig } from "./config.js";
export { adversaryBankHandlers } from "./handlers.js";
export { checkCreateBank, checkHyper, checkStep, type CheckedStep } from "./validate.js";
