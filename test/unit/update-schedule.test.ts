// Scheduling (§2.4) with a seeded PRNG: FuzzInt's bounds, first and periodic checks, PollInterval,
// the 500/503 backoff doubling to 4 h, and the per-payload URL/backoff bookkeeping.
import { describe, expect, test } from "bun:test";
import { afterFailure, afterSuccess, DAY, firstCheck, forResponse, fuzzInt, nextCheck, NO_BACKOFF, shouldBackoff, type PayloadBackoff } from "../../internal/update/schedule.ts";
import { seededRand } from "../../internal/random/random.ts";

describe("jitter", () => {
  test.each([
    [7 * 60, 10 * 60, 120, 720],
    [45 * 60, 10 * 60, 2400, 3000],
    [100, 7, 97, 104],
    [0, 720, -360, 360],
  ])("FuzzInt(%d, %d) stays in [%d, %d] and reaches both ends", (v, r, lo, hi) => {
    const rand = seededRand(42);
    const seen = new Set<number>();
    for (let i = 0; i < 20000; i++) {
      const x = fuzzInt(v, r, rand);
      expect(Number.isInteger(x)).toBe(true);
      expect(x).toBeGreaterThanOrEqual(lo);
      expect(x).toBeLessThanOrEqual(hi);
      seen.add(x);
    }
    expect(seen.has(lo)).toBe(true);
    expect(seen.has(hi)).toBe(true);
  });

  test("the same seed gives the same schedule", () => {
    const a = seededRand(7);
    const b = seededRand(7);
    expect(Array.from({ length: 5 }, () => firstCheck(a).delay)).toEqual(Array.from({ length: 5 }, () => firstCheck(b).delay));
  });
});

describe("next check", () => {
  const rand = seededRand(1);
  test("first check: 7 min ± 5", () => {
    const n = firstCheck(rand);
    expect(n).toMatchObject({ interval: 420, fuzz: 600, reason: "first" });
    expect(n.delay).toBeGreaterThanOrEqual(120);
    expect(n.delay).toBeLessThanOrEqual(720);
  });

  test.each<[string, number, { pollInterval?: number; httpStatus?: number }, number, number, string]>([
    ["periodic", 45 * 60, {}, 2700, 600, "periodic"],
    ["after a 200", 45 * 60, { httpStatus: 200 }, 2700, 600, "periodic"],
    ["PollInterval 2 h", 45 * 60, { pollInterval: 7200 }, 7200, 7200, "poll-interval"],
    ["PollInterval below 45 min is raised", 45 * 60, { pollInterval: 60 }, 2700, 600, "poll-interval"],
    ["503 after 45 min doubles", 2700, { httpStatus: 503 }, 5400, 5400, "backoff"],
    ["500 after 90 min doubles", 5400, { httpStatus: 500 }, 10800, 10800, "backoff"],
    ["the doubling stops at 4 h", 10800, { httpStatus: 503 }, 14400, 14400, "backoff"],
    ["a 404 does not back off", 10800, { httpStatus: 404 }, 2700, 600, "periodic"],
    ["503 after the first check (7 min) stays at the 45 min floor", 420, { httpStatus: 503 }, 2700, 600, "periodic"],
    ["PollInterval wins over a 503", 10800, { httpStatus: 503, pollInterval: 3600 }, 3600, 3600, "poll-interval"],
  ])("%s", (_n, last, hint, interval, fuzz, reason) => {
    for (let i = 0; i < 200; i++) {
      const n = nextCheck(last, hint, rand);
      expect(n).toMatchObject({ interval, fuzz, reason });
      expect(n.delay).toBeGreaterThanOrEqual(interval - fuzz / 2);
      expect(n.delay).toBeLessThanOrEqual(interval + fuzz / 2);
    }
  });

  test("a run of 503s: 90 min, 3 h, 4 h, 4 h", () => {
    let last = 2700;
    const seen: number[] = [];
    for (let i = 0; i < 4; i++) {
      const n = nextCheck(last, { httpStatus: 503 }, rand);
      seen.push(n.interval);
      last = n.interval;
    }
    expect(seen).toEqual([5400, 10800, 14400, 14400]);
  });
});

describe("payload backoff", () => {
  const rand = seededRand(3);
  const now = 1_700_000_000;
  const o = { urls: 2, maxFailuresPerUrl: 3, now };
  const base: PayloadBackoff = { ...NO_BACKOFF, signature: "sha" };

  test("a different payload starts over; the same keeps its counters", () => {
    const s = { ...base, urlIndex: 1, attemptNumber: 2, backoffExpiry: now + 5 };
    expect(forResponse(s, "sha")).toBe(s);
    expect(forResponse(s, "other")).toEqual({ ...NO_BACKOFF, signature: "other" });
  });

  test("URL errors move to the next URL; after the last, an attempt and a backoff of 1 day ± 6 h", () => {
    const a = afterFailure(base, 10, o, rand);
    expect(a).toMatchObject({ urlIndex: 1, urlFailureCount: 0, attemptNumber: 0, backoffExpiry: 0 });
    const b = afterFailure(a, 18 | (1 << 28), o, rand);
    expect(b).toMatchObject({ urlIndex: 0, attemptNumber: 1 });
    expect(b.backoffExpiry).toBeGreaterThanOrEqual(now + DAY - 6 * 3600);
    expect(b.backoffExpiry).toBeLessThanOrEqual(now + DAY + 6 * 3600);
  });

  test("transient errors count against the URL up to MaxFailureCountPerUrl", () => {
    let s = base;
    s = afterFailure(s, 9, o, rand);
    s = afterFailure(s, 2503, o, rand);
    expect(s).toMatchObject({ urlIndex: 0, urlFailureCount: 2 });
    s = afterFailure(s, 14, o, rand);
    expect(s).toMatchObject({ urlIndex: 1, urlFailureCount: 0 });
  });

  test("other errors (e.g. the switch) count against nothing", () => {
    expect(afterFailure(base, 5, o, rand)).toBe(base);
  });

  test.each([
    [1, 1],
    [2, 2],
    [3, 4],
    [5, 16],
    [9, 16],
  ])("attempt %d waits %d days", (attempt, days) => {
    const s = afterFailure({ ...base, urlIndex: 1, attemptNumber: attempt - 1 }, 10, o, rand);
    expect(s.attemptNumber).toBe(attempt);
    expect(Math.abs(s.backoffExpiry - now - days * DAY)).toBeLessThanOrEqual(6 * 3600);
  });

  test("backoff applies unless disabled, delta or a test image; success clears it", () => {
    const s = { ...base, attemptNumber: 1, backoffExpiry: now + 100 };
    const off = { disabled: false, delta: false, devMode: false };
    expect(shouldBackoff(s, now, off)).toBe(true);
    expect(shouldBackoff(s, now + 100, off)).toBe(false);
    expect(shouldBackoff(s, now, { ...off, disabled: true })).toBe(false);
    expect(shouldBackoff(s, now, { ...off, delta: true })).toBe(false);
    expect(shouldBackoff(s, now, { ...off, devMode: true })).toBe(false);
    expect(afterSuccess(s)).toEqual({ ...NO_BACKOFF, signature: "sha" });
  });
});
