// One service's life as systemd's service.c lives it, as a pure state machine: events in (a job,
// a process exit, a timer), effects out (spawn, kill, arm a timer, finish a job, log a line). No
// processes, clocks or timers here: the supervisor executes the effects and feeds back events, and
// tests step it by hand.
import type { ActiveState } from "./manager.ts";
import type { ExecCommand, ExecKind, ExitSet, ServiceDef } from "./service.ts";
import type { JobResult } from "./control.ts";

export type SubState =
  | "dead" | "start-pre" | "start" | "start-post" | "running" | "exited" | "reload"
  | "stop" | "stop-sigterm" | "stop-sigkill" | "stop-post" | "final-sigterm" | "final-sigkill" | "failed" | "auto-restart";

/** systemd's Result= of a service. */
export type Result = "success" | "exit-code" | "signal" | "core-dump" | "timeout" | "resources" | "protocol" | "start-limit-hit";

export const ACTIVE_OF: Record<SubState, ActiveState> = {
  dead: "inactive",
  failed: "failed",
  "start-pre": "activating",
  start: "activating",
  "start-post": "activating",
  "auto-restart": "activating",
  running: "active",
  exited: "active",
  reload: "reloading",
  stop: "deactivating",
  "stop-sigterm": "deactivating",
  "stop-sigkill": "deactivating",
  "stop-post": "deactivating",
  "final-sigterm": "deactivating",
  "final-sigkill": "deactivating",
};

/** How a process ended: an exit status, a signal, or a spawn that never ran the program. */
export type Exit =
  | { code: number; signal?: undefined }
  | { code?: undefined; signal: string }
  | { spawnFailed: "exec" | "chdir" | "user" | "resources" | "stdout"; message: string; code?: undefined; signal?: undefined }
  /** A forked daemon's PID file named no live process. */
  | { protocol: string; code?: undefined; signal?: undefined }
  /** A process that is not the supervisor's child is gone; how it ended cannot be known. */
  | { vanished: true; code?: undefined; signal?: undefined };

export type JobType = "start" | "stop" | "restart" | "reload";

export type Event =
  | { t: "job"; job: JobType; id: number }
  /** The process exists; no pid when the fork "succeeded" but the exec did not (Type=simple). */
  | { t: "spawned"; proc: number; pid?: number }
  | { t: "exit"; proc: number; exit: Exit }
  | { t: "timer"; gen: number };

export type Effect =
  | { t: "spawn"; proc: number; role: "main" | "control"; kind: ExecKind; command: ExecCommand }
  /** To the main and control processes, and with `group` to every process of their process groups. */
  | { t: "kill"; signal: NodeJS.Signals; group: boolean }
  /** Replaces the armed timer; Infinity arms nothing. */
  | { t: "timer"; gen: number; ms: number }
  | { t: "job-done"; ids: number[]; result: JobResult }
  /** Type=forking: find the daemon in the PID file, report it as `spawned` (or its absence as an exit). */
  | { t: "adopt"; proc: number; pidFile: string }
  /** A line for the unit's journal, in systemd's words. */
  | { t: "note"; message: string };

/** systemd's exit status names for "status=1/FAILURE". */
const EXIT_NAMES: Record<number, string> = {
  0: "SUCCESS", 1: "FAILURE", 2: "INVALIDARGUMENT", 3: "NOTIMPLEMENTED", 4: "NOPERMISSION", 5: "NOTINSTALLED", 6: "NOTCONFIGURED", 7: "NOTRUNNING",
  200: "CHDIR", 203: "EXEC", 209: "STDOUT", 217: "USER", 226: "NAMESPACE",
};
const SPAWN_STATUS = { exec: 203, chdir: 200, user: 217, resources: 226, stdout: 209 } as const;
/** A daemon killed by one of these stopped cleanly (systemd's EXIT_CLEAN_DAEMON). */
const CLEAN_SIGNALS = new Set(["SIGHUP", "SIGINT", "SIGTERM", "SIGPIPE"]);

/** `code=exited, status=1/FAILURE` or `code=killed, signal=TERM`, as systemctl status prints it. */
export function describeExit(e: Exit): string {
  if (e.signal !== undefined) return `code=killed, signal=${e.signal.replace(/^SIG/, "")}`;
  if ("vanished" in e) return "code=exited, status=unknown (not a child of the supervisor)";
  if ("protocol" in e) return "code=exited, status=unknown (no main process)";
  const code = "spawnFailed" in e ? SPAWN_STATUS[e.spawnFailed] : e.code!;
  return `code=exited, status=${code}/${EXIT_NAMES[code] ?? String(code)}`;
}

function classify(e: Exit, daemon: boolean, success: ExitSet): Result {
  if ("vanished" in e) return "success";
  if ("protocol" in e) return "protocol";
  if ("spawnFailed" in e) return e.spawnFailed === "resources" ? "resources" : "exit-code";
  if (e.signal !== undefined) return (daemon && CLEAN_SIGNALS.has(e.signal)) || success.signals.includes(e.signal) ? "success" : "signal";
  return e.code === 0 || success.codes.includes(e.code) ? "success" : "exit-code";
}

function inSet(e: Exit | undefined, set: ExitSet): boolean {
  if (!e) return false;
  if (e.signal !== undefined) return set.signals.includes(e.signal);
  return e.code !== undefined && set.codes.includes(e.code);
}

interface Running {
  proc: number;
  command: ExecCommand;
  kind: ExecKind;
}

export class ServiceMachine {
  state: SubState = "dead";
  result: Result = "success";
  /** Automatic restarts (NRestarts). */
  restarts = 0;
  /** When `active` last changed (ms). */
  since = 0;
  mainPid: number | undefined;
  /** How the last main process ended, for status. */
  mainExit: { pid: number | undefined; exit: Exit } | undefined;

  private main: Running | null = null;
  private control: Running | null = null;
  private queue: ExecCommand[] = [];
  private queueKind: ExecKind = "ExecStart";
  private job: { type: JobType; ids: number[] } | null = null;
  /** A restart job's (or a start during a stop) second half. */
  private startAfterStop = false;
  /** A stop request: no automatic restart after it. */
  private forbidRestart = false;
  private starts: number[] = [];
  private gen = 0;
  private procSeq = 0;
  private fx: Effect[] = [];
  private now = 0;

  constructor(public def: ServiceDef) {}

  get active(): ActiveState {
    return ACTIVE_OF[this.state];
  }

  /** True while any process of the unit is known to run. */
  get busy(): boolean {
    return this.main !== null || this.control !== null;
  }

  step(ev: Event, now: number): Effect[] {
    this.fx = [];
    this.now = now;
    switch (ev.t) {
      case "job":
        this.onJob(ev.job, ev.id);
        break;
      case "spawned":
        if (this.main?.proc === ev.proc) {
          this.mainPid = ev.pid;
          if (this.state === "start" && this.def.type !== "oneshot") this.enterStartPost();
        }
        break;
      case "exit":
        this.onExit(ev.proc, ev.exit);
        break;
      case "timer":
        if (ev.gen === this.gen) this.onTimeout();
        break;
    }
    return this.fx;
  }

  /** `systemctl reset-failed`: a failed unit becomes inactive, results and the start limit are forgotten. */
  resetFailed(): void {
    if (this.state === "failed") this.state = "dead";
    if (this.active === "inactive") this.result = "success";
    this.restarts = 0;
    this.starts = [];
  }

  // --- jobs ---

  private onJob(type: JobType, id: number): void {
    switch (type) {
      case "start":
        return this.jobStart(id, "start");
      case "restart":
        if (this.state === "dead" || this.state === "failed" || this.state === "auto-restart") return this.jobStart(id, "restart");
        this.cancelJob();
        this.job = { type: "restart", ids: [id] };
        this.startAfterStop = true;
        return this.requestStop();
      case "stop":
        if (this.job?.type === "stop") {
          this.job.ids.push(id);
          return;
        }
        this.cancelJob();
        this.job = { type: "stop", ids: [id] };
        return this.requestStop();
      case "reload":
        return this.jobReload(id);
    }
  }

  private cancelJob(): void {
    if (this.job) this.emit({ t: "job-done", ids: this.job.ids, result: "canceled" });
    this.job = null;
    this.startAfterStop = false;
  }

  private finishJob(result: JobResult): void {
    if (!this.job) return;
    this.emit({ t: "job-done", ids: this.job.ids, result });
    this.job = null;
  }

  private jobStart(id: number, type: "start" | "restart"): void {
    if (this.job && (this.job.type === "start" || this.job.type === "restart")) {
      this.job.ids.push(id);
      return;
    }
    switch (this.state) {
      case "running":
      case "exited":
      case "reload":
        this.emit({ t: "job-done", ids: [id], result: "done" });
        return;
      case "start-pre":
      case "start":
      case "start-post":
        this.job = { type, ids: [id] };
        return;
      case "dead":
      case "failed":
      case "auto-restart":
        this.cancelJob();
        this.job = { type, ids: [id] };
        this.beginStart();
        return;
      default:
        // Deactivating: start once the stop is through.
        this.cancelJob();
        this.job = { type, ids: [id] };
        this.startAfterStop = true;
    }
  }

  private jobReload(id: number): void {
    if ((this.state !== "running" && this.state !== "exited") || this.def.exec.ExecReload.length === 0) {
      this.emit({ t: "job-done", ids: [id], result: "failed" });
      return;
    }
    this.cancelJob();
    this.job = { type: "reload", ids: [id] };
    this.queue = [...this.def.exec.ExecReload];
    this.queueKind = "ExecReload";
    this.setState("reload");
    this.runControl();
  }

  private requestStop(): void {
    this.forbidRestart = true;
    switch (this.state) {
      case "dead":
      case "failed":
        return this.afterInactive();
      case "auto-restart":
        this.armTimer(Infinity);
        this.setState(this.result === "success" ? "dead" : "failed");
        return this.afterInactive();
      case "start-pre":
      case "start":
      case "start-post":
      case "reload":
        return this.enterSignal("stop-sigterm", "success");
      case "running":
      case "exited":
        return this.enterStop("success");
      default:
        // Already stopping; the job finishes with it.
        return;
    }
  }

  // --- starting ---

  private beginStart(): void {
    const d = this.def;
    if (d.startLimitIntervalMs > 0 && d.startLimitBurst > 0) {
      this.starts = this.starts.filter((t) => t > this.now - d.startLimitIntervalMs);
      if (this.starts.length >= d.startLimitBurst) {
        this.result = "start-limit-hit";
        this.note("Start request repeated too quickly.");
        this.setState("failed");
        this.note(`Failed with result 'start-limit-hit'.`);
        this.note(`Failed to start ${this.title}.`);
        this.startAfterStop = false;
        this.finishJob("failed");
        return;
      }
      this.starts.push(this.now);
    }
    this.result = "success";
    this.forbidRestart = false;
    this.startAfterStop = false;
    this.mainExit = undefined;
    this.note(`Starting ${this.title}...`);
    this.armTimer(d.timeoutStartMs);
    this.queue = [...d.exec.ExecStartPre];
    this.queueKind = "ExecStartPre";
    if (this.queue.length > 0) {
      this.setState("start-pre");
      this.runControl();
    } else this.enterStart();
  }

  private enterStart(): void {
    const d = this.def;
    this.setState("start");
    if (d.type === "oneshot") {
      this.queue = [...d.exec.ExecStart];
      this.queueKind = "ExecStart";
      if (this.queue.length === 0) return this.enterStartPost();
      return this.runMain();
    }
    // Started once the process exists ("spawned"): for Type=simple that is the fork, so a program
    // that then fails to execute still made a successful start job, as with systemd; for Type=exec
    // it is the exec. A failure before the fork (an environment file missing) fails the job.
    this.queue = [d.exec.ExecStart[0]!];
    this.queueKind = "ExecStart";
    // Type=forking: the program started is only the parent; the daemon it leaves behind is the
    // main process, found once the parent has exited successfully.
    if (d.type === "forking") this.runControl();
    else this.runMain();
  }

  private enterStartPost(): void {
    this.queue = [...this.def.exec.ExecStartPost];
    this.queueKind = "ExecStartPost";
    if (this.queue.length > 0) {
      this.setState("start-post");
      this.runControl();
    } else this.enterRunning("success");
  }

  private enterRunning(f: Result): void {
    this.record(f);
    this.control = null;
    this.armTimer(Infinity);
    if (this.result !== "success") return this.enterSignal("stop-sigterm", this.result);
    if (this.main) {
      this.setState("running");
      this.started();
    } else if (this.def.remainAfterExit) {
      this.setState("exited");
      this.started();
    } else this.enterStop("success");
  }

  private started(): void {
    this.note(`Started ${this.title}.`);
    if (this.job?.type === "start" || this.job?.type === "restart") this.finishJob("done");
  }

  // --- stopping ---

  private enterStop(f: Result): void {
    this.record(f);
    this.queue = [...this.def.exec.ExecStop];
    this.queueKind = "ExecStop";
    if (this.queue.length > 0) {
      if (this.job?.type === "stop" || this.job?.type === "restart") this.note(`Stopping ${this.title}...`);
      this.setState("stop");
      this.armTimer(this.def.timeoutStopMs);
      this.runControl();
    } else this.enterSignal("stop-sigterm", "success");
  }

  private enterSignal(state: "stop-sigterm" | "stop-sigkill" | "final-sigterm" | "final-sigkill", f: Result): void {
    this.record(f);
    const kill = state === "stop-sigkill" || state === "final-sigkill";
    const mode = this.def.killMode;
    if (mode === "none") {
      // Nothing is signalled and nothing waited for: the processes are left to themselves.
      this.main = null;
      this.control = null;
    } else {
      // control-group: leftover children of exited processes too; mixed: those only with SIGKILL.
      this.emit({ t: "kill", signal: kill ? "SIGKILL" : this.def.killSignal, group: mode === "control-group" || (mode === "mixed" && kill) });
    }
    if (this.busy) {
      if (state === "stop-sigterm" && (this.job?.type === "stop" || this.job?.type === "restart") && this.state !== "stop") this.note(`Stopping ${this.title}...`);
      this.setState(state);
      this.armTimer(this.def.timeoutStopMs);
      return;
    }
    if (state === "stop-sigterm" || state === "stop-sigkill") this.enterStopPost("success");
    else this.enterDead("success", true);
  }

  private enterStopPost(f: Result): void {
    this.record(f);
    this.queue = [...this.def.exec.ExecStopPost];
    this.queueKind = "ExecStopPost";
    if (this.queue.length > 0) {
      this.setState("stop-post");
      this.armTimer(this.def.timeoutStopMs);
      this.runControl();
    } else this.enterSignal("final-sigterm", "success");
  }

  private enterDead(f: Result, allowRestart: boolean): void {
    this.record(f);
    this.main = null;
    this.control = null;
    this.mainPid = undefined;
    this.armTimer(Infinity);
    if (allowRestart && !this.forbidRestart && !this.startAfterStop && this.shallRestart()) {
      this.setState("auto-restart");
      if (this.result !== "success") this.note(`Failed with result '${this.result}'.`);
      this.armTimer(this.def.restartMs);
      if (this.job?.type === "start" || this.job?.type === "restart") this.finishJob(this.result === "success" ? "done" : "failed");
      return;
    }
    if (this.result === "success") {
      this.setState("dead");
      this.note("Deactivated successfully.");
      if (this.forbidRestart) this.note(`Stopped ${this.title}.`);
    } else {
      this.setState("failed");
      this.note(`Failed with result '${this.result}'.`);
      this.note(this.forbidRestart ? `Stopped ${this.title}.` : `Failed to start ${this.title}.`);
    }
    this.afterInactive();
  }

  /** The unit is inactive: finish a stop, or begin the start a restart (or queued start) waits for. */
  private afterInactive(): void {
    if (this.startAfterStop) {
      this.startAfterStop = false;
      this.beginStart();
      return;
    }
    if (this.job?.type === "stop") this.finishJob("done");
    else if (this.job) this.finishJob(this.result === "success" ? "done" : "failed");
  }

  private shallRestart(): boolean {
    const r = this.result;
    if (r === "start-limit-hit") return false;
    const last = this.mainExit?.exit;
    if (inSet(last, this.def.restartPrevent)) return false;
    if (inSet(last, this.def.restartForce)) return true;
    switch (this.def.restart) {
      case "no":
        return false;
      case "always":
        return true;
      case "on-success":
        return r === "success";
      case "on-failure":
        return r !== "success";
      case "on-abnormal":
        return r === "signal" || r === "core-dump" || r === "timeout";
      case "on-abort":
        return r === "signal" || r === "core-dump";
      case "on-watchdog":
        return false;
    }
  }

  // --- processes ---

  private runMain(): void {
    const command = this.queue.shift()!;
    this.main = { proc: ++this.procSeq, command, kind: this.queueKind };
    this.mainPid = undefined;
    this.emit({ t: "spawn", proc: this.main.proc, role: "main", kind: this.queueKind, command });
  }

  private runControl(): void {
    const command = this.queue.shift()!;
    this.control = { proc: ++this.procSeq, command, kind: this.queueKind };
    this.emit({ t: "spawn", proc: this.control.proc, role: "control", kind: this.queueKind, command });
  }

  private onExit(proc: number, exit: Exit): void {
    if (this.main?.proc === proc) return this.onMainExit(this.main, exit);
    if (this.control?.proc === proc) return this.onControlExit(this.control, exit);
    // A process given up on after SIGKILL, finally gone: nothing waits for it.
  }

  private onMainExit(m: Running, exit: Exit): void {
    this.main = null;
    this.mainExit = { pid: this.mainPid, exit };
    let f = classify(exit, this.def.type !== "oneshot", this.def.successExit);
    if ("spawnFailed" in exit) this.note(exit.message);
    if ("protocol" in exit) this.note(exit.protocol);
    else if (f !== "success") {
      this.note(`Main process exited, ${describeExit(exit)}`);
      if (m.command.ignoreFailure) f = "success";
    }
    switch (this.state) {
      case "start":
        if (f !== "success") return this.enterSignal("stop-sigterm", f);
        if (this.def.type === "oneshot" && this.queue.length > 0) return this.runMain();
        return this.enterStartPost();
      case "start-post":
      case "reload":
      case "stop":
        // The operation in progress finishes first; its end looks at the result.
        this.record(f);
        return;
      case "running":
        return this.enterRunning(f);
      case "stop-sigterm":
      case "stop-sigkill":
        this.record(f);
        if (!this.control) this.enterStopPost("success");
        return;
      case "final-sigterm":
      case "final-sigkill":
        this.record(f);
        if (!this.control) this.enterDead("success", true);
        return;
      default:
        this.record(f);
    }
  }

  private onControlExit(c: Running, exit: Exit): void {
    this.control = null;
    let f = classify(exit, false, this.def.successExit);
    if ("spawnFailed" in exit) this.note(exit.message);
    if (f !== "success") {
      this.note(`Control process exited, ${describeExit(exit)}`);
      if (c.command.ignoreFailure) {
        this.note(`${c.kind}=${c.command.text}: failure ignored ('-' prefix)`);
        f = "success";
      }
    }
    const next = f === "success" && this.queue.length > 0;
    switch (this.state) {
      case "start":
        // Only Type=forking has a control process here: the parent of the daemon.
        if (f !== "success") return this.enterSignal("stop-sigterm", f);
        this.main = { proc: ++this.procSeq, command: c.command, kind: "ExecStart" };
        this.emit({ t: "adopt", proc: this.main.proc, pidFile: this.def.pidFile! });
        return;
      case "start-pre":
        if (f !== "success") return this.enterSignal("stop-sigterm", f);
        return next ? this.runControl() : this.enterStart();
      case "start-post":
        if (f !== "success") return this.enterStop(f);
        return next ? this.runControl() : this.enterRunning("success");
      case "reload":
        if (next) return this.runControl();
        this.setState(this.main ? "running" : "exited");
        if (this.job?.type === "reload") this.finishJob(f === "success" ? "done" : "failed");
        if (!this.main && this.def.type !== "oneshot" && !this.def.remainAfterExit) this.enterStop("success");
        return;
      case "stop":
        if (next) return this.runControl();
        return this.enterSignal("stop-sigterm", f);
      case "stop-sigterm":
      case "stop-sigkill":
        this.record(f);
        if (!this.main) this.enterStopPost("success");
        return;
      case "stop-post":
        if (next) return this.runControl();
        return this.enterSignal("final-sigterm", f);
      case "final-sigterm":
      case "final-sigkill":
        this.record(f);
        if (!this.main) this.enterDead("success", true);
        return;
      default:
        this.record(f);
    }
  }

  private onTimeout(): void {
    switch (this.state) {
      case "start-pre":
      case "start":
      case "start-post":
        this.note("Start operation timed out. Terminating.");
        return this.enterSignal("stop-sigterm", "timeout");
      case "auto-restart":
        this.restarts++;
        this.note(`Scheduled restart job, restart counter is at ${this.restarts}.`);
        return this.beginStart();
      case "stop":
        this.note("Stopping timed out. Terminating.");
        return this.enterSignal("stop-sigterm", "timeout");
      case "stop-sigterm":
        this.note("State 'stop-sigterm' timed out. Killing.");
        return this.enterSignal("stop-sigkill", "timeout");
      case "stop-sigkill":
        this.note("Processes still around after SIGKILL. Ignoring.");
        this.main = null;
        this.control = null;
        return this.enterStopPost("timeout");
      case "stop-post":
        this.note("State 'stop-post' timed out. Terminating.");
        return this.enterSignal("final-sigterm", "timeout");
      case "final-sigterm":
        this.note("State 'final-sigterm' timed out. Killing.");
        return this.enterSignal("final-sigkill", "timeout");
      case "final-sigkill":
        this.note("Processes still around after final SIGKILL. Entering failed mode.");
        return this.enterDead("timeout", true);
      default:
        return;
    }
  }

  // --- helpers ---

  private get title(): string {
    return this.def.description === this.def.name ? this.def.name : `${this.def.name} - ${this.def.description}`;
  }

  private record(f: Result): void {
    if (f !== "success" && this.result === "success") this.result = f;
  }

  private setState(s: SubState): void {
    if (ACTIVE_OF[s] !== ACTIVE_OF[this.state]) this.since = this.now;
    this.state = s;
  }

  private armTimer(ms: number): void {
    this.gen++;
    this.emit({ t: "timer", gen: this.gen, ms });
  }

  private note(message: string): void {
    this.emit({ t: "note", message });
  }

  private emit(e: Effect): void {
    this.fx.push(e);
  }
}

