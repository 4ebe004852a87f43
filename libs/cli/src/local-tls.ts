// The throwaway certificates of a local system (`adco up`, `npm start`): a new CA, one certificate
// per service named by its identity, and an operators' token, in one directory that the system
// deletes when it stops. Made fresh each start, so no key outlives the system that used it.
//
// Each service's files are laid out as the kubelet mounts a cert-manager Secret: ca.crt, tls.crt and
// tls.key in a generation directory, reached through a `current` symlink that a rotation swaps in
// one rename. A service never reads a new key beside an old certificate.
import { copyFileSync, renameSync, rmSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { createLocalCa, issueCertificate, tlsEnvironment, writeToken } from "@adco/service-kit";
import type { ClientTls } from "./credentials.js";

const SERVICES = ["data-worker", "adversary-bank", "trainer", "evaluator"] as const;
type Service = (typeof SERVICES)[number];

export interface LocalTls {
  /** The ADCO_TLS_* and ADCO_AUTH_TOKEN_FILE variables of one service. */
  serviceEnv(name: Service): Record<string, string>;
  /** What an operator calls with: the CA and the token. */
  readonly client: ClientTls;
  /** Issues every service a new certificate and swaps it in, as cert-manager's renewal does. */
  rotate(): void;
}

export function localTls(directory: string): LocalTls {
  rmSync(directory, { recursive: true, force: true });
  const ca = createLocalCa(directory, "adco local CA", 7);
  const tokenFile = join(directory, "token");
  const token = writeToken(tokenFile);
  let generation = 0;
  const issue = () => {
    generation++;
    for (const name of SERVICES) {
      const dir = join(directory, name, `gen-${generation}`);
      issueCertificate(ca, name, { days: 7, directory: dir, stem: "tls" });
      copyFileSync(ca.caFile, join(dir, "ca.crt"));
      const link = join(directory, name, "current.next");
      symlinkSync(`gen-${generation}`, link);
      renameSync(link, join(directory, name, "current"));
      if (generation > 2) rmSync(join(directory, name, `gen-${generation - 2}`), { recursive: true });
    }
  };
  issue();
  return {
    serviceEnv: (name) => {
      const current = join(directory, name, "current");
      return tlsEnvironment(
        { directory, caFile: join(current, "ca.crt"), caKeyFile: ca.caKeyFile },
        { identity: name, certFile: join(current, "tls.crt"), keyFile: join(current, "tls.key") },
        tokenFile,
      );
    },
    client: { caFile: ca.caFile, token },
    rotate: issue,
  };
}
