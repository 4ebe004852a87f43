// Who may call what. Each service declares, next to its handlers, the access of every method: open
// reads, control calls (a certificate of one of the named services or the operators' bearer token),
// or calls only named services make (the bank's Step, from the trainer). The kit checks it before a
// handler runs and answers UNAUTHENTICATED (no valid credentials) or PERMISSION_DENIED (valid, but
// not allowed here). With tlsMode plaintext nothing is checked: there is no identity to check and a
// token would travel in the clear.
import { createHash, timingSafeEqual } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import type * as grpc from "@grpc/grpc-js";
import { ConfigError, field, type ConfigSpec } from "./config.js";
import { RpcError, status } from "./errors.js";
import { identityOf, type TlsSettings } from "./tls.js";

/** The access of one method. */
export type Access =
  /** Reads (ListRuns, GetRun, health-like calls): open, or any authenticated caller with readAccess authenticated. */
  | { readonly kind: "read" }
  /** Control: a certificate of one of these services, or the bearer token. */
  | { readonly kind: "control"; readonly services: readonly string[] }
  /** Only these services' certificates; a token is not enough (the bank's Step: the trainer only). */
  | { readonly kind: "services"; readonly services: readonly string[] };

export const access = {
  read: { kind: "read" } as Access,
  control: (...services: string[]): Access => ({ kind: "control", services }),
  only: (...services: string[]): Access => ({ kind: "services", services }),
};

/** The access of every method of a service definition, by the definition's method keys. */
export type AccessPolicy<S> = { readonly [K in keyof S]: Access };

export const READ_ACCESS = ["open", "authenticated"] as const;

/** The authentication keys every service reads. */
export function authConfig() {
  return {
    authTokenFile: field.string({
      default: "",
      doc: "File holding the operators' bearer token (a mounted Secret), read again when it changes; control calls accept it instead of a service certificate. Empty: certificates only. Needs tlsMode mtls.",
    }),
    readAccess: field.oneOf(READ_ACCESS, {
      default: "open",
      doc: "Read-only calls (ListRuns, GetRun, WatchRun, Describe, GetStats): open to any TLS client, or authenticated (a service certificate or the token). Health checks are always open.",
    }),
  } satisfies ConfigSpec;
}

export interface AuthSettings extends TlsSettings {
  readonly authTokenFile: string;
  readonly readAccess: (typeof READ_ACCESS)[number];
}

const digest = (text: string) => createHash("sha256").update(text).digest();

/**
 * The token in a file, read again when the file changes (a rotated Secret), looked at no more than
 * once a second. Only its digest is kept, so it is never printed by accident.
 */
export class TokenFile {
  private digest: Buffer;
  private stamp: string;
  private checkedAt = 0;

  constructor(private readonly path: string) {
    this.stamp = this.stat();
    this.digest = this.read();
  }

  private stat(): string {
    try {
      const s = statSync(this.path);
      return `${s.ino}:${s.size}:${s.mtimeMs}`;
    } catch (e) {
      throw new ConfigError(
        `authTokenFile ${this.path}: cannot read it (${(e as NodeJS.ErrnoException).code})`,
      );
    }
  }

  private read(): Buffer {
    const token = readFileSync(this.path, "utf8").trim();
    if (token === "") throw new ConfigError(`authTokenFile ${this.path}: the file is empty`);
    return digest(token);
  }

  /** Whether `token` is the file's token (compared in constant time). */
  matches(token: string): boolean {
    const now = Date.now();
    if (now - this.checkedAt > 1000) {
      this.checkedAt = now;
      try {
        const stamp = this.stat();
        if (stamp !== this.stamp) {
          this.digest = this.read();
          this.stamp = stamp;
        }
      } catch {
        // A file being swapped (a Secret's symlink) is read on the next look; the old token holds.
      }
    }
    return timingSafeEqual(digest(token), this.digest);
  }
}

/** The caller as the kit sees it: a verified certificate's identity and a bearer token, either absent. */
export interface Caller {
  readonly identity: string | undefined;
  readonly token: string | undefined;
}

export function callerOf(call: {
  getAuthContext(): { sslPeerCertificate?: import("node:tls").PeerCertificate };
  metadata: grpc.Metadata;
}): Caller {
  const header = call.metadata.get("authorization")[0];
  const match = typeof header === "string" ? /^Bearer\s+(.+)$/i.exec(header.trim()) : null;
  return { identity: identityOf(call.getAuthContext().sslPeerCertificate), token: match?.[1] };
}

/** Decides each call; built once per server from its settings. */
export class Authorizer {
  private readonly token: TokenFile | undefined;

  constructor(private readonly settings: AuthSettings) {
    if (settings.tlsMode === "plaintext" && settings.authTokenFile !== "") {
      throw new ConfigError(
        "authTokenFile is set but tlsMode is plaintext: a bearer token would travel in the clear; use mtls",
      );
    }
    this.token = settings.authTokenFile ? new TokenFile(settings.authTokenFile) : undefined;
  }

  get enabled(): boolean {
    return this.settings.tlsMode !== "plaintext";
  }

  /** Throws UNAUTHENTICATED or PERMISSION_DENIED unless `caller` may call `method` under `rule`. */
  check(method: string, rule: Access, caller: Caller): void {
    if (!this.enabled) return;
    if (rule.kind === "read" && this.settings.readAccess === "open") return;
    const tokenOk = caller.token !== undefined && this.token?.matches(caller.token) === true;
    if (caller.token !== undefined && !tokenOk && caller.identity === undefined) {
      throw new RpcError(
        status.UNAUTHENTICATED,
        this.token
          ? `${method}: the bearer token is not the one configured`
          : `${method}: this server accepts no bearer tokens (authTokenFile is not set); use a service certificate`,
      );
    }
    if (rule.kind === "read") {
      if (tokenOk || caller.identity !== undefined) return;
      throw unauthenticated(method, "a service certificate or the bearer token");
    }
    if (caller.identity !== undefined && rule.services.includes(caller.identity)) return;
    if (rule.kind === "control" && tokenOk) return;
    const allowed =
      rule.kind === "control"
        ? `the certificate of ${rule.services.length ? rule.services.join(" or ") + ", or " : ""}the bearer token`
        : `the certificate of ${rule.services.join(" or ")}`;
    if (caller.identity === undefined && !tokenOk) throw unauthenticated(method, allowed);
    throw new RpcError(
      status.PERMISSION_DENIED,
      `${method}: ${caller.identity !== undefined ? `the caller ${caller.identity}` : "the bearer token"} may not call it; it takes ${allowed}`,
    );
  }
}

function unauthenticated(method: string, needs: string): RpcError {
  return new RpcError(
    status.UNAUTHENTICATED,
    `${method}: no valid credentials: it takes ${needs} (a client certificate that is missing, expired or not signed by the cluster CA does not count)`,
  );
}
