// Object-store failures as gRPC statuses, the same in every service, and the store a service's
// config describes.
import { failedPrecondition, notFound, RpcError, status, unavailable } from "@adco/service-kit";
import { ObjectStore, StorageError } from "./object-store.js";

export function storageRpcError(e: unknown): unknown {
  if (!(e instanceof StorageError)) return e;
  switch (e.kind) {
    case "not-found":
    case "no-bucket":
      return notFound(e.message);
    case "corrupt":
      return new RpcError(status.DATA_LOSS, e.message);
    case "unavailable":
      return unavailable(e.message);
    case "auth":
      return new RpcError(status.PERMISSION_DENIED, e.message);
    default:
      return failedPrecondition(e.message);
  }
}

/** Runs storage work, turning a StorageError into its status. */
export async function withStorageStatus<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (e) {
    throw storageRpcError(e);
  }
}

export function storeFromConfig(config: {
  s3Endpoint: string;
  s3AccessKey: string;
  s3SecretKey: string;
  s3Region: string;
}): ObjectStore {
  return new ObjectStore({
    endpoint: config.s3Endpoint,
    accessKey: config.s3AccessKey,
    secretKey: config.s3SecretKey,
    region: config.s3Region,
  });
}
