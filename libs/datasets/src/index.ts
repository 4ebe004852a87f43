export * from "./fashion-mnist.js";
export * from "./idx.js";
