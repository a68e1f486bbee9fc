// `coreos supervisor serve` as a real process, driven over its socket by the CLI verbs (and by the
// UnitManager client cloud-config uses), the way a container without systemd runs it.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { SupervisorClient } from "../../internal/systemd/client.ts";
import { BIN, cleanup, tempDir } from "../helpers/procs.ts";

const CMD = process.env.COREOS_CMD?.split(" ") ?? [BIN];
const root = tempDir("coreos-serve-");
const socket = join(root, "supervisor.sock");
const unitDir = join(root, "etc/systemd/system");
const work = join(root, "work");
let serve: Subprocess<"ignore", "ignore", "pipe">;
let serveErr: Promise<string>;

function unit(name: string, text: string): void {
  writeFileSync(join(unitDir, name), text);
}

/** One CLI call: stdout, stderr, exit code. */
async function cli(...args: string[]): Promise<{ out: string; err: string; code: number }> {
  const p = Bun.spawn([...CMD, "supervisor", ...args], { stdout: "pipe", stderr: "pipe", env: { ...process.env, COREOS_SUPERVISOR_SOCKET: socket } });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { out, err, code };
}

async function until(f: () => Promise<boolean> | boolean, what: string): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (await f()) return;
    await Bun.sleep(50);
  }
  throw new Error(`gave up waiting for ${what}`);
}

beforeAll(async () => {
  mkdirSync(unitDir, { recursive: true });
  mkdirSync(work);
  unit("web.service", `[Unit]\nDescription=Web server\n[Service]\nExecStart=/bin/sh -c 'trap "echo bye; exit 0" TERM; echo listening; while :; do sleep 0.05; done'\nExecStop=/bin/sh -c 'echo stop > ${work}/web-stopped'\n[Install]\nWantedBy=multi-user.target\n`);
  unit("job.service", `[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/echo job ran\n`);
  unit("bad.service", "[Service]\nType=oneshot\nExecStart=/bin/sh -c 'echo failing >&2; exit 4'\n");
  // Enabled before the supervisor starts: it must come up at boot.
  const enable = await cli("enable", "--root", root, "web.service");
  expect(enable.code).toBe(0);
  expect(enable.err).toContain("Created symlink /etc/systemd/system/multi-user.target.wants/web.service → /etc/systemd/system/web.service.");
  serve = Bun.spawn([...CMD, "supervisor", "serve", "--socket", socket, "--root", root], { stdout: "ignore", stderr: "pipe" });
  serveErr = new Response(serve.stderr).text();
  await until(async () => serve.exitCode !== null || (await cli("is-active", "web")).out.trim() === "active", "web.service started at boot");
  if (serve.exitCode !== null) throw new Error(`serve exited ${serve.exitCode}: ${await serveErr}`);
});

afterAll(async () => {
  if (serve && serve.exitCode === null) {
    // SIGTERM first so the supervisor stops its units (they are in their own sessions and would
    // outlive a SIGKILLed supervisor); SIGKILL if it does not go within 10 s.
    serve.kill("SIGTERM");
    const t = setTimeout(() => serve.kill("SIGKILL"), 10_000);
    await serve.exited;
    clearTimeout(t);
  }
  cleanup(root);
});

describe("coreos supervisor serve + CLI", () => {
  test("status of a running unit: systemctl's shape, exit 0, output in the journal part", async () => {
    await until(async () => (await cli("journal", "web")).out.includes("listening"), "output captured");
    const s = await cli("status", "web");
    expect(s.code).toBe(0);
    expect(s.out).toContain("● web.service - Web server");
    expect(s.out).toContain("Loaded: loaded (/etc/systemd/system/web.service; enabled)");
    expect(s.out).toMatch(/Active: active \(running\) since \w{3} \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC/);
    expect(s.out).toMatch(/Main PID: \d+/);
    expect(s.out).toMatch(/sh\[\d+\]: listening/);
  });

  test("show prints systemctl's properties", async () => {
    const sh = await cli("show", "-p", "ActiveState,SubState,LoadState", "web");
    expect(sh).toMatchObject({ code: 0, out: "ActiveState=active\nSubState=running\nLoadState=loaded\n" });
    expect((await cli("show", "--property=SubState", "--value", "job")).out).toBe("dead\n");
  });

  test("list shows every service", async () => {
    const l = await cli("list");
    expect(l.code).toBe(0);
    expect(l.out).toMatch(/UNIT\s+LOAD\s+ACTIVE\s+SUB\s+DESCRIPTION/);
    expect(l.out).toMatch(/web\.service\s+loaded\s+active\s+running\s+Web server/);
    expect(l.out).toMatch(/job\.service\s+loaded\s+inactive\s+dead/);
    expect(l.out).toContain("3 units listed.");
  });

  test("stop runs ExecStop and leaves it inactive: status exits 3", async () => {
    const stop = await cli("stop", "web");
    expect(stop).toMatchObject({ code: 0, err: "" });
    expect(readFileSync(join(work, "web-stopped"), "utf8")).toBe("stop\n");
    const s = await cli("status", "web.service");
    expect(s.code).toBe(3);
    expect(s.out).toContain("○ web.service - Web server");
    expect(s.out).toContain("Active: inactive (dead)");
    expect((await cli("journal", "web")).out).toMatch(/bye\n[\s\S]*Stopped web\.service - Web server\./);
    expect((await cli("is-active", "web")).code).toBe(3);
  });

  test("a oneshot, a failing unit, an unknown unit: systemctl's exit codes", async () => {
    expect(await cli("start", "job")).toMatchObject({ code: 0 });
    expect((await cli("status", "job")).out).toContain("Active: active (exited)");
    const bad = await cli("start", "bad");
    expect(bad.code).toBe(1);
    expect(bad.err.trim().split("\n")).toHaveLength(1);
    expect(bad.err).toContain("Job for bad.service failed");
    const st = await cli("status", "bad");
    expect(st.code).toBe(3);
    expect(st.out).toContain("Active: failed (Result: exit-code)");
    expect(st.out).toContain("(code=exited, status=4/NOPERMISSION)");
    expect(st.out).toMatch(/sh\[\d+\]: failing/);
    expect(await cli("start", "--no-block", "bad")).toMatchObject({ code: 0, err: "" });
    await until(async () => (await cli("status", "bad")).out.includes("Active: failed"), "bad.service failed");
    expect((await cli("reset-failed", "bad")).code).toBe(0);
    expect((await cli("status", "bad")).out).toContain("Active: inactive (dead)");
    const missing = await cli("start", "nope");
    expect(missing).toMatchObject({ code: 5, err: "Failed to start nope.service: Unit nope.service not found.\n" });
    expect(await cli("status", "nope")).toMatchObject({ code: 4, err: "Unit nope.service could not be found.\n" });
  });

  test("the UnitManager client: write a unit, daemon-reload, start, status, journal (what cloud-config does)", async () => {
    const m = new SupervisorClient({ socket, root });
    await m.writeUnit("hello.service", "[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/echo hello from cloud-config\n", { runtime: true });
    await m.writeDropIn("hello.service", "10-env.conf", "[Service]\nEnvironment=WHO=drop-in\nExecStart=\nExecStart=/bin/sh -c 'echo hello $WHO'\n", { runtime: true });
    await m.daemonReload();
    // Queued, not waited for (like systemctl --no-block on a systemd host).
    await m.run("start", "hello.service");
    await until(async () => (await m.status("hello.service")).active === "active", "hello.service active");
    expect(await m.status("hello.service")).toMatchObject({ load: "loaded", active: "active", sub: "exited", path: "/run/systemd/system/hello.service" });
    expect(await m.journal("hello.service")).toContain("hello drop-in");
    await expect(m.run("start", "absent.service")).rejects.toThrow("Unit absent.service not found.");
    await expect(m.runAndWait("start", "bad.service")).rejects.toThrow("Job for bad.service failed");
  });

  test("restart and daemon-reload through the CLI; journal -f follows", async () => {
    const follow = Bun.spawn([...CMD, "supervisor", "journal", "-f", "job"], { stdout: "pipe", stderr: "pipe", env: { ...process.env, COREOS_SUPERVISOR_SOCKET: socket } });
    let followed = "";
    const reading = (async () => {
      for await (const chunk of follow.stdout) followed += new TextDecoder().decode(chunk);
    })();
    unit("job.service", `[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/echo job ran again\n`);
    expect((await cli("daemon-reload")).code).toBe(0);
    expect((await cli("restart", "job")).code).toBe(0);
    expect((await cli("journal", "job", "-n", "50")).out).toContain("job ran again");
    await until(() => followed.includes("job ran again"), "journal -f to show the new line");
    follow.kill("SIGTERM");
    expect(await follow.exited).toBe(0);
    await reading;
    expect(followed.split("\n").filter((l) => l.includes("job ran again"))).toHaveLength(1);
  });

  test("bad command lines are one line and exit 2", async () => {
    expect(await cli("frobnicate", "x")).toMatchObject({ code: 2, err: 'coreos supervisor: unknown command "frobnicate" (try: coreos supervisor --help)\n' });
    expect((await cli("start")).code).toBe(2);
    expect((await cli("--bogus", "list")).code).toBe(2);
    expect((await cli("--help")).out).toContain("Usage: coreos supervisor");
  });

  test("a second serve on the same socket is refused; SIGTERM stops every unit and removes the socket", async () => {
    const second = Bun.spawn([...CMD, "supervisor", "serve", "--socket", socket, "--root", root, "--target", ""], { stdout: "ignore", stderr: "pipe" });
    expect(await second.exited).toBe(1);
    expect(await new Response(second.stderr).text()).toContain("another supervisor is serving this socket");

    expect((await cli("start", "web")).code).toBe(0);
    await until(async () => (await cli("is-active", "web")).out.trim() === "active", "web active");
    const pid = Number(/Main PID: (\d+)/.exec((await cli("status", "web")).out)![1]);
    serve.kill("SIGTERM");
    expect(await serve.exited).toBe(0);
    expect(existsSync(socket)).toBe(false);
    // Gone, or at most a zombie waiting for an init that does not reap.
    expect(existsSync(`/proc/${pid}/stat`) ? readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]![0] : "gone").toMatch(/gone|Z/);
    const log = await serveErr;
    expect(log).toContain("SIGTERM: stopping every unit");
    const after = await cli("status", "web");
    expect(after.code).toBe(1);
    expect(after.err).toContain("coreos supervisor is not running");
  });
});
