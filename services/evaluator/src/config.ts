import { BACKEND_CHOICES } from "@adco/core";
import { commonConfig, field, threadsConfig } from "@adco/service-kit";
import { storageConfig } from "@adco/storage";

/** Every key the evaluator reads (env ADCO_<KEY>, or a file named by ADCO_CONFIG). */
export const evaluatorConfig = {
  ...commonConfig({ grpcPort: 50054, metricsPort: 9404 }),
  ...storageConfig,
  ...threadsConfig,
  backend: field.oneOf(BACKEND_CHOICES, {
    default: "auto",
    doc: `tfjs backend: ${BACKEND_CHOICES.join(", ")}`,
  }),
};
