// Transport security of every gRPC server and client: mutual TLS against one cluster CA, with the
// certificate, key and CA read from files (a mounted cert-manager Secret) and re-read when they
// change, so a rotated certificate is used for the next connection without a restart. Plaintext is
// possible only when `tlsMode` says so (loopback development and the tests' launcher).
//
// A peer is identified by its certificate's subject common name, which is the service's name
// (trainer, adversary-bank, data-worker, evaluator). A client checks the server's certificate by
// that identity rather than by host name: the trainer dials data workers by the pod addresses a
// headless Service resolves to, which no certificate can name in advance.
import { readFileSync } from "node:fs";
import { createSecureContext, type PeerCertificate } from "node:tls";
import * as grpc from "@grpc/grpc-js";
import { ConfigError, field, type ConfigSpec } from "./config.js";

export const TLS_MODES = ["mtls", "plaintext"] as const;
export type TlsMode = (typeof TLS_MODES)[number];

/** The transport-security keys every service reads. */
export function tlsConfig() {
  return {
    tlsMode: field.oneOf(TLS_MODES, {
      default: "mtls",
      doc: "mtls: serve and call over TLS with client certificates checked against tlsCaFile; plaintext: no encryption and no authentication (loopback development only).",
    }),
    tlsCertFile: field.string({
      default: "",
      doc: "PEM certificate this service presents, as server and as client (cert-manager's tls.crt); required with mtls.",
    }),
    tlsKeyFile: field.string({
      default: "",
      doc: "PEM private key of tlsCertFile (tls.key); required with mtls.",
    }),
    tlsCaFile: field.string({
      default: "",
      doc: "PEM CA that signs every service's certificate (ca.crt); required with mtls.",
    }),
    tlsRefreshSeconds: field.int({
      default: 60,
      min: 1,
      max: 86_400,
      doc: "How often the three TLS files are read again; a changed certificate is used from the next connection on.",
    }),
  } satisfies ConfigSpec;
}

export interface TlsSettings {
  readonly tlsMode: TlsMode;
  readonly tlsCertFile: string;
  readonly tlsKeyFile: string;
  readonly tlsCaFile: string;
  readonly tlsRefreshSeconds: number;
}

/** The settings of a process that never configured TLS: plaintext, as grpc-js clients were before. */
const PLAINTEXT: TlsSettings = {
  tlsMode: "plaintext",
  tlsCertFile: "",
  tlsKeyFile: "",
  tlsCaFile: "",
  tlsRefreshSeconds: 60,
};

/**
 * Checks that mtls has its three files and that they parse, so that a bad mount stops the service at
 * start (exit 2, naming the key) instead of every handshake failing later.
 */
export function checkTlsSettings(settings: TlsSettings): void {
  if (settings.tlsMode === "plaintext") return;
  const missing = (["tlsCertFile", "tlsKeyFile", "tlsCaFile"] as const).filter((k) => settings[k] === "");
  if (missing.length > 0) {
    throw new ConfigError(
      `tlsMode is mtls but ${missing.join(", ")} ${missing.length > 1 ? "are" : "is"} not set: mount the ` +
        "service's certificate (deploy/ does), or set tlsMode plaintext for loopback development",
    );
  }
  const read = (key: "tlsCertFile" | "tlsKeyFile" | "tlsCaFile") => {
    try {
      return readFileSync(settings[key]);
    } catch (e) {
      throw new ConfigError(`${key} ${settings[key]}: cannot read it (${(e as NodeJS.ErrnoException).code})`);
    }
  };
  const [cert, key, ca] = [read("tlsCertFile"), read("tlsKeyFile"), read("tlsCaFile")];
  try {
    createSecureContext({ cert, key, ca });
  } catch (e) {
    // The message names the files, never their contents.
    throw new ConfigError(
      `tlsCertFile ${settings.tlsCertFile}, tlsKeyFile ${settings.tlsKeyFile}, tlsCaFile ${settings.tlsCaFile}: ` +
        `not a PEM certificate, key and CA that belong together (${(e as Error).message})`,
    );
  }
}

/** One watcher of the three files per process: servers and every client channel share it. */
const providers = new Map<string, grpc.experimental.FileWatcherCertificateProvider>();
function providerFor(settings: TlsSettings): grpc.experimental.FileWatcherCertificateProvider {
  const key = [
    settings.tlsCertFile,
    settings.tlsKeyFile,
    settings.tlsCaFile,
    settings.tlsRefreshSeconds,
  ].join("\0");
  let provider = providers.get(key);
  if (!provider) {
    provider = new grpc.experimental.FileWatcherCertificateProvider({
      certificateFile: settings.tlsCertFile,
      privateKeyFile: settings.tlsKeyFile,
      caCertificateFile: settings.tlsCaFile,
      refreshIntervalMs: settings.tlsRefreshSeconds * 1000,
    });
    providers.set(key, provider);
  }
  return provider;
}

/**
 * The server's credentials. A client certificate is requested but not required by TLS itself: a
 * caller with a bearer token and no certificate (the CLI) must get through the handshake, and one
 * whose certificate is missing, expired or from another CA gets UNAUTHENTICATED with a message from
 * the kit's authorisation instead of a bare handshake failure. grpc-js exposes a peer certificate to
 * handlers only when it verified against the CA.
 */
export function serverCredentials(settings: TlsSettings): grpc.ServerCredentials {
  if (settings.tlsMode === "plaintext") return grpc.ServerCredentials.createInsecure();
  const provider = providerFor(settings);
  // One provider as both CA and identity source: grpc-js 1.14 swaps the two arguments internally.
  return grpc.experimental.createCertificateProviderServerCredentials(provider, provider, false);
}

/** The identity a certificate names: its subject common name. */
export function identityOf(certificate: PeerCertificate | undefined): string | undefined {
  const cn = certificate?.subject?.CN;
  return typeof cn === "string" && cn !== "" ? cn : Array.isArray(cn) ? cn[0] : undefined;
}

/**
 * Client credentials for calling `server` (its identity, e.g. "adversary-bank") with the given
 * settings: this service's certificate as the client's, and the server's certificate checked against
 * the CA and its identity. With plaintext: insecure.
 */
export function channelCredentialsFor(settings: TlsSettings, server: string): grpc.ChannelCredentials {
  if (settings.tlsMode === "plaintext") return grpc.credentials.createInsecure();
  // One credentials object per (files, server): grpc-js shares a connection between channels only
  // when their credentials are equal, and the bank's two clients of one peer should share one.
  const key = [
    settings.tlsCertFile,
    settings.tlsKeyFile,
    settings.tlsCaFile,
    settings.tlsRefreshSeconds,
    server,
  ].join("\0");
  let credentials = channelCredentials.get(key);
  if (!credentials) {
    const provider = providerFor(settings);
    const hasIdentity = settings.tlsCertFile !== "" && settings.tlsKeyFile !== "";
    credentials = grpc.experimental.createCertificateProviderChannelCredentials(
      provider,
      hasIdentity ? provider : null,
      { checkServerIdentity: (_host, certificate) => checkIdentity(certificate, server) },
    );
    channelCredentials.set(key, credentials);
  }
  return credentials;
}
const channelCredentials = new Map<string, grpc.ChannelCredentials>();

function checkIdentity(certificate: PeerCertificate, expected: string): Error | undefined {
  const actual = identityOf(certificate);
  return actual === expected
    ? undefined
    : new Error(`the server's certificate names ${actual ?? "no identity"}, not ${expected}`);
}

let processSettings: TlsSettings = PLAINTEXT;

/**
 * Makes `settings` the ones clientCredentials uses. runService calls it with the service's config,
 * so the clients a service makes deep inside (the trainer's bank link, its data feeder) need no
 * credentials passed down to them.
 */
export function useTlsSettings(settings: TlsSettings): void {
  processSettings = settings;
}

/** Credentials for calling `server` with this process's settings (plaintext unless configured). */
export function clientCredentials(server: string): grpc.ChannelCredentials {
  return channelCredentialsFor(processSettings, server);
}
