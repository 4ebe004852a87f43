// A throwaway certificate authority for one machine: `adco up`, `npm start` and the tests make one
// in their directory, so that the path they run every day is mutual TLS. It shells out to the
// `openssl` binary (Debian's openssl package): node 20 can verify certificates but not make them,
// and openssl needs no dependency in the product, is what operators use for the same job, and can
// make the expired certificate a test needs (`-days -1`). Keys are EC P-256, written mode 0600.
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export interface CertificateFiles {
  /** The identity the certificate names (its subject common name). */
  readonly identity: string;
  readonly certFile: string;
  readonly keyFile: string;
}

export interface LocalCa {
  readonly directory: string;
  readonly caFile: string;
  readonly caKeyFile: string;
}

function openssl(args: string[]): void {
  try {
    execFileSync("openssl", args, { stdio: ["ignore", "ignore", "pipe"] });
  } catch (e) {
    const stderr = (e as { stderr?: Buffer }).stderr?.toString().trim();
    throw new Error(
      `openssl ${args[0]} failed: ${stderr || (e as Error).message} (is the openssl package installed?)`,
    );
  }
}

/** A new CA (certificate and key) in `directory`, named `name`, valid for `days`. */
export function createLocalCa(directory: string, name = "adco local CA", days = 30): LocalCa {
  mkdirSync(directory, { recursive: true });
  const caFile = join(directory, "ca.crt");
  const caKeyFile = join(directory, "ca.key");
  openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", caKeyFile]);
  chmodSync(caKeyFile, 0o600);
  openssl([
    "req",
    "-x509",
    "-new",
    "-key",
    caKeyFile,
    "-out",
    caFile,
    "-days",
    String(days),
    "-subj",
    `/CN=${name}`,
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
  ]);
  return { directory, caFile, caKeyFile };
}

export interface IssueOptions {
  /** Validity in days from now; -1 makes a certificate that has already expired (tests). */
  readonly days?: number;
  /** Where to write `<identity>.crt` and `<identity>.key`; default the CA's directory. */
  readonly directory?: string;
  /** File name stem; default the identity. */
  readonly stem?: string;
}

/**
 * A certificate for `identity` signed by `ca`, usable as server and client, that names localhost
 * and 127.0.0.1 too (clients check the identity, but other TLS tools check the host).
 */
export function issueCertificate(
  ca: LocalCa,
  identity: string,
  options: IssueOptions = {},
): CertificateFiles {
  const directory = options.directory ?? ca.directory;
  const stem = options.stem ?? identity;
  mkdirSync(directory, { recursive: true });
  const keyFile = join(directory, `${stem}.key`);
  const csrFile = join(directory, `${stem}.csr`);
  const certFile = join(directory, `${stem}.crt`);
  const extFile = join(directory, `${stem}.ext`);
  openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", keyFile]);
  chmodSync(keyFile, 0o600);
  openssl(["req", "-new", "-key", keyFile, "-out", csrFile, "-subj", `/CN=${identity}`]);
  writeFileSync(
    extFile,
    [
      "basicConstraints=critical,CA:FALSE",
      "keyUsage=critical,digitalSignature,keyEncipherment",
      "extendedKeyUsage=serverAuth,clientAuth",
      `subjectAltName=DNS:${identity},DNS:localhost,IP:127.0.0.1`,
      "",
    ].join("\n"),
  );
  openssl([
    "x509",
    "-req",
    "-in",
    csrFile,
    "-CA",
    ca.caFile,
    "-CAkey",
    ca.caKeyFile,
    "-CAcreateserial",
    "-out",
    certFile,
    "-days",
    String(options.days ?? 30),
    "-extfile",
    extFile,
  ]);
  return { identity, certFile, keyFile };
}

/** A random bearer token, written to `file` (mode 0600). */
export function writeToken(file: string): string {
  const token = randomBytes(32).toString("base64url");
  writeFileSync(file, `${token}\n`, { mode: 0o600 });
  return token;
}

/** The ADCO_* variables that give a service its certificate, the CA and (optionally) the token file. */
export function tlsEnvironment(
  ca: LocalCa,
  certificate: CertificateFiles,
  tokenFile?: string,
): Record<string, string> {
  return {
    ADCO_TLS_MODE: "mtls",
    ADCO_TLS_CERT_FILE: certificate.certFile,
    ADCO_TLS_KEY_FILE: certificate.keyFile,
    ADCO_TLS_CA_FILE: ca.caFile,
    ...(tokenFile ? { ADCO_AUTH_TOKEN_FILE: tokenFile } : {}),
  };
}
