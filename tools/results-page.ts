// docs/results.md, built from docs/results/*.json: how good the encoders are (the raw-pixel bar,
// `npm start`, the small-data and full-data studies), and every results file with the command and
// commit that wrote it. The page is generated; edit this script, not the page.
//   npm run -s docs:results            (writes docs/results.md)
//   npm run -s docs:results -- --check (exits 1 if docs/results.md is not what the files give)
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { RESULTS_DIRECTORY, type ResultsFile } from "@adco/cli";
import * as prettier from "prettier";

const PAGE = join(RESULTS_DIRECTORY, "..", "results.md");

type Json = { readonly [key: string]: unknown };

function read(name: string): (ResultsFile & { results: Json }) | undefined {
  const path = join(RESULTS_DIRECTORY, `${name}.json`);
  return existsSync(path)
    ? (JSON.parse(readFileSync(path, "utf8")) as ResultsFile & { results: Json })
    : undefined;
}

/** A value at a dotted path of an object, or undefined. */
function at(json: unknown, path: string): unknown {
  return path
    .split(".")
    .reduce<unknown>((v, k) => (v && typeof v === "object" ? (v as Json)[k] : undefined), json);
}
const num = (json: unknown, path: string, digits = 1): string => {
  const v = at(json, path);
  return typeof v === "number" ? v.toFixed(digits) : "–";
};
/** An integer with thousands separators (60,000). */
const count = (json: unknown, path: string): string => {
  const v = at(json, path);
  return typeof v === "number" ? v.toLocaleString("en-US") : "–";
};
/** A fraction (0.764) as a percentage (76.4). */
const pct = (json: unknown, path: string): string => {
  const v = at(json, path);
  return typeof v === "number" ? (v * 100).toFixed(1) : "–";
};
const signed = (text: string) => (text !== "–" && !text.startsWith("-") ? `+${text}` : text);
const table = (header: readonly string[], rows: readonly (readonly string[])[]) =>
  [
    `| ${header.join(" | ")} |`,
    `| ${header.map(() => "---").join(" | ")} |`,
    ...rows.map((r) => `| ${r.join(" | ")} |`),
  ].join("\n");
const source = (file: ResultsFile, name: string) =>
  `From [\`${name}.json\`](results/${name}.json), written by \`${file.command}\` at ${file.commit.slice(0, 7)} on ${file.date.slice(0, 10)}.`;

function startSection(): string[] {
  const file = read("start");
  if (!file) return [];
  const r = file.results;
  return [
    "## `npm start`",
    "",
    `Pre-trains on the bundled subset (${count(r, "trainImages")} train / ${count(r, "testImages")} test images) for ${num(r, "epochs", 0)} epochs through the services, then evaluates. Top-1 in % of the test images:`,
    "",
    table(
      ["features", "kNN", "linear"],
      [
        ["raw pixels", pct(r, "rawPixels.knnTop1"), pct(r, "rawPixels.linearTop1")],
        ["random-init encoder", pct(r, "randomInit.knnTop1"), pct(r, "randomInit.linearTop1")],
        ["AdCo encoder", pct(r, "adco.knnTop1"), pct(r, "adco.linearTop1")],
        [
          "AdCo minus raw pixels",
          signed(num(r, "vsRawPixels.knnPoints")),
          signed(num(r, "vsRawPixels.linearPoints")),
        ],
      ],
    ),
    "",
    `${num(r, "totalSeconds", 0)} s in all, ${num(r, "pretraining.imagesPerSecond", 0)} images/s. ${source(file, "start")}`,
  ];
}

function smallDataSection(): string[] {
  const file = read("experiment-small-data");
  if (!file) return [];
  const r = file.results;
  const variants = (r.variants ?? {}) as Record<string, Json>;
  const bySeed = (v: Json, key: string) =>
    ((v[key] as number[] | undefined) ?? []).map((x) => x.toFixed(1)).join(", ");
  return [
    "## Small data: the bundled subset",
    "",
    `Variants of the \`fashion-mnist\` preset trained in process on ${count(r, "trainImages")} images and scored on ${count(r, "testImages")} (the query encoder's features). Means over the seeds, each seed, and the spread (largest minus smallest):`,
    "",
    table(
      [
        "variant",
        "features",
        "epochs",
        "seeds",
        "kNN",
        "kNN by seed",
        "kNN spread",
        "linear",
        "linear spread",
        "vs raw pixels, kNN / linear",
      ],
      [
        ["raw pixels", "", "", "", num(r, "rawPixels.knn"), "", "", num(r, "rawPixels.linear"), "", ""],
        ...Object.entries(variants).map(([name, v]) => [
          name,
          // featureDim since the wide encoder; older files only name the count in `features`.
          typeof v.featureDim === "number"
            ? String(v.featureDim)
            : (/(\d+) features/.exec(String(v.features ?? r.features))?.[1] ?? ""),
          num(v, "epochs", 0),
          String((v.seeds as number[]).length),
          num(v, "knn"),
          bySeed(v, "knnBySeed"),
          num(v, "knnSpread"),
          num(v, "linear"),
          num(v, "linearSpread"),
          `${signed(num(v, "knnVsRawPixels"))} / ${signed(num(v, "linearVsRawPixels"))}`,
        ]),
      ],
    ),
    "",
    source(file, "experiment-small-data"),
  ];
}

/**
 * The full-data study's results files, one per schedule and encoder (experiment-full-data-e3,
 * experiment-full-data-e10-resnet-mini-wide, ...), by epochs, the presets' encoder first.
 */
function fullDataNames(): string[] {
  return readdirSync(RESULTS_DIRECTORY)
    .map((f) => FULL_DATA_NAME.exec(f.replace(/\.json$/, "")))
    .filter((m) => m !== null)
    .sort((a, b) => Number(a[1]) - Number(b[1]) || (a[2] ?? "").localeCompare(b[2] ?? ""))
    .map((m) => m[0]);
}
/** A full-data results file's name: its epochs, and the encoder when it is not the presets'. */
const FULL_DATA_NAME = /^experiment-full-data-e(\d+)(?:-([a-z0-9-]+))?$/;

/** ", encoder X" for a study of another encoder than the presets' (its name's tail), else "". */
const encoderOf = (name: string) => {
  const arch = FULL_DATA_NAME.exec(name)?.[2];
  return arch ? `, encoder ${arch}` : "";
};

function fullDataSection(name: string): string[] {
  const file = read(name);
  if (!file) return [];
  const r = file.results;
  const methods = (r.methods ?? {}) as Record<string, Json>;
  const names: Record<string, string> = { adco: "AdCo", moco: "MoCo v2" };
  const runs = Object.entries(methods).flatMap(([method, m]) =>
    ((m.runs as Json[] | undefined) ?? []).map((run) => [
      names[method] ?? method,
      // A run kept from an earlier results file (its work directory gone) says which commit ran it.
      typeof run.commit === "string"
        ? `${num(run, "seed", 0)} (commit ${run.commit.slice(0, 7)})`
        : num(run, "seed", 0),
      ((run.monitorKnnByEpoch as number[] | undefined) ?? []).map((x) => x.toFixed(1)).join(", "),
      num(run, "knn"),
      num(run, "linear"),
      num(run, "trainSeconds", 0),
    ]),
  );
  // The methods the file holds: a study of AdCo alone is not titled as a comparison.
  const compared = Object.keys(methods)
    .map((method) => names[method] ?? method)
    .join(" against ");
  return [
    `## Full data: ${compared}, ${num(r, "epochs", 0)} epochs${encoderOf(name)}`,
    "",
    `All of Fashion-MNIST (${count(r, "trainImages")} train / ${count(r, "testImages")} test images), ${num(r, "epochs", 0)} epochs of ${num(r, "stepsPerEpoch", 0)} steps (AdCo fills its bank in ${num(r, "adcoInitSteps", 0)} more). The kNN after each epoch scores ${count(r, "monitorTestImages")} test images (every 5th); the end scores all of them, and the linear probe. Means over the finished seeds, with the spread:`,
    "",
    table(
      [
        "method",
        "finished seeds",
        "kNN",
        "kNN spread",
        "linear",
        "linear spread",
        "vs raw pixels, kNN / linear",
        "kNN by epoch (monitor)",
      ],
      [
        [
          "raw pixels",
          "",
          num(r, "rawPixels.knn"),
          "",
          num(r, "rawPixels.linear"),
          "",
          "",
          num(r, "rawPixels.monitorKnn"),
        ],
        ...Object.entries(methods).map(([method, m]) => [
          names[method] ?? method,
          ((m.finishedSeeds as number[] | undefined) ?? []).join(", ") || "none yet",
          num(m, "knn"),
          num(m, "knnSpread"),
          num(m, "linear"),
          num(m, "linearSpread"),
          `${signed(num(m, "knnVsRawPixels"))} / ${signed(num(m, "linearVsRawPixels"))}`,
          ((m.monitorKnnByEpoch as number[] | undefined) ?? []).map((x) => x.toFixed(1)).join(", "),
        ]),
      ],
    ),
    "",
    "Each run (an unfinished one has no final scores yet; the same command goes on with it):",
    "",
    table(["method", "seed", "kNN by epoch (monitor)", "kNN", "linear", "train s"], runs),
    "",
    ...(existsSync(join(RESULTS_DIRECTORY, `${name}.png`))
      ? [`![kNN over epochs](results/${name}.png)`, ""]
      : []),
    source(file, name),
  ];
}

function indexSection(): string[] {
  const names = readdirSync(RESULTS_DIRECTORY)
    .filter((f) => f.endsWith(".json"))
    .map((f) => f.slice(0, -".json".length))
    .sort();
  return [
    "## Every results file",
    "",
    table(
      ["file", "command", "commit", "date", "backend"],
      names.map((name) => {
        const file = read(name)!;
        return [
          `[${name}.json](results/${name}.json)`,
          `\`${file.command}\``,
          file.commit.slice(0, 7),
          file.date.slice(0, 10),
          file.machine.backend ?? "",
        ];
      }),
    ),
  ];
}

export async function resultsPage(): Promise<string> {
  const text = [
    "# Results",
    "",
    "<!-- Generated by `npm run -s docs:results` (tools/results-page.ts) from docs/results/*.json; do not edit. -->",
    "",
    "How good the pre-trained encoders are, measured with the evaluator's protocol: kNN (k 200, weighted, cosine) and the linear probe (standardised features, 100 epochs), top-1 in % of the test images, beside the raw pixels through the same code. What each study tried and why is in [experiments.md](experiments.md).",
    "",
    ...startSection(),
    "",
    ...smallDataSection(),
    "",
    ...fullDataNames().flatMap((name) => [...fullDataSection(name), ""]),
    ...indexSection(),
    "",
  ].join("\n");
  const options = (await prettier.resolveConfig(PAGE)) ?? {};
  return prettier.format(text, { ...options, filepath: PAGE });
}

if (import.meta.filename === process.argv[1]) {
  const { values } = parseArgs({ options: { check: { type: "boolean", default: false } } });
  const page = await resultsPage();
  if (values.check) {
    const current = existsSync(PAGE) ? readFileSync(PAGE, "utf8") : "";
    if (current !== page) {
      console.error(`${PAGE} is not what docs/results/*.json give: run npm run -s docs:results`);
      process.exit(1);
    }
    console.log(`${PAGE} is up to date`);
  } else {
    writeFileSync(PAGE, page);
    console.log(`wrote ${PAGE}`);
  }
}
