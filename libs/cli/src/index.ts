export * from "./import.js";
export * from "./progress.js";
