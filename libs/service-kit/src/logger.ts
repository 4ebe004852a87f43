// The one logger: pino, structured JSON lines on stdout, one field set per service.
import { pino, type Logger } from "pino";

export type { Logger };

export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export function createLogger(service: string, level: LogLevel): Logger {
  return pino({ level, base: { service, pid: process.pid } });
}
