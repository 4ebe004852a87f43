#!/usr/bin/env node
import { AdversaryBankService } from "@adco/proto/adversary_bank";
import { register, runService } from "@adco/service-kit";
import { adversaryBankConfig } from "./config.js";
import { adversaryBankHandlers } from "./handlers.js";

await runService({
  name: "adversary-bank",
  spec: adversaryBankConfig,
  services: () => [register(AdversaryBankService, adversaryBankHandlers())],
});
