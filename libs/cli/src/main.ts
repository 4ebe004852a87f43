#!/usr/bin/env node
// adco: the command line of the system. Object-store settings come from ADCO_S3_* (see --help);
// service addresses from --trainer/--evaluator or ADCO_TRAINER_ADDRESS/ADCO_EVALUATOR_ADDRESS.
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import * as grpc from "@grpc/grpc-js";
import { ENCODER_ARCH_BY_NAME, runConfigFromJson } from "@adco/proto";
import type { Accuracy, EncoderArch } from "@adco/proto/common";
import { type EvaluateEvent, EvaluateRequest } from "@adco/proto/evaluator";
import { Method, RunConfig, RunState, type TrainerClient } from "@adco/proto/trainer";
import { ConfigError, describeConfig, loadConfig, unaryCall } from "@adco/service-kit";
import {
  checkpointManifestKey,
  listDatasets,
  ObjectStore,
  readManifest,
  storageConfig,
  StorageError,
} from "@adco/storage";
import {
  clientTls,
  credentialsFor,
  CredentialsError,
  DEFAULT_UP_DIRECTORY,
  tlsDirectoryOf,
} from "./credentials.js";
import { describeManifest, IMPORT_FORMATS, type ImportFormat, importDataset, ImportError } from "./import.js";
import {
  evaluate,
  evaluatorAt,
  exportEncoder,
  formatAccuracy,
  formatPerClass,
  formatVersus,
  trainerAt,
  watchRun,
} from "./runs.js";
import { exportPlots, s3Address } from "./plots.js";
import { DEFAULT_PORTS, startLocalSystem } from "./system.js";
import { startSystemDashboard } from "./ui/local.js";
import { DEFAULT_DASHBOARD_PORT, startDashboard } from "./ui/server.js";
const HELP = `adco: self-supervised pre-training with Adversarial Contrast

Usage:
  adco up [--dir DIR]                              every service and an S3 server on loopback, and the dashboard (Ctrl-C stops)
  adco ui [--port N] [--host H]                    the web dashboard of the trainer and evaluator (default 127.0.0.1:${DEFAULT_DASHBOARD_PORT})
  adco train --dataset NAME [--preset P] [...]     start a run, then watch it (--detach: just start)
  adco train --run-id ID [--step N]                resume a stopped or failed run from its newest intact checkpoint (or step N's)
  adco watch RUN                                   follow a run's progress until it ends
  adco stop RUN                                    stop a run after its current step (a checkpoint is written)
  adco runs                                        list runs
  adco eval RUN [--step N] [--plots DIR]          kNN and linear probe of a run's checkpoint (latest by default),
                                                   beside random init and the raw pixels; --plots saves its plots in DIR
  adco eval --random-init resnet-mini              the same for random weights, beside the raw pixels
  adco export RUN [--step N] --out DIR             the query encoder as a tfjs LayersModel (model.json + shards)
  adco dataset import --format idx|cifar10|cifar100|imagefolder --name NAME DIR   store a local data set
  adco dataset ls                                  list stored data sets
  adco dataset inspect NAME                        classes, splits, shards, skipped inputs

Train options (unset ones take the preset's value):
  --preset P          fashion-mnist (default), fashion-mnist-moco, paper-imagenet
  --config FILE       a RunConfig as JSON (proto JSON names); flags override it
  --method M          adco or moco
  --epochs N  --batch-size N  --bank-size K  --lr X  --seed N  --checkpoint-every N
  --run-id ID         name the run (default: generated); an existing run resumes
  --step N            with --run-id: resume from the checkpoint at step N instead of the newest intact one

Eval options:
  --train NAME --test NAME   labelled splits (default: the run's dataset, splits train and test)
  --no-linear / --no-knn     skip one of the two classifiers
  --plots DIR                copy the evaluation's plots (loss, accuracy, embedding; .png and .svg) into DIR

Other options:
  --trainer HOST:PORT     trainer address (default $ADCO_TRAINER_ADDRESS or 127.0.0.1:${DEFAULT_PORTS.trainer})
  --evaluator HOST:PORT   evaluator address (default $ADCO_EVALUATOR_ADDRESS or 127.0.0.1:${DEFAULT_PORTS.evaluator})
  --shard-mib N           target shard size for import (default 16; at most 63)
  --classes A,B           class names for import (default: from the format)
  -h, --help              this help

TLS (the services speak mutual TLS; docs/security.md):
  ADCO_TLS_CA_FILE        the cluster CA to check the trainer and evaluator against (adco up's is found by itself)
  ADCO_AUTH_TOKEN         the operators' bearer token for train, stop and eval (or ADCO_AUTH_TOKEN_FILE)
  ADCO_TLS_MODE=plaintext services started by hand in plaintext

Object store (environment or the ADCO_CONFIG file):
${describeConfig(storageConfig)}`;

class UsageError extends Error {}

function intOption(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0)
    throw new UsageError(`--${name}: a whole number, got ${JSON.stringify(value)}`);
  return n;
}

function numberOption(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n)) throw new UsageError(`--${name}: a number, got ${JSON.stringify(value)}`);
  return n;
}

/**
 * gRPC errors name the service's cause; add the fix when the service is not there at all. An
 * UNAVAILABLE the service itself answered (say, its object store is down) came with its response
 * headers; one that grpc-js made up because nothing answered has none.
 */
function explain(e: grpc.ServiceError, address: string, what: string): Error {
  const answered = (e.metadata?.get("content-type").length ?? 0) > 0;
  if (e.code === grpc.status.UNAVAILABLE && !answered) {
    // Something listens but the connection failed: most often a TLS handshake (no CA, another CA's).
    const listening = !/ECONNREFUSED|ENOTFOUND|EAI_AGAIN/.test(e.details);
    return new UsageError(
      `cannot reach the ${what} at ${address}: ` +
        (listening
          ? `it does not complete a connection (${e.details}); it speaks TLS unless started in plaintext, so check ADCO_TLS_CA_FILE and ADCO_TLS_MODE`
          : `start the system with \`adco up\` or pass --${what} HOST:PORT`),
    );
  }
  return new UsageError(`${what}: ${grpc.status[e.code]}: ${e.details}`);
}

/** Runs work against a service client, explains its gRPC errors, and closes the client. */
async function withService<C extends grpc.Client, T>(
  client: C,
  address: string,
  what: "trainer" | "evaluator",
  work: (client: C) => Promise<T>,
): Promise<T> {
  try {
    return await work(client);
  } catch (e) {
    if ((e as grpc.ServiceError).code !== undefined) throw explain(e as grpc.ServiceError, address, what);
    throw e;
  } finally {
    client.close();
  }
}

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      help: { type: "boolean", short: "h" },
      format: { type: "string" },
      name: { type: "string" },
      classes: { type: "string" },
      "shard-mib": { type: "string" },
      dir: { type: "string" },
      dataset: { type: "string" },
      preset: { type: "string" },
      config: { type: "string" },
      method: { type: "string" },
      epochs: { type: "string" },
      "batch-size": { type: "string" },
      "bank-size": { type: "string" },
      lr: { type: "string" },
      seed: { type: "string" },
      "checkpoint-every": { type: "string" },
      "run-id": { type: "string" },
      detach: { type: "boolean" },
      step: { type: "string" },
      out: { type: "string" },
      train: { type: "string" },
      test: { type: "string" },
      "random-init": { type: "string" },
      "no-linear": { type: "boolean" },
      "no-knn": { type: "boolean" },
      plots: { type: "string" },
      trainer: { type: "string" },
      evaluator: { type: "string" },
      port: { type: "string" },
      host: { type: "string" },
    },
  });
  const [group, command, ...rest] = positionals;
  if (values.help || !group) {
    console.log(HELP);
    return 0;
  }
  const config = loadConfig(storageConfig, { ignoreUnknownEnv: true });
  const store = () =>
    new ObjectStore({
      endpoint: config.s3Endpoint,
      accessKey: config.s3AccessKey,
      secretKey: config.s3SecretKey,
      region: config.s3Region,
    });
  const trainerAddress =
    values.trainer ?? process.env.ADCO_TRAINER_ADDRESS ?? `127.0.0.1:${DEFAULT_PORTS.trainer}`;
  const evaluatorAddress =
    values.evaluator ?? process.env.ADCO_EVALUATOR_ADDRESS ?? `127.0.0.1:${DEFAULT_PORTS.evaluator}`;
  // `adco up`'s certificates are used without being named only for `adco up`'s own addresses.
  const trainerCredentials = () =>
    credentialsFor(
      clientTls(process.env, values.trainer === undefined && process.env.ADCO_TRAINER_ADDRESS === undefined),
      "trainer",
    );
  const evaluatorCredentials = () =>
    credentialsFor(
      clientTls(
        process.env,
        values.evaluator === undefined && process.env.ADCO_EVALUATOR_ADDRESS === undefined,
      ),
      "evaluator",
    );
  const onTrainer = <T>(work: (client: TrainerClient) => Promise<T>): Promise<T> =>
    withService(trainerAt(trainerAddress, trainerCredentials()), trainerAddress, "trainer", work);
  const positional = (what: string) => {
    const value = command;
    if (!value) throw new UsageError(`adco ${group} ${what}: give the ${what}`);
    return value;
  };

  switch (group) {
    case "dataset":
      return datasetCommand(command, rest, values, store(), config.datasetsBucket);
    case "up": {
      const directory = values.dir ?? DEFAULT_UP_DIRECTORY;
      const system = await startLocalSystem({
        directory,
        evaluateEpochs: true,
        onStarted: (name, address) => console.log(`${name.padEnd(15)} ${address}`),
      });
      console.log(`logs in ${system.logDirectory}; object store data in ${directory}/s3`);
      console.log(
        `use: ADCO_S3_ENDPOINT=${system.s3.endpoint} ADCO_S3_ACCESS_KEY=${system.s3.accessKey} ADCO_S3_SECRET_KEY=${system.s3.secretKey} adco ...`,
      );
      const tls = tlsDirectoryOf(directory);
      console.log(
        directory === DEFAULT_UP_DIRECTORY
          ? `mutual TLS with a throwaway CA in ${tls} (deleted at stop); adco finds it and the operators' token there`
          : `mutual TLS with a throwaway CA in ${tls} (deleted at stop); for adco: ADCO_TLS_CA_FILE=${tls}/ca.crt ADCO_AUTH_TOKEN_FILE=${tls}/token`,
      );
      const dashboard = await startSystemDashboard(system, DEFAULT_DASHBOARD_PORT);
      console.log(`dashboard       ${dashboard.url}`);
      console.log("Ctrl-C stops everything (the trainer checkpoints first).");
      await new Promise<void>((resolve) => {
        process.once("SIGINT", resolve);
        process.once("SIGTERM", resolve);
      });
      console.log("stopping...");
      await dashboard.close();
      await system.stop();
      return 0;
    }
    case "ui": {
      const dashboard = await startDashboard({
        trainer: trainerAt(trainerAddress, trainerCredentials()),
        evaluator: evaluatorAt(evaluatorAddress, evaluatorCredentials()),
        store: { store: store() },
        datasetsBucket: config.datasetsBucket,
        host: values.host,
        port: intOption(values.port, "port") ?? DEFAULT_DASHBOARD_PORT,
      });
      console.log(`dashboard ${dashboard.url} (trainer ${trainerAddress}, evaluator ${evaluatorAddress})`);
      await new Promise<void>((resolve) => {
        process.once("SIGINT", resolve);
        process.once("SIGTERM", resolve);
      });
      await dashboard.close();
      return 0;
    }
    case "train": {
      const runId = values["run-id"] ?? "";
      const resumeStep = intOption(values.step, "step");
      if (resumeStep !== undefined && !runId)
        throw new UsageError("--step N resumes a run from its checkpoint at step N: give --run-id too");
      let runConfig: RunConfig | undefined;
      if (values.dataset || values.config || !runId) {
        const base = values.config ? readRunConfig(values.config) : RunConfig.fromPartial({});
        const dataset = values.dataset ?? base.dataset?.name;
        if (!dataset) throw new UsageError("--dataset: the stored data set to train on (adco dataset ls)");
        const method =
          values.method === undefined
            ? base.method
            : values.method === "moco"
              ? Method.METHOD_MOCO_V2
              : values.method === "adco"
                ? Method.METHOD_ADCO
                : undefined;
        if (method === undefined) throw new UsageError("--method: adco or moco");
        runConfig = {
          ...base,
          preset: values.preset ?? (base.preset || "fashion-mnist"),
          dataset: { bucket: base.dataset?.bucket || config.datasetsBucket, name: dataset },
          method,
          epochs: intOption(values.epochs, "epochs") ?? base.epochs,
          batchSize: intOption(values["batch-size"], "batch-size") ?? base.batchSize,
          bankSize: intOption(values["bank-size"], "bank-size") ?? base.bankSize,
          lr: numberOption(values.lr, "lr") ?? base.lr,
          seed: intOption(values.seed, "seed") ?? base.seed,
          checkpointEverySteps:
            intOption(values["checkpoint-every"], "checkpoint-every") ?? base.checkpointEverySteps,
        };
      }
      return onTrainer(async (client) => {
        const run = await unaryCall(client.startRun.bind(client), { runId, config: runConfig, resumeStep });
        console.log(`run ${run.runId}: ${run.totalSteps || "?"} steps; adco watch ${run.runId} to follow it`);
        if (values.detach) return 0;
        const summary = await watchRun(client, run.runId);
        return summary.run.state === RunState.RUN_STATE_FAILED ? 1 : 0;
      });
    }
    case "watch": {
      const runId = positional("run");
      return onTrainer(async (client) => {
        const summary = await watchRun(client, runId);
        return summary.run.state === RunState.RUN_STATE_FAILED ? 1 : 0;
      });
    }
    case "stop": {
      const runId = positional("run");
      return onTrainer(async (client) => {
        const run = await unaryCall(client.stopRun.bind(client), { runId });
        console.log(
          `run ${run.runId}: stopping after step ${run.step}; adco watch ${run.runId} shows it end`,
        );
        return 0;
      });
    }
    case "runs": {
      return onTrainer(async (client) => {
        const { runs } = await unaryCall(client.listRuns.bind(client), {});
        if (runs.length === 0) console.log("no runs yet: adco train --dataset NAME starts one");
        for (const r of runs) {
          const state = RunState[r.state].replace("RUN_STATE_", "").toLowerCase();
          console.log(
            `${r.runId}\t${state}\tstep ${r.step}/${r.totalSteps}\t${r.config?.preset ?? ""}\t${r.config?.dataset?.name ?? ""}\t${new Date(r.createdUnixMs).toISOString()}${r.error ? `\t${r.error}` : ""}`,
          );
        }
        return 0;
      });
    }
    case "eval": {
      const trainer = () => trainerAt(trainerAddress, trainerCredentials());
      const { request, randomInit } = await evalRequest(values, command, trainerAddress, trainer, config);
      if (values.plots !== undefined && !request.writeResults)
        throw new UsageError("--plots: only a run's checkpoint is evaluated with plots (adco eval RUN)");
      const evaluator = evaluatorAt(evaluatorAddress, evaluatorCredentials());
      return withService(evaluator, evaluatorAddress, "evaluator", async (client) => {
        const progress = (what: string) => (event: EvaluateEvent) => {
          const p = event.progress!;
          process.stderr.write(`${what}${p.phase} ${p.done}/${p.total}\n`);
        };
        // The random-init baseline first; the raw pixels' scores come with the encoder's (cached by
        // the evaluator, so a second `adco eval` of the same data does not compute them again).
        const baseline = randomInit && (await evaluate(client, randomInit, progress("random init: ")));
        const result = await evaluate(client, request, progress(""));
        // Three rows: the encoder, the same architecture at random init, the raw pixels.
        const rows: [string, { knn?: Accuracy; linear?: Accuracy } | undefined][] = [
          [
            request.checkpoint
              ? `${request.checkpoint.runId} step ${request.checkpoint.step}`
              : "random init",
            result,
          ],
          ...(baseline ? [["random init", baseline] as [string, typeof baseline]] : []),
          ["raw pixels", result.rawPixels],
        ];
        const width = Math.max(...rows.map(([name]) => name.length)) + 2;
        for (const [name, scores] of rows) {
          console.log(`${name.padEnd(width)}${formatAccuracy("kNN (k 200)", scores?.knn)}`);
          console.log(`${"".padEnd(width)}${formatAccuracy("linear probe", scores?.linear)}`);
        }
        for (const versus of [
          baseline && formatVersus("random init", result, baseline),
          formatVersus("raw pixels", result, result.rawPixels),
        ])
          if (versus) console.log(versus);
        const best = result.linear ?? result.knn;
        if (best) console.log(`per class: ${formatPerClass(best, result.classNames)}`);
        if (result.results) console.log(`results: ${s3Address(result.results)}`);
        if (values.plots === undefined) {
          for (const plot of result.plots) console.log(`plot: ${s3Address(plot)}`);
          if (result.plots.length > 0) console.log("(--plots DIR saves them as local files)");
        } else {
          for (const { ref, path } of await exportPlots(store(), result.plots, values.plots))
            console.log(`plot: ${path} (from ${s3Address(ref)})`);
        }
        return 0;
      });
    }
    case "export": {
      const runId = positional("run");
      if (!values.out) throw new UsageError("--out DIR: where to write model.json and its weight shards");
      const result = await exportEncoder(
        store(),
        config.checkpointsBucket,
        runId,
        intOption(values.step, "step"),
        values.out,
      );
      console.log(`step ${result.step}: ${result.files.join(", ")}`);
      console.log(`load it with tf.loadLayersModel("file://${values.out}/model.json")`);
      return 0;
    }
    default:
      throw new UsageError(`unknown command ${JSON.stringify(group)}; see adco --help`);
  }
}

/** A RunConfig from a JSON file; a key RunConfig does not have is an error, not silently dropped. */
function readRunConfig(path: string): RunConfig {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    throw new UsageError(`--config ${path}: ${(e as Error).message}`);
  }
  try {
    return runConfigFromJson(json);
  } catch (e) {
    throw new UsageError(`--config ${path}: ${(e as Error).message}`);
  }
}

/**
 * What `adco eval` asks the evaluator: the encoder, with the raw pixels beside it; for a checkpoint,
 * also the same architecture at random init (seed 0, as `npm start` scores it).
 */
async function evalRequest(
  values: Record<string, string | boolean | undefined>,
  runId: string | undefined,
  trainerAddress: string,
  trainer: () => TrainerClient,
  config: { datasetsBucket: string; checkpointsBucket: string },
): Promise<{ request: EvaluateRequest; randomInit?: EvaluateRequest }> {
  const knn = { enabled: !values["no-knn"], k: 200, temperature: 0.1 };
  const linear = { enabled: !values["no-linear"], epochs: 0, lr: 0, weightDecay: 0 };
  const rawPixels = true;
  const randomInit = values["random-init"] as string | undefined;
  if (randomInit !== undefined) {
    const encoder = (ENCODER_ARCH_BY_NAME as Record<string, EncoderArch | undefined>)[randomInit];
    if (!encoder)
      throw new UsageError(`--random-init: one of ${Object.keys(ENCODER_ARCH_BY_NAME).join(", ")}`);
    if (!values.train || !values.test)
      throw new UsageError("--random-init needs --train NAME:SPLIT and --test NAME:SPLIT");
    const request = EvaluateRequest.fromPartial({
      randomInit: { encoder, seed: 0 },
      train: { bucket: config.datasetsBucket, name: values.train as string },
      test: { bucket: config.datasetsBucket, name: values.test as string },
      knn,
      linear,
      rawPixels,
    });
    return { request };
  }
  if (!runId) throw new UsageError("adco eval RUN, or adco eval --random-init ARCH");
  const run = await withService(trainer(), trainerAddress, "trainer", (client) =>
    unaryCall(client.getRun.bind(client), { runId }),
  );
  const checkpoint = run.latestCheckpoint;
  if (!checkpoint) throw new UsageError(`run ${runId} has no checkpoint yet`);
  const step = values.step === undefined ? checkpoint.step : intOption(values.step as string, "step")!;
  const bucket = run.config?.checkpointBucket || config.checkpointsBucket;
  const dataset = run.config!.dataset!.name.split(":")[0]!;
  const splits = {
    train: { bucket: run.config!.dataset!.bucket, name: (values.train as string) ?? `${dataset}:train` },
    test: { bucket: run.config!.dataset!.bucket, name: (values.test as string) ?? `${dataset}:test` },
    knn,
    linear,
  };
  const request = EvaluateRequest.fromPartial({
    checkpoint: {
      runId,
      step,
      manifest: { bucket, key: checkpointManifestKey(runId, step) },
    },
    ...splits,
    rawPixels,
    writeResults: true,
  });
  const encoder = run.config?.encoder;
  return {
    request,
    randomInit: encoder
      ? EvaluateRequest.fromPartial({ randomInit: { encoder, seed: 0 }, ...splits })
      : undefined,
  };
}

async function datasetCommand(
  command: string | undefined,
  rest: string[],
  values: Record<string, string | boolean | undefined>,
  store: ObjectStore,
  bucket: string,
): Promise<number> {
  switch (command) {
    case "import": {
      const format = values.format as ImportFormat;
      if (!IMPORT_FORMATS.includes(format))
        throw new UsageError(`--format: one of ${IMPORT_FORMATS.join(", ")}`);
      if (!values.name) throw new UsageError("--name: the name to store the data set under");
      if (rest.length !== 1) throw new UsageError("give one source directory");
      const shardMib = values["shard-mib"] === undefined ? 16 : Number(values["shard-mib"]);
      if (!(shardMib > 0 && shardMib < 64)) throw new UsageError("--shard-mib: a number in (0, 64)");
      const started = performance.now();
      const manifest = await importDataset(store, {
        format,
        source: rest[0]!,
        name: values.name as string,
        bucket,
        classes: (values.classes as string | undefined)?.split(","),
        shardBytes: shardMib * 1024 * 1024,
      });
      console.log(describeManifest(manifest));
      console.log(
        `stored in ${bucket}/datasets/${manifest.name} in ${((performance.now() - started) / 1000).toFixed(1)} s`,
      );
      return 0;
    }
    case "ls": {
      for (const name of await listDatasets(store, bucket)) {
        const m = await readManifest(store, bucket, name);
        const counts = Object.entries(m.splits).map(([s, v]) => `${s} ${v.count}`);
        console.log(`${name}\t${m.encoding}\t${m.classes.length} classes\t${counts.join(", ")}`);
      }
      return 0;
    }
    case "inspect": {
      if (rest.length !== 1) throw new UsageError("adco dataset inspect NAME");
      console.log(describeManifest(await readManifest(store, bucket, rest[0]!)));
      return 0;
    }
    default:
      throw new UsageError(
        `unknown dataset command ${JSON.stringify(command ?? "")}; one of import, ls, inspect`,
      );
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    if (
      e instanceof UsageError ||
      e instanceof ConfigError ||
      e instanceof CredentialsError ||
      e instanceof StorageError ||
      e instanceof ImportError
    ) {
      console.error(`adco: ${(e as Error).message}`);
      process.exit(e instanceof UsageError ? 2 : 1);
    }
    if ((e as { code?: string }).code?.startsWith("ERR_PARSE_ARGS")) {
      console.error(`adco: ${(e as Error).message}; see adco --help`);
      process.exit(2);
    }
    throw e;
  },
);
