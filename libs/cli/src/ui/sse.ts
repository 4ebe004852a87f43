// Server-sent events: the one way the dashboard pushes to the browser. A comment line every 15 s
// keeps proxies (kubectl port-forward included) from closing an idle stream.
import type { ServerResponse } from "node:http";

export interface EventStream {
  send(event: string, data: unknown): void;
  /** Called once, when the browser goes away or close() ends the stream. */
  onClose(listener: () => void): void;
  close(): void;
}

const HEARTBEAT_MS = 15_000;

export function openEventStream(res: ServerResponse): EventStream {
  res.writeHead(200, {
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-store",
    connection: "keep-alive",
  });
  res.write(": adco dashboard\n\n");
  const listeners: (() => void)[] = [];
  let closed = false;
  const heartbeat = setInterval(() => res.write(": heartbeat\n\n"), HEARTBEAT_MS);
  const finish = () => {
    if (closed) return;
    closed = true;
    clearInterval(heartbeat);
    for (const listener of listeners) listener();
  };
  res.on("close", finish);
  return {
    send(event, data) {
      if (closed) return;
      res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    },
    onClose(listener) {
      if (closed) listener();
      else listeners.push(listener);
    },
    close() {
      finish();
      res.end();
    },
  };
}
