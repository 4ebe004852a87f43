// One lint setup for every package: typescript-eslint's recommended rules, plus the project's rules
// (libs never import services; the core imports no I/O).
import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["**/dist/**", "**/node_modules/**", "**/.nx/**", "libs/proto/src/gen/**"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { console: "readonly", process: "readonly", Buffer: "readonly" } },
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      eqeqeq: ["error", "smart"],
    },
  },
  {
    files: ["libs/**/*.ts"],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          patterns: [
            {
              group: [
                "@adco/data-worker",
                "@adco/trainer",
                "@adco/adversary-bank",
                "@adco/evaluator",
                "**/services/**",
              ],
              message: "libs never import services.",
            },
          ],
        },
      ],
    },
  },
);
