// The evaluation's plots: Vega-Lite specs rendered to SVG by Vega in Node, and PNG from the SVG by
// sharp (librsvg). Vega renders headless with renderer "none" (a scenegraph, then SVG text): no
// browser and no native canvas. It is also the grammar people know from notebooks (Altair), and
// about 24 MiB installed with the d3 modules it uses, where a headless browser is hundreds.
// Curves over steps (loss; accuracy with a labelled point per evaluation) and 2-D embeddings of
// test features coloured by class (PCA beside UMAP).
import sharp from "sharp";
import * as vega from "vega";
import { compile, type TopLevelSpec } from "vega-lite";

/** A line chart's size in pixels, axes, title and legend included. */
export const LINE_CHART_SIZE = { width: 720, height: 440 } as const;
/** One embedding panel's plotting area in pixels (the figure adds axes, titles and the legend). */
const EMBEDDING_PANEL = 380;
/** Debian's DejaVu Sans is what librsvg finds; the generic family is the fallback elsewhere. */
const FONT = "DejaVu Sans, sans-serif";

const CONFIG = {
  font: FONT,
  background: "white",
  title: { fontSize: 15, subtitleFontSize: 12, subtitleColor: "#555" },
  axis: { labelFontSize: 11, titleFontSize: 12 },
  legend: { labelFontSize: 11, titleFontSize: 12, labelLimit: 200 },
};

/** Vega-Lite to SVG text. */
async function render(spec: TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: "none" });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

export interface Series {
  readonly name: string;
  readonly points: readonly { x: number; y: number }[];
  /**
   * A bar to compare against (the raw pixels' scores): a dashed line and hollow points, without
   * labels (its name can carry its value), so the encoder's labels stay readable beside it and an
   * encoder's point at the same value shows inside the ring.
   */
  readonly reference?: boolean;
}

export interface LineChartOptions {
  /** A fixed y range, such as [0, 100] for percentages; by default the data's, padded. */
  readonly yDomain?: readonly [number, number];
  /** Draw each point, labelled with its value (for a few points, such as one per evaluation). */
  readonly pointLabels?: boolean;
  /** Decimals of the point labels (default 1). */
  readonly labelDecimals?: number;
  /** A second, smaller title line: what the data is (a long title would run off the figure). */
  readonly subtitle?: string;
}

/** Lines over steps, one per series, with a legend naming them. */
export async function lineChart(
  title: string,
  xLabel: string,
  yLabel: string,
  series: readonly Series[],
  options: LineChartOptions = {},
): Promise<string> {
  const values = series.flatMap((s) =>
    s.points.map((p) => ({ series: s.name, kind: s.reference ? "reference" : "measured", x: p.x, y: p.y })),
  );
  const x = {
    field: "x",
    type: "quantitative",
    title: xLabel,
    // Steps are integers; padding keeps a labelled point at the edge (or a lone one) off the frame.
    axis: { format: "d", tickMinStep: 1 },
    scale: options.pointLabels ? { zero: false, nice: true, padding: 24 } : { zero: false, nice: false },
  } as const;
  const y = {
    field: "y",
    type: "quantitative",
    title: yLabel,
    // A fixed domain, or the data's padded by pixels: never an axis of zero height for one value.
    scale: options.yDomain
      ? { domain: [...options.yDomain], nice: false }
      : { zero: false, nice: true, padding: 16 },
  } as const;
  const color = {
    field: "series",
    type: "nominal",
    title: null,
    scale: { domain: series.map((s) => s.name) },
    legend: { orient: "right" },
  } as const;
  // A call, not a literal, so that `as const` below leaves the transform array mutable, as typed.
  const only = (k: "measured" | "reference") => [{ filter: { field: "kind", equal: k } }];
  const line = {
    mark: { type: "line", strokeWidth: 2 },
    encoding: {
      x,
      y,
      color,
      strokeDash: {
        field: "kind",
        type: "nominal",
        scale: {
          domain: ["measured", "reference"],
          range: [
            [1, 0],
            [6, 4],
          ],
        },
        legend: null,
      },
    },
  } as const;
  const points = (k: "measured" | "reference") =>
    ({
      transform: only(k),
      mark: {
        type: "point",
        filled: k === "measured",
        size: k === "measured" ? 60 : 150,
        strokeWidth: 2,
        opacity: 1,
      },
      encoding: { x, y, color },
    }) as const;
  const labels = {
    transform: only("measured"),
    mark: { type: "text", dy: -12, fontSize: 11 },
    encoding: {
      x,
      y,
      color,
      text: { field: "y", type: "quantitative", format: `.${options.labelDecimals ?? 1}f` },
    },
  } as const;
  const subtitle = values.length ? options.subtitle : "no data yet";
  return render({
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    ...LINE_CHART_SIZE,
    autosize: { type: "fit", contains: "padding" },
    padding: 12,
    // Anchored at the figure's left edge: a centred title wider than the plot ran off both sides.
    title: {
      text: title,
      anchor: "start",
      frame: "bounds",
      ...(subtitle === undefined ? {} : { subtitle }),
    },
    data: { values },
    layer: options.pointLabels ? [line, points("reference"), points("measured"), labels] : [line],
    config: CONFIG,
  });
}

/** One panel of an embedding figure: rows' 2-D coordinates (x0, y0, x1, y1, ...). */
export interface Embedding {
  /** PCA, UMAP: the panel's title and its axes' names. */
  readonly method: string;
  readonly points: Float32Array;
}

/** The name a label is shown by: its class name, or the number where there is no name. */
const className = (classNames: readonly string[], label: number) => classNames[label] ?? String(label);

/**
 * Scatter plots of the same rows in 2-D, side by side, each point coloured by its class, with one
 * legend naming every class in label order.
 */
export async function embeddingChart(
  title: string,
  embeddings: readonly Embedding[],
  labels: Int32Array,
  classNames: readonly string[],
): Promise<string> {
  const names = [...classNames];
  for (const label of labels) if (!names.includes(className(classNames, label))) names.push(String(label));
  const panel = (e: Embedding) => {
    const values = Array.from(labels, (label, i) => ({
      x: e.points[2 * i],
      y: e.points[2 * i + 1],
      class: className(classNames, label),
    }));
    const axis = (n: number) =>
      ({
        field: n === 1 ? "x" : "y",
        type: "quantitative",
        title: `${e.method} ${n}`,
        // The coordinates have no units: ticks without labels keep the eye on the clusters.
        axis: { labels: false, ticks: false },
        scale: { zero: false, nice: false, padding: 8 },
      }) as const;
    return {
      title: e.method,
      width: EMBEDDING_PANEL,
      height: EMBEDDING_PANEL,
      data: { values },
      // No aria label per point: 2,000 of them would triple the SVG.
      mark: { type: "point", filled: true, size: 14, opacity: 0.7, aria: false },
      encoding: {
        x: axis(1),
        y: axis(2),
        color: {
          field: "class",
          type: "nominal",
          title: "class",
          scale: { domain: names, scheme: names.length > 10 ? "tableau20" : "tableau10" },
          legend: { columns: Math.ceil(names.length / 20), symbolLimit: 0 },
        },
      },
    } as const;
  };
  return render({
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    padding: 12,
    title: { text: title },
    hconcat: embeddings.map(panel),
    config: CONFIG,
  });
}

export async function svgToPng(svg: string): Promise<Uint8Array> {
  return new Uint8Array(await sharp(Buffer.from(svg)).png().toBuffer());
}
