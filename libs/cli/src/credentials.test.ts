// The CLI's credentials against a real trainer process with mutual TLS, over loopback: a client
// certificate (ADCO_CLIENT_CERT_FILE/KEY_FILE, as the dashboard's pod has one) is presented and
// counts as an authenticated reader; without it (and without the token) a read is refused; the two
// variables go together, with TLS only.
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import {
  createLocalCa,
  issueCertificate,
  launchService,
  type LaunchedService,
  tlsEnvironment,
  unaryCall,
} from "@adco/service-kit";
import { startS3Server, type S3ServerProcess } from "@adco/storage/testing";
import { clientTls, credentialsFor, CredentialsError } from "./credentials.js";
import { trainerAt } from "./runs.js";

let s3: S3ServerProcess;
let trainer: LaunchedService;
const pki = mkdtempSync(join(tmpdir(), "adco-cli-pki-"));
const ca = createLocalCa(pki);
const dashboard = issueCertificate(ca, "adco-dashboard");

before(async () => {
  s3 = await startS3Server();
  trainer = await launchService("trainer", {
    env: {
      ADCO_S3_ENDPOINT: s3.settings.endpoint,
      ADCO_S3_ACCESS_KEY: s3.settings.accessKey,
      ADCO_S3_SECRET_KEY: s3.settings.secretKey,
      ...tlsEnvironment(ca, issueCertificate(ca, "trainer")),
      // Reads need a verified certificate or the token: the setting that makes a client cert count.
      ADCO_READ_ACCESS: "authenticated",
    },
  });
});
after(async () => {
  await trainer?.stop();
  await s3?.stop();
});

/** ListRuns as the CLI calls it with this environment. */
async function listRuns(env: NodeJS.ProcessEnv) {
  const client = trainerAt(trainer.grpcAddress, credentialsFor(clientTls(env, false), "trainer"));
  try {
    return await unaryCall(client.listRuns.bind(client), {});
  } finally {
    client.close();
  }
}

describe("the CLI's client certificate", () => {
  it("is presented: the trainer counts it as an authenticated reader", async () => {
    const env = {
      ADCO_TLS_CA_FILE: ca.caFile,
      ADCO_CLIENT_CERT_FILE: dashboard.certFile,
      ADCO_CLIENT_KEY_FILE: dashboard.keyFile,
    };
    assert.deepEqual((await listRuns(env)).runs, []);
  });

  it("without it, and without the token, the same read is refused", async () => {
    await assert.rejects(
      listRuns({ ADCO_TLS_CA_FILE: ca.caFile }),
      (e: grpc.ServiceError) => e.code === grpc.status.UNAUTHENTICATED,
    );
  });

  it("takes both files or neither, existing ones, and TLS", () => {
    const base = { ADCO_TLS_CA_FILE: ca.caFile };
    assert.throws(
      () => clientTls({ ...base, ADCO_CLIENT_CERT_FILE: dashboard.certFile }, false),
      (e: Error) => e instanceof CredentialsError && /go together: set both/.test(e.message),
    );
    assert.throws(
      () =>
        clientTls(
          { ...base, ADCO_CLIENT_CERT_FILE: dashboard.certFile, ADCO_CLIENT_KEY_FILE: join(pki, "nope.key") },
          false,
        ),
      /ADCO_CLIENT_KEY_FILE .*nope\.key: no such file/,
    );
    assert.throws(
      () =>
        clientTls(
          { ADCO_CLIENT_CERT_FILE: dashboard.certFile, ADCO_CLIENT_KEY_FILE: dashboard.keyFile },
          false,
        ),
      /a client certificate needs TLS/,
    );
  });
});
