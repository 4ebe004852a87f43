// Prometheus metrics over HTTP (prom-client): process metrics plus per-RPC counters and latencies.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { collectDefaultMetrics, Counter, Histogram, Registry } from "prom-client";

export class Metrics {
  readonly registry = new Registry();
  readonly handled: Counter<"method" | "code">;
  readonly handlingSeconds: Histogram<"method">;

  constructor(service: string) {
    this.registry.setDefaultLabels({ service });
    collectDefaultMetrics({ register: this.registry, prefix: "adco_" });
    this.handled = new Counter({
      name: "adco_grpc_server_handled_total",
      help: "RPCs completed, by method and status code.",
      labelNames: ["method", "code"],
      registers: [this.registry],
    });
    this.handlingSeconds = new Histogram({
      name: "adco_grpc_server_handling_seconds",
      help: "Time from the start of an RPC to its status, by method.",
      labelNames: ["method"],
      buckets: [0.001, 0.005, 0.02, 0.1, 0.5, 2, 10, 60, 600],
      registers: [this.registry],
    });
  }

  /** Serves GET /metrics on host:port (0 = any free port); resolves to the bound port. */
  async listen(host: string, port: number): Promise<{ port: number; close: () => Promise<void> }> {
    const server: Server = createServer((req, res) => {
      if (req.method === "GET" && req.url?.split("?")[0] === "/metrics") {
        this.registry
          .metrics()
          .then((body) => {
            res.writeHead(200, { "content-type": this.registry.contentType });
            res.end(body);
          })
          .catch((e: Error) => {
            res.writeHead(500, { "content-type": "text/plain" });
            res.end(e.message);
          });
        return;
      }
      res.writeHead(404, { "content-type": "text/plain" });
      res.end("not found: metrics are at /metrics\n");
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, host, () => resolve());
    });
    return {
      port: (server.address() as AddressInfo).port,
      close: () =>
        new Promise<void>((resolve) => {
          server.closeAllConnections();
          server.close(() => resolve());
        }),
    };
  }
}
