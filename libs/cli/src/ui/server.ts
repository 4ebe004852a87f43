// The web dashboard (`adco ui`, and started by `adco up` and `npm start`): one HTTP server that
// serves the page, uPlot from node_modules (nothing is fetched from the network at run time) and the
// API of api.ts. It holds no state of its own: every view is a gRPC call to the trainer or the
// evaluator, so it can be restarted, or run beside the CLI anywhere that reaches the services.
import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { createRequire } from "node:module";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { type DashboardClients, handleApi } from "./api.js";
import { RunListFeed } from "./run-list.js";

export interface DashboardOptions extends DashboardClients {
  /** Interface to listen on; loopback unless told otherwise (the buttons control training). */
  readonly host?: string;
  /** 0: a free port. */
  readonly port?: number;
}

export interface Dashboard {
  readonly url: string;
  readonly server: Server;
  close(): Promise<void>;
}

/** The dashboard's default port under `adco up` and `adco ui`. */
export const DEFAULT_DASHBOARD_PORT = 8080;

// From src/ui/server.ts and from dist/ui/server.js alike, ../../ is the package's root.
const STATIC_DIR = fileURLToPath(new URL("../../static/dashboard/", import.meta.url));
const require = createRequire(import.meta.url);

/** The files the page loads, by URL path; read once, at start. */
function staticFiles(): Map<string, { body: Buffer; type: string }> {
  const files = new Map<string, { body: Buffer; type: string }>();
  const add = (path: string, file: string, type: string) =>
    files.set(path, { body: readFileSync(file), type });
  add("/", `${STATIC_DIR}index.html`, "text/html; charset=utf-8");
  add("/dashboard.js", `${STATIC_DIR}dashboard.js`, "text/javascript; charset=utf-8");
  add("/dashboard.css", `${STATIC_DIR}dashboard.css`, "text/css; charset=utf-8");
  add("/vendor/uPlot.iife.min.js", require.resolve("uplot/dist/uPlot.iife.min.js"), "text/javascript");
  add("/vendor/uPlot.min.css", require.resolve("uplot/dist/uPlot.min.css"), "text/css");
  return files;
}

export async function startDashboard(options: DashboardOptions): Promise<Dashboard> {
  const files = staticFiles();
  const runList = new RunListFeed(options.trainer);
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? "/", "http://dashboard").pathname;
    const file = files.get(path);
    if (file && req.method === "GET") {
      res.writeHead(200, { "content-type": file.type, "cache-control": "no-cache" });
      res.end(file.body);
      return;
    }
    void handleApi(options, runList, req, res, path).then((handled) => {
      if (handled) return;
      res.writeHead(404, { "content-type": "text/plain; charset=utf-8" });
      res.end(`no ${path}\n`);
    });
  });
  const host = options.host ?? "127.0.0.1";
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? DEFAULT_DASHBOARD_PORT, host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const shownHost = host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host;
  return {
    url: `http://${shownHost.includes(":") ? `[${shownHost}]` : shownHost}:${port}/`,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        // Event streams stay open until their browser leaves: end them with the server.
        runList.stop();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
