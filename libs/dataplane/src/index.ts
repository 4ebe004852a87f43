export * from "./feeder.js";
export * from "./plan.js";
