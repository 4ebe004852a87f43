// deploy/ as data: overlays rendered by `kubectl kustomize` (the kustomize that `kubectl apply -k`
// uses), the pod templates in them, and a small NetworkPolicy evaluator, for tests that check the
// manifests without a cluster.
import { execFileSync } from "node:child_process";
import { createRequire } from "node:module";
import { join } from "node:path";
import { parseAllDocuments } from "yaml";
import { ROOT } from "./service-process.js";

export const OVERLAYS = ["dev", "gpu"] as const;
export type Overlay = (typeof OVERLAYS)[number];

/* eslint-disable @typescript-eslint/no-explicit-any -- Kubernetes objects are open-ended JSON */
export type K8sObject = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; [k: string]: any };
} & Record<string, any>;

/** The objects of an overlay (or deploy/base, deploy/monitoring), as `kubectl apply -k` would send them. */
export function render(overlay: Overlay | "base" | "monitoring"): K8sObject[] {
  const dir =
    overlay === "base" || overlay === "monitoring"
      ? join(ROOT, "deploy", overlay)
      : join(ROOT, "deploy/overlays", overlay);
  let text: string;
  try {
    text = execFileSync("kubectl", ["kustomize", dir], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
    });
  } catch (e) {
    const err = e as { code?: string; stderr?: string; message: string };
    if (err.code === "ENOENT")
      throw new Error("kubectl is not installed: the deploy checks render with `kubectl kustomize`");
    throw new Error(`kubectl kustomize ${dir} failed: ${err.stderr ?? err.message}`);
  }
  return parseAllDocuments(text).map((doc) => {
    if (doc.errors.length > 0) throw new Error(`rendered YAML of ${overlay}: ${doc.errors[0]!.message}`);
    return doc.toJS() as K8sObject;
  });
}

export const WORKLOAD_KINDS = new Set(["Deployment", "StatefulSet", "Job"]);

export interface PodTemplate {
  readonly owner: K8sObject;
  readonly labels: Record<string, string>;
  readonly spec: any;
}

export function podTemplates(objects: readonly K8sObject[]): PodTemplate[] {
  return objects
    .filter((o) => WORKLOAD_KINDS.has(o.kind))
    .map((o) => ({ owner: o, labels: o.spec.template.metadata?.labels ?? {}, spec: o.spec.template.spec }));
}

export const find = (objects: readonly K8sObject[], kind: string, name: string): K8sObject => {
  const found = objects.find((o) => o.kind === kind && o.metadata.name === name);
  if (!found) throw new Error(`no ${kind} ${name} in the rendered manifests`);
  return found;
};

/** Does a label selector (matchLabels and matchExpressions In/NotIn/Exists) select these labels? */
export function selects(selector: any, labels: Record<string, string>): boolean {
  if (!selector) return false;
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of selector.matchExpressions ?? []) {
    const value = labels[e.key];
    if (e.operator === "In" && !(value !== undefined && e.values.includes(value))) return false;
    if (e.operator === "NotIn" && value !== undefined && e.values.includes(value)) return false;
    if (e.operator === "Exists" && value === undefined) return false;
    if (e.operator === "DoesNotExist" && value !== undefined) return false;
  }
  return true;
}

/** One end of a connection: a pod's labels and its namespace's labels. */
export interface Endpoint {
  readonly labels: Record<string, string>;
  readonly namespaceLabels: Record<string, string>;
}

function peerMatches(peer: any, other: Endpoint, sameNamespace: boolean): boolean {
  if (peer.ipBlock) return false;
  const nsOk = peer.namespaceSelector
    ? selects(peer.namespaceSelector, other.namespaceLabels)
    : sameNamespace;
  const podOk = peer.podSelector ? selects(peer.podSelector, other.labels) : true;
  // An empty namespaceSelector {} selects every namespace.
  const nsAll = peer.namespaceSelector && Object.keys(peer.namespaceSelector).length === 0;
  return (nsOk || nsAll) && podOk;
}

const portMatches = (ports: any[] | undefined, port: number) =>
  !ports || ports.length === 0 || ports.some((p) => p.port === port && (p.protocol ?? "TCP") === "TCP");

/**
 * Whether NetworkPolicies in the namespace let `from` open TCP `port` on `to`, both in the namespace
 * unless their namespace labels say otherwise. Policies are additive: a direction is open when no
 * policy selects the pod for it, or when one of those that do has a rule that matches.
 */
export function allowed(
  policies: readonly K8sObject[],
  from: Endpoint,
  to: Endpoint,
  port: number,
  namespace = "adco",
): boolean {
  const inNamespace = (e: Endpoint) => e.namespaceLabels["kubernetes.io/metadata.name"] === namespace;
  const direction = (pod: Endpoint, type: "Ingress" | "Egress", other: Endpoint) => {
    if (!inNamespace(pod)) return true; // only this namespace's policies are modelled
    const selecting = policies.filter(
      (p) => (p.spec.policyTypes ?? ["Ingress"]).includes(type) && selects(p.spec.podSelector, pod.labels),
    );
    if (selecting.length === 0) return true;
    const rules = selecting.flatMap((p) => (type === "Ingress" ? p.spec.ingress : p.spec.egress) ?? []);
    const same = inNamespace(other);
    return rules.some(
      (r: any) =>
        portMatches(r.ports, port) &&
        (!(type === "Ingress" ? r.from : r.to) ||
          (type === "Ingress" ? r.from : r.to).some((peer: any) => peerMatches(peer, other, same))),
    );
  };
  return direction(from, "Egress", to) && direction(to, "Ingress", from);
}

/** A pod of the namespace with the given app name (and extra labels). */
export const pod = (name: string, extra: Record<string, string> = {}): Endpoint => ({
  labels: { "app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "adco", ...extra },
  namespaceLabels: { "kubernetes.io/metadata.name": "adco" },
});

/** The module of a kind's model: kubernetes-models for the API's kinds, cert-manager's own for its. */
export function modelModule(group: string, version: string, kind: string): string {
  return group === "cert-manager.io"
    ? `@kubernetes-models/cert-manager/${group}/${version}/${kind}`
    : `kubernetes-models/${group ? `${group}/` : ""}${version}/${kind}`;
}

/**
 * Fields the Kubernetes API does not know (a misspelt `readinesProbe` is silently dropped by the API
 * server and by kubernetes-models' validate()): each object is type-checked as an object literal of
 * its kubernetes-models interface, where TypeScript reports every property the type lacks.
 * Returns "Kind/name: message" per problem.
 */
export function unknownFields(objects: readonly K8sObject[]): string[] {
  // typescript is a devDependency of the workspace; loaded lazily, only this check needs it.
  const ts = createRequire(import.meta.url)("typescript") as typeof import("typescript");
  const file = join(ROOT, "test", "__rendered_manifests__.ts");
  const lines = objects.map((o, i) => {
    const [group, version] = o.apiVersion.includes("/") ? o.apiVersion.split("/") : ["", o.apiVersion];
    const from = modelModule(group!, version!, o.kind);
    return `import type { I${o.kind} as T${i} } from "${from}";\nexport const o${i}: T${i} = ${JSON.stringify(o)};`;
  });
  const source = lines.join("\n");
  const options: import("typescript").CompilerOptions = {
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    types: [],
  };
  const host = ts.createCompilerHost(options);
  const { getSourceFile, fileExists, readFile } = host;
  host.getSourceFile = (name, language, ...rest) =>
    name === file
      ? ts.createSourceFile(name, source, language)
      : getSourceFile.call(host, name, language, ...rest);
  host.fileExists = (name) => name === file || fileExists.call(host, name);
  host.readFile = (name) => (name === file ? source : readFile.call(host, name));
  const program = ts.createProgram([file], options, host);
  return ts.getPreEmitDiagnostics(program).map((d) => {
    const message = ts.flattenDiagnosticMessageText(d.messageText, "\n").split("\n").at(-1)!.trim();
    if (!d.file || d.start === undefined) return message;
    const line = d.file.getLineAndCharacterOfPosition(d.start).line;
    const object = objects[Math.floor(line / 2)];
    return `${object ? `${object.kind}/${object.metadata.name}` : d.file.fileName}: ${message}`;
  });
}
