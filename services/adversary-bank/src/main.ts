#!/usr/bin/env node
import { initBackend } from "@adco/core";
import { AdversaryBankService, AdversaryBankShardService } from "@adco/proto/adversary_bank";
import { register, runService, threadsFromConfig } from "@adco/service-kit";
import { storeFromConfig } from "@adco/storage";
import { adversaryBankConfig } from "./config.js";
import { adversaryBankHandlers } from "./handlers.js";

await runService({
  name: "adversary-bank",
  spec: adversaryBankConfig,
  services: async (config, log) => {
    const backend = await initBackend(config.backend, { threads: threadsFromConfig(config) });
    log.info(
      { backend: backend.name, detail: backend.detail, threads: backend.threads, skipped: backend.skipped },
      "tfjs backend",
    );
    const handlers = adversaryBankHandlers({ store: storeFromConfig(config) });
    return [
      register(AdversaryBankService, handlers.bank),
      register(AdversaryBankShardService, handlers.shard),
    ];
  },
});
