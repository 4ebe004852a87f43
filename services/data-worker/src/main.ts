#!/usr/bin/env node
import { DataWorkerService } from "@adco/proto/data_worker";
import { register, runService } from "@adco/service-kit";
import { dataWorkerConfig } from "./config.js";
import { dataWorkerHandlers } from "./handlers.js";

await runService({
  name: "data-worker",
  spec: dataWorkerConfig,
  services: () => [register(DataWorkerService, dataWorkerHandlers())],
});
