export * from "./seed.js";
export * from "./small-gray.js";
