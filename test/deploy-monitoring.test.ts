// deploy/monitoring without a cluster: the PodMonitor scrapes every service's metrics port, the
// alert rules are well-formed and the four are there, and every PromQL query (alerts and the
// Grafana dashboard's panels) parses and names only metrics, labels and states the code exports.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { RunState } from "@adco/proto/trainer";
import { find, type K8sObject, OVERLAYS, podTemplates, render, selects } from "./lib/manifests.js";
import { exportedMetrics, parsePromql, TARGET_LABELS, withGrafanaVariables } from "./lib/promql.js";

/* eslint-disable @typescript-eslint/no-explicit-any -- Kubernetes objects are open-ended JSON */

const SERVICES = ["data-worker", "trainer", "adversary-bank", "evaluator"];
const objects = render("monitoring");
const exported = await exportedMetrics();
const RUN_STATES = new Set(
  Object.values(RunState)
    .filter((v): v is RunState => typeof v === "number" && v > 0)
    .map((v) => RunState[v].replace("RUN_STATE_", "").toLowerCase()),
);

/** What is wrong with one PromQL expression: syntax, unknown metrics, labels or run states. */
function problems(expr: string): string[] {
  const parsed = parsePromql(expr);
  const found: string[] = parsed.errors.map((at) => `syntax error at ${at}: ${expr.slice(at, at + 20)}`);
  const labelsInScope = new Set(TARGET_LABELS);
  for (const s of parsed.selectors) {
    const labels = exported.get(s.metric);
    if (!labels) {
      found.push(`${s.metric} is not a metric adco exports`);
      continue;
    }
    for (const l of labels) labelsInScope.add(l);
    for (const m of s.matchers)
      if (!labels.has(m.label) && !TARGET_LABELS.includes(m.label))
        found.push(`${s.metric} has no label ${m.label}`);
    for (const m of s.matchers.filter((m) => m.label === "state" && s.metric === "adco_trainer_run_state"))
      if (!RUN_STATES.has(m.value)) found.push(`no run state ${m.value}`);
  }
  for (const l of parsed.groupingLabels)
    if (!labelsInScope.has(l)) found.push(`groups by ${l}, which no series has`);
  return found;
}

describe("the PromQL checker", () => {
  it("finds what it must", () => {
    assert.deepEqual(problems('rate(adco_trainer_step{run_id=~"a"}[5m])'), []);
    assert.match(problems("rate(adco_trainer_stepz[5m])").join(), /adco_trainer_stepz is not a metric/);
    assert.match(problems("sum(rate(adco_trainer_step[5m])").join(), /syntax error/);
    assert.match(problems('adco_trainer_loss{shard="1"}').join(), /no label shard/);
    assert.match(problems('adco_trainer_run_state{state="crashed"}').join(), /no run state crashed/);
    assert.match(problems("sum by (shard) (adco_trainer_loss)").join(), /groups by shard/);
  });
});

describe("deploy/monitoring", () => {
  it("renders to a PodMonitor, a PrometheusRule and the dashboard's ConfigMap, in namespace adco", () => {
    assert.deepEqual(objects.map((o) => o.kind).sort(), ["ConfigMap", "PodMonitor", "PrometheusRule"]);
    for (const o of objects) {
      assert.equal(o.metadata.namespace, "adco", `${o.kind}/${o.metadata.name}`);
      if (o.kind !== "ConfigMap") assert.equal(o.apiVersion, "monitoring.coreos.com/v1");
    }
  });

  it("the PodMonitor scrapes every service's metrics port, in every overlay", () => {
    const monitor = find(objects, "PodMonitor", "adco");
    const [endpoint] = monitor.spec.podMetricsEndpoints;
    assert.equal(endpoint.path, "/metrics");
    for (const overlay of OVERLAYS) {
      const services = podTemplates(render(overlay)).filter((t) =>
        SERVICES.includes(t.labels["app.kubernetes.io/name"] ?? ""),
      );
      assert.deepEqual(
        [...new Set(services.map((t) => t.labels["app.kubernetes.io/name"]))].sort(),
        [...SERVICES].sort(),
      );
      for (const t of services) {
        assert.ok(selects(monitor.spec.selector, t.labels), `${overlay}: selects ${t.owner.metadata.name}`);
        const ports = t.spec.containers.flatMap((c: any) => c.ports ?? []).map((p: any) => p.name);
        assert.ok(
          ports.includes(endpoint.port),
          `${overlay}: ${t.owner.metadata.name} names port ${endpoint.port}`,
        );
      }
    }
    // `up` of each target carries the service, as the alerts and the dashboard read it.
    assert.ok(
      endpoint.relabelings.some(
        (r: any) =>
          r.targetLabel === "service" &&
          r.sourceLabels.includes("__meta_kubernetes_pod_label_app_kubernetes_io_name"),
      ),
    );
  });

  it("alert rules are well-formed, name only exported metrics, and cover the issue's four", () => {
    const rule = find(objects, "PrometheusRule", "adco");
    const groups: any[] = rule.spec.groups;
    assert.equal(new Set(groups.map((g) => g.name)).size, groups.length, "group names are unique");
    const alerts = groups.flatMap((g) => g.rules);
    assert.equal(new Set(alerts.map((a) => a.alert)).size, alerts.length, "alert names are unique");
    for (const a of alerts) {
      assert.match(a.alert, /^Adco[A-Z][A-Za-z]+$/);
      assert.deepEqual(problems(a.expr), [], `${a.alert}: ${a.expr}`);
      assert.match(a.for, /^\d+[smh]$/, `${a.alert}: for`);
      assert.ok(["critical", "warning"].includes(a.labels?.severity), `${a.alert}: severity`);
      assert.ok(a.annotations?.summary && a.annotations?.description, `${a.alert}: summary and description`);
      // A template's {{ $labels.x }} must be a label the expression's result keeps.
      const kept = parsePromql(a.expr).groupingLabels;
      for (const [, label] of `${a.annotations.summary} ${a.annotations.description}`.matchAll(
        /\$labels\.(\w+)/g,
      ))
        assert.ok(kept.includes(label!), `${a.alert}: {{ $labels.${label} }} is not kept by ${a.expr}`);
    }
    const byName = (name: string) => {
      const a = alerts.find((x) => x.alert === name);
      assert.ok(a, `alert ${name}`);
      return a;
    };
    assert.match(byName("AdcoRunFailed").expr, /adco_trainer_run_state\{state="failed"\}/);
    const wait = byName("AdcoDataWaitHigh");
    assert.match(wait.expr, /adco_trainer_data_wait_fraction\) > 0\.2\b/);
    assert.equal(wait.for, "10m");
    assert.match(wait.annotations.description, /scale/);
    const noStep = byName("AdcoNoStep");
    assert.match(noStep.expr, /changes\(adco_trainer_step\[5m\]\)/);
    assert.match(noStep.expr, /state="running"/);
    assert.match(byName("AdcoBankShardLost").expr, /up\{service="adversary-bank"\}/);
  });

  it("the Grafana dashboard is provisioned by label and every query names exported metrics", () => {
    const map: K8sObject = find(objects, "ConfigMap", "adco-grafana-dashboard");
    assert.equal(map.metadata.labels?.grafana_dashboard, "1", "Grafana's sidecar finds it by label");
    const files = Object.keys(map.data);
    assert.deepEqual(files, ["adco.json"]);
    const dashboard = JSON.parse(map.data["adco.json"]);
    assert.ok(dashboard.uid && dashboard.title);
    const panels: any[] = dashboard.panels.filter((p: any) => p.type !== "row");
    assert.equal(new Set(panels.map((p) => p.title)).size, panels.length, "panel titles are unique");
    const used = new Set<string>();
    for (const panel of panels) {
      assert.ok(panel.targets?.length, `${panel.title} has queries`);
      assert.ok(panel.gridPos && panel.gridPos.w > 0 && panel.gridPos.h > 0, `${panel.title}: gridPos`);
      for (const t of panel.targets) {
        const expr = withGrafanaVariables(t.expr);
        assert.deepEqual(problems(expr), [], `${panel.title}: ${t.expr}`);
        for (const s of parsePromql(expr).selectors) used.add(s.metric);
      }
    }
    for (const v of dashboard.templating.list.filter((v: any) => v.type === "query")) {
      const query = (v.query.query as string).replace(/^label_values\((.*), (\w+)\)$/, "$1");
      assert.deepEqual(problems(withGrafanaVariables(query)), [], `variable ${v.name}`);
    }
    // What the issue asks to see: step rate, data wait, bank time, contrast accuracy, workers,
    // per-method gRPC latency and errors.
    for (const metric of [
      "adco_trainer_step",
      "adco_trainer_data_wait_fraction",
      "adco_trainer_bank_call_ms",
      "adco_trainer_contrast_accuracy",
      "up",
      "adco_grpc_server_handling_seconds_bucket",
      "adco_grpc_server_handled_total",
    ])
      assert.ok(used.has(metric), `the dashboard plots ${metric}`);
  });
});
