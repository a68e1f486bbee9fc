// A service unit's settings (systemd.service(5), systemd.exec(5), systemd.kill(5)) as the
// supervisor runs them: read once from a loaded unit, validated, with systemd's defaults.
import { getList, getValue, getWords, nextWord, parseBoolean, parseEnvironmentAssignments, parseTimespan, UnitFileError, type UnitFile } from "./unitfile.ts";

export type ServiceType = "simple" | "exec" | "oneshot" | "forking";
export type RestartPolicy = "no" | "always" | "on-success" | "on-failure" | "on-abnormal" | "on-abort" | "on-watchdog";
/** Exit statuses and signals named by SuccessExitStatus=, RestartPreventExitStatus=, RestartForceExitStatus=. */
export interface ExitSet {
  codes: number[];
  /** Names with the SIG prefix. */
  signals: string[];
}

/** Where StandardOutput=/StandardError= send a process's output. */
export type Output = { kind: "journal" } | { kind: "null" } | { kind: "console" } | { kind: "file"; path: string; mode: "write" | "append" | "truncate" };

export type KillMode = "control-group" | "mixed" | "process" | "none";
export type ExecKind = "ExecStartPre" | "ExecStart" | "ExecStartPost" | "ExecReload" | "ExecStop" | "ExecStopPost";

export interface ExecCommand {
  /** Words after the prefixes, quotes removed; `$VAR` and `${VAR}` are expanded at spawn time. */
  words: string[];
  /** `-`: a failure is logged and ignored. */
  ignoreFailure: boolean;
  /** `@`: the second word is argv[0]; words[0] is still the program. */
  argv0: string | undefined;
  /** `+`, `!`, `!!`: runs with full privileges (User= not applied). */
  privileged: boolean;
  /** `:`: no environment variable expansion. */
  noExpand: boolean;
  /** The setting as written, for messages. */
  text: string;
}

export interface ServiceDef {
  name: string;
  description: string;
  type: ServiceType;
  exec: Record<ExecKind, ExecCommand[]>;
  remainAfterExit: boolean;
  restart: RestartPolicy;
  restartMs: number;
  /** Infinity when disabled. */
  timeoutStartMs: number;
  timeoutStopMs: number;
  startLimitIntervalMs: number;
  startLimitBurst: number;
  killSignal: NodeJS.Signals;
  killMode: KillMode;
  stdout: Output;
  /** StandardError=inherit (the default) is whatever stdout is. */
  stderr: Output;
  successExit: ExitSet;
  restartPrevent: ExitSet;
  restartForce: ExitSet;
  /** Environment= in order (later wins). */
  environment: [string, string][];
  /** EnvironmentFile=, read at each spawn; `-` makes a missing file fine. */
  environmentFiles: { path: string; optional: boolean }[];
  workingDirectory: { path: string; optional: boolean } | undefined;
  user: string | undefined;
  group: string | undefined;
  /** PIDFile=: where a Type=forking daemon writes its pid. */
  pidFile: string | undefined;
}

const TYPES = new Set<string>(["simple", "exec", "oneshot", "forking"]);
const RESTARTS = new Set<string>(["no", "always", "on-success", "on-failure", "on-abnormal", "on-abort", "on-watchdog"]);
const EXEC_KINDS: ExecKind[] = ["ExecStartPre", "ExecStart", "ExecStartPost", "ExecReload", "ExecStop", "ExecStopPost"];

/** One Exec*= value: prefixes `-@:+!`, then words; a lone `;` separates commands (systemd allows it). */
export function parseExec(value: string): ExecCommand[] {
  const out: ExecCommand[] = [];
  let i = 0;
  while (i < value.length) {
    while (i < value.length && /\s/.test(value[i]!)) i++;
    if (i >= value.length) break;
    let ignoreFailure = false;
    let at = false;
    let privileged = false;
    let noExpand = false;
    const start = i;
    for (; i < value.length; i++) {
      const c = value[i];
      if (c === "-" && !ignoreFailure) ignoreFailure = true;
      else if (c === "@" && !at) at = true;
      else if (c === ":" && !noExpand) noExpand = true;
      else if (c === "+" || c === "!") privileged = true;
      else break;
    }
    const words: string[] = [];
    for (;;) {
      const w = nextWord(value, i);
      if (!w) {
        i = value.length;
        break;
      }
      i = w.end;
      if (w.word === ";" && !w.quoted) break;
      words.push(w.word);
    }
    const text = value.slice(start, i).trim();
    if (words.length === 0) throw new UnitFileError(`empty command line: ${value}`);
    let argv0: string | undefined;
    if (at) {
      if (words.length < 2) throw new UnitFileError(`"@" needs a program and an argv[0]: ${value}`);
      argv0 = words.splice(1, 1)[0];
    }
    out.push({ words, ignoreFailure, argv0, privileged, noExpand, text });
  }
  return out;
}

/**
 * The command line after environment expansion (systemd.service(5) "Command lines"): a word that
 * is exactly `$VAR` becomes the value split at whitespace (zero or more words); `${VAR}` anywhere
 * becomes the value verbatim; `$$` is a literal `$`; unset variables are empty.
 */
export function expandCommand(cmd: ExecCommand, env: Record<string, string>): string[] {
  if (cmd.noExpand) return [...cmd.words];
  const out: string[] = [];
  for (const w of cmd.words) {
    const whole = /^\$([A-Za-z_][A-Za-z0-9_]*)$/.exec(w);
    if (whole) {
      out.push(...(env[whole[1]!] ?? "").split(/\s+/).filter(Boolean));
      continue;
    }
    out.push(w.replace(/\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (m, name: string | undefined) => (name === undefined ? "$" : env[name] ?? "")));
  }
  return out;
}

function timespan(unit: UnitFile, section: string, key: string, dflt: number): number {
  const raw = getValue(unit, section, key);
  if (raw === undefined) return dflt;
  const ms = parseTimespan(raw);
  if (ms === undefined) throw new UnitFileError(`${key}=${raw}: not a time span`);
  // systemd: 0 means "no timeout" for the Timeout*Sec= settings.
  return ms === 0 && key.startsWith("Timeout") ? Infinity : ms;
}

function bool(unit: UnitFile, section: string, key: string, dflt: boolean): boolean {
  const raw = getValue(unit, section, key);
  if (raw === undefined) return dflt;
  const b = parseBoolean(raw);
  if (b === undefined) throw new UnitFileError(`${key}=${raw}: not a boolean`);
  return b;
}

function signal(raw: string | undefined): NodeJS.Signals {
  if (raw === undefined) return "SIGTERM";
  const name = (/^SIG/.test(raw) ? raw : `SIG${raw}`).toUpperCase();
  if (!/^SIG[A-Z0-9]+$/.test(name) || !(name.slice(3) in SIGNALS)) throw new UnitFileError(`KillSignal=${raw}: unknown signal`);
  return name as NodeJS.Signals;
}

/** systemd.exec(5) StandardOutput=/StandardError=; the kernel log and syslog go to the journal here. */
function output(raw: string | undefined, key: string, inherit: Output): Output {
  if (raw === undefined || raw === "inherit") return inherit;
  if (["journal", "syslog", "kmsg", "journal+console", "syslog+console", "kmsg+console"].includes(raw)) return { kind: "journal" };
  if (raw === "null") return { kind: "null" };
  if (raw === "tty" || raw === "console") return { kind: "console" };
  const m = /^(file|append|truncate):(\/.*)$/.exec(raw);
  if (m) return { kind: "file", path: m[2]!, mode: m[1] === "file" ? "write" : (m[1] as "append" | "truncate") };
  throw new UnitFileError(`${key}=${raw}: not supported by the coreos supervisor (journal, null, tty, file:, append:, truncate: are)`);
}

function exitSet(unit: UnitFile, key: string): ExitSet {
  const set: ExitSet = { codes: [], signals: [] };
  for (const w of getWords(unit, "Service", key)) {
    if (/^[0-9]+$/.test(w) && Number(w) <= 255) set.codes.push(Number(w));
    else if (w.replace(/^SIG/, "") in SIGNALS) set.signals.push(`SIG${w.replace(/^SIG/, "")}`);
    else throw new UnitFileError(`${key}=${w}: not an exit status (0-255) or a signal name`);
  }
  return set;
}

function killMode(raw: string | undefined): KillMode {
  if (raw === undefined) return "control-group";
  if (raw === "control-group" || raw === "mixed" || raw === "process" || raw === "none") return raw;
  throw new UnitFileError(`KillMode=${raw}: unknown kill mode`);
}

/** Signal numbers for exit-status messages ("status=15/TERM") and validation. */
export const SIGNALS: Record<string, number> = {
  HUP: 1, INT: 2, QUIT: 3, ILL: 4, TRAP: 5, ABRT: 6, BUS: 7, FPE: 8, KILL: 9, USR1: 10, SEGV: 11, USR2: 12, PIPE: 13, ALRM: 14, TERM: 15,
  STKFLT: 16, CHLD: 17, CONT: 18, STOP: 19, TSTP: 20, TTIN: 21, TTOU: 22, URG: 23, XCPU: 24, XFSZ: 25, VTALRM: 26, PROF: 27, WINCH: 28, IO: 29, PWR: 30, SYS: 31,
};

/** Reads a service definition from a loaded unit; throws UnitFileError with systemd's reasons. */
export function serviceFromUnit(name: string, unit: UnitFile): ServiceDef {
  const S = "Service";
  const type = getValue(unit, S, "Type") ?? "simple";
  if (type === "notify" || type === "dbus" || type === "idle" || type === "notify-reload") {
    throw new UnitFileError(`Type=${type} is not supported by the coreos supervisor (simple, exec, oneshot, forking are)`);
  }
  const pidFile = getValue(unit, S, "PIDFile");
  if (pidFile !== undefined && !pidFile.startsWith("/")) throw new UnitFileError(`PIDFile=${pidFile}: path is not absolute`);
  // systemd finds a forked daemon in the unit's cgroup; a daemon that called setsid() has left
  // every process group the supervisor knows, so only its PID file can name it.
  if (type === "forking" && pidFile === undefined) throw new UnitFileError("Type=forking needs PIDFile= under the coreos supervisor");
  if (!TYPES.has(type)) throw new UnitFileError(`Type=${type}: unknown service type`);
  const restart = getValue(unit, S, "Restart") ?? "no";
  if (!RESTARTS.has(restart)) throw new UnitFileError(`Restart=${restart}: unknown restart policy`);
  const exec = Object.fromEntries(EXEC_KINDS.map((k) => [k, getList(unit, S, k).flatMap(parseExec)])) as Record<ExecKind, ExecCommand[]>;
  if (type !== "oneshot" && exec.ExecStart.length !== 1) {
    throw new UnitFileError(exec.ExecStart.length === 0 ? "Service has no ExecStart= setting, which is only allowed for Type=oneshot services. Refusing." : "Service has more than one ExecStart= setting, which is only allowed for Type=oneshot services. Refusing.");
  }
  if (type === "oneshot" && exec.ExecStart.length === 0 && exec.ExecStop.length === 0) {
    throw new UnitFileError("Service has no ExecStart= and no ExecStop= setting. Refusing.");
  }
  if (type === "oneshot" && (restart === "always" || restart === "on-success")) {
    throw new UnitFileError("Service has Restart= set to either always or on-success, which isn't allowed for Type=oneshot services. Refusing.");
  }
  const timeout = getValue(unit, S, "TimeoutSec");
  const both = timeout === undefined ? undefined : timespan(unit, S, "TimeoutSec", 90_000);
  const files = getList(unit, S, "EnvironmentFile").map((v) => (v.startsWith("-") ? { path: v.slice(1).trim(), optional: true } : { path: v, optional: false }));
  for (const f of files) if (!f.path.startsWith("/")) throw new UnitFileError(`EnvironmentFile=${f.path}: path is not absolute`);
  const wd = getValue(unit, S, "WorkingDirectory");
  const workingDirectory = wd === undefined ? undefined : wd.startsWith("-") ? { path: wd.slice(1), optional: true } : { path: wd, optional: false };
  if (workingDirectory && workingDirectory.path !== "~" && !workingDirectory.path.startsWith("/")) {
    throw new UnitFileError(`WorkingDirectory=${wd}: path is not absolute`);
  }
  // StartLimit*= belong to [Unit]; older units put them in [Service], which systemd still reads.
  const limit = (key: string) => getValue(unit, "Unit", key) ?? getValue(unit, S, key);
  const intervalRaw = limit("StartLimitIntervalSec") ?? limit("StartLimitInterval");
  const burstRaw = limit("StartLimitBurst");
  const interval = intervalRaw === undefined ? 10_000 : parseTimespan(intervalRaw);
  if (interval === undefined) throw new UnitFileError(`StartLimitIntervalSec=${intervalRaw}: not a time span`);
  if (burstRaw !== undefined && !/^[0-9]+$/.test(burstRaw)) throw new UnitFileError(`StartLimitBurst=${burstRaw}: not a number`);
  const stdout = output(getValue(unit, S, "StandardOutput"), "StandardOutput", { kind: "journal" });
  return {
    name,
    description: getValue(unit, "Unit", "Description") ?? name,
    type: type as ServiceType,
    exec,
    remainAfterExit: bool(unit, S, "RemainAfterExit", false),
    restart: restart as RestartPolicy,
    restartMs: timespan(unit, S, "RestartSec", 100),
    timeoutStartMs: both ?? timespan(unit, S, "TimeoutStartSec", type === "oneshot" ? Infinity : 90_000),
    timeoutStopMs: getValue(unit, S, "TimeoutStopSec") !== undefined ? timespan(unit, S, "TimeoutStopSec", 90_000) : (both ?? 90_000),
    startLimitIntervalMs: interval,
    startLimitBurst: burstRaw === undefined ? 5 : Number(burstRaw),
    killSignal: signal(getValue(unit, S, "KillSignal")),
    killMode: killMode(getValue(unit, S, "KillMode")),
    stdout,
    stderr: output(getValue(unit, S, "StandardError"), "StandardError", stdout),
    successExit: exitSet(unit, "SuccessExitStatus"),
    restartPrevent: exitSet(unit, "RestartPreventExitStatus"),
    restartForce: exitSet(unit, "RestartForceExitStatus"),
    environment: parseEnvironmentAssignments(getList(unit, S, "Environment")),
    environmentFiles: files,
    workingDirectory,
    user: getValue(unit, S, "User"),
    group: getValue(unit, S, "Group"),
    pidFile,
  };
}
