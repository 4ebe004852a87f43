// Evaluator handlers: requests are checked now; evaluation lands with issue 5.
import { EncoderArch } from "@adco/proto/common";
import type { EvaluateRequest, EvaluatorService } from "@adco/proto/evaluator";
import {
  invalidArgument,
  requireEnum,
  requireId,
  requireNonEmpty,
  requirePresent,
  requireRange,
  type ServiceHandlers,
  unimplemented,
} from "@adco/service-kit";

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
    requireRange(request.linear.lr, `${prefix}linear.lr`, 0);
    requireRange(request.linear.weightDecay, `${prefix}linear.weight_decay`, 0);
  }
  return request;
}

export function evaluatorHandlers(): ServiceHandlers<typeof EvaluatorService> {
  return {
    async *evaluate(request) {
      checkEvaluateRequest(request);
      yield* [];
      throw unimplemented("Evaluate: evaluation is not built yet (issue 5)");
    },
    async *followRun(request) {
      requireNonEmpty(request.bucket, "bucket");
      requireId(request.runId, "run_id");
      checkEvaluateRequest(requirePresent(request.template, "template"), "template.");
      yield* [];
      throw unimplemented("FollowRun: not built yet (issue 5)");
    },
  };
}
