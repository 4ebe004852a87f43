// Object-store settings, declared once for every service and the CLI (ADCO_S3_* environment
// variables or the config file). Credentials come from the environment (a Kubernetes Secret in
// deploy/), never from code.
import { field } from "@adco/service-kit";

export const storageConfig = {
  s3Endpoint: field.string({
    default: "http://127.0.0.1:9000",
    doc: "S3 endpoint URL of MinIO (http://host:port)",
  }),
  s3AccessKey: field.string({ default: "", doc: "S3 access key (from a Secret)" }),
  s3SecretKey: field.string({ default: "", doc: "S3 secret key (from a Secret)" }),
  s3Region: field.string({ default: "us-east-1", doc: "S3 region" }),
  datasetsBucket: field.string({ default: "adco-datasets", doc: "bucket of imported datasets" }),
  checkpointsBucket: field.string({ default: "adco-checkpoints", doc: "bucket of checkpoints and results" }),
};
