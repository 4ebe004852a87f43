// The dashboard's HTTP API: each route is one call of the trainer's or evaluator's gRPC API, the
// same calls the CLI makes, answered as proto JSON. Live views are server-sent event streams fed by
// WatchRun (a run's events) and by ListRuns (the run list, sent when it changes).
import type { IncomingMessage, ServerResponse } from "node:http";
import { EvaluationResult, type EvaluatorClient } from "@adco/proto/evaluator";
import { CheckpointRef } from "@adco/proto/common";
import { ListRunsResponse, Run, RunConfig, RunEvent, type TrainerClient } from "@adco/proto/trainer";
import { unaryCall } from "@adco/service-kit";
import { followRun } from "../follow.js";
import { evaluate } from "../runs.js";
import {
  checkpointEvaluation,
  listEvaluations,
  readEvaluationObject,
  type EvaluationStore,
} from "./evaluations.js";
import { ApiError, apiErrorOf } from "./errors.js";
import type { RunListFeed } from "./run-list.js";
import { openEventStream } from "./sse.js";

export interface DashboardClients {
  readonly trainer: TrainerClient;
  readonly evaluator: EvaluatorClient;
  /** Where evaluations' results and plots are read from; without it the page shows scores only. */
  readonly store?: EvaluationStore;
  /** The bucket of the data sets a new run names (the CLI's datasetsBucket). */
  readonly datasetsBucket: string;
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json; charset=utf-8", "cache-control": "no-store" });
  res.end(text);
}

async function readJsonBody(req: IncomingMessage): Promise<Record<string, unknown>> {
  // Only JSON bodies: a form on another site cannot send this content type without a CORS
  // preflight, which this server never grants, so a page elsewhere cannot press the buttons.
  if (!(req.headers["content-type"] ?? "").startsWith("application/json"))
    throw new ApiError(415, "INVALID_ARGUMENT", "send application/json");
  let text = "";
  for await (const chunk of req) {
    text += chunk;
    if (text.length > 64 * 1024) throw new ApiError(413, "INVALID_ARGUMENT", "body over 64 KiB");
  }
  if (!text) return {};
  try {
    const value = JSON.parse(text) as unknown;
    if (typeof value !== "object" || value === null || Array.isArray(value)) throw new Error("not an object");
    return value as Record<string, unknown>;
  } catch (e) {
    throw new ApiError(400, "INVALID_ARGUMENT", `body: ${(e as Error).message}`);
  }
}

/**
 * A run's events, replayed from its start, then live until it ends or the browser leaves; across a
 * rollout to the next trainer (follow.ts), saying "watch-wait" while no trainer holds the run.
 */
function streamRunEvents(clients: DashboardClients, runId: string, res: ServerResponse): void {
  const stream = openEventStream(res);
  const left = new AbortController();
  stream.onClose(() => left.abort());
  followRun(
    clients.trainer,
    runId,
    {
      event: (event) => stream.send("run-event", RunEvent.toJSON(event)),
      waiting: () => stream.send("watch-wait", { runId }),
    },
    left.signal,
  ).then(
    // The run ended: the browser keeps what it has; EventSource would reconnect and replay, so say so.
    () => {
      stream.send("watch-end", { runId });
      stream.close();
    },
    (e: unknown) => {
      if (left.signal.aborted) return;
      const error = apiErrorOf(e);
      stream.send("watch-error", { code: error.code, message: error.message });
      stream.close();
    },
  );
}

const optionalCount = (body: Record<string, unknown>, name: string): number | undefined => {
  const value = body[name];
  if (value === undefined || value === null || value === "") return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1)
    throw new ApiError(400, "INVALID_ARGUMENT", `${name}: a whole number >= 1`);
  return n;
};

async function startRun(clients: DashboardClients, body: Record<string, unknown>): Promise<unknown> {
  const dataset = typeof body.dataset === "string" ? body.dataset.trim() : "";
  if (!dataset) throw new ApiError(400, "INVALID_ARGUMENT", "dataset: the stored data set to train on");
  const config = RunConfig.fromPartial({
    preset: typeof body.preset === "string" && body.preset ? body.preset : "fashion-mnist",
    dataset: { bucket: clients.datasetsBucket, name: dataset },
    epochs: optionalCount(body, "epochs"),
    batchSize: optionalCount(body, "batchSize"),
  });
  const runId = typeof body.runId === "string" ? body.runId : "";
  const trainer = clients.trainer;
  return Run.toJSON(await unaryCall(trainer.startRun.bind(trainer), { runId, config }));
}

/** Routes /api/...; false when the path is not the API's. */
export async function handleApi(
  clients: DashboardClients,
  runList: RunListFeed,
  req: IncomingMessage,
  res: ServerResponse,
  path: string,
): Promise<boolean> {
  const trainer = clients.trainer;
  const method = req.method ?? "GET";
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  if (parts[0] !== "api") return false;
  const [, what, runId, action, ...more] = parts;
  try {
    if (what === "runs" && runId === undefined && method === "GET")
      sendJson(res, 200, ListRunsResponse.toJSON(await unaryCall(trainer.listRuns.bind(trainer), {})));
    else if (what === "runs" && runId === undefined && method === "POST")
      sendJson(res, 200, await startRun(clients, await readJsonBody(req)));
    else if (what === "runs-stream" && method === "GET") runList.subscribe(openEventStream(res));
    else if (what === "runs" && runId && action === undefined && method === "GET")
      sendJson(res, 200, Run.toJSON(await unaryCall(trainer.getRun.bind(trainer), { runId })));
    else if (what === "runs" && runId && action === "events" && method === "GET")
      streamRunEvents(clients, runId, res);
    else if (what === "runs" && runId && action === "stop" && method === "POST") {
      await readJsonBody(req);
      sendJson(res, 200, Run.toJSON(await unaryCall(trainer.stopRun.bind(trainer), { runId })));
    } else if (what === "runs" && runId && action === "resume" && method === "POST") {
      await readJsonBody(req);
      sendJson(res, 200, Run.toJSON(await unaryCall(trainer.startRun.bind(trainer), { runId })));
    } else if (what === "runs" && runId && action === "checkpoint" && method === "POST") {
      await readJsonBody(req);
      // The checkpoint is written at the next step boundary: give a slow step time.
      const ref = await unaryCall(trainer.checkpointNow.bind(trainer), { runId }, 300_000);
      sendJson(res, 200, CheckpointRef.toJSON(ref));
    } else if (what === "runs" && runId && action === "evaluate" && method === "POST") {
      await readJsonBody(req);
      const run = await unaryCall(trainer.getRun.bind(trainer), { runId });
      const result = await evaluate(clients.evaluator, checkpointEvaluation(run));
      sendJson(res, 200, EvaluationResult.toJSON(result));
    } else if (what === "runs" && runId && action === "evaluations" && method === "GET") {
      const run = await unaryCall(trainer.getRun.bind(trainer), { runId });
      sendJson(res, 200, { evaluations: clients.store ? await listEvaluations(clients.store, run) : [] });
    } else if (what === "objects" && method === "GET") {
      const [bucket, ...key] = [runId, action, ...more];
      if (!clients.store)
        throw new ApiError(404, "NOT_FOUND", "the dashboard was started without an object store");
      const object = await readEvaluationObject(clients.store, bucket ?? "", key.join("/"));
      res.writeHead(200, { "content-type": object.contentType, "cache-control": "max-age=3600" });
      res.end(object.bytes);
    } else throw new ApiError(404, "NOT_FOUND", `no ${method} ${path}`);
  } catch (e) {
    const error = apiErrorOf(e);
    if (!res.headersSent) sendJson(res, error.status, { code: error.code, message: error.message });
    else res.end();
  }
  return true;
}
