#!/usr/bin/env node
import { DataWorkerService } from "@adco/proto/data_worker";
import { access, register, runService, usableCores } from "@adco/service-kit";
import { storeFromConfig } from "@adco/storage";
import { AugmentPool } from "./augment-pool.js";
import { dataWorkerConfig } from "./config.js";
import { dataWorkerHandlers } from "./handlers.js";

let augmentPool: AugmentPool | undefined;
await runService({
  name: "data-worker",
  spec: dataWorkerConfig,
  services: (config, log) => {
    const store = storeFromConfig(config);
    // Threads start on the first RGB record, so a worker that serves only small gray images has none.
    augmentPool = new AugmentPool(config.augmentThreads > 0 ? config.augmentThreads : usableCores());
    log.info({ augmentThreads: augmentPool.size }, "augment pool");
    const deps = { store, shardCacheSize: config.shardCacheSize, augmentPool };
    return [
      register(DataWorkerService, dataWorkerHandlers(deps), {
        streamViews: access.control("trainer"),
        describe: access.read,
      }),
    ];
  },
  onShutdown: () => augmentPool?.close() ?? Promise.resolve(),
});
