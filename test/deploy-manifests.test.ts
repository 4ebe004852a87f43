// deploy/ without a cluster: every overlay renders, every object validates against the Kubernetes API
// schemas, the manifests agree with the code (ports, probes, env names, config values, the run
// config), every pod follows the policy, and the NetworkPolicies open exactly the edges the system uses.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { describe, it } from "node:test";
import { adversaryBankConfig } from "@adco/adversary-bank";
import { dataWorkerConfig } from "@adco/data-worker";
import { evaluatorConfig } from "@adco/evaluator";
import { startRunRequestFromJson } from "@adco/proto";
import { AdversaryBankService } from "@adco/proto/adversary_bank";
import { DataWorkerService } from "@adco/proto/data_worker";
import { EvaluatorService } from "@adco/proto/evaluator";
import { TrainerService } from "@adco/proto/trainer";
import { type ConfigSpec, envName, loadConfig } from "@adco/service-kit";
import { storageConfig } from "@adco/storage";
import { checkRunConfig, trainerConfig } from "@adco/trainer";
import {
  allowed,
  find,
  type K8sObject,
  modelModule,
  OVERLAYS,
  pod,
  podTemplates,
  render,
  selects,
  unknownFields,
  WORKLOAD_KINDS,
} from "./lib/manifests.js";
import { ROOT } from "./lib/service-process.js";

/* eslint-disable @typescript-eslint/no-explicit-any -- Kubernetes objects are open-ended JSON */

const SERVICES = {
  "data-worker": { spec: dataWorkerConfig, grpc: DataWorkerService },
  trainer: { spec: trainerConfig, grpc: TrainerService },
  "adversary-bank": { spec: adversaryBankConfig, grpc: AdversaryBankService },
  evaluator: { spec: evaluatorConfig, grpc: EvaluatorService },
} as const;
type ServiceName = keyof typeof SERVICES;

const SECRET = "adco-s3-credentials";
const DASHBOARD = "adco-dashboard";

/** The ADCO_ variables the CLI reads (its sources, as test/readme.test.ts finds them) and the storage keys. */
function cliVariables(): Set<string> {
  const dir = join(ROOT, "libs/cli/src");
  const names = new Set(Object.keys(storageConfig).map(envName));
  for (const file of readdirSync(dir).filter((f) => f.endsWith(".ts") && !f.endsWith(".test.ts")))
    for (const m of readFileSync(join(dir, file), "utf8").matchAll(/\benv\.(ADCO_[A-Z0-9_]+)/g))
      names.add(m[1]!);
  return names;
}
const rendered = Object.fromEntries(OVERLAYS.map((o) => [o, render(o)])) as Record<
  (typeof OVERLAYS)[number],
  K8sObject[]
>;

/** The gRPC service name the readiness probe asks about: "adco.v1.Trainer" from "/adco.v1.Trainer/StartRun". */
const grpcServiceName = (definition: Record<string, { path: string }>) =>
  Object.values(definition)[0]!.path.split("/")[1]!;

/** A container's environment as the kubelet would set it; Secret values become placeholders. */
function containerEnv(objects: readonly K8sObject[], container: any): Record<string, string> {
  const env: Record<string, string> = {};
  for (const source of container.envFrom ?? []) {
    const map = find(objects, "ConfigMap", source.configMapRef.name);
    Object.assign(env, map.data);
  }
  for (const e of container.env ?? []) {
    const field = e.valueFrom?.resourceFieldRef;
    if (e.valueFrom?.secretKeyRef)
      env[e.name] = `<secret ${e.valueFrom.secretKeyRef.name}/${e.valueFrom.secretKeyRef.key}>`;
    else if (field) env[e.name] = String(resourceValue(objects, container, field));
    else env[e.name] = e.value ?? "";
  }
  return env;
}

/** A downward-API resource field as the kubelet sets it: the container's value over the divisor, rounded up. */
function resourceValue(_objects: readonly K8sObject[], container: any, field: any): number {
  assert.equal(
    field.containerName,
    container.name,
    `${container.name}: a resourceFieldRef names its own container`,
  );
  const [kind, resource] = field.resource.split(".");
  const quantity = String(container.resources?.[kind]?.[resource] ?? "");
  assert.ok(
    quantity,
    `${container.name}: ${field.resource} is set, so ${field.resource} is not the node's capacity`,
  );
  const cores = quantity.endsWith("m") ? Number(quantity.slice(0, -1)) / 1000 : Number(quantity);
  return Math.ceil(cores / Number(field.divisor ?? 1));
}

/** The Secret whose volume `container` mounts around `file`, if any. */
function secretVolumeOf(template: { spec: any }, container: any, file: string): string | undefined {
  const mount = (container.volumeMounts ?? []).find((m: any) => file.startsWith(`${m.mountPath}/`));
  const volume = mount && template.spec.volumes.find((v: any) => v.name === mount.name);
  return volume?.secret?.secretName;
}

function serviceContainers(objects: readonly K8sObject[]) {
  return podTemplates(objects)
    .filter((t) => (t.labels["app.kubernetes.io/name"] ?? "") in SERVICES)
    .map((t) => {
      const name = t.labels["app.kubernetes.io/name"] as ServiceName;
      const container = t.spec.containers.find((c: any) => c.name === name);
      assert.ok(container, `${t.owner.kind} ${t.owner.metadata.name} has a container named ${name}`);
      return { name, template: t, container, env: containerEnv(objects, container) };
    });
}

const kubernetesModels = createRequire(import.meta.url);
function schemaErrors(object: K8sObject): string | undefined {
  const [group, version] = object.apiVersion.includes("/")
    ? object.apiVersion.split("/")
    : ["", object.apiVersion];
  const path = modelModule(group!, version!, object.kind);
  const Model = kubernetesModels(path)[object.kind];
  try {
    new Model(object).validate();
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
}

for (const overlay of OVERLAYS) {
  const objects = rendered[overlay];

  describe(`deploy/overlays/${overlay}`, () => {
    it("renders, and every object validates against the Kubernetes API schemas", () => {
      assert.ok(objects.length > 10);
      const errors = objects
        .map((o) => [`${o.kind}/${o.metadata.name}`, schemaErrors(o)] as const)
        .filter(([, e]) => e !== undefined);
      assert.deepEqual(errors, []);
      assert.deepEqual(unknownFields(objects), [], "every field is one the Kubernetes API knows");
      for (const kind of [
        "Namespace",
        "StatefulSet",
        "Deployment",
        "HorizontalPodAutoscaler",
        "Job",
        "Issuer",
        "Certificate",
      ]) {
        assert.ok(
          objects.some((o) => o.kind === kind),
          `has a ${kind}`,
        );
      }
      for (const o of objects.filter((x) => x.kind !== "Namespace")) {
        assert.equal(o.metadata.namespace, "adco", `${o.kind}/${o.metadata.name} is namespaced`);
      }
    });

    it("every service gets exactly the config keys it reads, with values its config loader accepts", () => {
      const seen = new Set<string>();
      for (const { name, env, template } of serviceContainers(objects)) {
        seen.add(name);
        const spec: ConfigSpec = SERVICES[name].spec;
        const known = new Set(Object.keys(spec).map(envName));
        for (const key of Object.keys(env)) {
          assert.ok(
            known.has(key),
            `${name}: ${key} is not a config key of the service (known: ${[...known].join(", ")})`,
          );
        }
        // The service's own loader: unknown ADCO_* variables and ill-typed values fail here as at start.
        const config = loadConfig(spec, { env }) as Record<string, any>;
        assert.equal(config.host, "0.0.0.0", `${name} listens on the pod's address`);
        assert.match(env.ADCO_S3_ACCESS_KEY ?? "", new RegExp(`^<secret ${SECRET}/accessKey>$`), name);
        assert.match(env.ADCO_S3_SECRET_KEY ?? "", new RegExp(`^<secret ${SECRET}/secretKey>$`), name);
        // Kubernetes' service links would add FOO_SERVICE_HOST variables, ADCO_* ones among them.
        assert.equal(template.spec.enableServiceLinks, false, `${name}: enableServiceLinks`);
      }
      assert.deepEqual([...seen].sort(), Object.keys(SERVICES).sort());
    });

    it("the services that compute run as many wasm threads as their CPU limit allows", () => {
      for (const { name, env, container } of serviceContainers(objects)) {
        if (!("threads" in SERVICES[name].spec)) continue;
        const limit = String(container.resources.limits.cpu);
        const cores = Math.ceil(limit.endsWith("m") ? Number(limit.slice(0, -1)) / 1000 : Number(limit));
        assert.equal(env.ADCO_THREADS, String(cores), `${name}: ADCO_THREADS from limits.cpu ${limit}`);
      }
    });

    it("ports, probes, Services and scrape annotations match each service's config", () => {
      for (const { name, container, env, template } of serviceContainers(objects)) {
        const config = loadConfig(SERVICES[name].spec, { env }) as Record<string, any>;
        const port = (portName: string) =>
          container.ports.find((p: any) => p.name === portName)?.containerPort;
        assert.equal(port("grpc"), config.grpcPort, `${name} grpc port`);
        assert.equal(port("metrics"), config.metricsPort, `${name} metrics port`);
        // The kubelet's gRPC probe cannot do TLS: it asks the plaintext health-only port.
        assert.equal(config.tlsMode, "mtls", `${name} serves mTLS`);
        assert.ok(config.healthPort > 0 && config.healthPort !== config.grpcPort, `${name} health port`);
        assert.equal(port("health"), config.healthPort, `${name} health port is declared`);
        for (const probe of ["livenessProbe", "readinessProbe"]) {
          assert.equal(
            container[probe]?.grpc?.port,
            config.healthPort,
            `${name} ${probe} is a gRPC probe on its plaintext health port`,
          );
        }
        assert.equal(
          container.readinessProbe.grpc.service,
          grpcServiceName(SERVICES[name].grpc),
          `${name} readiness`,
        );
        const annotations = template.owner.spec.template.metadata.annotations ?? {};
        assert.equal(annotations["prometheus.io/scrape"], "true", `${name} is scraped`);
        assert.equal(Number(annotations["prometheus.io/port"]), config.metricsPort, `${name} scrape port`);
        assert.equal(annotations["prometheus.io/path"], "/metrics", `${name} scrape path`);
        // The pod gets SIGKILLed terminationGracePeriodSeconds after SIGTERM: the drain must fit.
        const grace = template.spec.terminationGracePeriodSeconds;
        assert.ok(
          grace >= config.shutdownGraceMs / 1000 + 5,
          `${name}: grace ${grace} s < drain ${config.shutdownGraceMs} ms + 5 s`,
        );
        const service = find(objects, "Service", name);
        assert.ok(
          selects({ matchLabels: service.spec.selector }, template.labels),
          `Service ${name} selects its pods`,
        );
        assert.equal(service.spec.ports[0].port, config.grpcPort, `Service ${name} port`);
        assert.equal(service.spec.ports[0].targetPort, "grpc");
      }
    });

    it("the trainer's addresses name the bank's shards and the data workers; its run config is valid", () => {
      const trainer = serviceContainers(objects).find((c) => c.name === "trainer")!;
      const bankSet = find(objects, "StatefulSet", "adversary-bank");
      const bankPort = adversaryBankConfig.grpcPort.default!;
      const shards = Array.from(
        { length: bankSet.spec.replicas },
        (_, i) => `adversary-bank-${i}.${bankSet.spec.serviceName}:${bankPort}`,
      );
      assert.equal(trainer.env.ADCO_BANK_ADDRESS, shards[0]);
      assert.deepEqual(
        trainer.env.ADCO_BANK_PEERS ? trainer.env.ADCO_BANK_PEERS.split(",") : [],
        shards.slice(1),
      );
      assert.equal(
        find(objects, "Service", bankSet.spec.serviceName).spec.clusterIP,
        "None",
        "per-pod DNS names",
      );
      // Headless, so the name resolves to every worker pod and the trainer connects to each.
      assert.equal(trainer.env.ADCO_DATA_WORKERS, `data-worker:${dataWorkerConfig.grpcPort.default!}`);
      assert.equal(find(objects, "Service", "data-worker").spec.clusterIP, "None");
      assert.equal(trainer.env.ADCO_EVALUATOR_ADDRESS, `evaluator:${evaluatorConfig.grpcPort.default!}`);

      const mount = trainer.container.volumeMounts.find((m: any) =>
        trainer.env.ADCO_START_RUN!.startsWith(`${m.mountPath}/`),
      );
      assert.ok(mount, "ADCO_START_RUN is inside a mounted volume");
      const volume = trainer.template.spec.volumes.find((v: any) => v.name === mount.name);
      const file = trainer.env.ADCO_START_RUN!.slice(mount.mountPath.length + 1);
      const json = find(objects, "ConfigMap", volume.configMap.name).data[file];
      const request = startRunRequestFromJson(JSON.parse(json));
      assert.match(request.runId, /^[A-Za-z0-9._-]+$/);
      checkRunConfig(request.config);
    });

    it("all services, MinIO and the bucket Job use one endpoint, one Secret and the same buckets", () => {
      const storage = find(objects, "ConfigMap", "adco-storage").data;
      const minioService = find(objects, "Service", "minio");
      assert.equal(
        storage.ADCO_S3_ENDPOINT,
        `http://${minioService.metadata.name}:${minioService.spec.ports[0].port}`,
      );
      const minio = find(objects, "StatefulSet", "minio").spec.template.spec.containers[0];
      const minioEnv = containerEnv(objects, minio);
      assert.equal(minioEnv.MINIO_ROOT_USER, `<secret ${SECRET}/accessKey>`);
      assert.equal(minioEnv.MINIO_ROOT_PASSWORD, `<secret ${SECRET}/secretKey>`);
      const job = find(objects, "Job", "minio-buckets").spec.template.spec.containers[0];
      const jobEnv = containerEnv(objects, job);
      assert.equal(jobEnv.ADCO_DATASETS_BUCKET, dataWorkerConfig.datasetsBucket.default!);
      assert.equal(jobEnv.ADCO_CHECKPOINTS_BUCKET, trainerConfig.checkpointsBucket.default!);
      assert.match(job.args.join(" "), /\$ADCO_DATASETS_BUCKET.*\$ADCO_CHECKPOINTS_BUCKET/);
    });

    it("policy: requests and limits, probes, non-root, read-only root, no privilege escalation", () => {
      for (const t of podTemplates(objects)) {
        const where = `${t.owner.kind}/${t.owner.metadata.name}`;
        assert.equal(t.spec.securityContext?.runAsNonRoot, true, `${where}: runAsNonRoot`);
        assert.ok(t.spec.securityContext?.runAsUser > 0, `${where}: a non-zero runAsUser`);
        assert.equal(t.spec.securityContext?.seccompProfile?.type, "RuntimeDefault", `${where}: seccomp`);
        assert.equal(
          t.spec.automountServiceAccountToken,
          false,
          `${where}: no API token (no pod calls the API)`,
        );
        for (const c of [...(t.spec.initContainers ?? []), ...t.spec.containers]) {
          const at = `${where} container ${c.name}`;
          for (const resource of ["cpu", "memory"]) {
            assert.ok(c.resources?.requests?.[resource], `${at}: requests.${resource}`);
            assert.ok(c.resources?.limits?.[resource], `${at}: limits.${resource}`);
          }
          if (t.owner.kind !== "Job") {
            assert.ok(c.livenessProbe && c.readinessProbe, `${at}: liveness and readiness probes`);
          }
          assert.equal(c.securityContext?.readOnlyRootFilesystem, true, `${at}: read-only root filesystem`);
          assert.equal(c.securityContext?.allowPrivilegeEscalation, false, `${at}: no privilege escalation`);
          assert.deepEqual(c.securityContext?.capabilities?.drop, ["ALL"], `${at}: drops all capabilities`);
          assert.notEqual(c.securityContext?.privileged, true, `${at}: not privileged`);
          assert.ok(!/:latest$|^[^:]+$/.test(c.image), `${at}: image ${c.image} has a pinned tag`);
        }
      }
    });

    it("policy: no Secret in the manifests and no secret value in plain text", () => {
      assert.deepEqual(
        objects.filter((o) => o.kind === "Secret").map((o) => o.metadata.name),
        [],
        "Secrets are created by the operator (docs/deploy.md), never committed",
      );
      const secretish = /(KEY|SECRET|PASSWORD|TOKEN|CREDENTIAL)/i;
      for (const t of podTemplates(objects)) {
        for (const c of t.spec.containers) {
          for (const e of c.env ?? []) {
            if (!secretish.test(e.name)) continue;
            // A *_FILE variable names a file, which must be inside a volume mounted from a Secret.
            if (e.name.endsWith("_FILE")) {
              const volume = secretVolumeOf(t, c, e.value);
              assert.ok(volume, `${c.name}: ${e.name} ${e.value} is in a volume mounted from a Secret`);
              continue;
            }
            assert.ok(e.valueFrom?.secretKeyRef, `${c.name}: ${e.name} comes from a Secret`);
          }
        }
      }
      for (const map of objects.filter((o) => o.kind === "ConfigMap")) {
        for (const key of Object.keys(map.data ?? {})) {
          assert.ok(
            !secretish.test(key),
            `ConfigMap ${map.metadata.name} holds ${key}, which belongs in a Secret`,
          );
        }
      }
    });

    it("tls: each service mounts the Secret of a Certificate naming it, from the CA Issuer chain", () => {
      const certificates = objects.filter((o) => o.kind === "Certificate");
      const issuers = objects.filter((o) => o.kind === "Issuer");
      for (const { name, container, env, template } of serviceContainers(objects)) {
        const files = [env.ADCO_TLS_CERT_FILE, env.ADCO_TLS_KEY_FILE, env.ADCO_TLS_CA_FILE];
        const volumes = files.map((f) => secretVolumeOf(template, container, f ?? ""));
        assert.ok(volumes[0], `${name}: ADCO_TLS_CERT_FILE is in a mounted Secret`);
        assert.ok(
          volumes.every((v) => v === volumes[0]),
          `${name}: certificate, key and CA come from one Secret`,
        );
        assert.deepEqual(
          files.map((f) => f!.split("/").pop()),
          ["tls.crt", "tls.key", "ca.crt"],
          `${name}: the key names cert-manager writes`,
        );
        const certificate = certificates.find((c) => c.spec.secretName === volumes[0]);
        assert.ok(certificate, `${name}: a Certificate writes the Secret ${volumes[0]}`);
        // The identity the other services check and the access rules name.
        assert.equal(certificate.spec.commonName, name, `${name}: the certificate's common name`);
        for (const usage of ["server auth", "client auth"])
          assert.ok(certificate.spec.usages.includes(usage), `${name}: the certificate allows ${usage}`);
        assert.equal(
          certificate.spec.privateKey.rotationPolicy,
          "Always",
          `${name}: a renewal makes a new key`,
        );
        assert.ok(
          certificate.spec.dnsNames.includes(`*.${find(objects, "Service", name).metadata.name}`),
          `${name}: per-pod names`,
        );
        const issuer = issuers.find((i) => i.metadata.name === certificate.spec.issuerRef.name);
        assert.ok(issuer?.spec.ca, `${name}: issued by a CA Issuer`);
        const ca = certificates.find((c) => c.spec.secretName === issuer.spec.ca.secretName);
        assert.equal(ca?.spec.isCA, true, `${name}: the Issuer's CA is a CA certificate`);
      }
      // Operators call the trainer and the evaluator with the bearer token; the bank and the workers
      // take certificates only.
      for (const { name, container, env, template } of serviceContainers(objects)) {
        const cliFacing = name === "trainer" || name === "evaluator";
        if (!cliFacing) {
          assert.equal(env.ADCO_AUTH_TOKEN_FILE, undefined, `${name} takes no token`);
          continue;
        }
        assert.equal(secretVolumeOf(template, container, env.ADCO_AUTH_TOKEN_FILE ?? ""), "adco-auth-token");
      }
    });

    it("policy: PodDisruptionBudgets and the HPA target workloads that exist", () => {
      const workloads = objects.filter((o) => WORKLOAD_KINDS.has(o.kind));
      for (const pdb of objects.filter((o) => o.kind === "PodDisruptionBudget")) {
        const target = workloads.find((w) => selects(pdb.spec.selector, w.spec.template.metadata.labels));
        assert.ok(target, `PDB ${pdb.metadata.name} selects a workload`);
        assert.ok(target.kind !== "Deployment" || (target.spec.replicas ?? 1) >= 1);
      }
      const hpa = find(objects, "HorizontalPodAutoscaler", "data-worker");
      find(objects, hpa.spec.scaleTargetRef.kind, hpa.spec.scaleTargetRef.name);
      assert.ok(hpa.spec.minReplicas <= hpa.spec.maxReplicas);
    });

    it("the dashboard: adco ui on the pod's address behind a ClusterIP Service, with the CLI's credentials", () => {
      const deployment = find(objects, "Deployment", DASHBOARD);
      const template = podTemplates(objects).find((t) => t.owner === deployment)!;
      assert.equal(template.spec.containers.length, 1);
      const container = template.spec.containers[0];
      assert.match(container.image, /^adco-dashboard:/);
      assert.match(
        readFileSync(join(ROOT, "deploy/docker/Dockerfile"), "utf8"),
        /^FROM \S+ AS dashboard$/m,
        "the Dockerfile builds the dashboard image",
      );
      // The command: adco ui, listening on every address of the pod, on the port it declares.
      const args: string[] = container.args;
      const flag = (name: string) => args[args.indexOf(name) + 1];
      assert.equal(args[0], "ui");
      assert.equal(flag("--host"), "0.0.0.0", "bound to the pod's address, not loopback");
      const http = container.ports.find((p: any) => p.name === "http");
      assert.equal(http?.containerPort, Number(flag("--port")));
      for (const probe of ["livenessProbe", "readinessProbe"])
        assert.deepEqual(container[probe]?.httpGet, { path: "/", port: "http" }, `${probe}: the page`);
      const service = find(objects, "Service", DASHBOARD);
      assert.equal(service.spec.type ?? "ClusterIP", "ClusterIP", "reached by port-forward, not exposed");
      assert.ok(selects({ matchLabels: service.spec.selector }, template.labels), "the Service selects it");
      assert.equal(service.spec.ports[0].targetPort, "http");
      assert.equal(template.labels["adco.dev/client"], "true", "the NetworkPolicies' client label");
      assert.equal(template.spec.enableServiceLinks, false);

      // Its environment: only variables the CLI reads, pointing at the services' Services.
      const env = containerEnv(objects, container);
      const known = cliVariables();
      for (const key of Object.keys(env)) assert.ok(known.has(key), `${key} is not read by the CLI`);
      const trainerService = find(objects, "Service", "trainer").metadata.name;
      const evaluatorService = find(objects, "Service", "evaluator").metadata.name;
      assert.equal(env.ADCO_TRAINER_ADDRESS, `${trainerService}:${trainerConfig.grpcPort.default!}`);
      assert.equal(env.ADCO_EVALUATOR_ADDRESS, `${evaluatorService}:${evaluatorConfig.grpcPort.default!}`);
      const storage = loadConfig(storageConfig, { env, ignoreUnknownEnv: true });
      assert.equal(storage.s3Endpoint, find(objects, "ConfigMap", "adco-storage").data.ADCO_S3_ENDPOINT);
      assert.equal(env.ADCO_S3_ACCESS_KEY, `<secret ${SECRET}/accessKey>`);
      assert.equal(env.ADCO_S3_SECRET_KEY, `<secret ${SECRET}/secretKey>`);

      // TLS as the CLI does it, with a certificate of its own: CA, certificate and key from the
      // Secret of a client Certificate of the CA Issuer, whose name is no service's identity.
      assert.equal(env.ADCO_TLS_MODE, undefined, "mutual TLS, never plaintext");
      const files = [env.ADCO_TLS_CA_FILE, env.ADCO_CLIENT_CERT_FILE, env.ADCO_CLIENT_KEY_FILE];
      const volumes = files.map((f) => secretVolumeOf(template, container, f ?? ""));
      assert.ok(volumes[0], "ADCO_TLS_CA_FILE is in a mounted Secret");
      assert.ok(
        volumes.every((v) => v === volumes[0]),
        "CA, certificate and key come from one Secret",
      );
      assert.deepEqual(
        files.map((f) => f!.split("/").pop()),
        ["ca.crt", "tls.crt", "tls.key"],
      );
      const certificate = objects.find((o) => o.kind === "Certificate" && o.spec.secretName === volumes[0]);
      assert.ok(certificate, `a Certificate writes the Secret ${volumes[0]}`);
      assert.ok(certificate.spec.usages.includes("client auth"));
      assert.ok(!certificate.spec.usages.includes("server auth"), "a client, not a server");
      assert.ok(!(certificate.spec.commonName in SERVICES), "no service's identity");
      assert.equal(certificate.spec.privateKey.rotationPolicy, "Always");
      const issuer = find(objects, "Issuer", certificate.spec.issuerRef.name);
      assert.ok(issuer.spec.ca, "issued by the CA Issuer the services' certificates come from");
      // The operators' token, for the buttons' control calls.
      assert.equal(secretVolumeOf(template, container, env.ADCO_AUTH_TOKEN_FILE ?? ""), "adco-auth-token");
    });

    it("network: each pod reaches only what it needs", () => {
      const policies = objects.filter((o) => o.kind === "NetworkPolicy");
      const s3 = 9000;
      const port = (name: ServiceName) => SERVICES[name].spec.grpcPort.default!;
      const client = pod("cli", { "adco.dev/client": "true" });
      const dashboard = pod(DASHBOARD, { "adco.dev/client": "true" });
      const dashboardPort = 8080;
      const dns = {
        labels: { "k8s-app": "kube-dns" },
        namespaceLabels: { "kubernetes.io/metadata.name": "kube-system" },
      };
      const prometheus = {
        labels: { app: "prometheus" },
        namespaceLabels: { "kubernetes.io/metadata.name": "monitoring" },
      };
      const open: [string, ReturnType<typeof pod>, ReturnType<typeof pod>, number][] = [
        ["trainer -> data-worker", pod("trainer"), pod("data-worker"), port("data-worker")],
        ["trainer -> bank", pod("trainer"), pod("adversary-bank"), port("adversary-bank")],
        ["trainer -> evaluator (each epoch's kNN)", pod("trainer"), pod("evaluator"), port("evaluator")],
        [
          "bank shard 0 -> bank shard 1",
          pod("adversary-bank"),
          pod("adversary-bank"),
          port("adversary-bank"),
        ],
        ["client -> trainer", client, pod("trainer"), port("trainer")],
        ["client -> evaluator", client, pod("evaluator"), port("evaluator")],
        ["client -> minio (dataset import)", client, pod("minio"), s3],
        ["dashboard -> trainer", dashboard, pod("trainer"), port("trainer")],
        ["dashboard -> evaluator", dashboard, pod("evaluator"), port("evaluator")],
        ["dashboard -> minio (the evaluations' plots)", dashboard, pod("minio"), s3],
        ["dashboard -> DNS", dashboard, dns, 53],
        ...(["data-worker", "trainer", "adversary-bank", "evaluator", "minio-buckets"] as const).map(
          (n) =>
            [`${n} -> minio`, pod(n), pod("minio"), s3] as [
              string,
              ReturnType<typeof pod>,
              ReturnType<typeof pod>,
              number,
            ],
        ),
        ...(Object.keys(SERVICES) as ServiceName[]).map(
          (n) =>
            [`prometheus -> ${n} metrics`, prometheus, pod(n), SERVICES[n].spec.metricsPort.default!] as [
              string,
              any,
              any,
              number,
            ],
        ),
        ...(["data-worker", "trainer", "adversary-bank", "evaluator", "minio", "minio-buckets"] as const).map(
          (n) => [`${n} -> DNS`, pod(n), dns, 53] as [string, any, any, number],
        ),
      ];
      for (const [what, from, to, p] of open) assert.ok(allowed(policies, from, to, p), `${what} is allowed`);
      const closed: [string, any, any, number][] = [
        ["data-worker -> trainer", pod("data-worker"), pod("trainer"), port("trainer")],
        ["data-worker -> bank", pod("data-worker"), pod("adversary-bank"), port("adversary-bank")],
        ["evaluator -> bank", pod("evaluator"), pod("adversary-bank"), port("adversary-bank")],
        ["evaluator -> trainer", pod("evaluator"), pod("trainer"), port("trainer")],
        ["bank -> trainer", pod("adversary-bank"), pod("trainer"), port("trainer")],
        ["an unlabelled pod -> trainer", pod("something"), pod("trainer"), port("trainer")],
        ["an unlabelled pod -> minio", pod("something"), pod("minio"), s3],
        [
          "trainer -> the internet",
          pod("trainer"),
          { labels: {}, namespaceLabels: { "kubernetes.io/metadata.name": "elsewhere" } },
          443,
        ],
        ["minio -> trainer", pod("minio"), pod("trainer"), port("trainer")],
        // It has no login: only a port-forward (not subject to the policies) reaches it.
        ["an unlabelled pod -> dashboard", pod("something"), dashboard, dashboardPort],
        ["a client pod -> dashboard", client, dashboard, dashboardPort],
        ["trainer -> dashboard", pod("trainer"), dashboard, dashboardPort],
      ];
      for (const [what, from, to, p] of closed)
        assert.ok(!allowed(policies, from, to, p), `${what} is denied`);
    });
  });
}

describe("overlays differ where they should", () => {
  it("gpu: the trainer on a GPU node with the tfjs-node-gpu image and the tensorflow backend; the bank in 2 shards", () => {
    const objects = rendered.gpu;
    const trainer = serviceContainers(objects).find((c) => c.name === "trainer")!;
    assert.equal(trainer.container.resources.limits["nvidia.com/gpu"], 1);
    assert.equal(trainer.container.resources.requests["nvidia.com/gpu"], 1);
    assert.match(trainer.container.image, /^adco-trainer-gpu:/);
    assert.equal(
      trainer.env.ADCO_BACKEND,
      "tensorflow",
      "fails at start rather than training on the CPU unnoticed",
    );
    assert.ok(trainer.template.spec.tolerations.some((t: any) => t.key === "nvidia.com/gpu"));
    assert.equal(find(objects, "StatefulSet", "adversary-bank").spec.replicas, 2);
    for (const c of serviceContainers(objects).filter((x) => x.name !== "trainer")) {
      assert.ok(!c.container.resources.limits["nvidia.com/gpu"], `${c.name} needs no GPU`);
    }
  });

  it("dev: CPU only, one of each, small requests", () => {
    const objects = rendered.dev;
    for (const c of serviceContainers(objects)) {
      assert.ok(!c.container.resources.limits["nvidia.com/gpu"], `${c.name} needs no GPU`);
      assert.doesNotMatch(c.container.image, /gpu/);
      const memory = c.container.resources.requests.memory as string;
      assert.ok(
        /^\d+(Mi|Gi)$/.test(memory) && parseInt(memory) * (memory.endsWith("Gi") ? 1024 : 1) <= 2048,
        `${c.name} requests ${memory}`,
      );
    }
    assert.equal(find(objects, "StatefulSet", "adversary-bank").spec.replicas, 1);
    assert.equal(find(objects, "Deployment", "data-worker").spec.replicas, 1);
  });
});

// overlays/gpu-webgpu: the gpu overlay with the trainer and the bank on WebGPU (Dawn on Vulkan).
describe("deploy/overlays/gpu-webgpu", () => {
  const objects = render("gpu-webgpu" as (typeof OVERLAYS)[number]);
  const WEBGPU = ["trainer", "adversary-bank"];

  it("renders and validates, with the gpu overlay's objects and nothing else", () => {
    const errors = objects
      .map((o) => [`${o.kind}/${o.metadata.name}`, schemaErrors(o)] as const)
      .filter(([, e]) => e !== undefined);
    assert.deepEqual(errors, []);
    assert.deepEqual(unknownFields(objects), []);
    const names = (list: readonly K8sObject[]) => list.map((o) => `${o.kind}/${o.metadata.name}`).sort();
    assert.deepEqual(names(objects), names(rendered.gpu));
    assert.equal(find(objects, "StatefulSet", "adversary-bank").spec.replicas, 2);
  });

  it("the trainer and the bank: the webgpu image and backend on a GPU node, with Vulkan mounted", () => {
    const containers = serviceContainers(objects);
    for (const name of WEBGPU) {
      const c = containers.find((x) => x.name === name)!;
      assert.match(c.container.image, new RegExp(`^adco-${name}-webgpu:`));
      // The service's own loader takes it; "webgpu" fails the start where no GPU adapter comes up.
      const config = loadConfig(SERVICES[c.name].spec, { env: c.env }) as Record<string, any>;
      assert.equal(config.backend, "webgpu", name);
      const capabilities = (c.env.NVIDIA_DRIVER_CAPABILITIES ?? "").split(",");
      for (const needed of ["compute", "utility", "graphics"])
        assert.ok(capabilities.includes(needed), `${name}: NVIDIA_DRIVER_CAPABILITIES has ${needed}`);
      assert.match(
        c.env.XDG_CACHE_HOME ?? "",
        /^\/tmp\//,
        `${name}: the driver's cache on the writable /tmp`,
      );
      assert.equal(c.container.resources.limits["nvidia.com/gpu"], 1, name);
      assert.equal(c.container.resources.requests["nvidia.com/gpu"], 1, name);
      // The gpu overlay's CPU and memory stay.
      assert.ok(c.container.resources.limits.cpu && c.container.resources.limits.memory, name);
      assert.equal(c.template.spec.nodeSelector?.["nvidia.com/gpu.present"], "true", name);
      assert.ok(
        c.template.spec.tolerations.some((t: any) => t.key === "nvidia.com/gpu"),
        name,
      );
    }
    for (const c of containers.filter((x) => !WEBGPU.includes(x.name))) {
      assert.ok(!c.container.resources.limits["nvidia.com/gpu"], `${c.name} needs no GPU`);
      assert.doesNotMatch(c.container.image, /gpu/);
    }
  });
});
