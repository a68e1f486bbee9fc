// coreos's process supervisor: service units from the systemd directories, each driven by its
// ServiceMachine; this file is the edge that spawns processes (own process group each, so a stop
// reaches their children), arms timers, captures output into a bounded per-unit journal, and
// answers the control socket.
import { accessSync, closeSync, constants, existsSync, lstatSync, openSync, readdirSync, readFileSync, statSync, type Stats } from "node:fs";
import { basename } from "node:path";
import { hostname } from "node:os";
import type { Subprocess } from "bun";
import type { UnitCommand, UnitStatus } from "./manager.ts";
import { ControlError, type Answer, type ControlHandler, type JobResult, type JournalEntry, type Request } from "./control.ts";
import { describeExit, ServiceMachine, type Effect, type Event, type Exit, type JobType } from "./machine.ts";
import { parseUnitName, type SpecifierContext } from "./names.ts";
import { listUnitNames, loadUnit, unitFileState, wantedBy, type Loaded, type UnitDirs } from "./paths.ts";
import { expandCommand, serviceFromUnit, type Output, type ServiceDef } from "./service.ts";
import { getWords, parseEnvironmentFile } from "./unitfile.ts";
import { checkConditions, type Probe } from "./conditions.ts";
import { logger } from "../log/log.ts";
import { streamLines } from "../lines/lines.ts";

const log = logger("supervisor");

/** systemd's default PATH for services. */
export const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/** Bounded wait for a dead process's pipes to drain: a daemonized grandchild may hold them open. */
const DRAIN_MS = 200;
const MAX_LINE = 16 * 1024;
/** How often a forked daemon (not our child, so no exit event) is looked for. */
const WATCH_MS = 100;
const ADOPT_RETRY_MS = 100;

/** A fixed-size ring of the newest entries. */
export class Ring<T> {
  private readonly buf: T[] = [];
  private start = 0;

  constructor(readonly capacity: number) {}

  push(x: T): void {
    if (this.capacity <= 0) return;
    if (this.buf.length < this.capacity) this.buf.push(x);
    else {
      this.buf[this.start] = x;
      this.start = (this.start + 1) % this.capacity;
    }
  }

  /** The newest n (all by default), oldest first. */
  last(n = this.buf.length): T[] {
    const all = [...this.buf.slice(this.start), ...this.buf.slice(0, this.start)];
    return n >= all.length ? all : all.slice(all.length - n);
  }
}

interface Proc {
  pid: number;
}

interface UnitRuntime {
  name: string;
  loaded: Loaded;
  /** Why the loaded unit cannot run (a bad setting), if so. */
  badSetting: string | undefined;
  machine: ServiceMachine | null;
  procs: Map<number, Proc>;
  /** Forked daemons (not our children), polled until they are gone. */
  watched: Map<number, { pid: number; timer: ReturnType<typeof setInterval> }>;
  /** Process groups that may still have members (leaders' children outlive them). */
  groups: Set<number>;
  timer: ReturnType<typeof setTimeout> | null;
  journal: Ring<JournalEntry>;
  journalSeq: number;
  events: Event[];
  stepping: boolean;
  waiters: Map<number, (r: JobResult) => void>;
}

export interface SupervisorOptions {
  dirs: UnitDirs;
  /** Lines kept per unit (default 1000). */
  journalLines?: number;
  /** The environment every process starts from (default: PATH only, as systemd gives services). */
  baseEnv?: Record<string, string>;
}

interface Identity {
  name: string;
  uid: number;
  gid: number;
  home: string;
  shell: string;
}

/** A user from the host's /etc/passwd (User= may also be a number). */
function lookupUser(user: string): Identity | undefined {
  let text: string;
  try {
    text = readFileSync("/etc/passwd", "utf8");
  } catch {
    text = "";
  }
  for (const line of text.split("\n")) {
    const f = line.split(":");
    if (f.length < 7) continue;
    if (f[0] === user || f[2] === user) return { name: f[0]!, uid: Number(f[2]), gid: Number(f[3]), home: f[5]!, shell: f[6]! };
  }
  if (/^[0-9]+$/.test(user)) return { name: user, uid: Number(user), gid: Number(user), home: "/", shell: "/bin/sh" };
  return undefined;
}

function lookupGroup(group: string): number | undefined {
  if (/^[0-9]+$/.test(group)) return Number(group);
  try {
    for (const line of readFileSync("/etc/group", "utf8").split("\n")) {
      const f = line.split(":");
      if (f[0] === group && f[2] !== undefined) return Number(f[2]);
    }
  } catch {
    // no group database
  }
  return undefined;
}

function statOrNull(p: string): Stats | null {
  try {
    return statSync(p);
  } catch {
    return null;
  }
}

function readOr(p: string, dflt = ""): string {
  try {
    return readFileSync(p, "utf8");
  } catch {
    return dflt;
  }
}

type Sink = "pipe" | "ignore" | "inherit" | number;

/** A Bun.spawn stdio target for an Output; files are opened here (their fds noted for closing). */
function sink(o: Output, opened: number[]): Sink {
  switch (o.kind) {
    case "journal":
      return "pipe";
    case "null":
      return "ignore";
    case "console":
      return "inherit";
    case "file": {
      const flags = constants.O_WRONLY | constants.O_CREAT | (o.mode === "append" ? constants.O_APPEND : o.mode === "truncate" ? constants.O_TRUNC : 0);
      const fd = openSync(o.path, flags, 0o644);
      opened.push(fd);
      return fd;
    }
  }
}

/** A process that exists and is not a zombie. */
function running(pid: number): boolean {
  const stat = readOr(`/proc/${pid}/stat`);
  return stat !== "" && stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
}

/** `foo` means `foo.service`, as systemctl reads it. */
export function normalizeName(name: string): string {
  return /\.[a-z]+$/.test(name) && !name.endsWith(".d") ? name : `${name}.service`;
}

export class Supervisor implements ControlHandler {
  private readonly units = new Map<string, UnitRuntime>();
  private jobSeq = 0;
  private readonly journalLines: number;
  private readonly baseEnv: Record<string, string>;
  private readonly ctx: SpecifierContext;

  constructor(private readonly o: SupervisorOptions) {
    this.journalLines = o.journalLines ?? 1000;
    this.baseEnv = o.baseEnv ?? { PATH: DEFAULT_PATH };
    const read = (p: string) => readOr(p).trim() || undefined;
    const me = process.getuid?.() ?? 0;
    const u = lookupUser(String(me));
    this.ctx = {
      hostname: hostname(),
      machineId: read("/etc/machine-id"),
      bootId: read("/proc/sys/kernel/random/boot_id")?.replace(/-/g, ""),
      kernelRelease: read("/proc/sys/kernel/osrelease"),
      uid: me,
      user: u?.name ?? String(me),
      home: u?.home,
      shell: u?.shell,
      gid: process.getgid?.(),
    };
  }

  /** The host for Condition*= checks. */
  private readonly probe: Probe = {
    exists: (p) => existsSync(p),
    isDirectory: (p) => statOrNull(p)?.isDirectory() ?? false,
    isSymlink: (p) => {
      try {
        return lstatSync(p).isSymbolicLink();
      } catch {
        return false;
      }
    },
    fileSize: (p) => {
      const st = statOrNull(p);
      return st?.isFile() ? st.size : undefined;
    },
    dirEntries: (p) => {
      try {
        return readdirSync(p);
      } catch {
        return undefined;
      }
    },
    isExecutable: (p) => {
      try {
        accessSync(p, constants.X_OK);
        return statOrNull(p)?.isFile() ?? false;
      } catch {
        return false;
      }
    },
    isMountPoint: (p) => {
      const want = p.replace(/\/+$/, "") || "/";
      return readOr("/proc/self/mountinfo")
        .split("\n")
        .some((l) => l.split(" ")[4]?.replace(/\\040/g, " ") === want);
    },
    glob: (pattern) => [...new Bun.Glob(pattern.replace(/^\/+/, "")).scanSync({ cwd: "/", onlyFiles: false })],
    kernelCommandLine: () => readOr("/proc/cmdline"),
    hostname: () => hostname(),
    machineId: () => this.ctx.machineId,
    env: () => process.env,
    user: () => ({ name: this.ctx.user ?? "root", uid: this.ctx.uid ?? 0 }),
  };

  // --- the control socket's questions ---

  async handle(req: Request): Promise<Answer> {
    switch (req.method) {
      case "run":
        if (req.noBlock) {
          this.enqueue(req.command, req.unit);
          return { ok: true };
        }
        return { ok: true, result: await this.run(req.command, req.unit) };
      case "status":
        return { ok: true, status: this.status(req.unit) };
      case "list":
        return { ok: true, units: this.list() };
      case "journal":
        return { ok: true, entries: this.journal(req.unit, req.lines) };
      case "daemon-reload":
        this.daemonReload();
        return { ok: true };
      case "reset-failed":
        this.resetFailed(req.unit);
        return { ok: true };
    }
  }

  /** Runs a systemctl verb and waits for its job, like `systemctl start` without --no-block. */
  async run(command: UnitCommand, unit: string): Promise<JobResult> {
    return this.plan(command, unit)();
  }

  /**
   * `systemctl --no-block`: what systemctl refuses before queueing (unknown or masked unit, reload
   * not applicable) is thrown now; the job runs on, and its end is in the unit's journal.
   */
  enqueue(command: UnitCommand, unit: string): void {
    const go = this.plan(command, unit);
    void go().then((r) => {
      if (r !== "done") log.warn(`${normalizeName(unit)}: ${command} job ${r}`);
    });
  }

  /** Checks a request against the unit and returns the job to run. */
  private plan(command: UnitCommand, unit: string): () => Promise<JobResult> {
    const rt = this.runtime(normalizeName(unit));
    // What runs can always be stopped, even when its file is since gone, masked or broken.
    const m = command === "stop" && rt.machine ? rt.machine : this.machineFor(rt);
    const active = m.active === "active" || m.active === "reloading" || m.active === "activating";
    const canReload = m.def.exec.ExecReload.length > 0;
    const jobFor = (): JobType | null => {
      switch (command) {
        case "start":
        case "stop":
        case "restart":
          return command;
        case "reload":
          if (!canReload) throw new ControlError("unsupported", `Job type reload is not applicable for unit ${rt.name}.`);
          if (!active) throw new ControlError("failed", `Unit ${rt.name} is not active, cannot reload.`);
          return "reload";
        case "try-restart":
          return active ? "restart" : null;
        case "reload-or-restart":
          return canReload && active ? "reload" : "restart";
        case "reload-or-try-restart":
          if (canReload) return active ? "reload" : null;
          return active ? "restart" : null;
      }
    };
    const job = jobFor();
    return async () => {
      if (job === null) return "done";
      if (job === "stop") return this.stopWith(rt, new Set([rt.name]));
      if (job === "start") return this.startWith(rt, job, new Set([rt.name]));
      if (job === "restart") {
        const r = await this.startWith(rt, job, new Set([rt.name]));
        // Requires=/BindsTo= units restart with what they need (systemd.unit(5)).
        await Promise.all(this.dependents(rt.name).map((d) => this.job(d, "restart")));
        return r;
      }
      return this.job(rt, job);
    };
  }

  /** Active units that Require= or BindsTo= this one (also through `.requires/` links). */
  private dependents(name: string): UnitRuntime[] {
    return [...this.units.values()].filter((d) => {
      if (d.name === name || d.loaded.load !== "loaded" || !d.machine || d.machine.active === "inactive" || d.machine.active === "failed") return false;
      const u = d.loaded.unit;
      return [...getWords(u, "Unit", "Requires"), ...getWords(u, "Unit", "BindsTo"), ...wantedBy(this.o.dirs, d.name, ["requires"])].includes(name);
    });
  }

  /**
   * A stop takes the units that require this one down too: those ordered After= it first (they
   * stop before what they need, systemd's reverse order), the others alongside.
   */
  private async stopWith(rt: UnitRuntime, seen: Set<string>): Promise<JobResult> {
    const first: Promise<JobResult>[] = [];
    for (const d of this.dependents(rt.name)) {
      if (seen.has(d.name)) continue;
      seen.add(d.name);
      const stopping = this.stopWith(d, seen);
      if (d.loaded.load === "loaded" && getWords(d.loaded.unit, "Unit", "After").includes(rt.name)) first.push(stopping);
    }
    await Promise.all(first);
    return this.job(rt, "stop");
  }

  /** A start (or restart) as systemd's transaction runs it: dependencies, then conditions, then the job. */
  private async startWith(rt: UnitRuntime, job: "start" | "restart", seen: Set<string>): Promise<JobResult> {
    const m = rt.machine!;
    const failed = await this.startDependencies(rt, seen);
    if (failed) {
      this.note(rt, `Dependency failed for ${m.def.description} (${failed}).`);
      return "dependency";
    }
    // Conditions are looked at when an inactive unit would start (a running one restarting keeps
    // its verdict).
    if ((m.active === "inactive" || m.active === "failed") && rt.loaded.load === "loaded") {
      const unit = rt.loaded.unit;
      const cond = checkConditions(unit, "Condition", this.probe);
      const asserted = checkConditions(unit, "Assert", this.probe);
      for (const u of [...cond.unsupported, ...asserted.unsupported]) log.warn(`${rt.name}: ${u}: not evaluated by the supervisor, taken as met`);
      if (!asserted.ok) {
        this.note(rt, `Assertion failed for ${m.def.description} (${asserted.failed}).`);
        return "failed";
      }
      if (!cond.ok) {
        this.note(rt, `${m.def.description} was skipped because of an unmet condition check (${cond.failed}).`);
        return "done";
      }
    }
    return this.job(rt, job);
  }

  /**
   * Requires=/BindsTo=/Wants= (and `<unit>.wants|requires/` links) are started with the unit, as
   * systemd's start transaction does; those also named in After= are waited for. A required unit
   * that cannot be loaded, or that is ordered before and fails, fails this start ("dependency"),
   * and the unit stays as it was. Targets count as reached (the supervisor has no boot stages),
   * other unit types as absent.
   */
  private async startDependencies(rt: UnitRuntime, seen: Set<string>): Promise<string | null> {
    if (rt.loaded.load !== "loaded") return null;
    const u = rt.loaded.unit;
    const after = new Set(getWords(u, "Unit", "After"));
    const deps: [string, boolean][] = [
      ...[...getWords(u, "Unit", "Requires"), ...getWords(u, "Unit", "BindsTo"), ...wantedBy(this.o.dirs, rt.name, ["requires"])].map((n): [string, boolean] => [n, true]),
      ...[...getWords(u, "Unit", "Wants"), ...wantedBy(this.o.dirs, rt.name, ["wants"])].map((n): [string, boolean] => [n, false]),
    ];
    const ordered: Promise<string | null>[] = [];
    for (const [name, hard] of deps) {
      if (seen.has(name) || name.endsWith(".target")) continue;
      seen.add(name);
      const dep = name.endsWith(".service") ? this.runnable(name) : null;
      if (!dep) {
        if (hard) return name;
        continue;
      }
      const verdict = this.startWith(dep, "start", seen).then((r) => (r === "done" || !hard ? null : name));
      if (after.has(name)) ordered.push(verdict);
    }
    for (const v of await Promise.all(ordered)) if (v) return v;
    return null;
  }

  status(unit: string): UnitStatus {
    return this.statusOf(this.runtime(normalizeName(unit)));
  }

  /** Every service on the search path and every one in memory, by name. */
  list(): UnitStatus[] {
    const names = new Set([...listUnitNames(this.o.dirs), ...this.units.keys()]);
    return [...names].sort().map((n) => this.statusOf(this.runtime(n)));
  }

  journal(unit: string, lines?: number): JournalEntry[] {
    return this.runtime(normalizeName(unit)).journal.last(lines);
  }

  resetFailed(unit: string): void {
    const rt = this.runtime(normalizeName(unit));
    rt.machine?.resetFailed();
  }

  /** Re-reads every known unit; running processes keep going, the new settings apply from now on. */
  daemonReload(): void {
    for (const rt of this.units.values()) this.reload(rt);
    log.info(`reloaded ${this.units.size} units`);
  }

  /** Starts what `target` wants (enabled units), at boot. Failures are logged, not thrown. */
  async boot(target = "multi-user.target"): Promise<void> {
    const names = wantedBy(this.o.dirs, target);
    await Promise.all(
      names.map(async (n) => {
        if (!n.endsWith(".service")) {
          log.warn(`${n}: wanted by ${target}, but the supervisor runs services only; skipped`);
          return;
        }
        try {
          const r = await this.run("start", n);
          if (r !== "done") log.warn(`${n}: start job ${r}`);
        } catch (e) {
          log.warn(`${n}: ${(e as Error).message}`);
        }
      }),
    );
  }

  /** Stops every unit that is not inactive (on the supervisor's own shutdown). */
  async shutdown(): Promise<void> {
    await Promise.all(
      [...this.units.values()]
        .filter((rt) => rt.machine && rt.machine.active !== "inactive" && rt.machine.active !== "failed")
        .map((rt) => this.job(rt, "stop")),
    );
    for (const rt of this.units.values()) {
      if (rt.timer) clearTimeout(rt.timer);
      for (const w of rt.watched.values()) clearInterval(w.timer);
    }
  }

  // --- units ---

  private runtime(name: string): UnitRuntime {
    let rt = this.units.get(name);
    if (rt) return rt;
    parseUnitName(name);
    rt = {
      name,
      loaded: { load: "not-found", name },
      badSetting: undefined,
      machine: null,
      procs: new Map(),
      watched: new Map(),
      groups: new Set(),
      timer: null,
      journal: new Ring(this.journalLines),
      journalSeq: 0,
      events: [],
      stepping: false,
      waiters: new Map(),
    };
    this.reload(rt);
    // Only units that exist (or have run) are remembered, so a typo does not linger in `list`.
    if (rt.loaded.load !== "not-found") this.units.set(name, rt);
    return rt;
  }

  private reload(rt: UnitRuntime): void {
    rt.loaded = loadUnit(this.o.dirs, rt.name, this.ctx);
    rt.badSetting = undefined;
    if (rt.loaded.load !== "loaded") return;
    for (const p of rt.loaded.problems) log.warn(`${p.file}:${p.line}: ${p.message}`);
    if (parseUnitName(rt.name).type !== "service") {
      rt.badSetting = `${rt.name}: the supervisor runs service units only`;
      return;
    }
    let def: ServiceDef;
    try {
      def = serviceFromUnit(rt.name, rt.loaded.unit);
    } catch (e) {
      rt.badSetting = `${rt.loaded.path}: ${(e as Error).message}`;
      return;
    }
    if (rt.machine) rt.machine.def = def;
    else rt.machine = new ServiceMachine(def);
  }

  /** A unit that can be started, or null (unknown, masked, broken). */
  private runnable(name: string): UnitRuntime | null {
    try {
      const rt = this.runtime(name);
      this.machineFor(rt);
      return rt;
    } catch {
      return null;
    }
  }

  /** The unit's machine, or the reason it has none, as systemctl words it. */
  private machineFor(rt: UnitRuntime): ServiceMachine {
    const l = rt.loaded;
    if (l.load === "not-found" && !rt.machine) throw new ControlError("not-found", `Unit ${rt.name} not found.`);
    if (l.load === "masked") throw new ControlError("masked", `Unit ${rt.name} is masked.`);
    if (l.load === "error") throw new ControlError("failed", `Unit ${rt.name} failed to load: ${l.message}`);
    if (rt.badSetting && !rt.machine) throw new ControlError("failed", `Unit ${rt.name} has a bad unit file setting: ${rt.badSetting}`);
    return rt.machine!;
  }

  private statusOf(rt: UnitRuntime): UnitStatus {
    const l = rt.loaded;
    const m = rt.machine;
    const s: UnitStatus = {
      name: rt.name,
      load: l.load === "loaded" && rt.badSetting ? "error" : l.load,
      active: m ? m.active : "inactive",
      sub: m ? m.state : "dead",
    };
    if (l.load === "loaded" || l.load === "masked") s.path = l.path;
    if (m) {
      s.description = m.def.description;
      s.result = m.result;
      s.restarts = m.restarts;
      if (m.since) s.since = m.since;
      if (m.mainPid !== undefined && m.busy) s.mainPid = m.mainPid;
      if (m.mainExit) s.lastExit = { ...(m.mainExit.pid !== undefined ? { pid: m.mainExit.pid } : {}), status: describeExit(m.mainExit.exit) };
    }
    if (l.load !== "not-found") s.enabled = l.load === "masked" ? "masked" : unitFileState(this.o.dirs, rt.name, l.load === "loaded" ? l.unit : undefined);
    return s;
  }

  // --- the machine's edge ---

  private job(rt: UnitRuntime, type: JobType): Promise<JobResult> {
    const id = ++this.jobSeq;
    return new Promise((resolve) => {
      rt.waiters.set(id, resolve);
      this.dispatch(rt, { t: "job", job: type, id });
    });
  }

  private dispatch(rt: UnitRuntime, ev: Event): void {
    rt.events.push(ev);
    if (rt.stepping || !rt.machine) return;
    rt.stepping = true;
    try {
      let next: Event | undefined;
      while ((next = rt.events.shift()) !== undefined) {
        for (const e of rt.machine.step(next, Date.now())) this.apply(rt, e);
      }
    } finally {
      rt.stepping = false;
    }
  }

  private apply(rt: UnitRuntime, e: Effect): void {
    switch (e.t) {
      case "spawn":
        return this.spawn(rt, e);
      case "kill":
        for (const p of [...rt.procs.values(), ...rt.watched.values()]) {
          try {
            process.kill(p.pid, e.signal);
          } catch {
            // already gone
          }
        }
        if (!e.group) return;
        for (const pgid of rt.groups) {
          try {
            process.kill(-pgid, e.signal);
          } catch {
            rt.groups.delete(pgid);
          }
        }
        return;
      case "timer":
        if (rt.timer) clearTimeout(rt.timer);
        rt.timer = Number.isFinite(e.ms) ? setTimeout(() => this.dispatch(rt, { t: "timer", gen: e.gen }), e.ms) : null;
        return;
      case "job-done":
        for (const id of e.ids) {
          rt.waiters.get(id)?.(e.result);
          rt.waiters.delete(id);
        }
        return;
      case "adopt":
        return this.adopt(rt, e.proc, e.pidFile);
      case "note":
        // systemd words most lines "unit: what happened"; the start/stop headlines stand alone.
        return this.note(rt, /^(Starting|Started|Stopping|Stopped|Failed to start) /.test(e.message) ? e.message : `${rt.name}: ${e.message}`);
    }
  }

  /**
   * A Type=forking daemon: its pid from the PID file (daemons may write it just after the parent
   * exits, so a few tries, as systemd waits for "PID file not readable (yet?)"), then watched
   * until it is gone. It is not our child, so its exit status is unknown.
   */
  private adopt(rt: UnitRuntime, proc: number, pidFile: string, tries = 10): void {
    const raw = readOr(pidFile).trim();
    const pid = /^[0-9]+$/.test(raw) ? Number(raw) : 0;
    if (pid <= 1 || !running(pid)) {
      if (tries > 1) {
        setTimeout(() => this.adopt(rt, proc, pidFile, tries - 1), ADOPT_RETRY_MS);
        return;
      }
      const why = raw === "" ? "not readable" : `names ${pid > 1 ? `process ${pid}, which is not running` : `no process ("${raw.slice(0, 40)}")`}`;
      this.dispatch(rt, { t: "exit", proc, exit: { protocol: `PID file ${pidFile} ${why} after start.` } });
      return;
    }
    const timer = setInterval(() => {
      if (running(pid)) return;
      clearInterval(timer);
      rt.watched.delete(proc);
      this.dispatch(rt, { t: "exit", proc, exit: { vanished: true } });
    }, WATCH_MS);
    rt.watched.set(proc, { pid, timer });
    rt.groups.add(pid);
    this.dispatch(rt, { t: "spawned", proc, pid });
  }

  /** A line of the supervisor's own in the unit's journal and the daemon log. */
  private note(rt: UnitRuntime, message: string): void {
    rt.journal.push({ seq: ++rt.journalSeq, time: Date.now(), ident: "coreos", pid: process.pid, message });
    log.info(message);
  }

  private spawn(rt: UnitRuntime, e: Extract<Effect, { t: "spawn" }>): void {
    const def = rt.machine!.def;
    // systemd reads environment files before forking and fails the job; the other failures happen
    // in the forked child, after which a Type=simple service counts as started.
    const fail = (spawnFailed: "exec" | "chdir" | "user" | "resources" | "stdout", message: string) => {
      if (spawnFailed !== "resources" && e.role === "main" && def.type === "simple") this.dispatch(rt, { t: "spawned", proc: e.proc });
      this.dispatch(rt, { t: "exit", proc: e.proc, exit: { spawnFailed, message } });
    };
    const env: Record<string, string> = { ...this.baseEnv };
    let uid: number | undefined;
    let gid: number | undefined;
    let home: string | undefined;
    // User= needs root to switch; a supervisor run by a user runs everything as that user.
    if (def.user && !e.command.privileged && process.getuid?.() === 0) {
      const id = lookupUser(def.user);
      if (!id) return fail("user", `Failed to determine user credentials: no user "${def.user}"`);
      uid = id.uid;
      gid = id.gid;
      home = id.home;
      Object.assign(env, { USER: def.user, LOGNAME: def.user, HOME: id.home, SHELL: id.shell });
    }
    if (def.group && !e.command.privileged && process.getuid?.() === 0) {
      gid = lookupGroup(def.group);
      if (gid === undefined) return fail("user", `Failed to determine group credentials: no group "${def.group}"`);
    }
    const mainPid = rt.machine!.mainPid;
    if (e.role === "control" && mainPid !== undefined && rt.machine!.busy) env.MAINPID = String(mainPid);
    for (const [k, v] of def.environment) env[k] = v;
    for (const f of def.environmentFiles) {
      let text: string;
      try {
        text = readFileSync(f.path, "utf8");
      } catch (err) {
        if (f.optional) continue;
        return fail("resources", `Failed to load environment files: ${f.path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
      for (const [k, v] of parseEnvironmentFile(text)) env[k] = v;
    }
    const argv = expandCommand(e.command, env);
    if (argv.length === 0) return fail("exec", `${e.kind}=${e.command.text}: empty command line after expansion`);
    let cwd = "/";
    if (def.workingDirectory) {
      const want = def.workingDirectory.path === "~" ? (home ?? env.HOME ?? this.ctx.home ?? "/") : def.workingDirectory.path;
      if (existsSync(want)) cwd = want;
      else if (!def.workingDirectory.optional) return fail("chdir", `Changing to the requested working directory failed: ${want}: No such file or directory`);
    }
    const opened: number[] = [];
    let sinks: [Sink, Sink];
    try {
      const stdout = sink(def.stdout, opened);
      sinks = [stdout, def.stderr === def.stdout ? stdout : sink(def.stderr, opened)];
    } catch (err) {
      for (const fd of opened) closeSync(fd);
      return fail("stdout", `Failed to set up standard output: ${(err as Error).message}`);
    }
    let child: Subprocess;
    try {
      child = Bun.spawn(argv, {
        cwd,
        env,
        stdin: "ignore",
        stdout: sinks[0],
        stderr: sinks[1],
        detached: true,
        ...(e.command.argv0 !== undefined ? { argv0: e.command.argv0 } : {}),
        ...(uid !== undefined ? { uid } : {}),
        ...(gid !== undefined ? { gid } : {}),
      });
    } catch (err) {
      return fail("exec", `Failed to execute ${argv[0]}: ${(err as Error).message}`);
    } finally {
      // The child has its own copies of opened files.
      for (const fd of opened) closeSync(fd);
    }
    const pid = child.pid;
    rt.procs.set(e.proc, { pid });
    rt.groups.add(pid);
    this.dispatch(rt, { t: "spawned", proc: e.proc, pid });
    const ident = basename(e.command.argv0 ?? argv[0]!);
    const pumps: Promise<void>[] = [];
    for (const x of [child.stdout, child.stderr]) if (x instanceof ReadableStream) pumps.push(this.pump(rt, x, ident, pid));
    void child.exited.then(async () => {
      let drained: () => void = () => undefined;
      const timeout = new Promise<void>((r) => (drained = r));
      const t = setTimeout(drained, DRAIN_MS);
      await Promise.race([Promise.all(pumps), timeout]);
      clearTimeout(t);
      rt.procs.delete(e.proc);
      // The group lives on only while a child of the leader does.
      try {
        process.kill(-pid, 0);
      } catch {
        rt.groups.delete(pid);
      }
      const exit: Exit = child.signalCode ? { signal: String(child.signalCode) } : { code: child.exitCode ?? 0 };
      this.dispatch(rt, { t: "exit", proc: e.proc, exit });
    });
  }

  /** Copies a process's output into the unit's journal line by line. */
  private pump(rt: UnitRuntime, stream: ReadableStream<Uint8Array>, ident: string, pid: number): Promise<void> {
    return streamLines(stream, (line) => rt.journal.push({ seq: ++rt.journalSeq, time: Date.now(), ident, pid, message: line }), MAX_LINE);
  }

}
