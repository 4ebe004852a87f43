import { commonConfig } from "@adco/service-kit";

/** Every key the trainer reads (env ADCO_<KEY>, or a file named by ADCO_CONFIG). */
export const trainerConfig = {
  ...commonConfig({ grpcPort: 50052, metricsPort: 9402 }),
};
