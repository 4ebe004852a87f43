export * from "./small-images.js";
