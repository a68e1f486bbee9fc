// The supervisor's service state machine stepped by hand: no processes, no clock, no timers.
import { describe, expect, test } from "bun:test";
import { describeExit, ServiceMachine, type Effect, type Event, type Exit, type JobType } from "../../internal/systemd/machine.ts";
import { serviceFromUnit } from "../../internal/systemd/service.ts";
import { parseUnit } from "../../internal/systemd/unitfile.ts";

type Spawn = Extract<Effect, { t: "spawn" }>;

/** A machine plus a record of everything it asked for. */
function rig(service: string, unit = "", autoSpawned = true) {
  const m = new ServiceMachine(serviceFromUnit("t.service", parseUnit(`[Unit]\n${unit}\n[Service]\n${service}`).unit));
  let now = 1_000_000;
  let jobSeq = 0;
  const done = new Map<number, string>();
  let timer: { gen: number; ms: number } | null = null;
  const spawns: Spawn[] = [];
  const kills: string[] = [];
  const killed: [string, boolean][] = [];
  const notes: string[] = [];
  const adopts: number[] = [];
  const apply = (fx: Effect[]) => {
    for (const e of fx) {
      if (e.t === "spawn") {
        spawns.push(e);
        // The process edge reports every main process as started unless a test plays it by hand.
        if (autoSpawned && e.role === "main") apply(m.step({ t: "spawned", proc: e.proc, pid: 1000 + e.proc }, now));
      }
      else if (e.t === "kill") {
        kills.push(e.signal);
        killed.push([e.signal, e.group]);
      }
      else if (e.t === "timer") timer = Number.isFinite(e.ms) ? { gen: e.gen, ms: e.ms } : null;
      else if (e.t === "job-done") for (const id of e.ids) done.set(id, e.result);
      else if (e.t === "note") notes.push(e.message);
      else if (e.t === "adopt") adopts.push(e.proc);
    }
  };
  const step = (ev: Event) => apply(m.step(ev, now));
  return {
    m,
    spawns,
    kills,
    killed,
    notes,
    adopts,
    done,
    job(type: JobType): number {
      const id = ++jobSeq;
      step({ t: "job", job: type, id });
      return id;
    },
    /** The newest spawn: its command's first word and role. */
    last(): Spawn {
      return spawns[spawns.length - 1]!;
    },
    exit(s: Spawn, exit: Exit) {
      step({ t: "exit", proc: s.proc, exit });
    },
    send: step,
    spawned(s: Spawn, pid = 4242) {
      step({ t: "spawned", proc: s.proc, pid });
    },
    get timer() {
      return timer;
    },
    /** Lets the armed timer fire after its delay. */
    fire() {
      if (!timer) throw new Error("no timer armed");
      now += timer.ms;
      step({ t: "timer", gen: timer.gen });
    },
    advance(ms: number) {
      now += ms;
    },
    state: () => `${m.active} ${m.state}`,
    words: () => spawns.map((s) => `${s.kind}:${s.command.words.join(" ")}`),
  };
}

const ok: Exit = { code: 0 };
const fail: Exit = { code: 1 };
const term: Exit = { signal: "SIGTERM" };

describe("simple service", () => {
  test("start → running; stop runs ExecStop, SIGTERMs, runs ExecStopPost, ends inactive dead", () => {
    const r = rig("ExecStart=/bin/daemon\nExecStop=/bin/stop $MAINPID\nExecStopPost=/bin/cleanup");
    const start = r.job("start");
    expect(r.state()).toBe("active running");
    expect(r.done.get(start)).toBe("done");
    const main = r.last();
    expect(main).toMatchObject({ role: "main", kind: "ExecStart" });
    expect(r.m.mainPid).toBe(1000 + main.proc);

    const stop = r.job("stop");
    expect(r.state()).toBe("deactivating stop");
    expect(r.last()).toMatchObject({ role: "control", kind: "ExecStop" });
    r.exit(r.last(), ok);
    expect(r.kills).toEqual(["SIGTERM"]);
    expect(r.state()).toBe("deactivating stop-sigterm");
    r.exit(main, term);
    expect(r.last()).toMatchObject({ kind: "ExecStopPost" });
    expect(r.state()).toBe("deactivating stop-post");
    expect(r.done.has(stop)).toBe(false);
    r.exit(r.last(), ok);
    expect(r.state()).toBe("inactive dead");
    expect(r.m.result).toBe("success");
    expect(r.done.get(stop)).toBe("done");
    expect(r.words()).toEqual(["ExecStart:/bin/daemon", "ExecStop:/bin/stop $MAINPID", "ExecStopPost:/bin/cleanup"]);
    expect(r.notes).toContain("Stopped t.service.");
  });

  test("a failing ExecStartPre fails the start: ExecStart and ExecStop never run, ExecStopPost does", () => {
    const r = rig("ExecStartPre=/bin/check\nExecStart=/bin/daemon\nExecStop=/bin/stop\nExecStopPost=/bin/post");
    const start = r.job("start");
    expect(r.state()).toBe("activating start-pre");
    r.exit(r.last(), fail);
    expect(r.last()).toMatchObject({ kind: "ExecStopPost" });
    r.exit(r.last(), ok);
    expect(r.state()).toBe("failed failed");
    expect(r.m.result).toBe("exit-code");
    expect(r.done.get(start)).toBe("failed");
    expect(r.words()).toEqual(["ExecStartPre:/bin/check", "ExecStopPost:/bin/post"]);
    expect(r.notes).toContain("Control process exited, code=exited, status=1/FAILURE");
  });

  test("the - prefix ignores a failure and carries on", () => {
    const r = rig("ExecStartPre=-/bin/false\nExecStartPre=/bin/true\nExecStart=/bin/daemon");
    r.job("start");
    r.exit(r.last(), fail);
    expect(r.last().command.words).toEqual(["/bin/true"]);
    r.exit(r.last(), ok);
    expect(r.state()).toBe("active running");
    expect(r.m.result).toBe("success");
  });

  test("main process failing: failed, ExecStop not run (systemd only stops cleanly exited services)", () => {
    const r = rig("ExecStart=/bin/daemon\nExecStop=/bin/stop");
    r.job("start");
    r.exit(r.last(), { signal: "SIGSEGV" });
    expect(r.state()).toBe("failed failed");
    expect(r.m.result).toBe("signal");
    expect(r.words()).toEqual(["ExecStart:/bin/daemon"]);
    expect(describeExit(r.m.mainExit!.exit)).toBe("code=killed, signal=SEGV");
  });

  test("main process exiting cleanly: ExecStop runs, then inactive dead", () => {
    const r = rig("ExecStart=/bin/daemon\nExecStop=/bin/stop");
    r.job("start");
    r.exit(r.last(), ok);
    expect(r.state()).toBe("deactivating stop");
    r.exit(r.last(), ok);
    expect(r.state()).toBe("inactive dead");
  });

  test("RemainAfterExit=yes keeps a cleanly exited service active exited", () => {
    const r = rig("ExecStart=/bin/setup\nRemainAfterExit=yes");
    r.job("start");
    r.exit(r.last(), ok);
    expect(r.state()).toBe("active exited");
  });

  test("a spawn that fails is status 203/EXEC", () => {
    const r = rig("ExecStart=/nonexistent");
    r.job("start");
    r.exit(r.last(), { spawnFailed: "exec", message: "Failed to execute /nonexistent: ENOENT" });
    expect(r.state()).toBe("failed failed");
    expect(r.notes).toContain("Main process exited, code=exited, status=203/EXEC");
  });

  test("a failure before the fork (environment file) fails the start job of a simple service", () => {
    const r = rig("ExecStart=/bin/daemon", "", false);
    const start = r.job("start");
    r.exit(r.last(), { spawnFailed: "resources", message: "Failed to load environment files" });
    expect(r.state()).toBe("failed failed");
    expect(r.m.result).toBe("resources");
    expect(r.done.get(start)).toBe("failed");
  });

  test("Type=exec: the start job waits until the program runs", () => {
    const r = rig("Type=exec\nExecStart=/bin/daemon", "", false);
    const start = r.job("start");
    expect(r.state()).toBe("activating start");
    expect(r.done.has(start)).toBe(false);
    r.spawned(r.last());
    expect(r.state()).toBe("active running");
    expect(r.done.get(start)).toBe("done");
  });

  test("stop timeout: SIGTERM, then SIGKILL after TimeoutStopSec, result timeout", () => {
    const r = rig("ExecStart=/bin/stubborn\nTimeoutStopSec=5");
    r.job("start");
    const main = r.last();
    const stop = r.job("stop");
    expect(r.kills).toEqual(["SIGTERM"]);
    expect(r.timer?.ms).toBe(5000);
    r.fire();
    expect(r.kills).toEqual(["SIGTERM", "SIGKILL"]);
    expect(r.state()).toBe("deactivating stop-sigkill");
    r.exit(main, { signal: "SIGKILL" });
    expect(r.state()).toBe("failed failed");
    expect(r.m.result).toBe("timeout");
    expect(r.done.get(stop)).toBe("done");
  });

  const modes: [string, [string, boolean][]][] = [
    ["control-group", [["SIGTERM", true], ["SIGKILL", true]]],
    ["mixed", [["SIGTERM", false], ["SIGKILL", true]]],
    ["process", [["SIGTERM", false], ["SIGKILL", false]]],
  ];
  for (const [mode, want] of modes) {
    test(`KillMode=${mode}: who gets SIGTERM and SIGKILL`, () => {
      const r = rig(`ExecStart=/bin/d\nKillMode=${mode}\nTimeoutStopSec=1`);
      r.job("start");
      r.job("stop");
      r.fire();
      expect(r.killed.slice(0, 2)).toEqual(want);
    });
  }

  test("KillMode=none: nothing signalled, nothing waited for", () => {
    const r = rig("ExecStart=/bin/d\nKillMode=none\nExecStopPost=/bin/post");
    r.job("start");
    const stop = r.job("stop");
    expect(r.kills).toEqual([]);
    expect(r.last()).toMatchObject({ kind: "ExecStopPost" });
    r.exit(r.last(), ok);
    expect(r.state()).toBe("inactive dead");
    expect(r.done.get(stop)).toBe("done");
  });

  test("KillSignal= is what a stop sends first", () => {
    const r = rig("ExecStart=/bin/d\nKillSignal=SIGINT");
    r.job("start");
    r.job("stop");
    expect(r.kills).toEqual(["SIGINT"]);
  });

  test("a stale timer is ignored", () => {
    const r = rig("ExecStart=/bin/d\nTimeoutStopSec=5");
    r.job("start");
    r.job("stop");
    const stale = r.timer!;
    r.exit(r.spawns[0]!, term);
    expect(r.state()).toBe("inactive dead");
    r.advance(10_000);
    r.m.step({ t: "timer", gen: stale.gen }, 0);
    expect(r.state()).toBe("inactive dead");
    expect(r.kills).toEqual(["SIGTERM", "SIGTERM"]);
  });

  test("restart job: stop then start; the automatic restart counter stays 0", () => {
    const r = rig("ExecStart=/bin/d");
    r.job("start");
    const first = r.last();
    const restart = r.job("restart");
    expect(r.state()).toBe("deactivating stop-sigterm");
    r.exit(first, term);
    expect(r.state()).toBe("active running");
    expect(r.last().proc).not.toBe(first.proc);
    expect(r.done.get(restart)).toBe("done");
    expect(r.m.restarts).toBe(0);
  });

  test("a second stop joins the first; a start during a stop cancels it and starts afterwards", () => {
    const r = rig("ExecStart=/bin/d");
    r.job("start");
    const main = r.last();
    const a = r.job("stop");
    const b = r.job("stop");
    expect(r.done.size).toBe(1);
    const c = r.job("start");
    expect(r.done.get(a)).toBe("canceled");
    expect(r.done.get(b)).toBe("canceled");
    r.exit(main, term);
    expect(r.state()).toBe("active running");
    expect(r.done.get(c)).toBe("done");
  });

  test("start on a running unit is done at once; stop on a dead one too", () => {
    const r = rig("ExecStart=/bin/d");
    const stop = r.job("stop");
    expect(r.done.get(stop)).toBe("done");
    r.job("start");
    const again = r.job("start");
    expect(r.done.get(again)).toBe("done");
    expect(r.spawns).toHaveLength(1);
  });

  test("reload runs ExecReload while reloading, then running again", () => {
    const r = rig("ExecStart=/bin/d\nExecReload=/bin/kill -HUP $MAINPID");
    r.job("start");
    const reload = r.job("reload");
    expect(r.state()).toBe("reloading reload");
    r.exit(r.last(), ok);
    expect(r.state()).toBe("active running");
    expect(r.done.get(reload)).toBe("done");
  });
});

describe("Type=forking", () => {
  test("the parent is a control process; the daemon from the PID file is the main process", () => {
    const r = rig("Type=forking\nPIDFile=/run/d.pid\nExecStart=/usr/sbin/d --daemon");
    const start = r.job("start");
    expect(r.last()).toMatchObject({ role: "control", kind: "ExecStart" });
    r.exit(r.last(), ok);
    expect(r.state()).toBe("activating start");
    expect(r.done.has(start)).toBe(false);
    const daemon = r.adopts[0]!;
    r.send({ t: "spawned", proc: daemon, pid: 555 });
    expect(r.state()).toBe("active running");
    expect(r.m.mainPid).toBe(555);
    r.send({ t: "exit", proc: daemon, exit: { vanished: true } });
    expect(r.state()).toBe("inactive dead");
  });

  test("no live process in the PID file: failed with result protocol", () => {
    const r = rig("Type=forking\nPIDFile=/run/d.pid\nExecStart=/usr/sbin/d");
    const start = r.job("start");
    r.exit(r.last(), ok);
    r.send({ t: "exit", proc: r.adopts[0]!, exit: { protocol: "PID file /run/d.pid not readable after start." } });
    expect(r.state()).toBe("failed failed");
    expect(r.m.result).toBe("protocol");
    expect(r.notes).toContain("PID file /run/d.pid not readable after start.");
    expect(r.done.get(start)).toBe("failed");
  });

  test("a failing parent fails the start", () => {
    const r = rig("Type=forking\nPIDFile=/run/d.pid\nExecStart=/usr/sbin/d");
    r.job("start");
    r.exit(r.last(), fail);
    expect(r.state()).toBe("failed failed");
    expect(r.adopts).toEqual([]);
  });

  test("needs PIDFile=", () => {
    expect(() => serviceFromUnit("f.service", parseUnit("[Service]\nType=forking\nExecStart=/d\n").unit)).toThrow("needs PIDFile=");
  });
});

describe("restart policies", () => {
  test("Restart=on-failure: auto-restart after RestartSec, counted; the start limit stops it", () => {
    const r = rig("ExecStart=/bin/crash\nRestart=on-failure\nRestartSec=2", "StartLimitBurst=3\nStartLimitIntervalSec=60");
    const start = r.job("start");
    expect(r.done.get(start)).toBe("done");
    for (let i = 1; i <= 3; i++) {
      r.exit(r.last(), fail);
      expect(r.state()).toBe("activating auto-restart");
      expect(r.timer?.ms).toBe(2000);
      r.fire();
      expect(r.m.restarts).toBe(i);
      if (i < 3) expect(r.state()).toBe("active running");
    }
    // Three starts within 60 s: the fourth is refused.
    expect(r.state()).toBe("failed failed");
    expect(r.m.result).toBe("start-limit-hit");
    expect(r.spawns).toHaveLength(3);
    expect(r.notes).toContain("Start request repeated too quickly.");
  });

  test("reset-failed clears the failed state, the result and the start limit", () => {
    const r = rig("ExecStart=/bin/crash\nRestart=on-failure\nRestartSec=1", "StartLimitBurst=1");
    r.job("start");
    r.exit(r.last(), fail);
    r.fire();
    expect(r.m.result).toBe("start-limit-hit");
    const refused = r.job("start");
    expect(r.done.get(refused)).toBe("failed");
    r.m.resetFailed();
    expect(r.state()).toBe("inactive dead");
    expect(r.m.restarts).toBe(0);
    const again = r.job("start");
    expect(r.done.get(again)).toBe("done");
    expect(r.state()).toBe("active running");
  });

  test("the start limit forgets starts older than the interval", () => {
    const r = rig("ExecStart=/bin/crash\nRestart=on-failure\nRestartSec=20", "StartLimitBurst=2\nStartLimitIntervalSec=30");
    r.job("start");
    for (let i = 0; i < 5; i++) {
      r.exit(r.last(), fail);
      r.fire();
    }
    expect(r.m.restarts).toBe(5);
    expect(r.state()).toBe("active running");
  });

  const table: [string, Exit, boolean][] = [
    ["on-failure", fail, true],
    ["on-failure", ok, false],
    ["on-failure", { signal: "SIGKILL" }, true],
    ["on-abnormal", fail, false],
    ["on-abnormal", { signal: "SIGKILL" }, true],
    ["on-abort", { signal: "SIGABRT" }, true],
    ["on-abort", fail, false],
    ["on-success", ok, true],
    ["on-success", fail, false],
    ["always", ok, true],
    ["always", fail, true],
    ["no", fail, false],
    // A clean daemon signal (SIGTERM from outside) is a success.
    ["on-failure", term, false],
  ];
  for (const [policy, exit, restarts] of table) {
    test(`Restart=${policy} after ${JSON.stringify(exit)}: ${restarts ? "restarts" : "stays down"}`, () => {
      const r = rig(`ExecStart=/bin/d\nRestart=${policy}`);
      r.job("start");
      r.exit(r.last(), exit);
      expect(r.m.state === "auto-restart").toBe(restarts);
    });
  }

  const exitTable: [string, Exit, string][] = [
    ["Restart=on-failure\nSuccessExitStatus=3 SIGUSR1", { code: 3 }, "inactive dead"],
    ["Restart=on-failure\nSuccessExitStatus=3 SIGUSR1", { signal: "SIGUSR1" }, "inactive dead"],
    ["Restart=on-failure\nSuccessExitStatus=3 SIGUSR1", { code: 4 }, "activating auto-restart"],
    ["Restart=always\nRestartPreventExitStatus=4", { code: 4 }, "failed failed"],
    ["Restart=always\nRestartPreventExitStatus=4", { code: 1 }, "activating auto-restart"],
    ["Restart=no\nRestartForceExitStatus=5 TERM", { code: 5 }, "activating auto-restart"],
    ["Restart=no\nRestartForceExitStatus=5 TERM", { signal: "SIGTERM" }, "activating auto-restart"],
    ["Restart=no\nRestartForceExitStatus=5 TERM", { code: 6 }, "failed failed"],
  ];
  for (const [settings, exit, want] of exitTable) {
    test(`${settings.replace("\n", ", ")}; main ${JSON.stringify(exit)} → ${want}`, () => {
      const r = rig(`ExecStart=/bin/d\n${settings}`);
      r.job("start");
      r.exit(r.last(), exit);
      expect(r.state()).toBe(want);
    });
  }

  test("exit status lists are validated", () => {
    expect(() => serviceFromUnit("x.service", parseUnit("[Service]\nExecStart=/d\nSuccessExitStatus=300\n").unit)).toThrow("not an exit status");
    expect(() => serviceFromUnit("x.service", parseUnit("[Service]\nExecStart=/d\nSuccessExitStatus=SIGNOPE\n").unit)).toThrow("not an exit status");
  });

  test("a stop request is never followed by an automatic restart", () => {
    const r = rig("ExecStart=/bin/d\nRestart=always");
    r.job("start");
    r.job("stop");
    r.exit(r.last(), { signal: "SIGKILL" });
    expect(r.state()).toBe("failed failed");
    expect(r.timer).toBeNull();
  });

  test("stop during auto-restart cancels the restart", () => {
    const r = rig("ExecStart=/bin/d\nRestart=always\nRestartSec=5");
    r.job("start");
    r.exit(r.last(), fail);
    expect(r.state()).toBe("activating auto-restart");
    const stop = r.job("stop");
    expect(r.state()).toBe("failed failed");
    expect(r.done.get(stop)).toBe("done");
    expect(r.timer).toBeNull();
  });
});

describe("oneshot", () => {
  test("RemainAfterExit=yes: every ExecStart in order, then active exited", () => {
    const r = rig("Type=oneshot\nRemainAfterExit=yes\nExecStart=/bin/one\nExecStart=/bin/two\nExecStartPost=/bin/post");
    const start = r.job("start");
    expect(r.state()).toBe("activating start");
    r.exit(r.last(), ok);
    expect(r.last().command.words).toEqual(["/bin/two"]);
    expect(r.done.has(start)).toBe(false);
    r.exit(r.last(), ok);
    r.exit(r.last(), ok);
    expect(r.state()).toBe("active exited");
    expect(r.done.get(start)).toBe("done");
    expect(r.words()).toEqual(["ExecStart:/bin/one", "ExecStart:/bin/two", "ExecStartPost:/bin/post"]);
    const stop = r.job("stop");
    expect(r.state()).toBe("inactive dead");
    expect(r.done.get(stop)).toBe("done");
  });

  test("without RemainAfterExit: ExecStop runs right after, then inactive dead; the start job is done", () => {
    const r = rig("Type=oneshot\nExecStart=/bin/one\nExecStop=/bin/stop");
    const start = r.job("start");
    r.exit(r.last(), ok);
    expect(r.last()).toMatchObject({ kind: "ExecStop" });
    r.exit(r.last(), ok);
    expect(r.state()).toBe("inactive dead");
    expect(r.done.get(start)).toBe("done");
  });

  test("a failing command stops the sequence: failed, job failed", () => {
    const r = rig("Type=oneshot\nExecStart=/bin/one\nExecStart=/bin/two");
    const start = r.job("start");
    r.exit(r.last(), fail);
    expect(r.state()).toBe("failed failed");
    expect(r.spawns).toHaveLength(1);
    expect(r.done.get(start)).toBe("failed");
  });

  test("a signal ends a oneshot unclean (no daemon leniency)", () => {
    const r = rig("Type=oneshot\nExecStart=/bin/one");
    r.job("start");
    r.exit(r.last(), term);
    expect(r.m.result).toBe("signal");
  });

  test("TimeoutStartSec bounds a oneshot when set", () => {
    const r = rig("Type=oneshot\nTimeoutStartSec=3\nExecStart=/bin/hang");
    const start = r.job("start");
    expect(r.timer?.ms).toBe(3000);
    r.fire();
    expect(r.kills).toEqual(["SIGTERM"]);
    r.exit(r.last(), term);
    expect(r.state()).toBe("failed failed");
    expect(r.m.result).toBe("timeout");
    expect(r.done.get(start)).toBe("failed");
  });
});
