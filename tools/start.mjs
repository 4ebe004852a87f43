#!/usr/bin/env node
// `npm start`: the main job. Pre-training and evaluation over the services land with issue 5; until then this starts
// every service on loopback, checks that each answers its health check, says what is not built yet,
// and stops them.
import { spawn } from "node:child_process";
import { once } from "node:events";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const services = ["data-worker", "adversary-bank", "trainer", "evaluator"];

async function start(name) {
  const child = spawn(
    process.execPath,
    ["--conditions=development", "--import", "tsx", join(root, "services", name, "src/main.ts")],
    {
      env: { ...process.env, ADCO_LOG_LEVEL: "info", ADCO_GRPC_PORT: "0", ADCO_METRICS_PORT: "0" },
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  const lines = createInterface({ input: child.stdout });
  for await (const line of lines) {
    try {
      const entry = JSON.parse(line);
      if (typeof entry.grpcPort === "number") {
        child.stdout.resume(); // keep draining the service's later log lines
        return { name, child, grpc: `127.0.0.1:${entry.grpcPort}`, metrics: entry.metricsPort };
      }
    } catch {
      /* not a log line */
    }
  }
  throw new Error(`${name} exited before listening`);
}

const { checkHealth } = await import("@adco/service-kit");
const running = [];
try {
  for (const name of services) running.push(await start(name));
  for (const s of running) {
    const health = await checkHealth(s.grpc);
    console.log(
      `${s.name.padEnd(15)} gRPC ${s.grpc}  metrics http://127.0.0.1:${s.metrics}/metrics  health ${health}`,
    );
  }
  console.log(
    "\nAll four services start and answer health checks. Built: the AdCo core (npm run -s experiment:fashion-mnist\n" +
      "pre-trains in one process), the data plane and the adversary bank. Not built yet: the trainer, the\n" +
      "evaluator and this command's pre-train + evaluate run over the services (issue 5).",
  );
} finally {
  for (const s of running) s.child.kill("SIGTERM");
  await Promise.all(running.map((s) => (s.child.exitCode === null ? once(s.child, "exit") : undefined)));
}
