#!/usr/bin/env node
import { EvaluatorService } from "@adco/proto/evaluator";
import { register, runService } from "@adco/service-kit";
import { evaluatorConfig } from "./config.js";
import { evaluatorHandlers } from "./handlers.js";

await runService({
  name: "evaluator",
  spec: evaluatorConfig,
  services: () => [register(EvaluatorService, evaluatorHandlers())],
});
