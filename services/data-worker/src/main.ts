#!/usr/bin/env node
import { DataWorkerService } from "@adco/proto/data_worker";
import { register, runService } from "@adco/service-kit";
import { ObjectStore } from "@adco/storage";
import { dataWorkerConfig } from "./config.js";
import { dataWorkerHandlers } from "./handlers.js";

await runService({
  name: "data-worker",
  spec: dataWorkerConfig,
  services: (config) => {
    const store = new ObjectStore({
      endpoint: config.s3Endpoint,
      accessKey: config.s3AccessKey,
      secretKey: config.s3SecretKey,
      region: config.s3Region,
    });
    return [
      register(DataWorkerService, dataWorkerHandlers({ store, shardCacheSize: config.shardCacheSize })),
    ];
  },
});
