// Reboot windows (spec B3): `[Day ]H:MM` plus a Go duration, daily or weekly, in the machine's
// local time zone. Error texts follow locksmith's timeutil/periodic.go so logs and docs match.
import { parseGoDuration } from "../ctl/goflag.ts";

export interface Periodic {
  /** 0 = Sunday … 6 = Saturday; -1 for a daily window. */
  dayOfWeek: number;
  hour: number;
  minute: number;
  /** Window length in milliseconds. */
  durationMs: number;
}

export class WindowError extends Error {}

const WEEKDAYS: Record<string, number> = { sun: 0, mon: 1, tue: 2, wed: 3, thu: 4, fri: 5, sat: 6 };
const DAY_MS = 24 * 3600 * 1000;

/** fmt.Sscanf(s, "%d:%d"): leading integers; trailing input after the second is ignored, as in Go. */
function scanClock(s: string): [number, number] | string {
  let rest = s;
  const int = (): number | string => {
    if (rest === "") return "unexpected EOF";
    const m = /^[+-]?[0-9]+/.exec(rest);
    if (!m) return "expected integer";
    rest = rest.slice(m[0].length);
    return Number(m[0]);
  };
  const h = int();
  if (typeof h === "string") return h;
  if (rest === "") return "unexpected EOF";
  if (rest[0] !== ":") return "input does not match format";
  rest = rest.slice(1);
  const m = int();
  if (typeof m === "string") return m;
  return [h, m];
}

export function parsePeriodic(start: string, length: string): Periodic {
  const f = start.trim().split(/\s+/).filter((x) => x !== "");
  let dayOfWeek = -1;
  if (f.length === 2) {
    const d = WEEKDAYS[f[0]!.toLowerCase()];
    if (d === undefined) throw new WindowError(`unable to parse start: invalid day of week ${JSON.stringify(f[0])}`);
    dayOfWeek = d;
    f.shift();
  } else if (f.length !== 1) {
    throw new WindowError("unable to parse start: wrong number of fields");
  }
  const clock = f[0]!;
  const hm = scanClock(clock);
  if (typeof hm === "string") throw new WindowError(`unable to parse start: invalid time of day ${JSON.stringify(clock)}: ${hm}`);
  const [hour, minute] = hm;
  if (hour < 0 || hour > 23) throw new WindowError(`unable to parse start: invalid time of day ${JSON.stringify(clock)}: hour must be >= 0 and <= 23`);
  if (minute < 0 || minute > 59) throw new WindowError(`unable to parse start: invalid time of day ${JSON.stringify(clock)}: minute must be >= 0 and <= 59`);

  const d = parseGoDuration(length);
  if (typeof d === "string") throw new WindowError(`unable to parse duration: time: invalid duration ${JSON.stringify(length)}`);
  if (d < 0) throw new WindowError("duration cannot be negative");
  if ((dayOfWeek === -1 && d >= DAY_MS) || d >= 7 * DAY_MS) throw new WindowError("duration cannot exceed period");
  return { dayOfWeek, hour, minute, durationMs: d };
}

/** The window start `days` calendar days from `ref`'s date, in local time (DST-safe like time.Date). */
function shift(p: Periodic, ref: Date, days: number): number {
  return new Date(ref.getFullYear(), ref.getMonth(), ref.getDate() + days, p.hour, p.minute, 0, 0).getTime();
}

function previousStart(p: Periodic, ref: Date): number {
  const t = ref.getTime();
  const wd = ref.getDay();
  if (p.dayOfWeek !== -1) {
    const thisWeek = shift(p, ref, p.dayOfWeek - wd);
    return t >= thisWeek ? thisWeek : shift(p, ref, p.dayOfWeek - wd - 7);
  }
  const today = shift(p, ref, 0);
  return t >= today ? today : shift(p, ref, -1);
}

function nextStart(p: Periodic, ref: Date): number {
  const t = ref.getTime();
  const wd = ref.getDay();
  if (p.dayOfWeek !== -1) {
    const thisWeek = shift(p, ref, p.dayOfWeek - wd);
    return t < thisWeek ? thisWeek : shift(p, ref, p.dayOfWeek - wd + 7);
  }
  const today = shift(p, ref, 0);
  return t < today ? today : shift(p, ref, 1);
}

/**
 * Milliseconds until the window opens: ≤ 0 inside a window (how deep into it; the end counts as
 * inside), > 0 outside it.
 */
export function durationToStart(p: Periodic, now: Date): number {
  const prev = previousStart(p, now);
  if (prev + p.durationMs >= now.getTime()) return prev - now.getTime();
  return nextStart(p, now) - now.getTime();
}

/** Both or neither of start and length (B3); the prefixed names win over the v0.3 fallbacks. */
export function windowFromEnv(env: Record<string, string | undefined>): Periodic | null {
  const start = env.LOCKSMITHD_REBOOT_WINDOW_START ?? env.REBOOT_WINDOW_START;
  const length = env.LOCKSMITHD_REBOOT_WINDOW_LENGTH ?? env.REBOOT_WINDOW_LENGTH;
  if (start === undefined && length === undefined) return null;
  if (start === undefined || length === undefined) {
    throw new WindowError("either both or neither of LOCKSMITHD_REBOOT_WINDOW_START and LOCKSMITHD_REBOOT_WINDOW_LENGTH must be set");
  }
  return parsePeriodic(start, length);
}
