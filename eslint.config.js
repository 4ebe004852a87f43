// One lint setup for every package: typescript-eslint's recommended rules, plus the architecture's
// rules (docs/architecture.md), each a no-restricted-imports pattern so that breaking one fails the lint:
//   libs never import services, and no service imports another;
//   the core imports no I/O: no gRPC, MinIO, file system, proto, storage or service-kit;
//   augment imports no proto (it makes pixels; the data worker puts them on the wire).
// ESLint replaces, not merges, a rule that two config objects set for the same file, so each object
// below lists every pattern that applies to its files. test/lint-rules.test.ts plants a forbidden
// import for each rule and checks that the lint fails.
import js from "@eslint/js";
import tseslint from "typescript-eslint";

const SERVICES = ["data-worker", "trainer", "adversary-bank", "evaluator"];

const noServices = {
  group: [...SERVICES.map((s) => `@adco/${s}`), "**/services/**"],
  message: "libs never import services.",
};

const noIo = {
  group: [
    "@grpc/*",
    "minio",
    "fs",
    "fs/*",
    "node:fs",
    "node:fs/*",
    "@adco/proto",
    "@adco/proto/*",
    "@adco/storage",
    "@adco/storage/*",
    "@adco/service-kit",
    "@adco/service-kit/*",
  ],
  message: "the core is the algorithm only: no gRPC, object storage, file system or wire format.",
};

const noProto = {
  group: ["@adco/proto", "@adco/proto/*"],
  message: "augment makes pixels; the data worker puts them on the wire.",
};

const restrict = (...patterns) => ({ "no-restricted-imports": ["error", { patterns }] });

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
  { files: ["libs/**/*.ts"], rules: restrict(noServices) },
  // Tests of the core read their fixtures from disk; the code they test does not.
  { files: ["libs/core/src/**/*.ts"], ignores: ["**/*.test.ts"], rules: restrict(noServices, noIo) },
  { files: ["libs/augment/src/**/*.ts"], rules: restrict(noServices, noProto) },
  ...SERVICES.map((service) => ({
    files: [`services/${service}/**/*.ts`],
    rules: restrict({
      group: [
        ...SERVICES.filter((s) => s !== service).flatMap((s) => [
          `@adco/${s}`,
          `**/services/${s}/**`,
          `../../${s}/**`,
        ]),
      ],
      message: "no service imports another: they meet over gRPC (proto/) and object storage only.",
    }),
  })),
);
