import assert from "node:assert/strict";
import os from "node:os";
import { test } from "node:test";
import { cgroupCores, usableCores } from "./cores.js";

const files = (entries: Record<string, string>) => (path: string) => entries[path];

test("cgroup v2: the quota over the period, rounded up; max is unlimited", () => {
  assert.equal(cgroupCores(files({ "/sys/fs/cgroup/cpu.max": "200000 100000\n" })), 2);
  assert.equal(cgroupCores(files({ "/sys/fs/cgroup/cpu.max": "150000 100000\n" })), 2);
  assert.equal(cgroupCores(files({ "/sys/fs/cgroup/cpu.max": "50000 100000\n" })), 1);
  assert.equal(cgroupCores(files({ "/sys/fs/cgroup/cpu.max": "max 100000\n" })), undefined);
});

test("cgroup v1: cfs_quota_us over cfs_period_us; -1 is unlimited; no files is unlimited", () => {
  const v1 = (quota: string) =>
    files({ "/sys/fs/cgroup/cpu/cpu.cfs_quota_us": quota, "/sys/fs/cgroup/cpu/cpu.cfs_period_us": "100000" });
  assert.equal(cgroupCores(v1("400000")), 4);
  assert.equal(cgroupCores(v1("-1")), undefined);
  assert.equal(cgroupCores(files({})), undefined);
});

test("usableCores is at least 1 and never more than the CPUs this process may run on", () => {
  const cores = usableCores();
  assert.ok(cores >= 1 && cores <= os.availableParallelism(), `${cores}`);
});
