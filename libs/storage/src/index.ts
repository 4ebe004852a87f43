export * from "./config.js";
export * from "./dataset.js";
export * from "./object-store.js";
export * from "./bundle.js";
export * from "./rpc.js";
export * from "./run-layout.js";
