#!/usr/bin/env node
import { backendMemoryBytes, initBackend } from "@adco/core";
import { AdversaryBankService, AdversaryBankShardService } from "@adco/proto/adversary_bank";
import {
  access,
  BROKEN_BACKEND_EXIT,
  leaveBrokenBackend,
  register,
  runService,
  type ServiceHost,
  serviceNameOf,
  threadsFromConfig,
} from "@adco/service-kit";
import { storeFromConfig } from "@adco/storage";
import { adversaryBankConfig } from "./config.js";
import { adversaryBankHandlers } from "./handlers.js";

/** The host, once it has started (a call can break the backend only after). */
const started: { host?: ServiceHost } = {};
started.host = await runService({
  name: "adversary-bank",
  spec: adversaryBankConfig,
  services: async (config, log) => {
    const backend = await initBackend(config.backend, { threads: threadsFromConfig(config) });
    log.info(
      { backend: backend.name, detail: backend.detail, threads: backend.threads, skipped: backend.skipped },
      "tfjs backend",
    );
    const handlers = adversaryBankHandlers({
      store: storeFromConfig(config),
      // A bank too large for wasm would abort it for every run: refused at CreateBank and Step.
      memoryBytes: backendMemoryBytes(backend.name),
      onBackendBroken: (error) => {
        const names = [serviceNameOf(AdversaryBankService), serviceNameOf(AdversaryBankShardService)];
        if (started.host) void leaveBrokenBackend(started.host, names, error, log);
        else process.exit(BROKEN_BACKEND_EXIT);
      },
    });
    // The trainer drives a run's bank; shard 0 drives the other shards; Step is the trainer's alone.
    const control = access.control("trainer", "adversary-bank");
    return [
      register(AdversaryBankService, handlers.bank, {
        createBank: control,
        step: access.only("trainer"),
        snapshot: control,
        restore: control,
        getStats: access.read,
        deleteBank: control,
      }),
      register(AdversaryBankShardService, handlers.shard, {
        partialLogSumExp: access.only("adversary-bank"),
        applyShard: access.only("adversary-bank"),
      }),
    ];
  },
});
