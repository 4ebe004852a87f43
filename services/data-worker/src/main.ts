#!/usr/bin/env node
import { DataWorkerService } from "@adco/proto/data_worker";
import { access, register, runService } from "@adco/service-kit";
import { storeFromConfig } from "@adco/storage";
import { dataWorkerConfig } from "./config.js";
import { dataWorkerHandlers } from "./handlers.js";

await runService({
  name: "data-worker",
  spec: dataWorkerConfig,
  services: (config) => {
    const store = storeFromConfig(config);
    return [
      register(DataWorkerService, dataWorkerHandlers({ store, shardCacheSize: config.shardCacheSize }), {
        streamViews: access.control("trainer"),
        describe: access.read,
      }),
    ];
  },
});
