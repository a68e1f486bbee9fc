// [Unit] Condition*= and Assert*= (systemd.unit(5)): checked before a unit starts. A failed
// condition skips the start (the job is still "done"); a failed assertion fails the job. The rules
// are pure; what they look at on the host comes through a Probe.
import type { UnitFile } from "./unitfile.ts";

/** The host as the checks see it (the supervisor's edge gives the real one). */
export interface Probe {
  /** lstat-free existence (follows links). */
  exists(path: string): boolean;
  isDirectory(path: string): boolean;
  isSymlink(path: string): boolean;
  /** Size of a regular file; undefined when not a regular file. */
  fileSize(path: string): number | undefined;
  /** Entries of a directory; undefined when not a directory. */
  dirEntries(path: string): string[] | undefined;
  isExecutable(path: string): boolean;
  isMountPoint(path: string): boolean;
  /** Paths matching a glob. */
  glob(pattern: string): string[];
  kernelCommandLine(): string;
  hostname(): string;
  machineId(): string | undefined;
  env(): Record<string, string | undefined>;
  user(): { name: string; uid: number };
}

const CHECKS = [
  "PathExists", "PathExistsGlob", "PathIsDirectory", "PathIsSymbolicLink", "PathIsMountPoint", "DirectoryNotEmpty", "FileNotEmpty",
  "FileIsExecutable", "KernelCommandLine", "Host", "Environment", "User",
] as const;
type Check = (typeof CHECKS)[number];

export interface Verdict {
  ok: boolean;
  /** Like systemd's "ConditionPathExists=/x was not met". */
  failed?: string;
  /** Settings the supervisor does not evaluate (treated as met). */
  unsupported: string[];
}

function evaluate(check: Check, arg: string, p: Probe): boolean {
  switch (check) {
    case "PathExists":
      return p.exists(arg);
    case "PathExistsGlob":
      return p.glob(arg).length > 0;
    case "PathIsDirectory":
      return p.isDirectory(arg);
    case "PathIsSymbolicLink":
      return p.isSymlink(arg);
    case "PathIsMountPoint":
      return p.isMountPoint(arg);
    case "DirectoryNotEmpty":
      return (p.dirEntries(arg) ?? []).some((e) => !e.startsWith("."));
    case "FileNotEmpty":
      return (p.fileSize(arg) ?? 0) > 0;
    case "FileIsExecutable":
      return p.isExecutable(arg);
    case "KernelCommandLine": {
      const words = p.kernelCommandLine().split(/\s+/).filter(Boolean);
      return arg.includes("=") ? words.includes(arg) : words.some((w) => w === arg || w.startsWith(`${arg}=`));
    }
    case "Host":
      return arg === p.machineId() || globMatch(arg, p.hostname());
    case "Environment": {
      const env = p.env();
      const eq = arg.indexOf("=");
      return eq === -1 ? env[arg] !== undefined : env[arg.slice(0, eq)] === arg.slice(eq + 1);
    }
    case "User": {
      const u = p.user();
      if (arg === "@system") return u.uid < 1000;
      return arg === u.name || arg === String(u.uid);
    }
  }
}

/** fnmatch for hostnames: `*`, `?`, `[...]`. */
export function globMatch(pattern: string, s: string): boolean {
  const re = pattern.replace(/[.+^${}()|\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".");
  return new RegExp(`^${re}$`).test(s);
}

/**
 * Checks one family (`Condition` or `Assert`) of a unit: every plain check must hold, and when
 * any `|`-prefixed (triggering) check exists, at least one of those must hold. `!` negates. An
 * empty assignment of any of them resets the whole list, as systemd does.
 */
export function checkConditions(unit: UnitFile, family: "Condition" | "Assert", p: Probe): Verdict {
  const section = unit.sections.find((s) => s.name === "Unit");
  const unsupported: string[] = [];
  if (!section) return { ok: true, unsupported };
  let items: { key: string; value: string }[] = [];
  for (const e of section.entries) {
    if (!e.key.startsWith(family)) continue;
    if (e.value === "") items = [];
    else items.push(e);
  }
  let anyTrigger = false;
  let triggerMet = false;
  for (const { key, value } of items) {
    const check = key.slice(family.length) as Check;
    if (!(CHECKS as readonly string[]).includes(check)) {
      unsupported.push(`${key}=${value}`);
      continue;
    }
    let v = value;
    const trigger = v.startsWith("|");
    if (trigger) v = v.slice(1).trimStart();
    const negate = v.startsWith("!");
    if (negate) v = v.slice(1).trimStart();
    const met = evaluate(check, v, p) !== negate;
    if (trigger) {
      anyTrigger = true;
      if (met) triggerMet = true;
    } else if (!met) return { ok: false, failed: `${key}=${value}`, unsupported };
  }
  if (anyTrigger && !triggerMet) {
    const triggers = items.filter((i) => i.value.startsWith("|")).map((i) => `${i.key}=${i.value}`);
    return { ok: false, failed: triggers.join(", "), unsupported };
  }
  return { ok: true, unsupported };
}

