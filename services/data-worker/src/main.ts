#!/usr/bin/env node
import { DataWorkerService } from "@adco/proto/data_worker";
import { register, runService } from "@adco/service-kit";
import { storeFromConfig } from "@adco/storage";
import { dataWorkerConfig } from "./config.js";
import { dataWorkerHandlers } from "./handlers.js";

await runService({
  name: "data-worker",
  spec: dataWorkerConfig,
  services: (config) => {
    const store = storeFromConfig(config);
    return [
      register(DataWorkerService, dataWorkerHandlers({ store, shardCacheSize: config.shardCacheSize })),
    ];
  },
});
