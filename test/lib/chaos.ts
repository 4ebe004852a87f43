// The chaos run: a short training run on loopback (an S3 server, a bank of two shards, data workers,
// a trainer) while a seeded schedule SIGKILLs or SIGTERMs its parts at chosen steps, including
// before the first checkpoint and while a checkpoint is being written, restarts each as Kubernetes
// would (same address, same trainer id, after a short back-off) and once starts a second trainer
// beside the first. An undisturbed run of the same config goes first, as the reference. At the end
// it checks: the run completed; each epoch trained every sample exactly once, and the trainer that
// completed the run replays every epoch's report (earlier trainers' from its checkpoint); every
// published checkpoint verifies; every SIGTERM ended its process without a SIGKILL; and, where the
// schedule keeps the data order fixed (`boundary`: one data worker, kills only right after a
// checkpoint), the final encoder equals the reference's. A failure prints each trainer's story.
//   test/chaos.test.ts runs a short seeded schedule; `npm run -s chaos` a longer one (tools/chaos.ts).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { trainerAt } from "@adco/cli";
import { RunConfig, type EpochEvent, type RunEvent, RunState } from "@adco/proto/trainer";
import { Mulberry32 } from "@adco/random";
import { launchService, type MonorepoService, unaryCall } from "@adco/service-kit";
import {
  type Bundle,
  latestPointerKey,
  type LatestPointer,
  listCheckpoints,
  ObjectStore,
  openBundle,
  runStatusKey,
} from "@adco/storage";
import { startS3Server, type S3ServerProcess } from "@adco/storage/testing";
import { CheckpointStore } from "@adco/trainer";
import { importTinyDataset } from "./tiny-dataset.js";
import { s3Env, type ServiceProcess } from "./service-process.js";
import { watch } from "./trainer-run.js";

/** The parts a disruption can hit. */
export const TARGETS = ["trainer", "bank", "shard", "worker", "store"] as const;
export type Target = (typeof TARGETS)[number];

export interface Disruption {
  /** Hit once the run has reported this step (the step event: a checkpoint write starts right after). */
  readonly step: number;
  readonly target: Target;
  readonly signal: "SIGKILL" | "SIGTERM";
  /** The back-off before the part is started again. */
  readonly restartMs: number;
  /** Why it is in the schedule. */
  readonly note: string;
}

export interface ChaosOptions {
  readonly seed: number;
  readonly epochs: number;
  /** Training images (the bundled subset's first ones); batch 32, so trainImages / 32 steps an epoch. */
  readonly trainImages: number;
  /** Disruptions at random steps, beyond the fixed ones (before the first checkpoint, during one). */
  readonly disruptions: number;
  /** Kills only right after a checkpoint, with one data worker: the final encoder must equal the reference's. */
  readonly boundary: boolean;
  readonly log: (line: string) => void;
}

export interface ChaosReport {
  readonly seed: number;
  readonly boundary: boolean;
  readonly steps: number;
  readonly schedule: readonly Disruption[];
  /** Disruptions the run went through and still completed. */
  readonly killsSurvived: number;
  /** Steps trained more than once (seen in WatchRun over every trainer process), because of the kills. */
  readonly stepsRedone: number;
  /** Wall time of the disturbed run less the reference's. */
  readonly secondsLost: number;
  readonly referenceSeconds: number;
  readonly chaosSeconds: number;
  readonly runsLost: number;
  /** Largest absolute difference of a weight of the final encoders (query and key) from the reference's. */
  readonly encoderMaxDifference: number;
  /** Processes SIGTERMed, and how many of them needed a SIGKILL. */
  readonly terminated: number;
  readonly sigkillNeeded: number;
  readonly checkpointsVerified: number;
  /** Every invariant that did not hold; empty when the run survived. */
  readonly violations: string[];
}

const BATCH = 32;
const CHECKPOINT_EVERY = 4;
const TRAINER_ID = "trainer-0";
const STANDBY_ID = "trainer-1";
/** A SIGTERMed process that is not gone by then gets a SIGKILL (the launcher's), which counts as a violation. */
const TERM_GRACE_MS = 20_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The schedule of a seed: a trainer SIGKILL before the first checkpoint, an object-store SIGKILL as a
 * checkpoint write starts, a second trainer once, then `count` hits at random steps and parts.
 * `boundary`: every hit lands on a checkpoint step, and no worker is hit (the data order stays fixed).
 */
export function chaosSchedule(seed: number, steps: number, count: number, boundary: boolean): Disruption[] {
  const random = new Mulberry32(seed);
  const back = () => Math.round(random.uniform(300, 2000));
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(random.next() * xs.length)]!;
  const onCheckpoint = (s: number) =>
    Math.max(CHECKPOINT_EVERY, Math.round(s / CHECKPOINT_EVERY) * CHECKPOINT_EVERY);
  const fixed: Disruption[] = [
    {
      step: boundary ? CHECKPOINT_EVERY : 2,
      target: "trainer",
      signal: "SIGKILL",
      restartMs: back(),
      note: boundary ? "trainer at its first checkpoint" : "trainer before the first checkpoint",
    },
    {
      step: CHECKPOINT_EVERY * 2,
      target: "store",
      signal: "SIGKILL",
      restartMs: back(),
      note: "object store as a checkpoint write starts",
    },
    {
      step: boundary ? onCheckpoint(steps / 2) : Math.floor(steps / 2),
      target: "trainer",
      signal: "SIGTERM",
      restartMs: back(),
      note: "trainer rolled (the second trainer may take the run over)",
    },
  ];
  const targets = boundary ? TARGETS.filter((t) => t !== "worker") : TARGETS;
  const random_: Disruption[] = [];
  for (let i = 0; i < count; i++) {
    const raw = Math.floor(random.uniform(CHECKPOINT_EVERY * 2 + 1, steps - 1));
    random_.push({
      step: boundary ? Math.min(onCheckpoint(raw), steps - CHECKPOINT_EVERY) : raw,
      target: pick(targets),
      signal: random.chance(0.5) ? "SIGKILL" : "SIGTERM",
      restartMs: back(),
      note: "random",
    });
  }
  return [...fixed, ...random_].sort((a, b) => a.step - b.step);
}

/** One part as Kubernetes runs it: a fixed address, restarted with the same environment. */
class Part {
  process: ServiceProcess | undefined;
  private port = 0;
  constructor(
    readonly service: MonorepoService,
    private readonly env: () => Record<string, string>,
  ) {}

  async start(): Promise<ServiceProcess> {
    this.process = await launchService(this.service, {
      env: { ...this.env(), ADCO_GRPC_PORT: String(this.port), ADCO_LOG_LEVEL: "info" },
    });
    this.port = this.process.grpcPort;
    return this.process;
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }
}

/** Every trainer process's WatchRun of the run, from its start, kept for the exactly-once check. */
class RunWatch {
  readonly streams: RunEvent[][] = [];
  /** The process of each stream, in the same order. */
  readonly processes: ServiceProcess[] = [];
  lastStep = 0;
  /** The trainer process that reported the last step: the run's owner. */
  lastFrom: ServiceProcess | undefined;
  /** A trainer process has sent the run's COMPLETED state. */
  completed = false;
  private closed = false;
  /** Who waits for the next step or state event (untilStep). */
  private waiting: Array<() => void> = [];

  follow(trainer: ServiceProcess, runId: string): void {
    const events: RunEvent[] = [];
    this.streams.push(events);
    this.processes.push(trainer);
    void (async () => {
      // NOT_FOUND until this process has the run (a stand-by trainer may never get it).
      while (!this.closed && trainer.child.exitCode === null && trainer.child.signalCode === null) {
        const done = await this.stream(trainer, runId, events).catch(() => false);
        if (done) return;
        await sleep(250);
      }
    })();
  }

  close(): void {
    this.closed = true;
  }

  /**
   * Waits for a step event of `step` or later (true) or the run's end (false), woken by each event
   * rather than by polling, so that a hit is not late: the trainer trains a step in ~0.25 s. The
   * stored status is read once a second in case no followed stream sends the end.
   */
  async untilStep(step: number, completedInStore: () => Promise<boolean>): Promise<boolean> {
    for (;;) {
      if (this.completed) return false;
      if (this.lastStep >= step) return true;
      const event = new Promise<boolean>((resolve) => this.waiting.push(() => resolve(true)));
      let timer: NodeJS.Timeout | undefined;
      const tick = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), 1000)));
      const woke = await Promise.race([event, tick]);
      // Cleared, so that each step woken by its event leaves no timer running on.
      clearTimeout(timer);
      if (!woke && (await completedInStore())) return false;
    }
  }

  /** Each trainer process's stream in short (s: step, E: epoch report, c: checkpoint), then its log. */
  story(): string[] {
    const short = (e: RunEvent) =>
      e.step
        ? `s${e.step.step}`
        : e.epoch
          ? `E${e.epoch.epoch}:${e.epoch.samples}`
          : e.checkpoint
            ? `c${e.checkpoint.checkpoint?.step}`
            : e.state
              ? `[${RunState[e.state.state]}: ${e.state.message}]`
              : ".";
    return this.streams.flatMap((events, i) => {
      const { child, logs } = this.processes[i]!;
      return [
        `trainer pid ${child.pid} sent: ${events.map(short).join(" ")}`,
        ...logs.map(
          ({ msg, time: _t, pid: _p, hostname: _h, level: _l, ...rest }) =>
            `  pid ${child.pid}: ${String(msg)} ${JSON.stringify(rest)}`,
        ),
      ];
    });
  }

  private stream(trainer: ServiceProcess, runId: string, events: RunEvent[]): Promise<boolean> {
    const client = trainerAt(trainer.grpcAddress);
    const call = client.watchRun({ runId, replay: true });
    return new Promise((resolve, reject) => {
      let got = false;
      call.on("data", (e: RunEvent) => {
        got = true;
        events.push(e);
        if (e.step) {
          this.lastStep = e.step.step;
          this.lastFrom = trainer;
        }
        if (e.state?.state === RunState.RUN_STATE_COMPLETED) this.completed = true;
        if (e.step || e.state) for (const wake of this.waiting.splice(0)) wake();
      });
      call.on("error", (e: grpc.ServiceError) => {
        client.close();
        if (got) resolve(true);
        else reject(e);
      });
      call.on("end", () => {
        client.close();
        resolve(true);
      });
    });
  }
}

interface Cluster {
  readonly s3: { server: S3ServerProcess; directory: string; port: number };
  readonly store: ObjectStore;
  readonly parts: Record<"bank" | "shard", Part>;
  /** The first trainer and the second, started once. */
  readonly trainers: Part[];
  readonly workers: Part[];
  readonly terminations: { stopped: number; sigkill: number };
}

/** Sends `signal` and, for SIGTERM, waits for the exit, counting a SIGKILL that the grace period forced. */
async function hit(cluster: Cluster, process: ServiceProcess, signal: "SIGKILL" | "SIGTERM"): Promise<void> {
  const result = await process.stop(signal, TERM_GRACE_MS);
  if (signal === "SIGTERM") {
    cluster.terminations.stopped++;
    if (result.signal === "SIGKILL") cluster.terminations.sigkill++;
  }
}

/** The final checkpoint's encoder and optimizer weights (every .bin file), by name. */
async function finalWeights(
  store: ObjectStore,
  bucket: string,
  runId: string,
): Promise<Map<string, Float32Array>> {
  const pointer = await store.getJson<LatestPointer>(bucket, latestPointerKey(runId));
  const bundle: Bundle<unknown> = await openBundle(store, bucket, pointer.manifest);
  const out = new Map<string, Float32Array>();
  for (const name of Object.keys(bundle.manifest.files).filter((n) => n.endsWith(".bin"))) {
    const bytes = await bundle.read(name);
    out.set(name, new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4));
  }
  return out;
}

function maxDifference(a: Map<string, Float32Array>, b: Map<string, Float32Array>): number {
  let max = 0;
  for (const [name, x] of a) {
    const y = b.get(name);
    if (!y || y.length !== x.length) return Infinity;
    for (let i = 0; i < x.length; i++) max = Math.max(max, Math.abs(x[i]! - y[i]!));
  }
  return max;
}

/**
 * Verifies every published checkpoint of the run as a resume would (CheckpointStore.verify: every
 * object of the checkpoint and of the bank snapshot it names, each shard's too); the failures.
 */
async function verifyCheckpoints(
  store: ObjectStore,
  bucket: string,
  runId: string,
): Promise<{ count: number; failures: string[] }> {
  const failures: string[] = [];
  const checkpoints = await listCheckpoints(store, bucket, runId);
  const verifier = new CheckpointStore(store, bucket);
  for (const c of checkpoints) {
    try {
      await verifier.verify(c.key);
    } catch (e) {
      failures.push(`checkpoint at step ${c.step}: ${(e as Error).message}`);
    }
  }
  return { count: checkpoints.length, failures };
}

async function storedState(store: ObjectStore, bucket: string, runId: string): Promise<string | undefined> {
  try {
    return (await store.getJson<{ state: string }>(bucket, runStatusKey(runId))).state;
  } catch {
    return undefined;
  }
}

export async function runChaos(options: ChaosOptions): Promise<ChaosReport> {
  const { log } = options;
  const bucket = `chaos-${options.seed}`;
  const directory = mkdtempSync(join(tmpdir(), "adco-chaos-"));
  let server = await startS3Server({ directory });
  const s3Port = Number(new URL(server.settings.endpoint).port);
  const store = new ObjectStore(server.settings);
  await importTinyDataset(store, "chaos", { train: options.trainImages, test: 64 });
  await store.ensureBucket(bucket);

  const env = () => s3Env(server.settings);
  const shard = new Part("adversary-bank", env);
  const bank = new Part("adversary-bank", env);
  const workers = Array.from({ length: options.boundary ? 1 : 2 }, () => new Part("data-worker", env));
  const trainerEnv = (id: string) => () => ({
    ...env(),
    ADCO_CHECKPOINTS_BUCKET: bucket,
    ADCO_BANK_ADDRESS: bank.address,
    ADCO_BANK_PEERS: shard.address,
    ADCO_DATA_WORKERS: workers.map((w) => w.address).join(","),
    ADCO_RETRY_TIMEOUT_SECONDS: "120",
    ADCO_TRAINER_ID: id,
    ADCO_LEASE_SECONDS: "3",
  });
  const trainer = new Part("trainer", trainerEnv(TRAINER_ID));
  const standby = new Part("trainer", trainerEnv(STANDBY_ID));
  const cluster: Cluster = {
    s3: { server, directory, port: s3Port },
    store,
    parts: { bank, shard },
    trainers: [trainer, standby],
    workers,
    terminations: { stopped: 0, sigkill: 0 },
  };
  const everything = () => [shard, bank, ...workers, trainer, standby];
  const watch = new RunWatch();
  // The hits' restarts under way in the background (awaited before the end).
  const background: Promise<void>[] = [];
  try {
    await shard.start();
    await bank.start();
    for (const w of workers) await w.start();
    await trainer.start();

    const config = RunConfig.fromPartial({
      preset: "fashion-mnist",
      dataset: { bucket: "adco-datasets", name: "chaos" },
      epochs: options.epochs,
      batchSize: BATCH,
      bankSize: 64,
      checkpointEverySteps: CHECKPOINT_EVERY,
      keepCheckpoints: 3,
    });
    const steps = options.epochs * Math.ceil(options.trainImages / BATCH);
    const schedule = chaosSchedule(options.seed, steps, options.disruptions, options.boundary);

    // The reference: the same config, undisturbed.
    const referenceStart = performance.now();
    await startOn(trainer.process!, "reference", config);
    const referenceEnd = await untilEnded(store, bucket, "reference", 600_000);
    if (referenceEnd !== "RUN_STATE_COMPLETED") {
      const status = await store
        .getJson<{ error: string }>(bucket, runStatusKey("reference"))
        .catch(() => undefined);
      throw new Error(`the undisturbed reference run ended ${referenceEnd}: ${status?.error ?? ""}`);
    }
    const referenceSeconds = (performance.now() - referenceStart) / 1000;
    log(`reference: ${steps} steps in ${referenceSeconds.toFixed(1)} s`);

    const runId = "chaos";
    const chaosStart = performance.now();
    watch.follow(trainer.process!, runId);
    await startOn(trainer.process!, runId, config);
    // A part hit is started again in the background, so that the next hit is on time; the same part
    // is hit again only once its restart is done (`restarts`: those under way).
    const restarts = new Map<Part | "store", Promise<void>>();
    const inBackground = (key: Part | "store", task: Promise<void>) => {
      const settled: Promise<void> = task
        .catch(() => undefined)
        .finally(() => {
          if (restarts.get(key) === settled) restarts.delete(key);
        });
      restarts.set(key, settled);
      background.push(task);
    };
    const completedInStore = async () => (await storedState(store, bucket, runId)) === "RUN_STATE_COMPLETED";
    const late: Disruption[] = [];
    let survived = 0;
    let standbyStarted = false;
    for (const d of schedule) {
      if (!(await watch.untilStep(d.step, completedInStore))) {
        late.push(d);
        log(`the run completed before step ${d.step}: ${d.signal} ${d.target} (${d.note}) not sent`);
        continue;
      }
      if (!standbyStarted && d.step > steps / 3) {
        standbyStarted = true;
        log(`step ${watch.lastStep}: a second trainer (${STANDBY_ID}) starts beside the first`);
        inBackground(
          standby,
          standby.start().then((p) => watch.follow(p, runId)),
        );
      }
      const part = await targetOf(cluster, d, watch, restarts);
      log(
        `step ${watch.lastStep} (due ${d.step}): ${d.signal} ${d.target} (${d.note}), back in ${d.restartMs} ms`,
      );
      inBackground(
        part,
        disrupt(
          cluster,
          part,
          d,
          () => server,
          (s) => (server = s),
          watch,
          runId,
        ),
      );
      survived++;
    }
    const final = await untilEnded(store, bucket, runId, 900_000);
    const chaosSeconds = (performance.now() - chaosStart) / 1000;
    await Promise.all(background);
    watch.close();

    const violations: string[] = [];
    if (final !== "RUN_STATE_COMPLETED") violations.push(`the run ended ${final}, not COMPLETED`);
    for (const d of late)
      violations.push(`the run completed before the hit due at step ${d.step} (${d.signal} ${d.target})`);
    // The last report of each epoch, over every trainer process, counts every sample once.
    const epochs = new Map<number, { at: number; epoch: EpochEvent }>();
    for (const events of watch.streams)
      for (const e of events)
        if (e.epoch && e.unixMs >= (epochs.get(e.epoch.epoch)?.at ?? 0))
          epochs.set(e.epoch.epoch, { at: e.unixMs, epoch: e.epoch });
    for (let epoch = 0; epoch < options.epochs; epoch++) {
      const samples = epochs.get(epoch)?.epoch.samples;
      if (samples !== options.trainImages)
        violations.push(`epoch ${epoch} trained ${samples ?? "no"} samples, not ${options.trainImages}`);
    }
    // The trainer that completed the run replays every epoch, also those earlier trainers reported.
    if (final === "RUN_STATE_COMPLETED") {
      const replays = await Promise.all(cluster.trainers.map((t) => replayOf(t.process!, runId)));
      const completed = replays.find((events) =>
        events.some((e) => e.state?.state === RunState.RUN_STATE_COMPLETED),
      );
      const replayed = new Set(completed?.flatMap((e) => (e.epoch ? [e.epoch.epoch] : [])));
      if (!completed) violations.push("no live trainer replays the completed run");
      else if (replayed.size !== options.epochs)
        violations.push(`the completing trainer replays epochs ${[...replayed].join(", ") || "none"} only`);
    }
    const verified = await verifyCheckpoints(store, bucket, runId);
    violations.push(...verified.failures);
    if (cluster.terminations.sigkill > 0)
      violations.push(
        `${cluster.terminations.sigkill} of ${cluster.terminations.stopped} SIGTERMed processes needed a SIGKILL`,
      );
    const difference = maxDifference(
      await finalWeights(store, bucket, runId),
      await finalWeights(store, bucket, "reference"),
    );
    if (options.boundary && !(difference <= 1e-5))
      violations.push(`the final encoder differs from the reference's by up to ${difference}`);
    // What each trainer process sent and logged, to tell a failure's story in CI's output.
    if (violations.length > 0) for (const line of watch.story()) log(line);
    const trained = watch.streams.reduce((n, events) => n + events.filter((e) => e.step).length, 0);
    return {
      seed: options.seed,
      boundary: options.boundary,
      steps,
      schedule,
      killsSurvived: final === "RUN_STATE_COMPLETED" ? survived : 0,
      stepsRedone: Math.max(0, trained - steps),
      secondsLost: chaosSeconds - referenceSeconds,
      referenceSeconds,
      chaosSeconds,
      runsLost: final === "RUN_STATE_COMPLETED" ? 0 : 1,
      encoderMaxDifference: difference,
      terminated: cluster.terminations.stopped,
      sigkillNeeded: cluster.terminations.sigkill,
      checkpointsVerified: verified.count,
      violations,
    };
  } finally {
    watch.close();
    await Promise.allSettled(background);
    await Promise.all(everything().map((p) => p.process?.stop("SIGKILL")));
    await server.stop();
    rmSync(directory, { recursive: true, force: true });
  }
}

async function startOn(trainer: ServiceProcess, runId: string, config: RunConfig): Promise<void> {
  const client = trainerAt(trainer.grpcAddress);
  try {
    await unaryCall(client.startRun.bind(client), { runId, config, resumeStep: undefined });
  } finally {
    client.close();
  }
}

/** The events a trainer process replays of an ended run (none when it never had the run). */
const replayOf = (trainer: ServiceProcess, runId: string): Promise<RunEvent[]> =>
  watch(trainer, runId, () => false).catch((e: grpc.ServiceError) => {
    if (e.code === grpc.status.NOT_FOUND) return [];
    throw e;
  });

const FINAL = ["RUN_STATE_COMPLETED", "RUN_STATE_FAILED", "RUN_STATE_STOPPED"];

/** Polls the stored status until it is final (whichever trainer writes it). */
async function untilEnded(
  store: ObjectStore,
  bucket: string,
  runId: string,
  timeoutMs: number,
): Promise<string> {
  const giveUp = Date.now() + timeoutMs;
  for (;;) {
    const state = await storedState(store, bucket, runId);
    if (state && FINAL.includes(state)) return state;
    if (Date.now() > giveUp) return `still ${state ?? "unknown"} after ${timeoutMs / 1000} s`;
    await sleep(250);
  }
}

/** The part `d` hits, once its restart from an earlier hit is done (for the trainer: the run's owner then). */
async function targetOf(
  cluster: Cluster,
  d: Disruption,
  watch: RunWatch,
  restarts: ReadonlyMap<Part | "store", Promise<void>>,
): Promise<Part | "store"> {
  const pick = (): Part | "store" =>
    d.target === "store"
      ? "store"
      : d.target === "worker"
        ? cluster.workers[d.step % cluster.workers.length]!
        : d.target === "trainer"
          ? (cluster.trainers.find((t) => t.process && t.process === watch.lastFrom) ?? cluster.trainers[0]!)
          : cluster.parts[d.target];
  for (;;) {
    const part = pick();
    const restart = restarts.get(part);
    if (!restart) return part;
    await restart;
  }
}

/** Hits `part` and starts it again after `d.restartMs` (a SIGTERMed trainer leaves its run; the next one resumes it). */
async function disrupt(
  cluster: Cluster,
  part: Part | "store",
  d: Disruption,
  server: () => S3ServerProcess,
  replace: (s: S3ServerProcess) => void,
  watch: RunWatch,
  runId: string,
): Promise<void> {
  if (part === "store") {
    const s = server();
    const exited = new Promise((r) => s.process.once("exit", r));
    s.process.kill(d.signal);
    await exited;
    await sleep(d.restartMs);
    replace(await startS3Server({ directory: cluster.s3.directory, port: cluster.s3.port }));
    return;
  }
  await hit(cluster, part.process!, d.signal);
  await sleep(d.restartMs);
  const started = await part.start();
  if (d.target === "trainer") watch.follow(started, runId);
}
