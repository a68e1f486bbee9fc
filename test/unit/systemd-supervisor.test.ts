// The supervisor with real processes: start/stop, restart on failure, oneshot, environment,
// captured output, the - prefix, stop timeouts, boot-time starts.
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ControlError } from "../../internal/systemd/control.ts";
import { enableUnitFiles, systemDirs } from "../../internal/systemd/paths.ts";
import { Supervisor } from "../../internal/systemd/supervisor.ts";
import { cleanup, tempDir } from "../helpers/procs.ts";

const root = tempDir("coreos-supervisor-");
const work = join(root, "work");
mkdirSync(join(root, "etc/systemd/system"), { recursive: true });
mkdirSync(work);
const sups: Supervisor[] = [];

afterAll(async () => {
  await Promise.all(sups.map((s) => s.shutdown()));
  cleanup(root);
});

function unit(name: string, text: string): void {
  writeFileSync(join(root, "etc/systemd/system", name), text);
}

function supervisor(journalLines?: number): Supervisor {
  const s = new Supervisor({ dirs: systemDirs(root), journalLines });
  sups.push(s);
  return s;
}

/** Polls until `f` gives something truthy (bounded: 10 s). */
async function until<T>(f: () => T | undefined | null | false, what: string): Promise<T> {
  for (let i = 0; i < 500; i++) {
    const v = f();
    if (v) return v;
    await Bun.sleep(20);
  }
  throw new Error(`gave up waiting for ${what}`);
}


const lines = (s: Supervisor, u: string) => s.journal(u).map((e) => e.message);
const state = (s: Supervisor, u: string) => `${s.status(u).active} ${s.status(u).sub}`;

/** Running (a zombie left for an init that does not reap counts as gone). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}

describe("supervisor", () => {
  test("start, then stop: ExecStop sees $MAINPID, the process gets SIGTERM, inactive dead", async () => {
    unit(
      "daemon.service",
      `[Unit]\nDescription=A daemon\n[Service]\nExecStart=/bin/sh -c 'trap "echo got-term; exit 0" TERM; echo ready; while :; do sleep 0.05; done'\nExecStop=/bin/sh -c 'echo $MAINPID > ${work}/stop-saw'\n`,
    );
    const s = supervisor();
    expect(await s.run("start", "daemon")).toBe("done");
    const st = s.status("daemon.service");
    expect(st).toMatchObject({ load: "loaded", active: "active", sub: "running", description: "A daemon", path: "/etc/systemd/system/daemon.service" });
    const pid = st.mainPid!;
    expect(alive(pid)).toBe(true);
    await until(() => lines(s, "daemon").includes("ready"), "ready");

    expect(await s.run("stop", "daemon")).toBe("done");
    expect(state(s, "daemon")).toBe("inactive dead");
    expect(readFileSync(join(work, "stop-saw"), "utf8").trim()).toBe(String(pid));
    expect(lines(s, "daemon")).toContain("got-term");
    expect(alive(pid)).toBe(false);
    expect(s.status("daemon").lastExit?.pid).toBe(pid);
  });

  test("Restart=on-failure restarts, counts restarts, and gives up at the start limit", async () => {
    const runs = join(work, "crash-runs");
    unit("crash.service", `[Unit]\nStartLimitBurst=3\nStartLimitIntervalSec=1h\n[Service]\nRestart=on-failure\nRestartSec=10ms\nExecStart=/bin/sh -c 'echo run >> ${runs}; echo crashing; exit 3'\n`);
    const s = supervisor();
    await s.run("start", "crash");
    await until(() => s.status("crash").active === "failed", "failed");
    const st = s.status("crash");
    expect(st).toMatchObject({ sub: "failed", result: "start-limit-hit", restarts: 3 });
    expect(st.lastExit?.status).toBe("code=exited, status=3/NOTIMPLEMENTED");
    expect(readFileSync(runs, "utf8")).toBe("run\nrun\nrun\n");
    expect(lines(s, "crash").filter((l) => l === "crashing")).toHaveLength(3);
    expect(lines(s, "crash")).toContain("crash.service: Scheduled restart job, restart counter is at 2.");
  });

  test("a service that crashes once comes back running after one restart", async () => {
    const marker = join(work, "flaky-ran");
    unit("flaky.service", `[Service]\nRestart=on-failure\nRestartSec=10ms\nExecStart=/bin/sh -c 'if [ ! -e ${marker} ]; then touch ${marker}; exit 1; fi; exec sleep 60'\n`);
    const s = supervisor();
    await s.run("start", "flaky");
    await until(() => s.status("flaky").restarts === 1 && s.status("flaky").sub === "running", "running after a restart");
    expect(s.status("flaky").active).toBe("active");
    await s.run("stop", "flaky");
  });

  test("oneshot: active exited with RemainAfterExit, inactive dead without; output kept", async () => {
    unit("setup.service", "[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/echo step one\nExecStart=/bin/echo step two\n");
    unit("once.service", "[Service]\nType=oneshot\nExecStart=/bin/echo just once\n");
    const s = supervisor();
    expect(await s.run("start", "setup")).toBe("done");
    expect(state(s, "setup")).toBe("active exited");
    expect(lines(s, "setup")).toEqual(expect.arrayContaining(["step one", "step two"]));
    expect(lines(s, "setup").indexOf("step one")).toBeLessThan(lines(s, "setup").indexOf("step two"));
    expect(await s.run("start", "once")).toBe("done");
    expect(state(s, "once")).toBe("inactive dead");
    expect(lines(s, "once")).toContain("just once");
    expect(s.status("once").result).toBe("success");
  });

  test("Environment= and EnvironmentFile= reach the process; the file wins; - tolerates a missing file", async () => {
    const envFile = join(work, "app.env");
    writeFileSync(envFile, `# settings\nA=from-file\nB="file value"\nexport D='lit $A'\n`);
    unit(
      "env.service",
      `[Service]\nType=oneshot\nEnvironment="B=unit value" C=3\nEnvironment=E=only-unit\nEnvironmentFile=-${work}/missing.env\nEnvironmentFile=${envFile}\nExecStart=/bin/sh -c 'echo "A=$A B=$B C=$C D=$D E=$E"'\nExecStart=/bin/echo argv ${"${B}"} $C\n`,
    );
    const s = supervisor();
    expect(await s.run("start", "env")).toBe("done");
    expect(lines(s, "env")).toContain("A=from-file B=file value C=3 D=lit $A E=only-unit");
    expect(lines(s, "env")).toContain("argv file value 3");
  });

  test("a missing EnvironmentFile without - fails the start with result resources", async () => {
    unit("noenv.service", `[Service]\nEnvironmentFile=${work}/absent.env\nExecStart=/bin/sleep 60\n`);
    const s = supervisor();
    expect(await s.run("start", "noenv")).toBe("failed");
    expect(s.status("noenv")).toMatchObject({ active: "failed", result: "resources" });
    expect(lines(s, "noenv").some((l) => l.includes("absent.env"))).toBe(true);
  });

  test("the - prefix: failing commands are ignored", async () => {
    unit("lenient.service", "[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStartPre=-/bin/false\nExecStart=-/bin/sh -c 'exit 7'\nExecStart=/bin/echo still here\n");
    unit("strict.service", "[Service]\nType=oneshot\nExecStartPre=/bin/false\nExecStart=/bin/echo never\n");
    const s = supervisor();
    expect(await s.run("start", "lenient")).toBe("done");
    expect(state(s, "lenient")).toBe("active exited");
    expect(lines(s, "lenient")).toContain("still here");
    expect(await s.run("start", "strict")).toBe("failed");
    expect(s.status("strict")).toMatchObject({ active: "failed", result: "exit-code" });
    expect(lines(s, "strict")).not.toContain("never");
  });

  test("TimeoutStopSec: a process that ignores SIGTERM is killed; result timeout", async () => {
    unit("stubborn.service", `[Service]\nTimeoutStopSec=300ms\nExecStart=/bin/sh -c 'trap "echo ignoring" TERM; echo ready; while :; do sleep 0.05; done'\n`);
    const s = supervisor();
    await s.run("start", "stubborn");
    const pid = s.status("stubborn").mainPid!;
    await until(() => lines(s, "stubborn").includes("ready"), "ready");
    await s.run("stop", "stubborn");
    expect(s.status("stubborn")).toMatchObject({ active: "failed", result: "timeout" });
    expect(lines(s, "stubborn")).toContain("stubborn.service: State 'stop-sigterm' timed out. Killing.");
    expect(alive(pid)).toBe(false);
  });

  test("KillMode=process leaves the main process's children alone; control-group does not", async () => {
    const spawnChild = (f: string) => `/bin/sh -c 'sleep 60 & echo $! > ${work}/${f}; echo ready; exec sleep 61'`;
    unit("lone.service", `[Service]\nKillMode=process\nExecStart=${spawnChild("lone-child")}\n`);
    unit("group.service", `[Service]\nExecStart=${spawnChild("group-child")}\n`);
    const s = supervisor();
    for (const u of ["lone", "group"]) {
      await s.run("start", u);
      await until(() => lines(s, u).includes("ready"), `${u} ready`);
      await s.run("stop", u);
    }
    const lone = Number(readFileSync(join(work, "lone-child"), "utf8"));
    const grouped = Number(readFileSync(join(work, "group-child"), "utf8"));
    try {
      expect(alive(lone)).toBe(true);
      await until(() => !alive(grouped), "the grouped child gone");
    } finally {
      if (alive(lone)) process.kill(lone, "SIGKILL");
    }
  });

  test("Type=forking: the daemon named by PIDFile= is the main process; stop ends it; no PID file fails", async () => {
    const pidFile = join(work, "forked.pid");
    unit("forked.service", `[Service]\nType=forking\nPIDFile=${pidFile}\nExecStart=/bin/sh -c 'setsid sh -c "echo daemon up; exec sleep 60" & echo $! > ${pidFile}'\n`);
    unit("nopid.service", `[Service]\nType=forking\nPIDFile=${work}/never.pid\nExecStart=/bin/true\n`);
    const s = supervisor();
    expect(await s.run("start", "forked")).toBe("done");
    const pid = Number(readFileSync(pidFile, "utf8"));
    expect(s.status("forked")).toMatchObject({ active: "active", sub: "running", mainPid: pid });
    await until(() => lines(s, "forked").includes("daemon up"), "the daemon's output");
    expect(await s.run("stop", "forked")).toBe("done");
    expect(state(s, "forked")).toBe("inactive dead");
    expect(alive(pid)).toBe(false);
    expect(await s.run("start", "nopid")).toBe("failed");
    expect(s.status("nopid")).toMatchObject({ active: "failed", result: "protocol" });
  });

  test("WorkingDirectory=, @argv0, and a program that does not exist", async () => {
    unit("cwd.service", `[Service]\nType=oneshot\nWorkingDirectory=${work}\nExecStart=/bin/pwd\nExecStart=@/bin/sh renamed -c 'echo $0'\n`);
    unit("noexec.service", "[Service]\nExecStart=/no/such/program\n");
    const s = supervisor();
    await s.run("start", "cwd");
    expect(lines(s, "cwd")).toEqual(expect.arrayContaining([work, "renamed"]));
    expect(s.journal("cwd").find((e) => e.message === "renamed")?.ident).toBe("renamed");
    await s.run("start", "noexec");
    await until(() => s.status("noexec").active === "failed", "failed");
    expect(lines(s, "noexec")).toContain("noexec.service: Main process exited, code=exited, status=203/EXEC");
  });

  test("User= runs the process as that user when the supervisor is root, + keeps full privileges", async () => {
    unit("asuser.service", "[Service]\nType=oneshot\nUser=nobody\nExecStart=/bin/sh -c 'echo uid=$(id -u)'\nExecStart=+/bin/sh -c 'echo privileged uid=$(id -u)'\n");
    const s = supervisor();
    await s.run("start", "asuser");
    const me = process.getuid!();
    // Only root can switch users; a supervisor run by a user runs everything as that user.
    const nobody = readFileSync("/etc/passwd", "utf8").split("\n").find((l) => l.startsWith("nobody:"))!.split(":")[2];
    expect(lines(s, "asuser")).toEqual(expect.arrayContaining([`uid=${me === 0 ? nobody : me}`, `privileged uid=${me}`]));
  });

  test("StandardOutput=/StandardError=: files (append, truncate), null, journal", async () => {
    const log = join(work, "out.log");
    writeFileSync(log, "earlier\n");
    unit("tofile.service", `[Service]\nType=oneshot\nStandardOutput=append:${log}\nExecStart=/bin/sh -c 'echo to-out; echo to-err >&2'\n`);
    unit("truncating.service", `[Service]\nType=oneshot\nStandardOutput=truncate:${join(work, "trunc.log")}\nExecStart=/bin/echo fresh\n`);
    unit("quiet.service", "[Service]\nType=oneshot\nStandardOutput=null\nStandardError=journal\nExecStart=/bin/sh -c 'echo hidden; echo shown >&2'\n");
    unit("nodir.service", `[Service]\nType=oneshot\nStandardOutput=file:${work}/no/such/dir/x.log\nExecStart=/bin/true\n`);
    const s = supervisor();
    await s.run("start", "tofile");
    expect(readFileSync(log, "utf8")).toBe("earlier\nto-out\nto-err\n");
    expect(lines(s, "tofile")).not.toContain("to-out");
    writeFileSync(join(work, "trunc.log"), "old content that is longer\n");
    await s.run("start", "truncating");
    expect(readFileSync(join(work, "trunc.log"), "utf8")).toBe("fresh\n");
    await s.run("start", "quiet");
    expect(lines(s, "quiet")).toContain("shown");
    expect(lines(s, "quiet")).not.toContain("hidden");
    expect(await s.run("start", "nodir")).toBe("failed");
    expect(lines(s, "nodir")).toContain("nodir.service: Main process exited, code=exited, status=209/STDOUT");
  });

  test("the journal is a bounded ring of the newest lines", async () => {
    unit("chatty.service", "[Service]\nType=oneshot\nExecStart=/bin/sh -c 'for i in 1 2 3 4 5 6 7 8 9 10 11 12; do echo line$i; done'\n");
    const s = supervisor(5);
    await s.run("start", "chatty");
    const got = lines(s, "chatty");
    expect(got).toHaveLength(5);
    expect(got.at(-1)).toBe("chatty.service: Deactivated successfully.");
    expect(s.journal("chatty", 2)).toHaveLength(2);
  });

  test("restart, try-restart, reload-or-restart, reload", async () => {
    unit("svc.service", `[Service]\nExecStart=/bin/sh -c 'trap "echo reloaded" HUP; echo ready; while :; do sleep 0.05; done'\nExecReload=/bin/kill -HUP $MAINPID\n`);
    unit("plain.service", "[Service]\nExecStart=/bin/sleep 60\n");
    const s = supervisor();
    expect(await s.run("try-restart", "svc")).toBe("done");
    expect(state(s, "svc")).toBe("inactive dead");
    await s.run("start", "svc");
    await until(() => lines(s, "svc").includes("ready"), "the shell ready");
    const first = s.status("svc").mainPid;
    expect(await s.run("restart", "svc")).toBe("done");
    expect(s.status("svc").mainPid).not.toBe(first);
    expect(s.status("svc").restarts).toBe(0);
    // A HUP before the shell has set its trap would end it: reload once it says so.
    await until(() => lines(s, "svc").filter((l) => l === "ready").length === 2, "the restarted shell ready");
    expect(await s.run("reload", "svc")).toBe("done");
    await until(() => lines(s, "svc").includes("reloaded"), "the reload signal");
    await expect(s.run("reload", "plain")).rejects.toThrow("Job type reload is not applicable for unit plain.service.");
    expect(await s.run("reload-or-restart", "plain")).toBe("done");
    expect(state(s, "plain")).toBe("active running");
    await s.run("stop", "svc");
    await s.run("stop", "plain");
  });

  test("enqueue (--no-block): refusals at once, the job runs on", async () => {
    unit("queued.service", "[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/echo queued ran\n");
    const s = supervisor();
    expect(() => s.enqueue("start", "not-there")).toThrow("Unit not-there.service not found.");
    s.enqueue("start", "queued");
    await until(() => s.status("queued").active === "active", "queued.service active");
    expect(lines(s, "queued")).toContain("queued ran");
  });

  test("unknown, masked and broken units are refused with systemctl's words", async () => {
    unit("masked.service", "");
    const s = supervisor();
    const err = (p: Promise<unknown>) => p.then(() => null, (e: ControlError) => [e.code, e.message]);
    expect(await err(s.run("start", "nope"))).toEqual(["not-found", "Unit nope.service not found."]);
    unit("broken.service", "[Service]\nType=oneshot\nRestart=always\nExecStart=/bin/true\n");
    expect(await err(s.run("start", "broken"))).toEqual(["failed", expect.stringContaining("isn't allowed for Type=oneshot")]);
    expect(s.status("broken").load).toBe("error");
    const { symlinkSync, rmSync } = await import("node:fs");
    rmSync(join(root, "etc/systemd/system/masked.service"));
    symlinkSync("/dev/null", join(root, "etc/systemd/system/masked.service"));
    expect(await err(s.run("start", "masked"))).toEqual(["masked", "Unit masked.service is masked."]);
    expect(s.status("nope")).toMatchObject({ load: "not-found", active: "inactive", sub: "dead" });
  });

  test("a running unit masked meanwhile can still be stopped, not started", async () => {
    unit("tobemasked.service", "[Service]\nExecStart=/bin/sleep 60\n");
    const s = supervisor();
    await s.run("start", "tobemasked");
    const { rmSync, symlinkSync } = await import("node:fs");
    rmSync(join(root, "etc/systemd/system/tobemasked.service"));
    symlinkSync("/dev/null", join(root, "etc/systemd/system/tobemasked.service"));
    s.daemonReload();
    expect(s.status("tobemasked")).toMatchObject({ load: "masked", active: "active" });
    expect(await s.run("stop", "tobemasked")).toBe("done");
    expect(state(s, "tobemasked")).toBe("inactive dead");
    await expect(s.run("start", "tobemasked")).rejects.toThrow("Unit tobemasked.service is masked.");
  });

  test("daemon-reload applies changed files; list shows every service", async () => {
    unit("changing.service", "[Service]\nType=oneshot\nExecStart=/bin/echo version one\n");
    const s = supervisor();
    await s.run("start", "changing");
    unit("changing.service", "[Service]\nType=oneshot\nExecStart=/bin/echo version two\n");
    await s.run("start", "changing");
    expect(lines(s, "changing")).not.toContain("version two");
    s.daemonReload();
    await s.run("start", "changing");
    expect(lines(s, "changing")).toContain("version two");
    const names = s.list().map((u) => u.name);
    expect(names).toEqual(expect.arrayContaining(["changing.service", "daemon.service", "setup.service"]));
    expect(names).toEqual([...names].sort());
  });

  test("Requires=/Wants= start other units first when ordered After=; a missing or failed requirement fails the start", async () => {
    unit("db.service", `[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/touch ${work}/db-ready\n`);
    unit("app.service", `[Unit]\nRequires=db.service\nAfter=db.service network.target\nWants=optional-missing.service\n[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/test -e ${work}/db-ready\n`);
    unit("orphan.service", "[Unit]\nRequires=absent.service\n[Service]\nExecStart=/bin/sleep 60\n");
    unit("broken-dep.service", "[Service]\nType=oneshot\nExecStart=/bin/false\n");
    unit("needs-broken.service", "[Unit]\nRequires=broken-dep.service\nAfter=broken-dep.service\n[Service]\nExecStart=/bin/sleep 60\n");
    const s = supervisor();
    expect(await s.run("start", "app")).toBe("done");
    expect(state(s, "db")).toBe("active exited");
    expect(state(s, "app")).toBe("active exited");
    expect(await s.run("start", "orphan")).toBe("dependency");
    expect(state(s, "orphan")).toBe("inactive dead");
    expect(lines(s, "orphan")).toContain("Dependency failed for orphan.service (absent.service).");
    expect(await s.run("start", "needs-broken")).toBe("dependency");
    expect(state(s, "broken-dep")).toBe("failed failed");
    expect(state(s, "needs-broken")).toBe("inactive dead");
    // A requirement skipped by its condition is no failure, and its condition is honoured.
    unit("skipped-dep.service", `[Unit]\nConditionPathExists=${work}/never\n[Service]\nExecStart=/bin/sleep 60\n`);
    unit("uses-skipped.service", "[Unit]\nRequires=skipped-dep.service\nAfter=skipped-dep.service\n[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/true\n");
    expect(await s.run("start", "uses-skipped")).toBe("done");
    expect(state(s, "uses-skipped")).toBe("active exited");
    expect(state(s, "skipped-dep")).toBe("inactive dead");
    expect(lines(s, "skipped-dep")[0]).toContain("was skipped because of an unmet condition check");
  });

  test("Condition*= skips the start (job done, unit stays inactive); Assert*= fails it", async () => {
    unit("cond.service", `[Unit]\nConditionFileNotEmpty=${work}/user_data\n[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/echo configured\n`);
    unit("assert.service", `[Unit]\nAssertPathExists=${work}/required\n[Service]\nExecStart=/bin/sleep 60\n`);
    const s = supervisor();
    expect(await s.run("start", "cond")).toBe("done");
    expect(state(s, "cond")).toBe("inactive dead");
    expect(lines(s, "cond")).toEqual([`cond.service was skipped because of an unmet condition check (ConditionFileNotEmpty=${work}/user_data).`]);
    writeFileSync(join(work, "user_data"), "#cloud-config\n");
    expect(await s.run("start", "cond")).toBe("done");
    expect(state(s, "cond")).toBe("active exited");
    expect(await s.run("start", "assert")).toBe("failed");
    expect(state(s, "assert")).toBe("inactive dead");
    expect(lines(s, "assert")[0]).toContain("Assertion failed for assert.service");
  });

  test("stopping a unit stops what requires it, dependents ordered After= it first; restart restarts them", async () => {
    const order = join(work, "stop-order");
    unit("base.service", `[Service]\nExecStart=/bin/sleep 60\nExecStop=/bin/sh -c 'echo base >> ${order}'\n`);
    unit("upper.service", `[Unit]\nRequires=base.service\nAfter=base.service\n[Service]\nExecStart=/bin/sleep 60\nExecStop=/bin/sh -c 'echo upper >> ${order}'\n`);
    unit("bystander.service", "[Unit]\nWants=base.service\n[Service]\nExecStart=/bin/sleep 60\n");
    const s = supervisor();
    await s.run("start", "upper");
    await s.run("start", "bystander");
    expect(state(s, "base")).toBe("active running");
    expect(await s.run("stop", "base")).toBe("done");
    expect(state(s, "upper")).toBe("inactive dead");
    expect(state(s, "bystander")).toBe("active running");
    expect(readFileSync(order, "utf8")).toBe("upper\nbase\n");
    await s.run("start", "upper");
    const upperPid = s.status("upper").mainPid;
    expect(await s.run("restart", "base")).toBe("done");
    expect(state(s, "upper")).toBe("active running");
    expect(s.status("upper").mainPid).not.toBe(upperPid);
    await s.run("stop", "base");
    await s.run("stop", "bystander");
  });

  test("boot starts what multi-user.target wants (enabled units) and nothing else", async () => {
    unit("atboot.service", `[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/touch ${work}/booted\n[Install]\nWantedBy=multi-user.target\n`);
    unit("notatboot.service", `[Service]\nType=oneshot\nExecStart=/bin/touch ${work}/not-booted\n[Install]\nWantedBy=multi-user.target\n`);
    enableUnitFiles(systemDirs(root), "atboot.service", { runtime: false });
    const s = supervisor();
    expect(s.status("atboot").enabled).toBe("enabled");
    expect(s.status("notatboot").enabled).toBe("disabled");
    await s.boot();
    expect(state(s, "atboot")).toBe("active exited");
    expect(existsSync(join(work, "booted"))).toBe(true);
    expect(existsSync(join(work, "not-booted"))).toBe(false);
  });
});
