// The dashboard's HTTP server on its own: the page and uPlot are served from this machine, and the
// API answers a trainer it cannot reach with the gRPC status, not a hang or a crash. The page with
// real services in a real browser is test/dashboard.test.ts.
import assert from "node:assert/strict";
import { createServer } from "node:net";
import { after, before, describe, it } from "node:test";
import { evaluatorAt, trainerAt } from "../runs.js";
import { type Dashboard, startDashboard } from "./server.js";

/** A loopback port nothing listens on: bound, then closed. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe("dashboard server", () => {
  let dashboard: Dashboard;
  const clients: { close(): void }[] = [];
  before(async () => {
    const port = await closedPort();
    const trainer = trainerAt(`127.0.0.1:${port}`);
    const evaluator = evaluatorAt(`127.0.0.1:${port}`);
    clients.push(trainer, evaluator);
    dashboard = await startDashboard({ trainer, evaluator, datasetsBucket: "adco-datasets", port: 0 });
  });
  after(async () => {
    await dashboard.close();
    for (const c of clients) c.close();
  });

  it("serves the page and uPlot from local files", async () => {
    const page = await fetch(dashboard.url);
    assert.equal(page.status, 200);
    const html = await page.text();
    assert.match(html, /<script src="\/vendor\/uPlot\.iife\.min\.js">/);
    const uplot = await fetch(new URL("/vendor/uPlot.iife.min.js", dashboard.url));
    assert.equal(uplot.status, 200);
    assert.match(await uplot.text(), /uPlot/);
    const script = await fetch(new URL("/dashboard.js", dashboard.url));
    assert.match(script.headers.get("content-type") ?? "", /javascript/);
  });

  it("answers an unreachable trainer with UNAVAILABLE", async () => {
    const response = await fetch(new URL("/api/runs", dashboard.url));
    assert.equal(response.status, 503);
    const body = (await response.json()) as { code: string; message: string };
    assert.equal(body.code, "UNAVAILABLE");
    assert.ok(body.message.length > 0);
  });

  it("takes actions only as JSON, so that a form on another site cannot send them", async () => {
    const form = await fetch(new URL("/api/runs/r1/stop", dashboard.url), {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: "x=1",
    });
    assert.equal(form.status, 415);
    const start = await fetch(new URL("/api/runs", dashboard.url), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ dataset: "" }),
    });
    assert.equal(start.status, 400);
    assert.match(((await start.json()) as { message: string }).message, /dataset/);
  });

  it("serves evaluation plots only, and says when it has no object store", async () => {
    const response = await fetch(new URL("/api/objects/adco-checkpoints/runs/r1/status.json", dashboard.url));
    assert.equal(response.status, 404);
    assert.equal(((await response.json()) as { code: string }).code, "NOT_FOUND");
    assert.equal((await fetch(new URL("/nothing-here", dashboard.url))).status, 404);
  });

  it("streams the run list's errors to the page", async () => {
    const controller = new AbortController();
    const response = await fetch(new URL("/api/runs-stream", dashboard.url), { signal: controller.signal });
    assert.match(response.headers.get("content-type") ?? "", /text\/event-stream/);
    const reader = response.body!.getReader();
    let text = "";
    while (!text.includes("event: trainer-error"))
      text += new TextDecoder().decode((await reader.read()).value);
    controller.abort();
    assert.match(text, /"code":"UNAVAILABLE"/);
  });
});
