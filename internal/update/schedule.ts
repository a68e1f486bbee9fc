// When to check (spec §2.4): the first check, the periodic interval, the server's PollInterval, the
// exponential backoff on HTTP 500/503, and the per-payload download backoff. Pure: the random
// source is passed in (seeded in tests), times are plain numbers in seconds.

import type { Rand } from "../random/random.ts";

/** update_engine's FuzzInt(v, r): a uniform integer in [v - r/2, v + r - r/2] (integer halves). */
export function fuzzInt(value: number, range: number, rand: Rand): number {
  const min = value - Math.floor(range / 2);
  const max = value + range - Math.floor(range / 2);
  return min + Math.floor(rand() * (max - min + 1));
}

export const Timeouts = {
  /** First check after the daemon starts, with ±5 min. */
  once: 7 * 60,
  periodic: 45 * 60,
  regularFuzz: 10 * 60,
  maxBackoff: 4 * 60 * 60,
} as const;

export interface NextCheck {
  /** The interval chosen before fuzzing: what the next backoff doubles. */
  interval: number;
  fuzz: number;
  /** Seconds until the next check. */
  delay: number;
  reason: "first" | "periodic" | "poll-interval" | "backoff";
}

export function firstCheck(rand: Rand): NextCheck {
  return { interval: Timeouts.once, fuzz: Timeouts.regularFuzz, delay: fuzzInt(Timeouts.once, Timeouts.regularFuzz, rand), reason: "first" };
}

/**
 * The next check after an attempt ended: the server's PollInterval if it gave one, else double the
 * last interval after HTTP 500/503 (at most 4 h), each fuzzed by ±half; anything under 45 min
 * becomes the regular 45 min ± 5 min.
 */
export function nextCheck(lastInterval: number, o: { pollInterval?: number; httpStatus?: number }, rand: Rand): NextCheck {
  let interval = 0;
  let reason: NextCheck["reason"] = "periodic";
  if (o.pollInterval !== undefined && o.pollInterval > 0) {
    interval = o.pollInterval;
    reason = "poll-interval";
  } else if (o.httpStatus === 500 || o.httpStatus === 503) {
    interval = Math.min(2 * lastInterval, Timeouts.maxBackoff);
    reason = "backoff";
  }
  let fuzz = interval;
  if (interval < Timeouts.periodic) {
    interval = Timeouts.periodic;
    fuzz = Timeouts.regularFuzz;
    if (reason === "backoff") reason = "periodic";
  }
  return { interval, fuzz, delay: fuzzInt(interval, fuzz, rand), reason };
}

// --- per-payload backoff ---

export const DAY = 24 * 60 * 60;

/**
 * The download backoff state of one payload (persisted in prefs): which URL is in use, how often it
 * failed, how many full passes over the URLs failed, and until when downloads wait.
 */
export interface PayloadBackoff {
  /** Identifies the response (its sha256): a different payload starts over. */
  signature: string;
  urlIndex: number;
  urlFailureCount: number;
  attemptNumber: number;
  /** Unix seconds; 0 = none. */
  backoffExpiry: number;
}

export const NO_BACKOFF: PayloadBackoff = { signature: "", urlIndex: 0, urlFailureCount: 0, attemptNumber: 0, backoffExpiry: 0 };

/** PayloadState::SetResponse: a new payload resets everything; the same one keeps its counters. */
export function forResponse(s: PayloadBackoff, signature: string): PayloadBackoff {
  return s.signature === signature ? s : { ...NO_BACKOFF, signature };
}

/** Whether a check that found this payload ends with code 40 (deferred for backoff) instead. */
export function shouldBackoff(s: PayloadBackoff, now: number, o: { disabled: boolean; delta: boolean; devMode: boolean }): boolean {
  if (o.disabled || o.delta || o.devMode) return false;
  return s.backoffExpiry > now;
}

/** Codes that blame the URL: the next URL is tried on the next attempt. */
const URL_ERRORS = new Set([10, 11, 12, 17, 18, 21, 22, 23, 24, 25, 26, 27, 28, 29, 32, 33, 38, 39]);
/** Transient transfer trouble: the URL gets more chances (MaxFailureCountPerUrl). */
const TRANSIENT_ERRORS = new Set([1, 9, 14, 20, 37]);

function nextUrl(s: PayloadBackoff, urls: number, now: number, rand: Rand): PayloadBackoff {
  const index = s.urlIndex + 1;
  if (index < urls) return { ...s, urlIndex: index, urlFailureCount: 0 };
  // Every URL failed: one more payload attempt, and wait min(2^(n-1), 16) days ± 6 h.
  const attemptNumber = s.attemptNumber + 1;
  const days = 2 ** Math.min(attemptNumber - 1, 4);
  const backoffExpiry = now + days * DAY + fuzzInt(0, 720, rand) * 60;
  return { ...s, urlIndex: 0, urlFailureCount: 0, attemptNumber, backoffExpiry };
}

/** PayloadState::UpdateFailed with the base code (flags stripped; 2000+N counts as HTTP error 37). */
export function afterFailure(s: PayloadBackoff, code: number, o: { urls: number; maxFailuresPerUrl: number; now: number }, rand: Rand): PayloadBackoff {
  const stripped = code & 0x0fffffff;
  const base = stripped >= 2000 && stripped < 3000 ? 37 : stripped;
  if (URL_ERRORS.has(base)) return nextUrl(s, o.urls, o.now, rand);
  if (TRANSIENT_ERRORS.has(base)) {
    const count = s.urlFailureCount + 1;
    return count < o.maxFailuresPerUrl ? { ...s, urlFailureCount: count } : nextUrl(s, o.urls, o.now, rand);
  }
  return s;
}

/** A payload that installed (or was reset) leaves no backoff behind. */
export function afterSuccess(s: PayloadBackoff): PayloadBackoff {
  return { ...NO_BACKOFF, signature: s.signature };
}
