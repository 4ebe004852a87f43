// The plots as files a person opens: SVG that librsvg parses, with one labelled point per evaluation
// on a 0-100 axis, a legend naming every series or class, and PNGs of the size the SVG declares.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import sharp from "sharp";
import { embeddingChart, LINE_CHART_SIZE, lineChart, svgToPng } from "./plots.js";

/** Items of each mark group, by the group's class (vega writes one <g class="mark-..."> per mark). */
function markItems(svg: string, kind: "symbol" | "text" | "line"): number[] {
  const counts: number[] = [];
  const open = new RegExp(`<g class="mark-${kind} role-mark[^"]*"[^>]*>`, "g");
  for (const m of svg.matchAll(open)) {
    if (m[0].endsWith("/>")) {
      counts.push(0); // an empty mark: <g .../>
      continue;
    }
    const body = svg.slice(m.index + m[0].length, svg.indexOf("</g>", m.index));
    counts.push((body.match(kind === "text" ? /<text /g : /<path /g) ?? []).length);
  }
  return counts;
}

/** The texts of the SVG (axis labels, titles, legend entries, point labels). */
const texts = (svg: string) => [...svg.matchAll(/<text [^>]*>([^<]*)<\/text>/g)].map((m) => m[1]!);

/** The SVG as librsvg reads it: a parse error throws. */
async function parsed(svg: string): Promise<{ width?: number; height?: number }> {
  const meta = await sharp(Buffer.from(svg)).metadata();
  assert.equal(meta.format, "svg");
  return meta;
}

const CLASSES = ["T-shirt/top", "Trouser", "Pullover"];

describe("lineChart", () => {
  it("draws one labelled point per evaluation, joined by lines, on a 0-100 axis", async () => {
    const svg = await lineChart(
      "r: test accuracy",
      "step",
      "top-1 %",
      [
        { name: "kNN top-1 %", points: [94, 188, 282].map((x, i) => ({ x, y: 61.23 + 4 * i })) },
        { name: "linear top-1 %", points: [94, 188, 282].map((x, i) => ({ x, y: 70.06 + i })) },
      ],
      { yDomain: [0, 100], pointLabels: true },
    );
    const meta = await parsed(svg);
    assert.deepEqual([meta.width, meta.height], [LINE_CHART_SIZE.width, LINE_CHART_SIZE.height]);
    // Reference points (none here) and measured points are two marks.
    assert.deepEqual(markItems(svg, "symbol"), [0, 6], "a point per evaluation and series");
    assert.deepEqual(markItems(svg, "line"), [1, 1], "a line per series");
    const all = texts(svg);
    for (const label of ["61.2", "65.2", "69.2", "70.1", "71.1", "72.1"])
      assert.ok(all.includes(label), label);
    for (const name of ["kNN top-1 %", "linear top-1 %", "step", "top-1 %"])
      assert.ok(all.includes(name), name);
  });

  it("puts a single evaluation on the whole 0-100 axis, not an axis around its value", async () => {
    const svg = await lineChart(
      "r: test accuracy",
      "step",
      "top-1 %",
      [{ name: "kNN top-1 %", points: [{ x: 94, y: 96.5 }] }],
      { yDomain: [0, 100], pointLabels: true },
    );
    assert.deepEqual(markItems(svg, "symbol"), [0, 1]);
    const all = texts(svg);
    for (const tick of ["0", "50", "100", "94", "96.5"]) assert.ok(all.includes(tick), `${tick} in ${all}`);
  });

  it("draws a reference series dashed, with hollow points, so an equal measured point shows through", async () => {
    const svg = await lineChart(
      "r: test accuracy",
      "step",
      "top-1 %",
      [
        { name: "kNN top-1 %", points: [{ x: 2, y: 100 }] },
        { name: "raw pixels kNN 99.0", points: [{ x: 2, y: 99 }], reference: true },
      ],
      { yDomain: [0, 100], pointLabels: true },
    );
    assert.deepEqual(markItems(svg, "symbol"), [1, 1], "a hollow reference point, then the measured one");
    const [reference, measured] = [
      ...svg.matchAll(/<g class="mark-symbol role-mark[^>]*>\s*<path ([^>]*)>/g),
    ].map((m) => m[1]!);
    // Hollow: no fill of its own (the chart's groups fill nothing); the measured point is filled.
    assert.doesNotMatch(reference!, /fill="#/);
    assert.match(measured!, /fill="#/);
    // The measured point is labelled; the reference's value is in its name, in the legend.
    assert.deepEqual(
      texts(svg).filter((t) => /^\d+\.\d$/.test(t)),
      ["100.0"],
    );
    assert.ok(texts(svg).includes("raw pixels kNN 99.0"));
  });

  it("draws a long loss curve without points, and says when there is nothing to draw", async () => {
    const points = Array.from({ length: 500 }, (_, i) => ({ x: i, y: 8 / (1 + i / 50) }));
    const curve = await lineChart("r: loss", "step", "loss", [{ name: "loss", points }]);
    assert.deepEqual(markItems(curve, "symbol"), []);
    assert.deepEqual(markItems(curve, "line"), [1]);
    const empty = await lineChart("r: loss", "step", "loss", [{ name: "loss", points: [] }]);
    await parsed(empty);
    assert.ok(texts(empty).includes("no data yet"));
  });

  it("starts a long title and its subtitle at the figure's left edge, not cut off by it", async () => {
    const svg = await lineChart(
      "kNN top-1 over epochs, Fashion-MNIST, resnet-mini-wide, seeds 0 1 2, AdCo and MoCo v2",
      "epoch",
      "kNN top-1 (%)",
      [{ name: "AdCo, 3 seeds", points: [1, 2, 3].map((x) => ({ x, y: 80 + x })) }],
      { pointLabels: true, subtitle: "every 5th test image: 2,000" },
    );
    assert.ok(texts(svg).includes("every 5th test image: 2,000"));
    const { data, info } = await sharp(Buffer.from(await svgToPng(svg)))
      .greyscale()
      .raw()
      .toBuffer({ resolveWithObject: true });
    // Columns holding ink (darker than the light grid lines) in the title's rows, above the plot.
    const inked: number[] = [];
    for (let y = 0; y < 36; y++)
      for (let x = 0; x < info.width; x++) if (data[y * info.width + x]! < 128) inked.push(x);
    assert.ok(inked.length > 0, "the title is drawn");
    // A centred title wider than the plot ran off the left: ink from column 0. Now it starts at the
    // padding (12 px).
    assert.ok(Math.min(...inked) >= 8, `title ink from column ${Math.min(...inked)}`);
  });

  it("renders to a PNG of the chart's size", async () => {
    const svg = await lineChart("r", "step", "loss", [{ name: "loss", points: [{ x: 1, y: 2 }] }]);
    const png = await sharp(Buffer.from(await svgToPng(svg))).metadata();
    assert.deepEqual(
      [png.format, png.width, png.height],
      ["png", LINE_CHART_SIZE.width, LINE_CHART_SIZE.height],
    );
  });
});

describe("embeddingChart", () => {
  it("draws PCA beside UMAP, every row a point, with a legend of the class names", async () => {
    const rows = 90;
    const labels = Int32Array.from({ length: rows }, (_, i) => i % 3);
    const panel = (scale: number) => Float32Array.from({ length: 2 * rows }, (_, i) => scale * Math.sin(i));
    const svg = await embeddingChart(
      "r step 94: test features",
      [
        { method: "PCA", points: panel(1) },
        { method: "UMAP", points: panel(10) },
      ],
      labels,
      CLASSES,
    );
    const meta = await parsed(svg);
    assert.deepEqual(markItems(svg, "symbol"), [rows, rows]);
    const all = texts(svg);
    for (const name of [...CLASSES, "PCA", "UMAP", "PCA 1", "UMAP 2"]) assert.ok(all.includes(name), name);
    // The legend's swatches take the points' colours, class by class.
    const fills = [
      ...svg.matchAll(/<g class="mark-symbol role-legend-symbol[^>]*>\s*<path [^>]*fill="(#[0-9a-f]+)"/g),
    ];
    assert.equal(fills.length, CLASSES.length);
    const png = await sharp(Buffer.from(await svgToPng(svg))).metadata();
    assert.deepEqual([png.format, png.width, png.height], ["png", meta.width, meta.height]);
    assert.ok(meta.width! > 2 * 380, `two panels side by side: ${meta.width} px wide`);
  });

  it("names a label without a class name by its number", async () => {
    const svg = await embeddingChart(
      "r",
      [{ method: "PCA", points: new Float32Array([0, 0, 1, 1]) }],
      Int32Array.from([0, 7]),
      ["zero"],
    );
    const all = texts(svg);
    assert.ok(all.includes("zero") && all.includes("7"), `${all}`);
  });
});
