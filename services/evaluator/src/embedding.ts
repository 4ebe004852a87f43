// A UMAP embedding of feature rows in 2-D, for the embedding plot beside PCA. umap-js (the JS port of
// McInnes' UMAP) draws its random numbers from the function it is given: the project's seeded
// generator here, so one checkpoint's plot is the same every time it is drawn.
import { Mulberry32 } from "@adco/random";
import { UMAP } from "umap-js";

export interface UmapOptions {
  /** Seeds the initial layout and the negative samples (default 0). */
  readonly seed?: number;
  /** Neighbours each point is joined to (default 15, umap-js's; fewer when there are fewer points). */
  readonly neighbors?: number;
  /** Layout epochs; umap-js picks 500 under 10,000 points by default, 200 keeps it to seconds. */
  readonly epochs?: number;
}

/** Epochs run between yields to the event loop, so a long layout does not stall the gRPC server. */
const EPOCHS_PER_YIELD = 10;

/**
 * UMAP of `rows` rows of `dim` floats (row-major) into 2-D: x0, y0, x1, y1, ... like pca2's output.
 * The neighbour search runs in one piece; the layout epochs yield to the event loop between batches.
 */
export async function umap2(
  features: Float32Array,
  rows: number,
  dim: number,
  options: UmapOptions = {},
): Promise<Float32Array> {
  if (features.length !== rows * dim)
    throw new Error(`umap2: ${features.length} floats is not ${rows} rows of ${dim}`);
  const out = new Float32Array(2 * rows);
  // UMAP needs neighbours; with 2 points or fewer any layout is as good as another.
  if (rows <= 2) {
    for (let i = 0; i < rows; i++) out[2 * i] = i;
    return out;
  }
  const random = new Mulberry32(options.seed ?? 0);
  const umap = new UMAP({
    nComponents: 2,
    nNeighbors: Math.min(options.neighbors ?? 15, rows - 1),
    nEpochs: options.epochs ?? 200,
    random: () => random.next(),
  });
  const data: number[][] = [];
  for (let i = 0; i < rows; i++) data.push(Array.from(features.subarray(i * dim, (i + 1) * dim)));
  const epochs = umap.initializeFit(data);
  for (let epoch = 0; epoch < epochs; epoch++) {
    umap.step();
    if (epoch % EPOCHS_PER_YIELD === EPOCHS_PER_YIELD - 1) await new Promise((r) => setImmediate(r));
  }
  umap.getEmbedding().forEach(([x, y], i) => {
    out[2 * i] = x!;
    out[2 * i + 1] = y!;
  });
  return out;
}
