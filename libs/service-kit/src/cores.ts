// The CPU cores this process may use: the fewest of the CPUs it may be scheduled on and its cgroup's
// CPU quota, rounded up. In a pod, os.cpus() and os.availableParallelism() count the node's cores,
// while the CPU limit is the cgroup quota (cpu.max on cgroup v2, cfs_quota_us/cfs_period_us on v1).
import { readFileSync } from "node:fs";
import os from "node:os";
import { field } from "./config.js";

/** The cores a cgroup quota allows, rounded up; undefined when unlimited or unreadable. */
export function cgroupCores(
  read: (path: string) => string | undefined = (path) => {
    try {
      return readFileSync(path, "utf8");
    } catch {
      return undefined;
    }
  },
): number | undefined {
  const v2 = read("/sys/fs/cgroup/cpu.max")?.trim().split(/\s+/);
  if (v2 && v2.length === 2) return quotaCores(v2[0]!, v2[1]!);
  const quota = read("/sys/fs/cgroup/cpu/cpu.cfs_quota_us")?.trim();
  const period = read("/sys/fs/cgroup/cpu/cpu.cfs_period_us")?.trim();
  return quota && period ? quotaCores(quota, period) : undefined;
}

function quotaCores(quota: string, period: string): number | undefined {
  const q = Number(quota);
  const p = Number(period);
  if (quota === "max" || !(q > 0) || !(p > 0)) return undefined;
  return Math.max(1, Math.ceil(q / p));
}

/** The cores this process may use (at least 1). */
export function usableCores(): number {
  const cores = os.availableParallelism();
  return Math.max(1, Math.min(cores, cgroupCores() ?? cores));
}

/** The config key of a service that computes with tfjs (trainer, adversary bank, evaluator). */
export const threadsConfig = {
  threads: field.int({
    default: 0,
    min: 0,
    doc: "threads of the wasm backend (more than 8 count as 8: its pool has 8 workers); 0: the cores this process may use (in a pod: its CPU limit)",
  }),
};

/** The threads a service asks of its backend: the configured count, or its usable cores when 0. */
export function threadsFromConfig(config: { readonly threads: number }): number {
  return config.threads > 0 ? config.threads : usableCores();
}
