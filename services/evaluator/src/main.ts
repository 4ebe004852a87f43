#!/usr/bin/env node
import { initBackend } from "@adco/core";
import { EvaluatorService } from "@adco/proto/evaluator";
import { access, register, runService, threadsFromConfig } from "@adco/service-kit";
import { storeFromConfig } from "@adco/storage";
import { evaluatorConfig } from "./config.js";
import { evaluatorHandlers } from "./handlers.js";

await runService({
  name: "evaluator",
  spec: evaluatorConfig,
  services: async (config, log) => {
    const backend = await initBackend(config.backend, { threads: threadsFromConfig(config) });
    log.info(
      { backend: backend.name, detail: backend.detail, threads: backend.threads, skipped: backend.skipped },
      "tfjs backend",
    );
    return [
      register(EvaluatorService, evaluatorHandlers({ store: storeFromConfig(config), log }), {
        evaluate: access.control("trainer"),
        followRun: access.control("trainer"),
      }),
    ];
  },
});
