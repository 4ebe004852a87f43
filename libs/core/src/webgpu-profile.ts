// The per-kernel time of one step, from tf.profile: which kernels (and which of the webgpu backend's
// shader programs) a step's time goes to, and how much faster the step's kernels would be with a
// better one. On webgpu each kernel's time comes from the GPU's timestamp queries (extraInfo names
// its programs with their times). An adapter without timestamp-query reports zeros there, so the
// caller then has tf.profile time each kernel on the wall clock with its outputs read back ("wall"):
// dispatch and read-back are in those times, so they rank kernels rather than measure them.

/** One kernel call as tf.profile reports it. */
export interface KernelRecord {
  readonly name: string;
  /** GPU time, ms (0 when the backend has no timer). */
  readonly ms: number;
  /** The webgpu backend's extraInfo: "Conv2DDerFilterProgram: 1.25, ..." (empty elsewhere). */
  readonly programs: string;
}

export interface KernelTotal {
  readonly name: string;
  readonly calls: number;
  readonly ms: number;
  /** Of the kernels' total time (0 without a timer). */
  readonly share: number;
  /** The shader programs it ran, by name. */
  readonly programs: readonly string[];
}

export interface ProfileSummary {
  /** Where the times come from. */
  readonly timer: string;
  /** Wall time of the profiled step (each kernel timed alone: longer than a plain step). */
  readonly wallMs: number;
  /** The kernels' time, summed. */
  readonly kernelMs: number;
  /** By total time, then by calls, the slowest first. */
  readonly kernels: readonly KernelTotal[];
  /**
   * The slowest kernel, and the factor by which the kernels' total would shrink with it twice as
   * fast and with it taking no time (Amdahl's bound on a better shader); null without a timer.
   */
  readonly slowest: { name: string; share: number; halfSpeedup: number; boundSpeedup: number } | null;
}

/** The program names in an extraInfo string ("A: 1.5, B: 0.25" -> A, B), each once. */
export function programNames(extraInfo: string): string[] {
  const names = extraInfo
    .split(",")
    .map((part) => part.split(":")[0]!.trim())
    .filter((name) => /^[A-Za-z_]\w*$/.test(name));
  return [...new Set(names)];
}

/** Where the kernels' times came from: GPU timestamps, or the wall clock around each kernel. */
export type KernelTimer = "timestamps" | "wall";

export function aggregateProfile(
  kernels: readonly KernelRecord[],
  wallMs: number,
  source: KernelTimer = "timestamps",
): ProfileSummary {
  const totals = new Map<string, { calls: number; ms: number; programs: Set<string> }>();
  for (const k of kernels) {
    const total = totals.get(k.name) ?? { calls: 0, ms: 0, programs: new Set<string>() };
    total.calls++;
    total.ms += Number.isFinite(k.ms) ? k.ms : 0;
    for (const p of programNames(k.programs)) total.programs.add(p);
    totals.set(k.name, total);
  }
  const kernelMs = [...totals.values()].reduce((sum, t) => sum + t.ms, 0);
  const timed = kernelMs > 0;
  const rows: KernelTotal[] = [...totals]
    .map(([name, t]) => ({
      name,
      calls: t.calls,
      ms: t.ms,
      share: timed ? t.ms / kernelMs : 0,
      programs: [...t.programs].sort(),
    }))
    .sort((a, b) => b.ms - a.ms || b.calls - a.calls || a.name.localeCompare(b.name));
  const top = rows[0];
  const slowest =
    timed && top
      ? {
          name: top.name,
          share: top.share,
          halfSpeedup: kernelMs / (kernelMs - top.ms / 2),
          boundSpeedup: top.ms < kernelMs ? kernelMs / (kernelMs - top.ms) : Infinity,
        }
      : null;
  const calls = kernels.length;
  return {
    timer: !timed
      ? `no kernel times: ${calls} kernel calls, counted only`
      : source === "timestamps"
        ? `GPU timestamps (timestamp-query), ${calls} kernel calls`
        : `wall clock per kernel with its outputs read back (no timestamp-query), ${calls} kernel calls`,
    wallMs,
    kernelMs,
    kernels: rows,
    slowest,
  };
}
