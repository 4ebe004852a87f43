#!/usr/bin/env node
// adco: the command line of the system. Object-store settings come from ADCO_S3_* (see --help).
import { parseArgs } from "node:util";
import { ConfigError, describeConfig, loadConfig } from "@adco/service-kit";
import { listDatasets, ObjectStore, readManifest, storageConfig, StorageError } from "@adco/storage";
import { describeManifest, IMPORT_FORMATS, type ImportFormat, importDataset, ImportError } from "./import.js";

const HELP = `adco: self-supervised pre-training with Adversarial Contrast

Usage:
  adco dataset import --format idx|cifar10|cifar100|imagefolder --name NAME DIR   store a local data set
  adco dataset ls                                                     list stored data sets
  adco dataset inspect NAME                                           classes, splits, shards, skipped inputs

Options:
  --shard-mib N   target shard size for import (default 16; at most 63)
  --classes A,B   class names for import (default: from the format)
  -h, --help      this help

Object store (environment or the ADCO_CONFIG file):
${describeConfig(storageConfig)}`;

class UsageError extends Error {}

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
    },
  });
  const [group, command, ...rest] = positionals;
  if (values.help || !group) {
    console.log(HELP);
    return 0;
  }
  if (group !== "dataset") throw new UsageError(`unknown command ${JSON.stringify(group)}; see adco --help`);
  const config = loadConfig(storageConfig, { ignoreUnknownEnv: true });
  const store = new ObjectStore({
    endpoint: config.s3Endpoint,
    accessKey: config.s3AccessKey,
    secretKey: config.s3SecretKey,
    region: config.s3Region,
  });
  const bucket = config.datasetsBucket;
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
        name: values.name,
        bucket,
        classes: values.classes?.split(","),
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
