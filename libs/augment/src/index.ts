export * from "./decode.js";
export * from "./rgb.js";
export * from "./seed.js";
export * from "./small-gray.js";
export * from "./rgb-sharp.js";
export * from "./eval-transform.js";
