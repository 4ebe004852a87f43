// A one-line progress bar on stderr (redrawn in place on a terminal, one line every few seconds
// otherwise, so CI logs stay readable), with rate and ETA.
export class Progress {
  private readonly started = performance.now();
  private lastDraw = 0;
  private done = 0;

  constructor(
    private readonly label: string,
    private readonly total: number,
    private readonly out: NodeJS.WriteStream = process.stderr,
  ) {}

  tick(n = 1): void {
    this.done += n;
    const now = performance.now();
    const interval = this.out.isTTY ? 100 : 5000;
    if (now - this.lastDraw >= interval || this.done === this.total) {
      this.lastDraw = now;
      this.draw();
    }
  }

  private draw(): void {
    const seconds = (performance.now() - this.started) / 1000;
    const rate = this.done / Math.max(seconds, 1e-9);
    const fraction = this.total > 0 ? this.done / this.total : 1;
    const width = 24;
    const bar = "#".repeat(Math.round(fraction * width)).padEnd(width, ".");
    const eta = rate > 0 ? (this.total - this.done) / rate : 0;
    const line = `${this.label} [${bar}] ${this.done}/${this.total} ${rate.toFixed(0)}/s eta ${eta.toFixed(0)} s`;
    if (this.out.isTTY) this.out.write(`\r${line}${this.done === this.total ? "\n" : ""}`);
    else this.out.write(`${line}\n`);
  }
}
