// Numbers in README.md and docs/**/*.md are tied to the results files that measured them, and every
// relative link resolves (docs/development.md, "Where numbers come from"):
//   2,955 ms<!-- bench-bank: results.shards.3.msPerStep -->   the value at that key path of
//                                                             docs/results/bench-bank.json prints as 2,955
//   66.9%<!-- unbacked: system-test -->                       measured, not backed yet: listed, never fails
//   <!-- unbacked: bench-core -->                             alone on a line: every number of the next block
import assert from "node:assert/strict";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, it } from "node:test";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/** A number not yet backed by a results file. */
export interface Unbacked {
  readonly where: string;
  /** The number as written, or a description of the block the marker covers. */
  readonly what: string;
  /** The results file that should back it, as the marker names it ("" when it names none). */
  readonly name: string;
}

export interface DocsCheck {
  readonly failures: string[];
  readonly unbacked: Unbacked[];
  readonly citations: number;
}

/** README.md and every .md under docs/, relative to root. */
export function markdownFiles(root: string): string[] {
  const out = existsSync(join(root, "README.md")) ? ["README.md"] : [];
  const walk = (dir: string) => {
    if (!existsSync(join(root, dir))) return;
    for (const entry of readdirSync(join(root, dir), { withFileTypes: true })) {
      const path = `${dir}/${entry.name}`;
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith(".md")) out.push(path);
    }
  };
  walk("docs");
  return out.sort();
}

const FENCE = /^\s{0,3}(`{3,}|~{3,})/;

/** The file's lines with fenced code blanked and (unless told not to) inline code spans replaced by spaces. */
function proseLines(text: string, blankInline = true): { lines: string[]; code: boolean[] } {
  const raw = text.split("\n");
  const lines: string[] = [];
  const code: boolean[] = [];
  let fence: string | undefined;
  for (const line of raw) {
    const open = FENCE.exec(line);
    if (fence !== undefined) {
      if (open && open[1]![0] === fence[0] && open[1]!.length >= fence.length) fence = undefined;
      lines.push("");
      code.push(true);
    } else if (open) {
      fence = open[1]!;
      lines.push("");
      code.push(true);
    } else {
      lines.push(blankInline ? line.replace(/(`+)[\s\S]*?\1/g, (span) => " ".repeat(span.length)) : line);
      code.push(false);
    }
  }
  return { lines, code };
}

// The number a comment follows: directly, or after a % sign and/or one unit word ("2,955 ms<!--").
const NUMBER_BEFORE =
  /(?<![\w.])([+-]?\d[\d,]*(?:\.\d+)?(?:e[+-]?\d+)?)(%?)(?:[ \u00a0][A-Za-zµ/]+)?\s*\**$/i;
// The same, with ranges allowed (an unbacked "60-70 images/s").
const SPAN_BEFORE =
  /(?<![\w.])([~≈]?[+-]?\d[\d,]*(?:\.\d+)?(?:e[+-]?\d+)?(?:[-–]\d[\d,]*(?:\.\d+)?)?)(%?)(?:[ \u00a0][A-Za-zµ/]+)?\s*\**$/i;
const CITATION = /^([a-z0-9][a-z0-9_-]*):\s*(\S+)$/;
const UNBACKED = /^unbacked(?::\s*(.*))?$/;

/** `value` printed the way `written` is: its decimals, separators, sign, exponent, percent. */
export function formatLike(written: string, percent: boolean, value: number): string {
  const m = /^([+-]?)(\d[\d,]*)(?:\.(\d+))?(?:e([+-]?\d+))?$/i.exec(written);
  if (!m) throw new Error(`not a number: ${written}`);
  const decimals = m[3]?.length ?? 0;
  const v = percent ? value * 100 : value;
  let body: string;
  if (m[4] !== undefined) {
    const [mantissa, exponent] = v.toExponential(decimals).split("e");
    body = `${mantissa}e${Number(exponent) < 0 ? "-" : "+"}${Math.abs(Number(exponent))}`;
  } else {
    body = v.toFixed(decimals);
    if (m[2]!.includes(",")) {
      const [int, frac] = body.split(".");
      const grouped = int!.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
      body = frac === undefined ? grouped : `${grouped}.${frac}`;
    }
  }
  if (m[1] === "+" && v >= 0) body = `+${body}`;
  return body;
}

/** `written` with its exponent in the form formatLike prints ("1.5E-07" -> "1.5e-7"). */
function normalizeWritten(written: string): string {
  return written.replace(/e([+-]?)0*(\d+)$/i, (_, sign: string, digits: string) => {
    return `e${sign === "-" ? "-" : "+"}${digits}`;
  });
}

function lookup(json: unknown, path: string): { value?: unknown; missing?: string } {
  let node = json;
  const segments = path.split(".");
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i]!;
    if (node === null || typeof node !== "object" || !Object.hasOwn(node, segment))
      return { missing: segments.slice(0, i + 1).join(".") };
    node = (node as Record<string, unknown>)[segment];
  }
  return { value: node };
}

/** The block a marker alone on line `at` covers: the next non-blank block (a whole fenced block). */
function blockAfter(raw: string[], code: boolean[], at: number): { from: number; to: number; kind: string } {
  let from = at + 1;
  while (from < raw.length && raw[from]!.trim() === "") from++;
  if (from >= raw.length) return { from, to: from, kind: "nothing" };
  let to = from;
  if (code[from]) {
    while (to + 1 < raw.length && code[to + 1]) to++;
    return { from, to, kind: "code block" };
  }
  while (to + 1 < raw.length && raw[to + 1]!.trim() !== "" && !code[to + 1]) to++;
  const first = raw[from]!.trimStart();
  const kind = first.startsWith("|") ? "table" : /^([-*+]|\d+\.)\s/.test(first) ? "list" : "paragraph";
  return { from, to, kind };
}

/** Checks every citation of the files (relative to root) against resultsDir; lists unbacked numbers. */
export function checkDocs(root: string, files: readonly string[], resultsDir: string): DocsCheck {
  const failures: string[] = [];
  const unbacked: Unbacked[] = [];
  const results = new Map<string, { json?: unknown; error?: string }>();
  const load = (name: string) => {
    let entry = results.get(name);
    if (!entry) {
      const path = join(resultsDir, `${name}.json`);
      if (!existsSync(path)) entry = { error: `${relative(root, path)} does not exist` };
      else {
        try {
          entry = { json: JSON.parse(readFileSync(path, "utf8")) };
        } catch (e) {
          entry = { error: `${relative(root, path)} is not JSON (${(e as Error).message})` };
        }
      }
      results.set(name, entry);
    }
    return entry;
  };
  let citations = 0;
  for (const file of files) {
    const text = readFileSync(join(root, file), "utf8");
    const raw = text.split("\n");
    const { lines, code } = proseLines(text);
    lines.forEach((line, index) => {
      const where = `${file}:${index + 1}`;
      for (const comment of line.matchAll(/<!--([\s\S]*?)-->/g)) {
        const body = comment[1]!.trim();
        const before = line.slice(0, comment.index);
        if (body.includes("--")) {
          failures.push(
            `${where}: the comment <!--${comment[1]}--> contains "--", which GitHub renders as text`,
          );
          continue;
        }
        const marker = UNBACKED.exec(body);
        if (marker) {
          const name = marker[1]?.trim() ?? "";
          if (line.trim() === comment[0]) {
            const block = blockAfter(raw, code, index);
            if (block.kind === "nothing") failures.push(`${where}: an unbacked marker before nothing`);
            else
              unbacked.push({
                where: `${file}:${block.from + 1}-${block.to + 1}`,
                what: `${block.kind} of ${block.to - block.from + 1} lines`,
                name,
              });
            continue;
          }
          const number = SPAN_BEFORE.exec(before);
          if (!number) failures.push(`${where}: an unbacked marker that follows no number`);
          else unbacked.push({ where, what: `${number[1]}${number[2]}`, name });
          continue;
        }
        const citation = CITATION.exec(body);
        if (!citation) continue;
        citations++;
        const name = citation[1]!;
        const path = citation[2]!;
        const cited = `${name}: ${path}`;
        const number = NUMBER_BEFORE.exec(before);
        if (!number) {
          failures.push(`${where}: the citation <!-- ${cited} --> follows no number`);
          continue;
        }
        const written = number[1]!;
        const percent = number[2] === "%";
        const entry = load(name);
        if (entry.error !== undefined) {
          failures.push(`${where}: ${written}${number[2]} cites ${cited}, but ${entry.error}`);
          continue;
        }
        const found = lookup(entry.json, path);
        if (found.missing !== undefined) {
          failures.push(
            `${where}: ${written}${number[2]} cites ${cited}, but docs/results/${name}.json has no key ${found.missing}`,
          );
          continue;
        }
        if (typeof found.value !== "number" || !Number.isFinite(found.value)) {
          failures.push(
            `${where}: ${written}${number[2]} cites ${cited}, whose value ${JSON.stringify(found.value)} is not a number`,
          );
          continue;
        }
        const expected = formatLike(written, percent, found.value);
        if (expected !== normalizeWritten(written)) {
          failures.push(
            `${where}: written ${written}${number[2]}, but ${cited} is ${found.value}, which prints as ${expected}${number[2]}`,
          );
        }
      }
    });
  }
  return { failures, unbacked, citations };
}

/** GitHub's anchor of a heading. */
export function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/\[([^\]]*)\]\([^)]*\)/g, "$1")
    .replace(/<[^>]+>/g, "")
    .replace(/[^\p{L}\p{N}\s_-]/gu, "")
    .replace(/\s/g, "-");
}

function anchorsOf(text: string): Set<string> {
  const { lines } = proseLines(text, false);
  const seen = new Map<string, number>();
  const anchors = new Set<string>();
  for (const line of lines) {
    const heading = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (!heading) continue;
    const base = slug(heading[1]!);
    const count = seen.get(base) ?? 0;
    seen.set(base, count + 1);
    anchors.add(count === 0 ? base : `${base}-${count}`);
  }
  return anchors;
}

/** Relative links (and #anchors into markdown files) that do not resolve. */
export function checkLinks(root: string, files: readonly string[]): string[] {
  const failures: string[] = [];
  for (const file of files) {
    const text = readFileSync(join(root, file), "utf8");
    const { lines } = proseLines(text);
    lines.forEach((line, index) => {
      const targets = [
        ...[...line.matchAll(/!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)].map((m) => m[1]!),
        ...[...line.matchAll(/^\s*\[[^\]]+\]:\s*(\S+)/g)].map((m) => m[1]!),
      ];
      for (const target of targets) {
        if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto:
        const [path, anchor] = target.split("#", 2) as [string, string | undefined];
        const resolved = path === "" ? join(root, file) : resolve(join(root, dirname(file)), decodeURI(path));
        const where = `${file}:${index + 1}`;
        if (relative(root, resolved).startsWith("..")) {
          failures.push(`${where}: ${target} points outside the repository`);
          continue;
        }
        if (!existsSync(resolved)) {
          failures.push(`${where}: ${target}: ${relative(root, resolved)} does not exist`);
          continue;
        }
        if (anchor && resolved.endsWith(".md") && !anchorsOf(readFileSync(resolved, "utf8")).has(anchor))
          failures.push(`${where}: ${target}: ${relative(root, resolved)} has no heading #${anchor}`);
      }
    });
  }
  return failures;
}

describe("the docs", () => {
  const files = markdownFiles(ROOT);

  it("cite only numbers that equal their results files", (t) => {
    const check = checkDocs(ROOT, files, join(ROOT, "docs/results"));
    t.diagnostic(`${check.citations} cited numbers in ${files.length} pages`);
    t.diagnostic(`${check.unbacked.length} unbacked numbers or blocks (docs/development.md):`);
    for (const u of check.unbacked)
      t.diagnostic(`  ${u.where}  ${u.what}  <- ${u.name || "(names no results)"}`);
    assert.deepEqual(check.failures, [], `\n${check.failures.join("\n")}`);
  });

  it("have relative links that resolve", () => {
    const failures = checkLinks(ROOT, files);
    assert.deepEqual(failures, [], `\n${failures.join("\n")}`);
  });
});

describe("the docs checker, on planted pages", () => {
  const planted = (pages: Record<string, string>, results: Record<string, unknown>) => {
    const root = mkdtempSync(join(tmpdir(), "adco-docs-"));
    mkdirSync(join(root, "docs/results"), { recursive: true });
    for (const [path, text] of Object.entries(pages)) {
      mkdirSync(dirname(join(root, path)), { recursive: true });
      writeFileSync(join(root, path), text);
    }
    for (const [name, json] of Object.entries(results))
      writeFileSync(join(root, "docs/results", `${name}.json`), JSON.stringify(json));
    return root;
  };
  const bench = {
    command: "npm run -s bench:x",
    commit: "0000000",
    date: "2026-12-01T00:00:00Z",
    machine: { cpus: 2 },
    results: {
      shards: { "1": { msPerStep: 5568.4 }, "3": { msPerStep: 2954.6 } },
      knn: { top1: 0.6667 },
      gain: 7.71,
      loss: -0.25,
      error: 1.6789e-7,
      runs: [{ imagesPerSecond: 78.04 }],
      label: "fast",
    },
  };

  it("accepts numbers as written and fails each wrong citation at its line, with both values", () => {
    const page = [
      "# Bench", // 1
      "", // 2
      "1 shard 5,568<!-- bench-x: results.shards.1.msPerStep --> ms, 3 shards 2,955 ms<!-- bench-x: results.shards.3.msPerStep -->.", // 3
      "Plain 5568<!-- bench-x: results.shards.1.msPerStep --> and 5568.4<!-- bench-x: results.shards.1.msPerStep -->.", // 4
      "kNN 66.7%<!-- bench-x: results.knn.top1 -->, +7.7<!-- bench-x: results.gain --> points, -0.25<!-- bench-x: results.loss -->.", // 5
      "error 1.68e-7<!-- bench-x: results.error -->, **78**<!-- bench-x: results.runs.0.imagesPerSecond --> images/s", // 6
      "wrong 5,567 ms<!-- bench-x: results.shards.1.msPerStep -->", // 7
      "wrong 66.6%<!-- bench-x: results.knn.top1 -->", // 8
      "no file 12<!-- bench-y: results.a -->", // 9
      "no key 12<!-- bench-x: results.shards.2.msPerStep -->", // 10
      "not a number 12<!-- bench-x: results.label -->", // 11
      "nothing before <!-- bench-x: results.gain -->", // 12
      "dashes 12<!-- unbacked: npm run -s bench:x -- --fast -->", // 13
      "unbacked 60-70<!-- unbacked: bench-z --> images/s and 4.3e-5<!-- unbacked -->", // 14
      "<!-- unbacked: bench-z -->", // 15
      "", // 16
      "| op | ms |", // 17
      "| -- | -- |", // 18
      "| a  | 12 |", // 19
      "", // 20
      "<!-- unbacked: bench-core -->", // 21
      "", // 22
      "```", // 23
      "an example 9<!-- bench-x: results.gain --> is not checked", // 24
      "```", // 25
      "An inline `2<!-- bench-x: results.gain -->` is not checked either. <!-- prettier-ignore -->", // 26
    ].join("\n");
    const root = planted({ "docs/page.md": page }, { "bench-x": bench });
    try {
      const check = checkDocs(root, markdownFiles(root), join(root, "docs/results"));
      assert.deepEqual(check.failures, [
        "docs/page.md:7: written 5,567, but bench-x: results.shards.1.msPerStep is 5568.4, which prints as 5,568",
        "docs/page.md:8: written 66.6%, but bench-x: results.knn.top1 is 0.6667, which prints as 66.7%",
        "docs/page.md:9: 12 cites bench-y: results.a, but docs/results/bench-y.json does not exist",
        "docs/page.md:10: 12 cites bench-x: results.shards.2.msPerStep, but docs/results/bench-x.json has no key results.shards.2",
        'docs/page.md:11: 12 cites bench-x: results.label, whose value "fast" is not a number',
        "docs/page.md:12: the citation <!-- bench-x: results.gain --> follows no number",
        'docs/page.md:13: the comment <!-- unbacked: npm run -s bench:x -- --fast --> contains "--", which GitHub renders as text',
      ]);
      assert.equal(check.citations, 15);
      assert.deepEqual(check.unbacked, [
        { where: "docs/page.md:14", what: "60-70", name: "bench-z" },
        { where: "docs/page.md:14", what: "4.3e-5", name: "" },
        { where: "docs/page.md:17-19", what: "table of 3 lines", name: "bench-z" },
        { where: "docs/page.md:23-25", what: "code block of 3 lines", name: "bench-core" },
      ]);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it("prints values the way they are written", () => {
    assert.equal(formatLike("2,955", false, 2954.6), "2,955");
    assert.equal(formatLike("2955", false, 2954.6), "2955");
    assert.equal(formatLike("1,234,567.8", false, 1234567.81), "1,234,567.8");
    assert.equal(formatLike("66.7", true, 0.66666), "66.7");
    assert.equal(formatLike("0", true, 0.001), "0");
    assert.equal(formatLike("+5.5", false, 5.5), "+5.5");
    assert.equal(formatLike("-0.3", false, -0.25), "-0.3");
    assert.equal(formatLike("0.00e+0", false, 0), "0.00e+0");
    assert.equal(formatLike("3.6e-6", false, 3.64e-6), "3.6e-6");
  });

  it("finds links to missing files and headings", () => {
    const root = planted(
      {
        "README.md": "[ok](docs/a.md#the-step-one) [gone](docs/missing.md) [site](https://example.com)\n",
        "docs/a.md": [
          "# A",
          "## The step (`one`)",
          "[back](../README.md) [here](#a) [nowhere](#no-such) [out](../../elsewhere.md)",
          "`[code](not-checked.md)`",
        ].join("\n"),
      },
      {},
    );
    try {
      assert.deepEqual(checkLinks(root, markdownFiles(root)), [
        "README.md:1: docs/missing.md: docs/missing.md does not exist",
        "docs/a.md:3: #no-such: docs/a.md has no heading #no-such",
        "docs/a.md:3: ../../elsewhere.md points outside the repository",
      ]);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
