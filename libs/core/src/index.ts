export * from "./adco.js";
export * from "./backend.js";
export * from "./checks.js";
export * from "./golden.js";
export * from "./random.js";
export * from "./reference.js";
