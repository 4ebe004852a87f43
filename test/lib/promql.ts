// PromQL as data, for the checks of deploy/monitoring: parsed by the Prometheus project's own grammar
// (lezer-promql, the one its UI uses), then the metrics an expression selects, their label matchers,
// and the labels it groups by. Also the metrics adco's code exports, from the code itself.
import { parser } from "@prometheus-io/lezer-promql";
import { Metrics } from "@adco/service-kit";
import { trainingMetrics } from "@adco/trainer";

export interface Selector {
  readonly metric: string;
  readonly matchers: { readonly label: string; readonly value: string }[];
}

export interface ParsedPromql {
  /** Offsets of syntax errors; empty for a valid expression. */
  readonly errors: number[];
  readonly selectors: Selector[];
  /** Labels named in by (...), on (...) and the like: the labels the result keeps. */
  readonly groupingLabels: string[];
}

/** Grafana's variables as a query sends them ($__rate_interval a duration, the others strings). */
export const withGrafanaVariables = (expr: string) =>
  expr.replace(/\$__(rate_)?interval/g, "5m").replace(/\$\{?(\w+)\}?/g, "$1");

const unquote = (literal: string) =>
  JSON.parse(literal.startsWith("'") ? `"${literal.slice(1, -1)}"` : literal);

export function parsePromql(expr: string): ParsedPromql {
  const errors: number[] = [];
  const selectors: Selector[] = [];
  const groupingLabels: string[] = [];
  const text = (n: { from: number; to: number }) => expr.slice(n.from, n.to);
  parser.parse(expr).iterate({
    enter(ref) {
      if (ref.type.isError) errors.push(ref.from);
      const node = ref.node;
      if (ref.name === "VectorSelector") {
        const name = node.getChild("Identifier");
        const matchers: Selector["matchers"][number][] = [];
        for (const m of node.getChild("LabelMatchers")?.getChildren("UnquotedLabelMatcher") ?? []) {
          const label = m.getChild("LabelName");
          const value = m.getChild("StringLiteral");
          if (label && value) matchers.push({ label: text(label), value: unquote(text(value)) });
        }
        const named = matchers.find((m) => m.label === "__name__");
        selectors.push({ metric: name ? text(name) : (named?.value ?? ""), matchers });
      }
      if (ref.name === "GroupingLabels")
        for (const label of node.getChildren("LabelName")) groupingLabels.push(text(label));
    },
  });
  return { errors, selectors, groupingLabels };
}

/** The labels Prometheus adds to every series of a PodMonitor's targets (ours adds `service`). */
export const TARGET_LABELS = ["namespace", "pod", "container", "endpoint", "job", "instance", "service"];

/**
 * Every metric adco's services export, with its label names: service-kit's (process metrics and
 * per-RPC counts and latencies, a histogram's _bucket/_sum/_count series) and the trainer's gauges.
 * Plus `up`, which Prometheus records for each target it scrapes.
 */
export async function exportedMetrics(): Promise<Map<string, Set<string>>> {
  const metrics = new Metrics("trainer");
  trainingMetrics(metrics);
  const names = new Map<string, Set<string>>([["up", new Set()]]);
  for (const metric of await metrics.registry.getMetricsAsJSON()) {
    const labels = new Set<string>(["service"]);
    const m = metrics.registry.getSingleMetric(metric.name) as unknown as { labelNames?: string[] };
    for (const l of m?.labelNames ?? []) labels.add(l);
    for (const v of metric.values) for (const l of Object.keys(v.labels)) labels.add(l);
    if (String(metric.type) === "histogram") {
      names.set(`${metric.name}_bucket`, new Set([...labels, "le"]));
      names.set(`${metric.name}_sum`, labels);
      names.set(`${metric.name}_count`, labels);
    } else names.set(metric.name, labels);
  }
  return names;
}
