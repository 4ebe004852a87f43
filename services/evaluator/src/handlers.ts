// Evaluator handlers: Evaluate streams one evaluation; FollowRun evaluates a run's checkpoints as
// they are published (the latest at the start, then each new one) until the client cancels. The
// raw-pixel scores are cached for the life of the handlers (raw-pixels.ts).
import { setTimeout as sleep } from "node:timers/promises";
import { EncoderArch } from "@adco/proto/common";
import type { EvaluateEvent, EvaluateRequest, EvaluatorService } from "@adco/proto/evaluator";
import {
  invalidArgument,
  requireEnum,
  requireId,
  requireNonEmpty,
  requirePresent,
  requireRange,
  type ServiceHandlers,
} from "@adco/service-kit";
import { listCheckpoints, type ObjectStore, storageRpcError } from "@adco/storage";
import { evaluationEvents, type EvaluationOptions } from "./evaluate.js";
import { RawPixelsCache } from "./raw-pixels.js";

export function checkEvaluateRequest(request: EvaluateRequest, prefix = ""): EvaluateRequest {
  if (request.checkpoint) requireId(request.checkpoint.runId, `${prefix}checkpoint.run_id`);
  else if (request.randomInit)
    requireEnum(request.randomInit.encoder, EncoderArch, `${prefix}random_init.encoder`);
  else if (prefix === "") throw invalidArgument("encoder: set checkpoint or random_init");
  for (const name of ["train", "test"] as const) {
    const dataset = requirePresent(request[name], `${prefix}${name}`);
    requireNonEmpty(dataset.bucket, `${prefix}${name}.bucket`);
    requireNonEmpty(dataset.name, `${prefix}${name}.name`);
  }
  if (!request.knn?.enabled && !request.linear?.enabled) {
    throw invalidArgument(`${prefix}knn, ${prefix}linear: enable at least one of them`);
  }
  if (request.knn?.enabled) {
    requireRange(request.knn.k, `${prefix}knn.k`, 0, 100_000);
    requireRange(request.knn.temperature, `${prefix}knn.temperature`, 0);
  }
  if (request.linear?.enabled) {
    requireRange(request.linear.epochs, `${prefix}linear.epochs`, 0, 10_000);
    requireRange(request.linear.lr, `${prefix}linear.lr`, 0);
    requireRange(request.linear.weightDecay, `${prefix}linear.weight_decay`, 0);
  }
  return request;
}

async function* withStatuses(events: AsyncGenerator<EvaluateEvent>): AsyncGenerator<EvaluateEvent> {
  try {
    yield* events;
  } catch (e) {
    throw storageRpcError(e);
  }
}

const FOLLOW_POLL_MS = 3000;

export function evaluatorHandlers(deps: {
  store: ObjectStore;
  rawPixelsCache?: EvaluationOptions["rawPixelsCache"];
  log?: EvaluationOptions["log"];
}): ServiceHandlers<typeof EvaluatorService> {
  const options: EvaluationOptions = {
    rawPixelsCache: deps.rawPixelsCache ?? new RawPixelsCache(),
    log: deps.log,
  };
  return {
    async *evaluate(request) {
      checkEvaluateRequest(request);
      yield* withStatuses(evaluationEvents(deps.store, request, options));
    },
    async *followRun(request, ctx) {
      requireNonEmpty(request.bucket, "bucket");
      requireId(request.runId, "run_id");
      const template = checkEvaluateRequest(requirePresent(request.template, "template"), "template.");
      let lastStep = -1;
      try {
        while (!ctx.signal.aborted) {
          const all = await listCheckpoints(deps.store, request.bucket, request.runId);
          const newest = all.at(-1);
          if (newest && newest.step > lastStep) {
            lastStep = newest.step;
            yield* evaluationEvents(
              deps.store,
              {
                ...template,
                randomInit: undefined,
                checkpoint: {
                  runId: request.runId,
                  step: newest.step,
                  manifest: { bucket: request.bucket, key: newest.key, sizeBytes: 0, sha256: "" },
                },
              },
              options,
            );
            continue;
          }
          // timers/promises removes its abort listener after each wait (no pile-up over a long follow).
          await sleep(FOLLOW_POLL_MS, undefined, { signal: ctx.signal }).catch(() => {});
        }
      } catch (e) {
        throw storageRpcError(e);
      }
    },
  };
}
