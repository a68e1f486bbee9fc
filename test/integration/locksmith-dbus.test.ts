// locksmith on a real (private) system bus: locksmithd hears StatusUpdate from dbus-send and the
// engine's GetStatus, takes the lock in our kv serve and reboots; on a "systemd host" the reboot is
// login1's Reboot(false) (a fake logind exported by the test); send-need-reboot emits the signal;
// coordinator.conf is flock'ed so a second locksmithd is refused.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { Bus } from "../../internal/dbus/bus.ts";
import { serveUpdate1, subscribeUpdate1 } from "../../internal/dbus/update1.ts";
import { Client } from "../../internal/kvclient/index.ts";
import { semaphoreKey } from "../../internal/locksmith/semaphore.ts";
import { IDLE, NEED_REBOOT, type Status } from "../../internal/update/status.ts";
import { cleanup, startOurs, tempDir, type Server } from "../helpers/procs.ts";
import { startBus, type PrivateBus } from "./dbus-daemon.ts";
import { LOCKSMITH, run } from "./locksmith-cmd.ts";

let bus: PrivateBus;
let kv: Server;
const dir = tempDir("coreos-locksmith-dbus-");
const procs: Subprocess[] = [];
beforeAll(async () => {
  [bus, kv] = await Promise.all([startBus(), startOurs()]);
});
afterAll(async () => {
  for (const p of procs) p.kill("SIGKILL");
  await Promise.all(procs.map((p) => p.exited));
  await kv.stop();
  await bus.stop();
  cleanup(dir);
});

const FAST = ["--unlock-delay", "50ms", "--lock-retry", "100ms", "--retry-max", "500ms", "--login-delay", "0s", "--wall=false"];

/** A daemon whose stderr is collected. */
function daemon(args: string[], env: Record<string, string>): { proc: Subprocess<"ignore", "ignore", "pipe">; err: () => string } {
  const proc = Bun.spawn([...LOCKSMITH, "daemon", ...args], { env: { ...process.env, ...bus.env, ...env }, stdin: "ignore", stdout: "ignore", stderr: "pipe" });
  procs.push(proc);
  let text = "";
  void (async () => {
    for await (const chunk of proc.stderr) text += new TextDecoder().decode(chunk);
  })();
  return { proc, err: () => text };
}

async function until(pred: () => boolean, what: string, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(50);
  }
}

const state = (file: string) => (existsSync(file) ? readFileSync(file, "utf8") : "");

describe("locksmithd on the system bus", () => {
  test("a StatusUpdate(NEED_REBOOT) from dbus-send: takes the lock in our kv, then runs the reboot command", async () => {
    const marker = join(dir, "rebooted-m1");
    const stateFile = join(dir, "m1.state");
    const d = daemon(["--machine-id", "m1", "--state-file", stateFile, "--reboot-command", `echo rebooted > ${marker}`, ...FAST], {
      REBOOT_STRATEGY: "etcd-lock",
      LOCKSMITHD_ENDPOINT: kv.url,
    });
    await until(() => d.err().includes("listening to com.coreos.update1 on the system bus"), "the daemon on the bus");
    expect(state(stateFile)).toBe("NAME=locksmithd\nSTRATEGY=etcd-lock\nSTATE=running\n");
    const send = () =>
      Bun.spawn(
        ["dbus-send", "--system", "--type=signal", "/com/coreos/update1", "com.coreos.update1.Manager.StatusUpdate", "int64:0", "double:0", "string:UPDATE_STATUS_UPDATED_NEED_REBOOT", "string:", "int64:0"],
        { env: { ...process.env, ...bus.env } },
      ).exited;
    expect(await send()).toBe(0);
    await until(() => existsSync(marker), "the reboot command");
    expect(d.err()).toContain('LastCheckedTime=0 Progress=0 CurrentOperation="UPDATE_STATUS_UPDATED_NEED_REBOOT" NewVersion= NewSize=0');
    const value = JSON.parse((await new Client({ endpoints: [kv.url] }).get(semaphoreKey(""))).node.value!);
    expect(value).toMatchObject({ semaphore: 0, max: 1, holders: ["m1"] });
    expect(state(stateFile)).toContain("STATE=rebooting");
    d.proc.kill("SIGTERM");
    expect(await d.proc.exited).toBe(0);
  });

  test("a systemd host reboots through login1 Reboot(false); the engine's GetStatus alone is enough", async () => {
    // The fake logind, recording what it is asked.
    const login1 = (await Bus.connect(bus.address))!;
    const calls: unknown[][] = [];
    login1.exportInterface("/org/freedesktop/login1", {
      name: "org.freedesktop.login1.Manager",
      methods: { Reboot: { in: "b", out: "", handler: (...args) => (calls.push(args), []) } },
      signals: {},
    });
    expect(await login1.requestName("org.freedesktop.login1", 4)).toBe(1);
    // The update engine, already needing a reboot.
    const engine = (await serveUpdate1({ getStatus: () => ({ ...NEED_REBOOT, new_version: "2.0.0" }), attemptUpdate: async () => {}, resetStatus: async () => {} }, bus.env))!;
    const root = join(dir, "host");
    mkdirSync(join(root, "run/systemd/system"), { recursive: true });
    const stateFile = join(dir, "m2.state");
    const d = daemon(["--machine-id", "m2", "--state-file", stateFile, "--host-root", root, ...FAST], { REBOOT_STRATEGY: "reboot" });
    try {
      await until(() => calls.length === 1, "login1 Reboot");
      expect(calls).toEqual([[false]]);
      expect(d.err()).toContain('CurrentOperation="UPDATE_STATUS_UPDATED_NEED_REBOOT" NewVersion=2.0.0');
      await until(() => state(stateFile).includes("STATE=rebooting"), "state rebooting");
    } finally {
      d.proc.kill("SIGTERM");
      await d.proc.exited;
      await engine.close();
      login1.close();
    }
  });

  test("not a systemd host and no reboot command: the reboot fails with a clear error", async () => {
    const engine = (await serveUpdate1({ getStatus: () => NEED_REBOOT, attemptUpdate: async () => {}, resetStatus: async () => {} }, bus.env))!;
    try {
      const d = daemon(["--machine-id", "m3", "--state-file", join(dir, "m3.state"), "--host-root", join(dir, "empty-root"), ...FAST], { REBOOT_STRATEGY: "reboot" });
      expect(await d.proc.exited).toBe(1);
      expect(d.err()).toContain("no way to reboot: not a systemd host and no --reboot-command given");
    } finally {
      await engine.close();
    }
  });

  test("the system bus restarts: locksmithd reconnects to it (not to the control socket) and still hears the news", async () => {
    const busDir = tempDir("coreos-dbus-restart-");
    let own = await startBus({ reuse: busDir });
    try {
      const marker = join(dir, "rebooted-m4");
      const d = daemon(["--machine-id", "m4", "--state-file", join(dir, "m4.state"), "--reboot-command", `touch ${marker}`, ...FAST], {
        ...own.env,
        REBOOT_STRATEGY: "reboot",
        UPDATE_ENGINE_CONTROL_SOCKET: join(dir, "m4-unused.sock"),
      });
      await until(() => d.err().includes("listening to com.coreos.update1 on the system bus"), "the daemon on the bus");
      await own.stop();
      await until(() => d.err().includes("system bus connection lost"), "the daemon noticing");
      own = await startBus({ reuse: busDir });
      await until(() => d.err().split("listening to com.coreos.update1 on the system bus").length === 3, "the daemon back on the bus");
      expect(d.err()).not.toContain("no system bus");
      const engine = (await serveUpdate1({ getStatus: () => NEED_REBOOT, attemptUpdate: async () => {}, resetStatus: async () => {} }, own.env))!;
      await until(() => existsSync(marker), "the reboot command");
      await engine.close();
      d.proc.kill("SIGTERM");
      expect(await d.proc.exited).toBe(0);
    } finally {
      await own.stop();
      cleanup(busDir);
    }
  });
});

describe("locksmithctl send-need-reboot", () => {
  test("emits StatusUpdate(0, 0, NEED_REBOOT, \"\", 0) from /com/coreos/update1 on the bus", async () => {
    const seen: Status[] = [];
    const sub = (await subscribeUpdate1((s) => seen.push(s), {}, bus.env))!;
    const r = await run(["send-need-reboot"], bus.env);
    expect(r).toEqual({ code: 0, out: "", err: "" });
    await until(() => seen.length === 1, "the signal");
    expect(seen[0]).toEqual({ ...IDLE, current_operation: "UPDATE_STATUS_UPDATED_NEED_REBOOT", new_version: "" });
    sub.close();
  });
});

describe("coordinator.conf", () => {
  test("held under an exclusive flock: a second locksmithd on the same file is refused, flock(1) cannot take it", async () => {
    const stateFile = join(dir, "shared.state");
    const first = daemon(["--machine-id", "a", "--state-file", stateFile, ...FAST], { REBOOT_STRATEGY: "reboot" });
    await until(() => state(stateFile).includes("STATE=running"), "the first daemon running");
    const second = daemon(["--machine-id", "b", "--state-file", stateFile, ...FAST], { REBOOT_STRATEGY: "reboot" });
    expect(await second.proc.exited).toBe(1);
    expect(second.err()).toContain(`${stateFile}: file already locked (is another locksmithd running?)`);
    // util-linux flock(1), an independent peer, sees the same lock on the renamed file.
    expect(Bun.spawnSync(["flock", "-n", stateFile, "true"]).exitCode).toBe(1);
    expect(state(stateFile)).toBe("NAME=locksmithd\nSTRATEGY=reboot\nSTATE=running\n");
    first.proc.kill("SIGTERM");
    expect(await first.proc.exited).toBe(0);
    expect(Bun.spawnSync(["flock", "-n", stateFile, "true"]).exitCode).toBe(0);
  });
});
