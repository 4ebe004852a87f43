// A split's features (rows x dim float32) kept in a scratch file rather than in memory, with their
// labels: the kNN reads them back block by block as often as it needs (the page cache keeps that
// fast when they fit in memory, and nothing breaks when they do not). One file per split and
// feature kind; the evaluation deletes its scratch folder when it ends.
import { type FileHandle, open } from "node:fs/promises";
import type { FeatureBlock, FeatureBlocks } from "@adco/core";

export class FeatureFile implements FeatureBlocks {
  private written = 0;
  private width = 0;
  readonly labels: Int32Array;

  private constructor(
    private readonly file: FileHandle,
    /** Rows the file will hold (the split's sample count). */
    readonly capacity: number,
  ) {
    this.labels = new Int32Array(capacity);
  }

  static async create(path: string, capacity: number): Promise<FeatureFile> {
    return new FeatureFile(await open(path, "w+"), capacity);
  }

  get rows(): number {
    return this.written;
  }

  /** Features per row (0 until the first append). */
  get dim(): number {
    return this.width;
  }

  /** Appends rows (features.length / labels.length floats each). */
  async append(features: Float32Array, labels: Int32Array): Promise<void> {
    const dim = features.length / labels.length;
    if (this.written === 0) this.width = dim;
    if (dim !== this.width) throw new Error(`feature rows of ${dim} floats after rows of ${this.width}`);
    if (this.written + labels.length > this.capacity)
      throw new Error(`more than the ${this.capacity} rows the split has`);
    await this.file.write(
      new Uint8Array(features.buffer, features.byteOffset, features.byteLength),
      0,
      features.byteLength,
      this.written * this.width * 4,
    );
    this.labels.set(labels, this.written);
    this.written += labels.length;
  }

  /** `count` rows from row `start`. */
  async read(start: number, count: number): Promise<Float32Array> {
    const out = new Float32Array(count * this.width);
    const bytes = new Uint8Array(out.buffer);
    let done = 0;
    while (done < bytes.byteLength) {
      const { bytesRead } = await this.file.read(
        bytes,
        done,
        bytes.byteLength - done,
        start * this.width * 4 + done,
      );
      if (bytesRead === 0) throw new Error(`feature file ends at byte ${start * this.width * 4 + done}`);
      done += bytesRead;
    }
    return out;
  }

  /**
   * At most `max` rows spread evenly over the file, with their labels (the embedding plot's sample):
   * a split stored class by class, as an imported ImageFolder is, shows every class, not the few of
   * its first rows.
   */
  async evenRows(max: number): Promise<{ rows: Float32Array; labels: Int32Array }> {
    if (this.written <= max)
      return { rows: await this.read(0, this.written), labels: this.labels.slice(0, this.written) };
    const rows = new Float32Array(max * this.width);
    const labels = new Int32Array(max);
    for (let i = 0; i < max; i++) {
      const row = Math.floor((i * this.written) / max);
      rows.set(await this.read(row, 1), i * this.width);
      labels[i] = this.labels[row]!;
    }
    return { rows, labels };
  }

  async *blocks(rows: number): AsyncGenerator<FeatureBlock> {
    for (let start = 0; start < this.written; start += rows) {
      const count = Math.min(rows, this.written - start);
      yield { features: await this.read(start, count), labels: this.labels.subarray(start, start + count) };
    }
  }

  async close(): Promise<void> {
    await this.file.close();
  }
}
