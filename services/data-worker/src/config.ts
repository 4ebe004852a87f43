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
  augmentThreads: field.int({
    default: 0,
    min: 0,
    max: 256,
    doc: "threads that decode and augment RGB views (two-view, multi-crop), shared by all streams; 0: the cores this process may use (in a pod: its CPU limit)",
  }),
};
