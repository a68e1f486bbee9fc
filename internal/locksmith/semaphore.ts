// The reboot semaphore as locksmith stores it in etcd v2 (spec B1): the JSON model, the key of a
// group, and the lock / unlock / set-max rules with the original's quirks kept on purpose, because
// old locksmithctl binaries read and write the same value.
import * as v from "valibot";

export interface Semaphore {
  semaphore: number;
  max: number;
  /** Sorted ascending; literally null until the first lock (the Go zero value). */
  holders: string[] | null;
  /**
   * --lock-ttl only: unix seconds of each holder's last renewal. Go's encoding/json ignores
   * unknown fields, so old locksmithctl still reads the value (and drops this on its writes, which
   * only makes those holders exempt from expiry, as they always were).
   */
  renewed?: Record<string, number>;
}

export const INITIAL: Semaphore = { semaphore: 1, max: 1, holders: null };

const KEY_ROOT = "/coreos.com/updateengine/rebootlock";

/** The v2 key of a group's semaphore; "" is the default group. */
export function semaphoreKey(group: string): string {
  if (group === "") return `${KEY_ROOT}/semaphore`;
  return `${KEY_ROOT}/groups/${queryEscape(group)}/semaphore`;
}

/** Go's url.QueryEscape: spaces become "+", everything but [A-Za-z0-9-_.~] is %XX. */
export function queryEscape(s: string): string {
  return encodeURIComponent(s)
    .replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
    .replace(/%20/g, "+");
}

/** A refusal of the semaphore rules; the messages are the Go library's, word for word. */
export class SemaphoreError extends Error {
  constructor(
    readonly kind: "full" | "exists" | "not-exists",
    message: string,
  ) {
    super(message);
  }
}

/** A stored value that is not a semaphore: reported, and never overwritten. */
export class SemaphoreFormatError extends Error {}

const int = v.pipe(v.number(), v.integer());
const Schema = v.object({
  semaphore: int,
  max: int,
  holders: v.nullable(v.array(v.string())),
  renewed: v.optional(v.record(v.string(), int)),
});

export function parseSemaphore(raw: string, key = "semaphore"): Semaphore {
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch (e) {
    throw new SemaphoreFormatError(`value of ${key} is not valid JSON (${(e as Error).message}); refusing to overwrite it: ${clip(raw)}`);
  }
  const r = v.safeParse(Schema, json);
  if (!r.success) {
    const issue = r.issues[0];
    const path = issue.path?.map((p) => String(p.key)).join(".") ?? "";
    throw new SemaphoreFormatError(
      `value of ${key} is not a semaphore ({"semaphore":int,"max":int,"holders":[string]|null}): ${path ? `${path}: ` : ""}${issue.message}; refusing to overwrite it: ${clip(raw)}`,
    );
  }
  const s: Semaphore = { semaphore: r.output.semaphore, max: r.output.max, holders: r.output.holders };
  if (r.output.renewed) s.renewed = r.output.renewed;
  return s;
}

function clip(raw: string): string {
  return JSON.stringify(raw.length > 200 ? `${raw.slice(0, 200)}…` : raw);
}

/** Compact JSON in Go's field order; `renewed` only when it has entries, so plain use is byte-identical. */
export function encodeSemaphore(s: Semaphore): string {
  const out: Semaphore = { semaphore: s.semaphore, max: s.max, holders: s.holders };
  if (s.renewed && Object.keys(s.renewed).length > 0) out.renewed = sortedRecord(s.renewed);
  return JSON.stringify(out);
}

function sortedRecord(r: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(r).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** Index where `id` sits or would be inserted (Go's sort.SearchStrings: byte order). */
function search(holders: readonly string[], id: string): number {
  let lo = 0;
  let hi = holders.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (holders[mid]! < id) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Lock: the count is checked before the holder, so a holder asking again at 0 hears "semaphore is
 * at 0", not "holder exists" (locksmith#58). `now` (unix seconds) records a renewal under --lock-ttl.
 */
export function lock(s: Semaphore, id: string, now?: number): Semaphore {
  if (s.semaphore <= 0) throw new SemaphoreError("full", `semaphore is at ${s.semaphore}`);
  const holders = s.holders ?? [];
  const at = search(holders, id);
  if (holders[at] === id) throw new SemaphoreError("exists", "holder exists");
  const next: Semaphore = { ...s, semaphore: s.semaphore - 1, holders: [...holders.slice(0, at), id, ...holders.slice(at)] };
  if (now !== undefined) next.renewed = { ...s.renewed, [id]: now };
  return next;
}

export function unlock(s: Semaphore, id: string): Semaphore {
  const holders = s.holders ?? [];
  const at = search(holders, id);
  if (holders[at] !== id) throw new SemaphoreError("not-exists", "holder does not exist");
  // Go's append(h[:i], h[i+1:]...) leaves an empty slice, which marshals as [] (not null).
  const next: Semaphore = { ...s, semaphore: s.semaphore + 1, holders: [...holders.slice(0, at), ...holders.slice(at + 1)] };
  if (s.renewed && id in s.renewed) {
    const { [id]: _, ...rest } = s.renewed;
    next.renewed = rest;
  }
  return next;
}

/** No clamp: holders stay and the count may go negative until enough of them unlock. */
export function setMax(s: Semaphore, n: number): Semaphore {
  return { ...s, semaphore: s.semaphore - (s.max - n), max: n };
}

export function holds(s: Semaphore, id: string): boolean {
  const holders = s.holders ?? [];
  return holders[search(holders, id)] === id;
}

/** Marks a holder as alive now (--lock-ttl); a non-holder is left alone. */
export function renew(s: Semaphore, id: string, now: number): Semaphore {
  if (!holds(s, id)) throw new SemaphoreError("not-exists", "holder does not exist");
  return { ...s, renewed: { ...s.renewed, [id]: now } };
}

/**
 * Drops every holder whose recorded renewal is more than `ttl` seconds before `now`. Holders with
 * no record (written by an old locksmithctl) never expire. Returns the dropped ids too.
 */
export function expire(s: Semaphore, now: number, ttl: number): { sem: Semaphore; dropped: string[] } {
  const renewed = s.renewed ?? {};
  const dropped = (s.holders ?? []).filter((h) => renewed[h] !== undefined && now - renewed[h]! > ttl);
  let sem = s;
  for (const h of dropped) sem = unlock(sem, h);
  return { sem, dropped };
}
