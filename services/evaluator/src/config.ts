import { commonConfig } from "@adco/service-kit";

/** Every key the evaluator reads (env ADCO_<KEY>, or a file named by ADCO_CONFIG). */
export const evaluatorConfig = {
  ...commonConfig({ grpcPort: 50054, metricsPort: 9404 }),
};
