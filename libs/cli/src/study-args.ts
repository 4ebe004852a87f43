// The options that the long studies (tools/*-study.ts) share: which seeds, and when to stop.

/** "0,1,2" as seeds; names the bad one otherwise. */
export function parseSeeds(text: string): number[] {
  return text.split(",").map((x) => {
    const n = Number(x);
    if (x.trim() === "" || !Number.isInteger(n) || n < 0)
      throw new Error(`--seeds: ${x === "" ? "an empty entry" : x} is not a seed (0, 1, ...)`);
    return n;
  });
}

/**
 * "HH:MM" (UTC) as the time in ms when a run should stop: the next such time after `now`, so
 * --until 02:00 given at 23:00 means three hours, not the past.
 */
export function untilDeadline(text: string, now = new Date()): number {
  const match = /^(\d{1,2}):(\d{2})$/.exec(text);
  const [hours, minutes] = match ? [Number(match[1]), Number(match[2])] : [NaN, NaN];
  if (!(hours < 24 && minutes < 60)) throw new Error(`--until: HH:MM (UTC), got ${text}`);
  const deadline = new Date(now);
  deadline.setUTCHours(hours, minutes, 0, 0);
  if (deadline.getTime() <= now.getTime()) deadline.setUTCDate(deadline.getUTCDate() + 1);
  return deadline.getTime();
}
