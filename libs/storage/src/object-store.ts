// The one object-store client of adco, over the `minio` npm client: MinIO in production, any
// S3-protocol server in tests. Transient failures are retried with backoff; the rest become a
// StorageError whose kind says what to fix (credentials, bucket, key). Objects are at most 64 MiB,
// so every put is a single PUT (no multipart: the test server lacks it, and shards stay streamable).
import { createHash } from "node:crypto";
import * as Minio from "minio";

export const MAX_OBJECT_BYTES = 64 * 1024 * 1024;

/** getJson's waits before it reads an object that did not parse again (~0.8 s in all). */
const TORN_READ_DELAYS_MS = [25, 50, 100, 200, 400];

export interface StorageSettings {
  /** http(s)://host:port of the S3 endpoint. */
  readonly endpoint: string;
  readonly accessKey: string;
  readonly secretKey: string;
  readonly region: string;
  /** Attempts for a transient failure (connection refused/reset, 5xx, throttling) before giving up. */
  readonly attempts?: number;
  /** First backoff delay; doubles each retry. */
  readonly backoffMs?: number;
}

export type StorageErrorKind =
  | "auth" // wrong access key or secret
  | "no-bucket"
  | "not-found" // missing object
  | "too-large"
  | "corrupt" // checksum or format mismatch
  | "unavailable" // the server cannot be reached (after retries)
  | "invalid"; // bad input (key, bucket name)

export class StorageError extends Error {
  override name = "StorageError";
  constructor(
    readonly kind: StorageErrorKind,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export function sha256Hex(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

export interface StoredObject {
  readonly bucket: string;
  readonly key: string;
  readonly size: number;
  readonly sha256: string;
}

const TRANSIENT_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "EAI_AGAIN",
  "SlowDown",
]);

function errorCode(e: unknown): string {
  const err = e as { code?: string; name?: string };
  return err.code ?? err.name ?? "";
}

function isTransient(e: unknown): boolean {
  const code = errorCode(e);
  const status = (e as { amzStatusCode?: number; statusCode?: number }).statusCode;
  return TRANSIENT_CODES.has(code) || (status !== undefined && status >= 500) || code === "InternalError";
}

export class ObjectStore {
  readonly client: Minio.Client;
  private readonly attempts: number;
  private readonly backoffMs: number;

  constructor(readonly settings: StorageSettings) {
    let url: URL;
    try {
      url = new URL(settings.endpoint);
    } catch {
      throw new StorageError(
        "invalid",
        `endpoint ${JSON.stringify(settings.endpoint)} is not a URL (http://host:port)`,
      );
    }
    const useSSL = url.protocol === "https:";
    this.client = new Minio.Client({
      endPoint: url.hostname,
      port: Number(url.port || (useSSL ? 443 : 80)),
      useSSL,
      accessKey: settings.accessKey,
      secretKey: settings.secretKey,
      region: settings.region,
      pathStyle: true,
    });
    this.attempts = settings.attempts ?? 5;
    this.backoffMs = settings.backoffMs ?? 200;
  }

  /** Runs op, retrying transient failures; translates the final error into a StorageError. */
  private async call<T>(
    what: string,
    bucket: string,
    key: string | undefined,
    op: () => Promise<T>,
  ): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await op();
      } catch (e) {
        if (isTransient(e) && attempt < this.attempts) {
          await new Promise((r) => setTimeout(r, this.backoffMs * 2 ** (attempt - 1)));
          continue;
        }
        throw this.translate(e, what, bucket, key, attempt);
      }
    }
  }

  private translate(
    e: unknown,
    what: string,
    bucket: string,
    key: string | undefined,
    attempts: number,
  ): StorageError {
    if (e instanceof StorageError) return e;
    const code = errorCode(e);
    const where = key === undefined ? `bucket ${bucket}` : `${bucket}/${key}`;
    const cause = { cause: e };
    if (code === "InvalidAccessKeyId" || code === "SignatureDoesNotMatch" || code === "AccessDenied") {
      return new StorageError(
        "auth",
        `${what} ${where}: the object store refused the credentials (${code}); check the access key and secret`,
        cause,
      );
    }
    if (code === "NoSuchBucket")
      return new StorageError("no-bucket", `${what} ${where}: bucket ${bucket} does not exist`, cause);
    if (code === "NoSuchKey" || code === "NotFound")
      return new StorageError("not-found", `${what} ${where}: no such object`, cause);
    if (isTransient(e)) {
      return new StorageError(
        "unavailable",
        `${what} ${where}: object store at ${this.settings.endpoint} unavailable after ${attempts} attempts (${code || (e as Error).message})`,
        cause,
      );
    }
    return new StorageError("invalid", `${what} ${where}: ${(e as Error).message}`, cause);
  }

  async ensureBucket(bucket: string): Promise<void> {
    const exists = await this.call("check", bucket, undefined, () => this.client.bucketExists(bucket));
    if (!exists) {
      await this.call("create", bucket, undefined, async () => {
        try {
          await this.client.makeBucket(bucket, this.settings.region);
        } catch (e) {
          // Another process made it between our check and our create.
          if (errorCode(e) !== "BucketAlreadyOwnedByYou" && errorCode(e) !== "BucketAlreadyExists") throw e;
        }
      });
    }
  }

  async put(
    bucket: string,
    key: string,
    data: Uint8Array,
    contentType = "application/octet-stream",
  ): Promise<StoredObject> {
    if (data.byteLength > MAX_OBJECT_BYTES) {
      throw new StorageError(
        "too-large",
        `put ${bucket}/${key}: ${data.byteLength} bytes is over the ${MAX_OBJECT_BYTES}-byte object limit; split it into shards`,
      );
    }
    const buffer = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    await this.call("put", bucket, key, () =>
      this.client.putObject(bucket, key, buffer, buffer.byteLength, { "Content-Type": contentType }),
    );
    return { bucket, key, size: data.byteLength, sha256: sha256Hex(data) };
  }

  async putJson(bucket: string, key: string, value: unknown): Promise<StoredObject> {
    return this.put(
      bucket,
      key,
      new TextEncoder().encode(JSON.stringify(value, null, 2)),
      "application/json",
    );
  }

  async get(bucket: string, key: string): Promise<Uint8Array> {
    return this.call("get", bucket, key, async () => {
      const stream = await this.client.getObject(bucket, key);
      const chunks: Buffer[] = [];
      for await (const chunk of stream) chunks.push(chunk as Buffer);
      return new Uint8Array(Buffer.concat(chunks));
    });
  }

  /** get, then check size and sha256 against what a manifest says. */
  async getVerified(ref: StoredObject): Promise<Uint8Array> {
    const data = await this.get(ref.bucket, ref.key);
    if (data.byteLength !== ref.size) {
      throw new StorageError(
        "corrupt",
        `${ref.bucket}/${ref.key}: ${data.byteLength} bytes, the manifest says ${ref.size}`,
      );
    }
    const digest = sha256Hex(data);
    if (digest !== ref.sha256) {
      throw new StorageError(
        "corrupt",
        `${ref.bucket}/${ref.key}: sha256 ${digest} does not match the manifest's ${ref.sha256}`,
      );
    }
    return data;
  }

  /**
   * get, parsed as JSON. Text that does not parse is read again after each of TORN_READ_DELAYS_MS
   * before it is called corrupt: the small records that change (a run's owner, status, latest
   * pointer) are rewritten while other processes read them, and not every S3 server makes a PUT
   * atomic (s3rver writes the object's file in place, so a read can land inside a write).
   */
  async getJson<T>(bucket: string, key: string): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const data = await this.get(bucket, key);
      try {
        return JSON.parse(new TextDecoder().decode(data)) as T;
      } catch (e) {
        const delay = TORN_READ_DELAYS_MS[attempt];
        if (delay === undefined)
          throw new StorageError("corrupt", `${bucket}/${key}: not valid JSON`, { cause: e });
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    }
  }

  async exists(bucket: string, key: string): Promise<boolean> {
    try {
      await this.call("stat", bucket, key, () => this.client.statObject(bucket, key));
      return true;
    } catch (e) {
      if (e instanceof StorageError && e.kind === "not-found") return false;
      throw e;
    }
  }

  /** Keys under a prefix (recursive), sorted. */
  async list(bucket: string, prefix: string): Promise<{ key: string; size: number }[]> {
    return this.call("list", bucket, prefix, async () => {
      const out: { key: string; size: number }[] = [];
      for await (const item of this.client.listObjectsV2(bucket, prefix, true)) {
        const o = item as { name?: string; size?: number };
        if (o.name) out.push({ key: o.name, size: o.size ?? 0 });
      }
      return out.sort((a, b) => a.key.localeCompare(b.key));
    });
  }

  async remove(bucket: string, keys: readonly string[]): Promise<void> {
    if (keys.length === 0) return;
    await this.call("remove", bucket, keys[0], () => this.client.removeObjects(bucket, [...keys]));
  }
}
