export * from "./import.js";
export * from "./progress.js";
export * from "./runs.js";
export * from "./system.js";
export * from "./results.js";
export * from "./ui/server.js";
export * from "./ui/local.js";
export * from "./study-args.js";
