import { BACKEND_CHOICES } from "@adco/core";
import { commonConfig, field, threadsConfig } from "@adco/service-kit";
import { storageConfig } from "@adco/storage";

/** Every key the adversary bank reads (env ADCO_<KEY>, or a file named by ADCO_CONFIG). */
export const adversaryBankConfig = {
  ...commonConfig({ grpcPort: 50053, metricsPort: 9403 }),
  ...storageConfig,
  ...threadsConfig,
  backend: field.oneOf(BACKEND_CHOICES, {
    default: "auto",
    doc: `tfjs backend: ${BACKEND_CHOICES.join(", ")}`,
  }),
};
