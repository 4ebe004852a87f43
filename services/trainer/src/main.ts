#!/usr/bin/env node
import { TrainerService } from "@adco/proto/trainer";
import { register, runService } from "@adco/service-kit";
import { trainerConfig } from "./config.js";
import { trainerHandlers } from "./handlers.js";

await runService({
  name: "trainer",
  spec: trainerConfig,
  services: () => [register(TrainerService, trainerHandlers())],
});
