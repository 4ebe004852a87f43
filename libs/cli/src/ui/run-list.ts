// The run list for every open page at once: one ListRuns poll while any page listens (ListRuns
// lists the checkpoints bucket, so one poll per page would cost the trainer and the store per
// viewer), sent to each page on connect and then whenever the answer changes. A selected run's own
// state changes come sooner, through its WatchRun stream.
import { ListRunsResponse, type TrainerClient } from "@adco/proto/trainer";
import { unaryCall } from "@adco/service-kit";
import { apiErrorOf } from "./errors.js";
import type { EventStream } from "./sse.js";

export const RUN_LIST_POLL_MS = 5000;

interface Message {
  readonly event: "runs" | "trainer-error";
  readonly data: unknown;
}

export class RunListFeed {
  private readonly streams = new Set<EventStream>();
  private last: Message | undefined;
  private lastText = "";
  private timer: NodeJS.Timeout | undefined;
  private polling = false;

  constructor(
    private readonly trainer: TrainerClient,
    private readonly pollMs = RUN_LIST_POLL_MS,
  ) {}

  subscribe(stream: EventStream): void {
    this.streams.add(stream);
    stream.onClose(() => {
      this.streams.delete(stream);
      if (this.streams.size === 0) this.stop();
    });
    if (this.last) stream.send(this.last.event, this.last.data);
    if (!this.polling) void this.poll();
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.polling = false;
    this.last = undefined;
    this.lastText = "";
  }

  private async poll(): Promise<void> {
    this.polling = true;
    let message: Message;
    try {
      const runs = await unaryCall(this.trainer.listRuns.bind(this.trainer), {}, 10_000);
      message = { event: "runs", data: ListRunsResponse.toJSON(runs) };
    } catch (e) {
      const error = apiErrorOf(e);
      message = { event: "trainer-error", data: { code: error.code, message: error.message } };
    }
    if (!this.polling) return; // every page left while the call was out
    const text = JSON.stringify(message);
    if (text !== this.lastText) for (const stream of this.streams) stream.send(message.event, message.data);
    this.last = message;
    this.lastText = text;
    this.timer = setTimeout(() => void this.poll(), this.pollMs);
  }
}
