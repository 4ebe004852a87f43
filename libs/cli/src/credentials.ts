// How the CLI (and `npm start`) calls the trainer and the evaluator: TLS against the cluster CA, with
// the operators' bearer token for control calls. The CA and the token come from ADCO_TLS_CA_FILE and
// ADCO_AUTH_TOKEN or ADCO_AUTH_TOKEN_FILE; talking to `adco up` on its default addresses, the CLI
// finds them in the directory `adco up` wrote them to. A client certificate is optional
// (ADCO_CLIENT_CERT_FILE and ADCO_CLIENT_KEY_FILE): the dashboard's pod presents the one cert-manager
// issues it, so a service with readAccess "authenticated" lets it read. Not the services' own
// ADCO_TLS_CERT_FILE, which a shell that also starts a service may hold: the CLI would call as it. Plaintext only with ADCO_TLS_MODE=plaintext,
// or when there is no CA to be found at all (services started by hand in plaintext).
import { existsSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { channelCredentialsFor, withBearerToken } from "@adco/service-kit";

/** The directory `adco up` keeps its files in unless --dir says otherwise. */
export const DEFAULT_UP_DIRECTORY = join(tmpdir(), "adco-up");

/** Where a local system keeps its CA, certificates and token. */
export const tlsDirectoryOf = (systemDirectory: string) => join(systemDirectory, "tls");

export interface ClientTls {
  readonly caFile: string;
  /** The bearer token, when there is one. */
  readonly token: string | undefined;
  /** A client certificate and its key (PEM files, read again every minute), when there is one. */
  readonly client?: { readonly certFile: string; readonly keyFile: string };
}

export class CredentialsError extends Error {}

function readToken(file: string): string {
  try {
    return readFileSync(file, "utf8").trim();
  } catch (e) {
    throw new CredentialsError(
      `ADCO_AUTH_TOKEN_FILE ${file}: cannot read it (${(e as NodeJS.ErrnoException).code})`,
    );
  }
}

/**
 * The CLI's TLS settings: from the environment, else (for the default addresses) from `adco up`'s
 * directory; undefined for plaintext.
 */
export function clientTls(env: NodeJS.ProcessEnv, defaultAddresses: boolean): ClientTls | undefined {
  if (env.ADCO_TLS_MODE === "plaintext") {
    if (env.ADCO_AUTH_TOKEN || env.ADCO_AUTH_TOKEN_FILE)
      throw new CredentialsError("ADCO_TLS_MODE is plaintext: a bearer token would travel in the clear");
    return undefined;
  }
  const token =
    env.ADCO_AUTH_TOKEN || (env.ADCO_AUTH_TOKEN_FILE ? readToken(env.ADCO_AUTH_TOKEN_FILE) : undefined);
  if (env.ADCO_TLS_CA_FILE) {
    if (!existsSync(env.ADCO_TLS_CA_FILE))
      throw new CredentialsError(`ADCO_TLS_CA_FILE ${env.ADCO_TLS_CA_FILE}: no such file`);
    const client = clientCertificate(env);
    return { caFile: env.ADCO_TLS_CA_FILE, token, ...(client ? { client } : {}) };
  }
  if (env.ADCO_CLIENT_CERT_FILE || env.ADCO_CLIENT_KEY_FILE)
    throw new CredentialsError("a client certificate needs TLS: set ADCO_TLS_CA_FILE to the cluster CA");
  const local = tlsDirectoryOf(DEFAULT_UP_DIRECTORY);
  if (defaultAddresses && existsSync(join(local, "ca.crt"))) {
    const tokenFile = join(local, "token");
    return {
      caFile: join(local, "ca.crt"),
      token: token ?? (existsSync(tokenFile) ? readToken(tokenFile) : undefined),
    };
  }
  if (token) throw new CredentialsError("a bearer token needs TLS: set ADCO_TLS_CA_FILE to the cluster CA");
  return undefined;
}

/** ADCO_CLIENT_CERT_FILE and ADCO_CLIENT_KEY_FILE: both or neither, and both there. */
function clientCertificate(env: NodeJS.ProcessEnv): ClientTls["client"] {
  const certFile = env.ADCO_CLIENT_CERT_FILE ?? "";
  const keyFile = env.ADCO_CLIENT_KEY_FILE ?? "";
  if (!certFile && !keyFile) return undefined;
  if (!certFile || !keyFile)
    throw new CredentialsError("ADCO_CLIENT_CERT_FILE and ADCO_CLIENT_KEY_FILE go together: set both");
  for (const [name, file] of [
    ["ADCO_CLIENT_CERT_FILE", certFile],
    ["ADCO_CLIENT_KEY_FILE", keyFile],
  ] as const)
    if (!existsSync(file)) throw new CredentialsError(`${name} ${file}: no such file`);
  return { certFile, keyFile };
}

/** Channel credentials for calling `server` ("trainer", "evaluator") with these settings. */
export function credentialsFor(tls: ClientTls | undefined, server: string): grpc.ChannelCredentials {
  if (!tls) return grpc.credentials.createInsecure();
  const channel = channelCredentialsFor(
    {
      tlsMode: "mtls",
      tlsCertFile: tls.client?.certFile ?? "",
      tlsKeyFile: tls.client?.keyFile ?? "",
      tlsCaFile: tls.caFile,
      tlsRefreshSeconds: 60,
    },
    server,
  );
  return tls.token ? withBearerToken(channel, tls.token) : channel;
}
