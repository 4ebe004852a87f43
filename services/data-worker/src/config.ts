import { commonConfig } from "@adco/service-kit";

/** Every key the data worker reads (env ADCO_<KEY>, or a file named by ADCO_CONFIG). */
export const dataWorkerConfig = {
  ...commonConfig({ grpcPort: 50051, metricsPort: 9401 }),
};
