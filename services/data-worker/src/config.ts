import { commonConfig, field } from "@adco/service-kit";
import { storageConfig } from "@adco/storage";

/** Every key the data worker reads (env ADCO_<KEY>, or a file named by ADCO_CONFIG). */
export const dataWorkerConfig = {
  ...commonConfig({ grpcPort: 50051, metricsPort: 9401 }),
  ...storageConfig,
  shardCacheSize: field.int({
    default: 4,
    min: 1,
    max: 64,
    doc: "decoded shards kept in memory, shared by all streams",
  }),
};
