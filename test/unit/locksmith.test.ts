// locksmith's pure parts: the semaphore rules of B1 (quirks included), the stored value's format,
// reboot windows of B3, the strategy from update.conf, utmp parsing.
import { describe, expect, test } from "bun:test";
import {
  encodeSemaphore,
  expire,
  INITIAL,
  lock,
  parseSemaphore,
  queryEscape,
  renew,
  semaphoreKey,
  SemaphoreError,
  SemaphoreFormatError,
  setMax,
  unlock,
  type Semaphore,
} from "../../internal/locksmith/semaphore.ts";
import { durationToStart, parsePeriodic, windowFromEnv, WindowError } from "../../internal/locksmith/window.ts";
import { parseEnvFile, strategyFrom } from "../../internal/locksmith/strategy.ts";
import { loggedInTtys } from "../../internal/locksmith/host.ts";
import { formatStatus } from "../../internal/locksmith/ctl.ts";

const sem = (semaphore: number, max: number, holders: string[] | null): Semaphore => ({ semaphore, max, holders });

type Op = ["lock" | "unlock", string] | ["set-max", number];
interface Row {
  name: string;
  start: Semaphore;
  ops: Op[];
  /** The value after the last op, or the error the last op gives (earlier ops must succeed). */
  want: string | { error: string };
}

const ROWS: Row[] = [
  { name: "initial value", start: INITIAL, ops: [], want: '{"semaphore":1,"max":1,"holders":null}' },
  { name: "lock takes the slot", start: INITIAL, ops: [["lock", "a"]], want: '{"semaphore":0,"max":1,"holders":["a"]}' },
  { name: "second lock at 0", start: INITIAL, ops: [["lock", "a"], ["lock", "b"]], want: { error: "semaphore is at 0" } },
  { name: "quirk: the same holder at 0 hears the count, not 'holder exists' (locksmith#58)", start: INITIAL, ops: [["lock", "a"], ["lock", "a"]], want: { error: "semaphore is at 0" } },
  { name: "the same holder with room left: holder exists", start: sem(2, 2, null), ops: [["lock", "a"], ["lock", "a"]], want: { error: "holder exists" } },
  { name: "holders sorted ascending", start: sem(3, 3, null), ops: [["lock", "m"], ["lock", "z"], ["lock", "a"]], want: '{"semaphore":0,"max":3,"holders":["a","m","z"]}' },
  { name: "unlock of the last holder leaves [] (not null)", start: INITIAL, ops: [["lock", "a"], ["unlock", "a"]], want: '{"semaphore":1,"max":1,"holders":[]}' },
  { name: "unlock of a stranger", start: INITIAL, ops: [["unlock", "a"]], want: { error: "holder does not exist" } },
  { name: "unlock keeps order", start: sem(3, 3, null), ops: [["lock", "b"], ["lock", "a"], ["lock", "c"], ["unlock", "b"]], want: '{"semaphore":1,"max":3,"holders":["a","c"]}' },
  { name: "set-max up frees slots", start: INITIAL, ops: [["lock", "a"], ["set-max", 3]], want: '{"semaphore":2,"max":3,"holders":["a"]}' },
  { name: "quirk: set-max below the holders keeps them, count goes negative", start: sem(3, 3, null), ops: [["lock", "a"], ["lock", "b"], ["lock", "c"], ["set-max", 1]], want: '{"semaphore":-2,"max":1,"holders":["a","b","c"]}' },
  { name: "negative count refuses locks", start: sem(-2, 1, ["a", "b", "c"]), ops: [["lock", "d"]], want: { error: "semaphore is at -2" } },
  { name: "unlocks climb back from negative", start: sem(-2, 1, ["a", "b", "c"]), ops: [["unlock", "a"], ["unlock", "b"], ["lock", "d"]], want: { error: "semaphore is at 0" } },
  { name: "set-max without holders", start: INITIAL, ops: [["set-max", 5]], want: '{"semaphore":5,"max":5,"holders":null}' },
  { name: "set-max to 0", start: INITIAL, ops: [["set-max", 0], ["lock", "a"]], want: { error: "semaphore is at 0" } },
];

describe("semaphore (B1)", () => {
  for (const row of ROWS) {
    test(row.name, () => {
      let s = row.start;
      const run = () => {
        for (const op of row.ops) {
          if (op[0] === "lock") s = lock(s, op[1] as string);
          else if (op[0] === "unlock") s = unlock(s, op[1] as string);
          else s = setMax(s, op[1] as number);
        }
      };
      if (typeof row.want === "string") {
        run();
        expect(encodeSemaphore(s)).toBe(row.want);
        expect(parseSemaphore(row.want)).toEqual(s);
      } else {
        expect(run).toThrow(row.want.error);
        expect(run).toThrow(SemaphoreError);
      }
    });
  }

  test("rules never mutate their input", () => {
    const s = sem(2, 2, ["b"]);
    lock(s, "a");
    unlock(s, "b");
    setMax(s, 5);
    expect(s).toEqual(sem(2, 2, ["b"]));
  });

  test("keys: default group, groups query-escaped as Go's url.QueryEscape", () => {
    expect(semaphoreKey("")).toBe("/coreos.com/updateengine/rebootlock/semaphore");
    expect(semaphoreKey("lb")).toBe("/coreos.com/updateengine/rebootlock/groups/lb/semaphore");
    expect(semaphoreKey("a b/c")).toBe("/coreos.com/updateengine/rebootlock/groups/a+b%2Fc/semaphore");
    expect(queryEscape("x~y-z_.!*")).toBe("x~y-z_.%21%2A");
  });
});

describe("semaphore value format", () => {
  const bad: [string, RegExp][] = [
    ["not json", /not valid JSON/],
    ["", /not valid JSON/],
    ["[1,2]", /not a semaphore/],
    ['{"semaphore":"1","max":1,"holders":null}', /semaphore: .*number/i],
    ['{"semaphore":1,"max":1}', /holders/],
    ['{"semaphore":1,"max":1.5,"holders":null}', /max/],
    ['{"semaphore":1,"max":1,"holders":[1]}', /holders/],
    ["null", /not a semaphore/],
  ];
  for (const [raw, re] of bad) {
    test(`refuses ${JSON.stringify(raw)} with a clear error that quotes it`, () => {
      let err: unknown;
      try {
        parseSemaphore(raw, "/k");
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(SemaphoreFormatError);
      expect((err as Error).message).toMatch(re);
      expect((err as Error).message).toContain("refusing to overwrite");
      expect((err as Error).message).toContain("/k");
    });
  }

  test("unknown fields are ignored, as Go's encoding/json does", () => {
    expect(parseSemaphore('{"semaphore":1,"max":1,"holders":null,"x":2}')).toEqual(INITIAL);
  });
});

describe("--lock-ttl renewals", () => {
  test("lock with a time records it; the value stays readable as B1 (extra field after holders)", () => {
    const s = lock(sem(2, 2, null), "a", 1000);
    expect(encodeSemaphore(s)).toBe('{"semaphore":1,"max":2,"holders":["a"],"renewed":{"a":1000}}');
    expect(encodeSemaphore(unlock(s, "a"))).toBe('{"semaphore":2,"max":2,"holders":[]}');
  });

  test("expire drops only holders renewed longer than ttl ago; unrecorded holders stay", () => {
    let s = lock(sem(3, 3, ["old"]), "dead", 100);
    s = { ...s, semaphore: 1 };
    s = lock(s, "live", 190);
    const { sem: after, dropped } = expire(s, 200, 60);
    expect(dropped).toEqual(["dead"]);
    expect(after.holders).toEqual(["live", "old"]);
    expect(after.semaphore).toBe(1);
    expect(after.renewed).toEqual({ live: 190 });
    // exactly ttl old is still alive
    expect(expire(s, 160, 60).dropped).toEqual([]);
  });

  test("renew moves the time; a non-holder cannot renew", () => {
    const s = renew(lock(INITIAL, "a", 1), "a", 50);
    expect(s.renewed).toEqual({ a: 50 });
    expect(() => renew(s, "b", 60)).toThrow("holder does not exist");
  });
});

describe("locksmithctl status output", () => {
  test("without holders: two lines", () => {
    expect(formatStatus(INITIAL)).toBe("Available: 1\nMax: 1\n");
  });
  test("with holders: blank line, MACHINE ID, one per line", () => {
    expect(formatStatus(sem(0, 2, ["a", "b"]))).toBe("Available: 0\nMax: 2\n\nMACHINE ID\na\nb\n");
  });
});

describe("reboot window (B3)", () => {
  const H = 3600_000;
  const M = 60_000;
  const ok: [string, string, { dayOfWeek: number; hour: number; minute: number; durationMs: number }][] = [
    ["4:00", "1h", { dayOfWeek: -1, hour: 4, minute: 0, durationMs: H }],
    ["04:00", "1h30m", { dayOfWeek: -1, hour: 4, minute: 0, durationMs: 1.5 * H }],
    ["Thu 23:00", "1h30m", { dayOfWeek: 4, hour: 23, minute: 0, durationMs: 1.5 * H }],
    ["thu 23:00", "90m", { dayOfWeek: 4, hour: 23, minute: 0, durationMs: 90 * M }],
    ["SUN 0:05", "45s", { dayOfWeek: 0, hour: 0, minute: 5, durationMs: 45_000 }],
    ["  mon   1:02  ", "0s", { dayOfWeek: 1, hour: 1, minute: 2, durationMs: 0 }],
    ["23:59", "23h59m", { dayOfWeek: -1, hour: 23, minute: 59, durationMs: 23 * H + 59 * M }],
    ["sat 12:00", "167h", { dayOfWeek: 6, hour: 12, minute: 0, durationMs: 167 * H }],
  ];
  for (const [start, length, want] of ok) {
    test(`${JSON.stringify(start)} + ${length}`, () => expect(parsePeriodic(start, length)).toEqual(want));
  }

  const bad: [string, string, string][] = [
    ["Thursday 23:00", "1h", 'unable to parse start: invalid day of week "Thursday"'],
    ["Thu 23:00 extra", "1h", "unable to parse start: wrong number of fields"],
    ["", "1h", "unable to parse start: wrong number of fields"],
    ["24:00", "1h", 'unable to parse start: invalid time of day "24:00": hour must be >= 0 and <= 23'],
    ["-1:00", "1h", 'unable to parse start: invalid time of day "-1:00": hour must be >= 0 and <= 23'],
    ["4:60", "1h", 'unable to parse start: invalid time of day "4:60": minute must be >= 0 and <= 59'],
    ["four", "1h", 'unable to parse start: invalid time of day "four": expected integer'],
    ["4", "1h", 'unable to parse start: invalid time of day "4": unexpected EOF'],
    ["4-00", "1h", 'unable to parse start: invalid time of day "4-00": input does not match format'],
    ["4:00", "1 hour", 'unable to parse duration: time: invalid duration "1 hour"'],
    ["4:00", "", 'unable to parse duration: time: invalid duration ""'],
    ["4:00", "-1h", "duration cannot be negative"],
    ["4:00", "24h", "duration cannot exceed period"],
    ["Mon 4:00", "168h", "duration cannot exceed period"],
  ];
  for (const [start, length, msg] of bad) {
    test(`refuses ${JSON.stringify(start)} + ${JSON.stringify(length)}`, () => {
      expect(() => parsePeriodic(start, length)).toThrow(WindowError);
      expect(() => parsePeriodic(start, length)).toThrow(msg);
    });
  }

  const at = (y: number, mo: number, d: number, h: number, mi: number, s = 0) => new Date(y, mo - 1, d, h, mi, s);
  // 2024-05-16 is a Thursday.
  const thu = parsePeriodic("Thu 23:00", "1h30m");
  test("Thu 23:00 + 1h30m: open from Thursday 23:00 to Friday 00:30 (end inclusive), local time", () => {
    expect(durationToStart(thu, at(2024, 5, 16, 23, 0))).toBe(0);
    expect(durationToStart(thu, at(2024, 5, 17, 0, 15))).toBe(-75 * M);
    expect(durationToStart(thu, at(2024, 5, 17, 0, 30))).toBe(-90 * M);
    expect(durationToStart(thu, at(2024, 5, 17, 0, 30, 1))).toBe(at(2024, 5, 23, 23, 0).getTime() - at(2024, 5, 17, 0, 30, 1).getTime());
    expect(durationToStart(thu, at(2024, 5, 16, 22, 0))).toBe(H);
    expect(durationToStart(thu, at(2024, 5, 14, 23, 0))).toBe(at(2024, 5, 16, 23, 0).getTime() - at(2024, 5, 14, 23, 0).getTime());
  });
  test("daily window: before, inside, after, across midnight", () => {
    const d = parsePeriodic("4:00", "1h");
    expect(durationToStart(d, at(2024, 5, 16, 3, 0))).toBe(H);
    expect(durationToStart(d, at(2024, 5, 16, 4, 30))).toBe(-30 * M);
    expect(durationToStart(d, at(2024, 5, 16, 5, 1))).toBe(23 * H - M);
    const late = parsePeriodic("23:30", "1h");
    expect(durationToStart(late, at(2024, 5, 17, 0, 10))).toBe(-40 * M);
  });

  test("environment: both or neither; LOCKSMITHD_ names over the v0.3 fallbacks", () => {
    expect(windowFromEnv({})).toBeNull();
    expect(() => windowFromEnv({ LOCKSMITHD_REBOOT_WINDOW_START: "4:00" })).toThrow("either both or neither");
    expect(() => windowFromEnv({ REBOOT_WINDOW_LENGTH: "1h" })).toThrow("either both or neither");
    expect(windowFromEnv({ REBOOT_WINDOW_START: "5:00", REBOOT_WINDOW_LENGTH: "1h" })?.hour).toBe(5);
    expect(
      windowFromEnv({ LOCKSMITHD_REBOOT_WINDOW_START: "6:00", LOCKSMITHD_REBOOT_WINDOW_LENGTH: "1h", REBOOT_WINDOW_START: "5:00" })?.hour,
    ).toBe(6);
  });
});

describe("strategy", () => {
  test("unset means reboot; later files win; the environment wins over files", () => {
    expect(strategyFrom([], {})).toBe("reboot");
    expect(strategyFrom(["GROUP=stable\nREBOOT_STRATEGY=off\n", "# comment\nREBOOT_STRATEGY=\"etcd-lock\"\n"], {})).toBe("etcd-lock");
    expect(strategyFrom(["REBOOT_STRATEGY=off"], { REBOOT_STRATEGY: "etcd-lock" })).toBe("etcd-lock");
    expect(strategyFrom(["REBOOT_STRATEGY=best-effort"], {})).toBe("best-effort");
    expect(parseEnvFile("SERVER=https://x/y?a=b\n")).toEqual({ SERVER: "https://x/y?a=b" });
  });
});

describe("utmp", () => {
  test("only USER_PROCESS records, ut_line up to the NUL", () => {
    const rec = (type: number, line: string) => {
      const b = new Uint8Array(384);
      new DataView(b.buffer).setInt16(0, type, true);
      b.set(new TextEncoder().encode(line), 8);
      return b;
    };
    const all = new Uint8Array(384 * 3);
    all.set(rec(7, "pts/0"), 0);
    all.set(rec(8, "pts/1"), 384);
    all.set(rec(7, "tty1"), 768);
    expect(loggedInTtys(all)).toEqual(["pts/0", "tty1"]);
  });
});
