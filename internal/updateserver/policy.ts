// Rollout policy of a group (Nebraska §5.3), as a pure function of the group's policy, the
// rollout statistics and the time: no database, no clock of its own, so tests pin every case.

/** Milliseconds since the epoch; servers get Date.now, tests a hand-driven clock. */
export type Clock = () => number;

export interface Policy {
  updatesEnabled: boolean;
  safeMode: boolean;
  officeHours: boolean;
  /** IANA zone for office hours; empty or unknown means office hours are never open. */
  timezone: string;
  periodSeconds: number;
  maxUpdatesPerPeriod: number;
  updateTimeoutSeconds: number;
}

/** Counts over the group's instances for the version being rolled out, at the decision time. */
export interface RolloutStats {
  /** Grants whose time lies in the last period. */
  grantedInPeriod: number;
  /** Updates granted, not finished and granted no longer than the timeout ago. */
  inProgress: number;
  /** Updates granted, not finished and granted longer than the timeout ago. */
  timedOut: number;
  /** Instances that completed the target version (the canary has succeeded once this is > 0). */
  completed: number;
}

export type Refusal = "updatesDisabled" | "maxUpdatesPerPeriod" | "maxConcurrentUpdates" | "maxTimedOutUpdates";

export type Decision =
  | { readonly grant: true }
  | {
      readonly grant: false;
      readonly reason: Refusal;
      /** The instance waits its turn (status OnHold); false when the group itself is closed. */
      readonly onHold: boolean;
      /** Safe mode saw a timed-out canary: the group's updates are switched off. */
      readonly disableGroup: boolean;
    };

/** A maximum this high with safe mode off means "no limit" (Nebraska skips the statistics). */
export const UNLIMITED = 900000;

/** The Omaha `app@status` string Nebraska sends for each refusal. */
export const REFUSAL_STATUS: Record<Refusal, string> = {
  updatesDisabled: "error-updatesDisabled",
  maxUpdatesPerPeriod: "error-maxUpdatesPerPeriodLimitReached",
  maxConcurrentUpdates: "error-maxConcurrentUpdatesLimitReached",
  maxTimedOutUpdates: "error-maxTimedOutUpdatesLimitReached",
};

const GRANT: Decision = { grant: true };
const refuse = (reason: Refusal, onHold: boolean, disableGroup = false): Decision => ({ grant: false, reason, onHold, disableGroup });

const formatters = new Map<string, Intl.DateTimeFormat | null>();
function formatter(tz: string): Intl.DateTimeFormat | null {
  let f = formatters.get(tz);
  if (f === undefined) {
    try {
      f = tz === "" ? null : new Intl.DateTimeFormat("en-US", { timeZone: tz, weekday: "short", hour: "numeric", hourCycle: "h23" });
    } catch {
      f = null;
    }
    formatters.set(tz, f);
  }
  return f;
}

export function validTimezone(tz: string): boolean {
  return formatter(tz) !== null;
}

/** Monday to Friday, 09:00 to 16:59 local time in `tz`. */
export function inOfficeHours(nowMs: number, tz: string): boolean {
  const f = formatter(tz);
  if (f === null) return false;
  let weekday = "";
  let hour = -1;
  for (const p of f.formatToParts(nowMs)) {
    if (p.type === "weekday") weekday = p.value;
    else if (p.type === "hour") hour = Number(p.value);
  }
  return weekday !== "Sat" && weekday !== "Sun" && hour >= 9 && hour < 17;
}

/**
 * May this instance be granted the update now? Safe mode holds everyone but one canary until an
 * instance has completed the version; a canary that timed out closes the group.
 */
export function decide(p: Policy, s: RolloutStats, nowMs: number): Decision {
  if (!p.updatesEnabled) return refuse("updatesDisabled", false);
  if (p.officeHours && !inOfficeHours(nowMs, p.timezone)) return refuse("updatesDisabled", false);
  if (p.maxUpdatesPerPeriod >= UNLIMITED && !p.safeMode) return GRANT;
  const canaryPhase = p.safeMode && s.completed === 0;
  if (canaryPhase && s.timedOut > 0) return refuse("maxTimedOutUpdates", true, true);
  const max = canaryPhase ? Math.min(1, p.maxUpdatesPerPeriod) : p.maxUpdatesPerPeriod;
  if (s.grantedInPeriod >= p.maxUpdatesPerPeriod) return refuse("maxUpdatesPerPeriod", true);
  if (s.inProgress >= max) return refuse("maxConcurrentUpdates", true);
  if (p.safeMode && s.timedOut >= p.maxUpdatesPerPeriod) return refuse("maxTimedOutUpdates", true, true);
  return GRANT;
}

/**
 * Durations as Go writes them (`15m`, `1h30m`) or as Nebraska stores them (`15 minutes`,
 * `1 hour`); whole seconds, at least one. Returns an error message for anything else.
 */
export function parseInterval(raw: string): number | string {
  const s = raw.trim().toLowerCase();
  const words = /^(\d+)\s*(s|sec|secs|second|seconds|m|min|mins|minute|minutes|h|hour|hours|d|day|days)$/.exec(s);
  let seconds: number;
  if (words) {
    const n = Number(words[1]);
    const u = words[2]![0]!;
    seconds = n * (u === "s" ? 1 : u === "m" ? 60 : u === "h" ? 3600 : 86400);
  } else {
    const parts = [...s.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)];
    if (parts.length === 0 || parts.map((m) => m[0]).join("") !== s) return `invalid interval "${raw}" (use e.g. 15m, 1h30m or "15 minutes")`;
    seconds = parts.reduce((acc, m) => acc + Number(m[1]) * { ms: 0.001, s: 1, m: 60, h: 3600 }[m[2] as "ms" | "s" | "m" | "h"], 0);
  }
  seconds = Math.round(seconds);
  if (!Number.isSafeInteger(seconds) || seconds < 1) return `invalid interval "${raw}" (must be at least 1s)`;
  return seconds;
}

/** Seconds as the shortest Go-style duration (900 -> "15m"). */
export function formatInterval(seconds: number): string {
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  return `${h ? `${h}h` : ""}${m ? `${m}m` : ""}${s || seconds === 0 ? `${s}s` : ""}`;
}
