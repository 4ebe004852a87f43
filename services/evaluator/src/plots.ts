// Plots as SVG written by hand (no charting dependency), and PNG rendered from the SVG by sharp:
// curves over steps (loss, accuracy) and a 2-D scatter of test features coloured by class.
import sharp from "sharp";

const WIDTH = 720;
const HEIGHT = 440;
const MARGIN = { left: 64, right: 160, top: 40, bottom: 48 };
// Tableau 10: distinguishable, and the usual colours of per-class scatter plots.
const COLORS = [
  "#4e79a7",
  "#f28e2b",
  "#e15759",
  "#76b7b2",
  "#59a14f",
  "#edc948",
  "#b07aa1",
  "#ff9da7",
  "#9c755f",
  "#bab0ac",
];

const escape = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

function niceTicks(min: number, max: number, count = 5): number[] {
  if (!(max > min)) return [min];
  const raw = (max - min) / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= raw)!;
  const ticks: number[] = [];
  for (let t = Math.ceil(min / step) * step; t <= max + 1e-12; t += step)
    ticks.push(Number(t.toPrecision(12)));
  return ticks;
}

function frame(title: string, xLabel: string, yLabel: string, body: string): string {
  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" font-family="DejaVu Sans, Arial, sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="${WIDTH / 2}" y="24" text-anchor="middle" font-size="15">${escape(title)}</text>
<rect x="${MARGIN.left}" y="${MARGIN.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#333"/>
<text x="${MARGIN.left + plotW / 2}" y="${HEIGHT - 10}" text-anchor="middle">${escape(xLabel)}</text>
<text transform="translate(16 ${MARGIN.top + plotH / 2}) rotate(-90)" text-anchor="middle">${escape(yLabel)}</text>
${body}
</svg>
`;
}

export interface Series {
  readonly name: string;
  readonly points: readonly { x: number; y: number }[];
}

export function lineChart(title: string, xLabel: string, yLabel: string, series: readonly Series[]): string {
  const all = series.flatMap((s) => s.points);
  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
  if (all.length === 0)
    return frame(
      title,
      xLabel,
      yLabel,
      `<text x="${MARGIN.left + 10}" y="${MARGIN.top + 20}">no data yet</text>`,
    );
  const xMin = Math.min(...all.map((p) => p.x));
  const xMax = Math.max(...all.map((p) => p.x), xMin + 1);
  let yMin = Math.min(...all.map((p) => p.y));
  let yMax = Math.max(...all.map((p) => p.y));
  if (yMax - yMin < 1e-9) {
    yMin -= 0.5;
    yMax += 0.5;
  }
  const pad = (yMax - yMin) * 0.05;
  yMin -= pad;
  yMax += pad;
  const sx = (x: number) => MARGIN.left + ((x - xMin) / (xMax - xMin)) * plotW;
  const sy = (y: number) => MARGIN.top + plotH - ((y - yMin) / (yMax - yMin)) * plotH;
  const parts: string[] = [];
  for (const t of niceTicks(xMin, xMax))
    parts.push(
      `<line x1="${sx(t)}" x2="${sx(t)}" y1="${MARGIN.top}" y2="${MARGIN.top + plotH}" stroke="#eee"/><text x="${sx(t)}" y="${MARGIN.top + plotH + 16}" text-anchor="middle">${t}</text>`,
    );
  for (const t of niceTicks(yMin, yMax))
    parts.push(
      `<line x1="${MARGIN.left}" x2="${MARGIN.left + plotW}" y1="${sy(t)}" y2="${sy(t)}" stroke="#eee"/><text x="${MARGIN.left - 6}" y="${sy(t) + 4}" text-anchor="end">${t}</text>`,
    );
  series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length]!;
    const d = s.points
      .map((p, j) => `${j === 0 ? "M" : "L"}${sx(p.x).toFixed(1)},${sy(p.y).toFixed(1)}`)
      .join(" ");
    parts.push(`<path d="${d}" fill="none" stroke="${color}" stroke-width="1.8"/>`);
    if (s.points.length < 40)
      for (const p of s.points)
        parts.push(`<circle cx="${sx(p.x).toFixed(1)}" cy="${sy(p.y).toFixed(1)}" r="3" fill="${color}"/>`);
    parts.push(
      `<rect x="${WIDTH - MARGIN.right + 12}" y="${MARGIN.top + 8 + i * 20}" width="12" height="12" fill="${color}"/><text x="${WIDTH - MARGIN.right + 30}" y="${MARGIN.top + 18 + i * 20}">${escape(s.name)}</text>`,
    );
  });
  return frame(title, xLabel, yLabel, parts.join("\n"));
}

export function scatterChart(
  title: string,
  points: Float32Array,
  labels: Int32Array,
  classNames: readonly string[],
): string {
  const n = labels.length;
  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
  let xMin = Infinity,
    xMax = -Infinity,
    yMin = Infinity,
    yMax = -Infinity;
  for (let i = 0; i < n; i++) {
    xMin = Math.min(xMin, points[2 * i]!);
    xMax = Math.max(xMax, points[2 * i]!);
    yMin = Math.min(yMin, points[2 * i + 1]!);
    yMax = Math.max(yMax, points[2 * i + 1]!);
  }
  const sx = (x: number) => MARGIN.left + 6 + ((x - xMin) / (xMax - xMin || 1)) * (plotW - 12);
  const sy = (y: number) => MARGIN.top + plotH - 6 - ((y - yMin) / (yMax - yMin || 1)) * (plotH - 12);
  const parts: string[] = [];
  for (let i = 0; i < n; i++) {
    const color = COLORS[labels[i]! % COLORS.length]!;
    parts.push(
      `<circle cx="${sx(points[2 * i]!).toFixed(1)}" cy="${sy(points[2 * i + 1]!).toFixed(1)}" r="2.2" fill="${color}" fill-opacity="0.7"/>`,
    );
  }
  classNames.forEach((name, i) => {
    parts.push(
      `<rect x="${WIDTH - MARGIN.right + 12}" y="${MARGIN.top + 8 + i * 20}" width="12" height="12" fill="${COLORS[i % COLORS.length]}"/><text x="${WIDTH - MARGIN.right + 30}" y="${MARGIN.top + 18 + i * 20}">${escape(name)}</text>`,
    );
  });
  return frame(title, "component 1", "component 2", parts.join("\n"));
}

export async function svgToPng(svg: string): Promise<Uint8Array> {
  return new Uint8Array(await sharp(Buffer.from(svg)).png().toBuffer());
}
