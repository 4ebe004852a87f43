// The dashboard page: the run list and one run's live curves, pushed by the server as server-sent
// events (a run's WatchRun events, replayed from its start). uPlot draws the curves; redraws are
// batched to 4 a second, so a replay of thousands of steps or a fast run costs the page little.
/* global document, window, location, history, EventSource, FormData, URLSearchParams, fetch, setInterval, uPlot */
"use strict";

const $ = (id) => document.getElementById(id);
const FINAL = ["RUN_STATE_STOPPED", "RUN_STATE_COMPLETED", "RUN_STATE_FAILED"];
const stateName = (state) => (state || "RUN_STATE_UNSPECIFIED").replace("RUN_STATE_", "").toLowerCase();
const pct = (v) => (v === undefined || v === null ? "–" : `${(100 * v).toFixed(1)}%`);

// Proto JSON leaves out fields that are zero: a missing number is 0, a missing message is no value.
const num = (v) => v ?? 0;
const bank = (field) => (s) => (s.bank ? num(s.bank[field]) : null);

// One chart per quantity of the StepEvent (x: the step); kNN from the run's eval events.
const CHARTS = [
  { id: "loss", title: "contrastive loss", series: [["loss", (s) => num(s.loss)]] },
  { id: "lr", title: "learning rate", series: [["lr", (s) => num(s.lr)]] },
  {
    id: "contrast",
    title: "contrast accuracy, adversary probability",
    series: [
      ["contrast accuracy", bank("contrastAccuracy")],
      ["adversary probability", bank("adversaryProbability")],
    ],
  },
  {
    id: "similarity",
    title: "cosine similarity",
    series: [
      ["positive (mean)", bank("meanPositiveSimilarity")],
      ["adversary (mean)", bank("meanAdversarySimilarity")],
      ["adversary (max)", bank("maxAdversarySimilarity")],
    ],
  },
  { id: "throughput", title: "images / s", series: [["images/s", (s) => num(s.imagesPerSecond)]] },
  {
    id: "data-wait",
    title: "data wait, % of step time",
    series: [["data wait %", (s) => 100 * num(s.dataWaitFraction)]],
  },
  {
    id: "step-time",
    title: "time per step, ms",
    series: [
      ["bank call", (s) => num(s.bankCallMs)],
      ["encoders", (s) => num(s.computeMs)],
    ],
  },
  {
    id: "knn",
    title: "kNN top-1 % (each evaluated checkpoint)",
    series: [["kNN top-1 %", null]],
    points: true,
    empty: "No evaluations yet: a trainer with an evaluator scores each epoch's checkpoint.",
  },
];
const COLORS = ["#0969da", "#cf222e", "#1a7f37", "#8250df"];

let selected = null; // run id
// The run the page's link names (#run=ID), until the run list shows it: a run just started may not
// be in the first list the page gets.
let linked = new URLSearchParams(location.hash.slice(1)).get("run");
let runs = [];
let runEvents = null; // EventSource of the selected run
let charts = [];
let dirty = false;
let workers = new Map(); // address -> { joined, at, reason }

function message(text, bad = false) {
  $("message").textContent = text;
  $("message").className = bad ? "message bad" : "message";
}

async function api(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const value = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(`${value.code ?? response.status}: ${value.message ?? ""}`);
  return value;
}

// ---- charts

/** Tick labels with as many decimals as the tick spacing needs (0.0598, 0.0600; not 0.06, 0.06). */
function ticks(u, splits) {
  const spacing = splits.length > 1 ? Math.abs(splits[1] - splits[0]) : Math.abs(splits[0] ?? 1);
  const decimals = spacing > 0 ? Math.min(8, Math.max(0, -Math.floor(Math.log10(spacing)))) : 2;
  return splits.map((v) => (Math.abs(v) >= 1e4 ? v.toExponential(1) : v.toFixed(decimals)));
}

function makeChart(spec) {
  const box = document.createElement("div");
  box.className = "chart";
  box.dataset.chart = spec.id;
  box.dataset.points = "0";
  $("charts").appendChild(box);
  const data = [[], ...spec.series.map(() => [])];
  const plot = new uPlot(
    {
      title: spec.title,
      width: Math.max(300, box.clientWidth - 12),
      height: 170,
      scales: { x: { time: false } },
      axes: [{ label: "step" }, { size: 64, values: ticks }],
      legend: { live: false },
      series: [
        { label: "step" },
        ...spec.series.map(([label], i) => ({
          label,
          stroke: COLORS[i % COLORS.length],
          width: 1.5,
          points: { show: spec.points ?? false, size: 7 },
          spanGaps: true,
        })),
      ],
    },
    data,
    box,
  );
  let note = null;
  if (spec.empty) {
    note = document.createElement("p");
    note.className = "empty";
    note.textContent = spec.empty;
    box.appendChild(note);
  }
  return { spec, box, data, plot, note };
}

function resetCharts() {
  for (const c of charts) c.plot.destroy();
  $("charts").replaceChildren();
  charts = CHARTS.map(makeChart);
}

/** Appends one point per series; a step at or before the last (a resume) cuts the curve back first. */
function addPoint(chart, x, values) {
  const xs = chart.data[0];
  while (xs.length && xs[xs.length - 1] >= x) for (const column of chart.data) column.pop();
  xs.push(x);
  values.forEach((v, i) => chart.data[i + 1].push(v ?? null));
  dirty = true;
}

setInterval(() => {
  if (!dirty) return;
  dirty = false;
  for (const c of charts) {
    c.plot.setData(c.data);
    c.box.dataset.points = String(c.data[0].length);
    if (c.note) c.note.hidden = c.data[0].length > 0;
  }
  renderRuns();
}, 250);

window.addEventListener("resize", () => {
  for (const c of charts) c.plot.setSize({ width: Math.max(300, c.box.clientWidth - 12), height: 170 });
});

// ---- the run list

function renderRuns() {
  const body = $("runs").querySelector("tbody");
  body.replaceChildren(
    ...runs.map((run) => {
      const row = document.createElement("tr");
      row.dataset.run = run.runId;
      if (run.runId === selected) row.className = "selected";
      for (const text of [run.runId, stateName(run.state), `${run.step ?? 0}/${run.totalSteps || "?"}`]) {
        const cell = document.createElement("td");
        cell.textContent = text;
        row.appendChild(cell);
      }
      row.addEventListener("click", () => {
        linked = null;
        select(run.runId);
      });
      return row;
    }),
  );
  $("no-runs").hidden = runs.length > 0;
  renderSelectedRun();
}

function renderSelectedRun() {
  const run = runs.find((r) => r.runId === selected);
  if (!run) return;
  const state = stateName(run.state);
  $("run-title").textContent = run.runId;
  $("run-state").textContent = state;
  $("run-state").className = `state ${state}`;
  const config = run.config ?? {};
  $("run-progress").textContent =
    `step ${run.step ?? 0}/${run.totalSteps || "?"}, epoch ${(run.epoch ?? 0) + 1} of ${config.epochs ?? "?"}, ` +
    `${config.dataset?.name ?? ""}, batch ${config.batchSize ?? "?"}, K ${config.bankSize ?? "?"}`;
  const live = !FINAL.includes(run.state);
  $("stop").disabled = !live || run.state === "RUN_STATE_STOPPING";
  $("resume").disabled = live || run.state === "RUN_STATE_COMPLETED";
  $("checkpoint").disabled = run.state !== "RUN_STATE_RUNNING";
  $("evaluate").disabled = !run.latestCheckpoint;
  $("run-error").hidden = !run.error;
  $("run-error").textContent = run.error ?? "";
}

function watchRunList() {
  const source = new EventSource("/api/runs-stream");
  source.addEventListener("open", () => ($("connection").textContent = "live"));
  source.addEventListener("error", () => ($("connection").textContent = "reconnecting…"));
  source.addEventListener("trainer-error", (e) => {
    const error = JSON.parse(e.data);
    $("connection").textContent = `trainer: ${error.code}`;
  });
  source.addEventListener("runs", (e) => {
    $("connection").textContent = "live";
    runs = JSON.parse(e.data).runs ?? [];
    if (linked && runs.some((r) => r.runId === linked)) {
      select(linked);
      linked = null;
    } else if (!selected && runs.length) select(runs[0].runId);
    renderRuns();
  });
}

// ---- one run

function listItem(list, text, newestFirst) {
  const item = document.createElement("li");
  item.textContent = text;
  if (newestFirst) list.prepend(item);
  else list.appendChild(item);
  while (list.children.length > 200) list.removeChild(newestFirst ? list.lastChild : list.firstChild);
}

const time = (ms) => new Date(Number(ms)).toLocaleTimeString();

function onRunEvent(event) {
  const at = time(event.unixMs);
  if (event.step) {
    const s = event.step;
    const run = runs.find((r) => r.runId === event.runId);
    if (run) Object.assign(run, { step: num(s.step), epoch: num(s.epoch) });
    for (const chart of charts) {
      if (chart.spec.id === "knn") continue;
      addPoint(
        chart,
        s.step ?? 0,
        chart.spec.series.map(([, get]) => get(s)),
      );
    }
  } else if (event.epoch) {
    const e = event.epoch;
    listItem(
      $("events"),
      `${at} epoch ${e.epoch ?? 0} done: mean loss ${(e.meanLoss ?? 0).toFixed(3)}, ${e.samples ?? 0} samples, ${(e.seconds ?? 0).toFixed(0)} s`,
      true,
    );
  } else if (event.checkpoint) {
    const c = event.checkpoint.checkpoint ?? {};
    listItem($("checkpoints"), `${at} step ${c.step ?? 0}`, true);
  } else if (event.eval) {
    const e = event.eval;
    const knn = charts.find((c) => c.spec.id === "knn");
    if (e.knn) addPoint(knn, e.checkpoint?.step ?? 0, [100 * (e.knn.top1 ?? 0)]);
    listItem($("events"), `${at} eval at step ${e.checkpoint?.step ?? 0}: kNN ${pct(e.knn?.top1)}`, true);
    void loadEvaluations();
  } else if (event.worker) {
    const w = event.worker;
    workers.set(w.address, { joined: Boolean(w.joined), at, reason: w.reason ?? "" });
    renderWorkers();
    const what = w.joined ? "joined" : `lost (${w.reason || "stream ended"})`;
    listItem($("events"), `${at} data worker ${w.address} ${what}; ${w.workers ?? 0} serving`, true);
  } else if (event.state) {
    // The state is pushed here at once; the run list's stream confirms it within a poll.
    const run = runs.find((r) => r.runId === event.runId);
    if (run) {
      run.state = event.state.state;
      renderRuns();
    }
    const note = event.state.message ? ` (${event.state.message})` : "";
    listItem($("events"), `${at} ${stateName(event.state.state)}${note}`, true);
  }
}

function renderWorkers() {
  $("workers").replaceChildren(
    ...[...workers].map(([address, w]) => {
      const item = document.createElement("li");
      item.dataset.worker = address;
      item.className = w.joined ? "serving" : "lost";
      item.textContent = w.joined ? `${address}: serving since ${w.at}` : `${address}: lost at ${w.at}`;
      if (w.reason) item.title = w.reason;
      return item;
    }),
  );
}

function select(runId) {
  if (runId === selected) return;
  selected = runId;
  history.replaceState(null, "", `#run=${encodeURIComponent(runId)}`);
  $("run").hidden = false;
  $("checkpoints").replaceChildren();
  $("events").replaceChildren();
  workers = new Map();
  renderWorkers();
  resetCharts();
  renderRuns();
  openRunEvents();
  void loadEvaluations();
}

function openRunEvents() {
  runEvents?.close();
  const runId = selected;
  const source = new EventSource(`/api/runs/${encodeURIComponent(runId)}/events`);
  runEvents = source;
  source.addEventListener("run-event", (e) => onRunEvent(JSON.parse(e.data)));
  // The run ended (or the trainer refused): stop EventSource from reconnecting and replaying.
  source.addEventListener("watch-end", () => source.close());
  // A rollout: the server follows the run to the next trainer and says so meanwhile.
  source.addEventListener("watch-wait", () =>
    listItem($("events"), `${time(Date.now())} no trainer holds the run; waiting for the next one`, true),
  );
  source.addEventListener("watch-error", (e) => {
    const error = JSON.parse(e.data);
    message(`watching ${runId}: ${error.code}: ${error.message}`, true);
    source.close();
  });
}

async function loadEvaluations() {
  const runId = selected;
  const { evaluations } = await api("GET", `/api/runs/${encodeURIComponent(runId)}/evaluations`).catch(
    () => ({ evaluations: [] }),
  );
  if (runId !== selected || !evaluations.length) return;
  $("evaluations").replaceChildren(...evaluations.reverse().map(renderEvaluation));
}

function renderEvaluation(evaluation) {
  const r = evaluation.results ?? {};
  const box = document.createElement("div");
  box.className = "evaluation";
  const head = document.createElement("div");
  head.textContent =
    `step ${evaluation.step}: kNN ${pct(r.knn?.top1)}, linear ${pct(r.linear?.top1)}` +
    (r.rawPixels
      ? ` (raw pixels: kNN ${pct(r.rawPixels.knn?.top1)}, linear ${pct(r.rawPixels.linear?.top1)})`
      : "");
  box.appendChild(head);
  const names = r.classNames ?? [];
  if (names.length) {
    const table = document.createElement("table");
    table.className = "per-class";
    const rows = [
      ["class", ...names],
      ["kNN", ...names.map((_, i) => pct(r.knn?.perClassTop1?.[i]))],
      ["linear", ...names.map((_, i) => pct(r.linear?.perClassTop1?.[i]))],
    ];
    for (const cells of rows) {
      const row = document.createElement("tr");
      for (const text of cells) {
        const cell = document.createElement(row.children.length ? "td" : "th");
        cell.textContent = text;
        row.appendChild(cell);
      }
      table.appendChild(row);
    }
    box.appendChild(table);
  }
  const plots = document.createElement("div");
  plots.className = "plots";
  for (const plot of evaluation.plots.filter((p) => p.key.endsWith(".png"))) {
    const image = document.createElement("img");
    image.alt = plot.key.split("/").pop();
    image.src = `/api/objects/${encodeURIComponent(plot.bucket)}/${plot.key.split("/").map(encodeURIComponent).join("/")}`;
    plots.appendChild(image);
  }
  box.appendChild(plots);
  return box;
}

// ---- buttons

function action(button, verb, done) {
  $(button).addEventListener("click", async () => {
    const runId = selected;
    $(button).disabled = true;
    message(`${button} ${runId}…`);
    try {
      const value = await api("POST", `/api/runs/${encodeURIComponent(runId)}/${verb}`, {});
      message(done(value));
    } catch (e) {
      message(`${button} ${runId}: ${e.message}`, true);
    } finally {
      renderSelectedRun();
    }
  });
}

action("stop", "stop", () => "stop asked: the run checkpoints, then stops");
action("resume", "resume", (run) => {
  // A resumed run's events start again: watch it anew.
  resetCharts();
  $("events").replaceChildren();
  workers = new Map();
  renderWorkers();
  openRunEvents();
  return `resumed ${run.runId} at step ${run.step ?? 0}`;
});
action("checkpoint", "checkpoint", (c) => `checkpoint written at step ${c.step ?? 0}`);
action("evaluate", "evaluate", (result) => {
  const knn = charts.find((c) => c.spec.id === "knn");
  if (result.knn) addPoint(knn, result.checkpoint?.step ?? 0, [100 * (result.knn.top1 ?? 0)]);
  void loadEvaluations();
  return `step ${result.checkpoint?.step ?? 0}: kNN ${pct(result.knn?.top1)}, linear ${pct(result.linear?.top1)}`;
});

$("new-run").addEventListener("submit", async (e) => {
  e.preventDefault();
  const form = new FormData($("new-run"));
  try {
    const run = await api("POST", "/api/runs", Object.fromEntries(form.entries()));
    message(`started ${run.runId}`);
    selected = null;
    linked = null;
    history.replaceState(null, "", `#run=${encodeURIComponent(run.runId)}`);
    select(run.runId);
  } catch (error) {
    message(`start: ${error.message}`, true);
  }
});

watchRunList();
