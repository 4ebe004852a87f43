import { BACKEND_CHOICES } from "@adco/core";
import { commonConfig, field, threadsConfig } from "@adco/service-kit";
import { storageConfig } from "@adco/storage";

/** Every key the trainer reads (env ADCO_<KEY>, or a file named by ADCO_CONFIG). */
export const trainerConfig = {
  ...commonConfig({ grpcPort: 50052, metricsPort: 9402 }),
  ...storageConfig,
  ...threadsConfig,
  backend: field.oneOf(BACKEND_CHOICES, {
    default: "auto",
    doc: `tfjs backend of the encoders: ${BACKEND_CHOICES.join(", ")}`,
  }),
  bankAddress: field.string({
    default: "127.0.0.1:50053",
    doc: "host:port of the adversary-bank service (shard 0)",
  }),
  bankPeers: field.string({
    default: "",
    doc: "comma-separated host:port of adversary-bank shards 1..S-1 (empty: the bank is one shard, at bankAddress); K is split over bankAddress and these",
  }),
  dataWorkers: field.string({
    default: "127.0.0.1:50051",
    doc: "comma-separated host:port of the data workers (a DNS name with several addresses counts once per address it resolves to)",
  }),
  evaluatorAddress: field.string({
    default: "",
    doc: "host:port of an evaluator that scores each epoch's checkpoint (kNN on the dataset's train and test splits) while training goes on, shown by WatchRun; empty: none",
  }),
  retryTimeoutSeconds: field.int({
    default: 600,
    min: 1,
    doc: "how long a run waits for an unreachable bank, data worker or object store before it fails",
  }),
  startRun: field.string({
    default: "",
    doc: "path of a StartRunRequest JSON file ({runId, config}) started at boot unless that run is already known, then resumed if it was left running (a Kubernetes ConfigMap); empty: runs start over gRPC only",
  }),
  trainerId: field.string({
    default: "",
    doc: "this trainer's name in the runs it owns (runs/<run>/owner.json, the bank's fence); empty: the host name, which a Kubernetes pod keeps across container restarts. Two trainers on one host need distinct ids to be told apart",
  }),
  leaseSeconds: field.int({
    default: 30,
    min: 1,
    doc: "how long a trainer's claim on its run lasts without renewal (renewed every third of it): another trainer resumes the run only after the lease has ended, or at once when the owner released it at shutdown",
  }),
  resumeInterrupted: field.boolean({
    default: true,
    doc: "at start, resume the newest run that a previous trainer process left running (crash, kill, reschedule)",
  }),
};
