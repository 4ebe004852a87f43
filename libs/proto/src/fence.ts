// The one order of Fence messages (adversary_bank.proto), shared by the bank that enforces it and the
// trainer that takes runs over: by token, then by owner, so that two trainers that took the same
// token at once are still ordered and exactly one of them owns the run.
import type { Fence } from "./gen/adco/v1/adversary_bank.js";

/** Negative, zero or positive as `a` is below, equal to or above `b`. */
export function compareFences(a: Fence, b: Fence): number {
  if (a.token !== b.token) return a.token < b.token ? -1 : 1;
  return a.owner < b.owner ? -1 : a.owner > b.owner ? 1 : 0;
}

/** "token 3 of \"trainer-0\"", for messages. */
export const fenceText = (f: Fence) => `token ${f.token} of ${JSON.stringify(f.owner)}`;
