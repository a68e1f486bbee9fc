// update_engine end to end on a disk image, as real processes: check, download, verify, write
// USR-B, switch; the boot loader's `disk next` picks B and spends its try; without mark-good the
// next boot falls back to A and the next check reports the rollback (3/0 error 44); with mark-good
// B stays and the check reports 3/2 with the previous version. update_engine_client over the
// control socket and over TCP.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { closeSync, copyFileSync, cpSync, existsSync, mkdirSync, openSync, readFileSync, readSync, rmSync } from "node:fs";
import { join } from "node:path";
import { partitionRange, readDisk } from "../../internal/gpt/index.ts";
import { subscribeUpdate1 } from "../../internal/dbus/update1.ts";
import type { Status } from "../../internal/update/status.ts";
import { cleanup, freePort, tempDir } from "../helpers/procs.ts";
import { startBus } from "./dbus-daemon.ts";
import {
  attrs,
  client,
  COREOS,
  coreos,
  keyPair,
  makeDisk,
  makeMachine,
  makePayload,
  makeRoot,
  NO_BUS,
  OmahaServer,
  parseStatusBlock,
  setVersion,
  startDaemon,
  until,
  usr,
  type BuiltPayload,
  type Daemon,
} from "./update-engine-harness.ts";

const dir = tempDir("coreos-ue-");
const server = new OmahaServer();
const keys = keyPair();
let payload: BuiltPayload;
const root = join(dir, "root");
const disk = join(dir, "disk.img");
const daemons: Daemon[] = [];

const kernel = new TextEncoder().encode("a kernel for USR-B ".repeat(3000));

beforeAll(async () => {
  payload = await makePayload(dir, keys.privatePem, "payload", kernel);
  makeRoot(root, { server: server.url, version: "1.0.0", publicPem: keys.publicPem });
  mkdirSync(join(root, "boot/coreos"), { recursive: true });
  makeDisk(disk);
});

afterAll(async () => {
  for (const d of daemons) if (d.proc.exitCode === null) await d.stop();
  server.stop();
  cleanup(dir);
});

async function daemon(r: string, d: string, usrPartition: string, extra: string[] = []): Promise<Daemon> {
  const x = await startDaemon({ root: r, disk: d, usrPartition, extra });
  daemons.push(x);
  return x;
}

function readPartition(path: string, n: number, bytes: number): Uint8Array {
  const r = partitionRange(readDisk(path), n);
  const buf = new Uint8Array(bytes);
  const fd = openSync(path, "r");
  readSync(fd, buf, 0, bytes, r.offset);
  closeSync(fd);
  return buf;
}

describe("update_engine end to end", () => {
  test("update A → B, rollback without mark-good, B kept with mark-good", async () => {
    // --- running 1.0.0 from USR-A; the server offers 2.0.0 ---
    const d1 = await daemon(root, disk, "3", ["--listen-tcp", `127.0.0.1:${freePort()}`]);
    let st = await client(["-status"], d1.socket);
    expect(st.code).toBe(0);
    expect(st.out).toBe("LAST_CHECKED_TIME=0\nPROGRESS=0.000000\nCURRENT_OP=UPDATE_STATUS_IDLE\nNEW_VERSION=0.0.0\nNEW_SIZE=0\n");

    server.reply = { kind: "update", version: "2.0.0", payload };
    const up = await client(["-update"], d1.socket);
    expect(up.err).toContain("Update succeeded -- reboot needed.");
    expect(up.code).toBe(0);
    // Plain lines when not on a terminal: a status block per operation.
    for (const op of ["CHECKING_FOR_UPDATE", "UPDATED_NEED_REBOOT"]) expect(up.out).toContain(`CURRENT_OP=UPDATE_STATUS_${op}\n`);

    // The §1.4 sequence reached the server.
    const seq = server.log.map((l) => `${l.kind} ${l.events.map((e) => `${e.type}/${e.result}${e.errorCode !== undefined ? `/${e.errorCode}` : ""}${e.previousVersion !== undefined ? ` prev=${e.previousVersion}` : ""}`).join(",")}`);
    expect(seq).toEqual(["check 3/2 prev=0.0.0.0", "event 13/1", "event 14/1", "event 3/1"]);
    // The whole attempt carries the install source of the check that started it.
    expect(server.log.map((l) => l.installsource)).toEqual(["ondemandupdate", "ondemandupdate", "ondemandupdate", "ondemandupdate"]);
    expect(server.log[0]!.app).toMatchObject({ version: "1.0.0", track: "stable", machineid: "0b2c6f1f4d7e4a9c8f3e2d1c0b9a8f7e", alephversion: "1.0.0", board: "amd64-usr" });
    expect(server.payloadRequests).toEqual(["2.0.0/coreos_production_update.gz"]);

    // USR-B holds the image; B boots next once (§4.4); A untouched and still good.
    expect(Buffer.from(readPartition(disk, 4, payload.image.length)).equals(Buffer.from(payload.image))).toBe(true);
    expect(Buffer.from(readFileSync(join(root, "boot/coreos/vmlinuz-b"))).equals(Buffer.from(kernel))).toBe(true);
    expect(existsSync(join(root, "boot/coreos/vmlinuz-a"))).toBe(false);
    const after = usr(disk);
    expect([after.b.priority, after.b.tries, after.b.successful]).toEqual([2, 1, false]);
    expect([after.a.priority, after.a.tries, after.a.successful]).toEqual([1, 0, true]);
    expect(existsSync(join(root, "var/run/update_engine_autoupdate_completed"))).toBe(true);

    // -status, here over TCP.
    const port = /control protocol on tcp:\/\/127\.0\.0\.1:(\d+)/.exec(d1.stderr())![1];
    st = await client(["-status"], `tcp://127.0.0.1:${port}`);
    const s = parseStatusBlock(st.out);
    expect(s).toMatchObject({ PROGRESS: "1.000000", CURRENT_OP: "UPDATE_STATUS_UPDATED_NEED_REBOOT", NEW_VERSION: "2.0.0", NEW_SIZE: String(payload.size) });
    expect(Math.abs(Number(s.LAST_CHECKED_TIME) - Date.now() / 1000)).toBeLessThan(600);

    // Waiting for the reboot, a check is a ping only.
    expect((await client(["-check_for_update"], d1.socket)).code).toBe(0);
    await until("the ping", () => server.log.length === 5);
    expect(server.log[4]).toMatchObject({ kind: "ping", events: [] });
    expect(server.log[4]!.app.ping).not.toBeNull();
    expect(await d1.stop()).toBe(0);

    // --- the reboot: the boot loader picks B and spends its one try ---
    rmSync(join(root, "var/run/update_engine_autoupdate_completed"));
    let n = await coreos(["update-engine", "disk", "next", disk]);
    expect(n.out).toContain(`usr_device=${disk},gpt4`);
    expect([usr(disk).b.tries, usr(disk).b.successful]).toEqual([0, false]);

    // --- branch 1: B dies before mark-good; the next boot falls back to A ---
    const root2 = join(dir, "root2");
    const disk2 = join(dir, "disk2.img");
    cpSync(root, root2, { recursive: true });
    copyFileSync(disk, disk2);
    n = await coreos(["update-engine", "disk", "next", disk2]);
    expect(n.out).toContain(`usr_device=${disk2},gpt3`);
    const d2 = await daemon(root2, disk2, "3", ["--mark-good-delay", "1h"]);
    server.reply = { kind: "noupdate" };
    const before = server.log.length;
    expect((await client(["-update"], d2.socket)).code).toBe(0);
    // Still 1.0.0 after installing 2.0.0: the rollback is reported, without flag bits (§1.2).
    expect(server.log.slice(before).map((l) => [l.kind, l.events])).toEqual([["check", [{ type: 3, result: 0, errorCode: 44 }]]]);
    expect(d2.stderr()).toContain("rollback detected");
    await d2.stop();

    // --- branch 2: B comes up as 2.0.0 and marks itself good ---
    setVersion(root, "2.0.0");
    const d3 = await daemon(root, disk, "4", ["--mark-good-delay", "100ms"]);
    await until("mark-good", () => usr(disk).b.successful);
    expect([usr(disk).b.priority, usr(disk).b.tries]).toEqual([2, 0]);
    const before3 = server.log.length;
    expect((await client(["-update"], d3.socket)).code).toBe(0);
    expect(server.log.slice(before3).map((l) => [l.kind, l.app.version, l.events])).toEqual([["check", "2.0.0", [{ type: 3, result: 2, previousVersion: "1.0.0" }]]]);
    // The previous version is reported once.
    expect((await client(["-update"], d3.socket)).code).toBe(0);
    expect(server.log.at(-1)!.events).toEqual([{ type: 3, result: 2, previousVersion: "" }]);
    await d3.stop();
    for (let i = 0; i < 3; i++) {
      n = await coreos(["update-engine", "disk", "next", disk]);
      expect(n.out).toContain(`usr_device=${disk},gpt4`);
    }
  }, 60000);

  test("-reset_status after an update: back to idle, the marker gone, the table untouched", async () => {
    const { root: r, disk: dk } = makeMachine(dir, "reset", { server: server.url, publicPem: keys.publicPem });
    const d = await daemon(r, dk, "3");
    expect((await client(["-reset_status"], d.socket)).code).toBe(0);
    server.reply = { kind: "update", version: "2.0.0", payload };
    expect((await client(["-update"], d.socket)).code).toBe(0);
    const table = attrs(dk);
    const res = await client(["-reset_status"], d.socket);
    expect(res.code).toBe(0);
    expect(res.err).toContain("ResetStatus succeeded");
    expect(parseStatusBlock((await client(["-status"], d.socket)).out).CURRENT_OP).toBe("UPDATE_STATUS_IDLE");
    expect(existsSync(join(r, "var/run/update_engine_autoupdate_completed"))).toBe(false);
    expect(attrs(dk)).toBe(table);
    await d.stop();
  }, 30000);

  test("-update on a terminal draws a progress bar in place", async () => {
    const { root: r, disk: dk } = makeMachine(dir, "tty", { server: server.url, publicPem: keys.publicPem });
    const d = await daemon(r, dk, "3");
    server.reply = { kind: "update", version: "2.0.0", payload };
    const q = (a: string) => `'${a.replaceAll("'", "'\\''")}'`;
    const cmd = [...COREOS, "update-engine", "client", "-update", "-control_socket", d.socket].map(q).join(" ");
    // script(1) gives the client a pseudo-terminal as its stdout.
    const p = Bun.spawn(["script", "-qec", cmd, "/dev/null"], { env: { ...process.env, ...NO_BUS }, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    const [out, code] = await Promise.all([new Response(p.stdout).text(), p.exited]);
    expect(code).toBe(0);
    expect(out).not.toContain("CURRENT_OP=");
    expect(out).toContain("\r[##############################] 100% UPDATED_NEED_REBOOT");
    expect(out).toMatch(/\r\[\.{30}\] {3}0% CHECKING_FOR_UPDATE/);
    expect(out).toContain("Update succeeded -- reboot needed.");
    await d.stop();
  }, 30000);

  test("locksmithd reboots when our update_engine has applied an update", async () => {
    const { root: r, disk: dk } = makeMachine(dir, "locksmith", { server: server.url, publicPem: keys.publicPem });
    const d = await daemon(r, dk, "3");
    const rebooted = join(dir, "rebooted");
    const ls = Bun.spawn(
      [...COREOS, "locksmith", "daemon", "--update-socket", d.socket, "--state-file", join(dir, "coordinator.conf"), "--machine-id", "m1", "--reboot-command", `touch ${rebooted}`, "--wall=false", "--login-delay", "0s"],
      { env: { ...process.env, ...NO_BUS, REBOOT_STRATEGY: "reboot" }, stdin: "ignore", stdout: "pipe", stderr: "pipe" },
    );
    let lsLog = "";
    void (async () => {
      for await (const c of ls.stderr) lsLog += new TextDecoder().decode(c);
    })();
    try {
      // It follows the engine's statuses and does nothing while there is no update.
      await until("locksmithd reading the engine", () => lsLog.includes('CurrentOperation="UPDATE_STATUS_IDLE"'));
      expect(existsSync(rebooted)).toBe(false);
      server.reply = { kind: "update", version: "2.0.0", payload };
      expect((await client(["-update"], d.socket)).code).toBe(0);
      await until("locksmithd's reboot", () => existsSync(rebooted));
    } finally {
      ls.kill("SIGTERM");
      await ls.exited;
      await d.stop();
    }
  }, 30000);

  test("-watch_for_updates prints each status change", async () => {
    const { root: r, disk: dk } = makeMachine(dir, "watch", { server: server.url, publicPem: keys.publicPem });
    const d = await daemon(r, dk, "3");
    server.reply = { kind: "noupdate" };
    const w = Bun.spawn([...COREOS, "update-engine", "client", "-watch_for_updates", "-control_socket", d.socket], { env: { ...process.env, ...NO_BUS }, stdout: "pipe", stderr: "pipe" });
    let out = "";
    const dec = new TextDecoder();
    void (async () => {
      for await (const c of w.stdout) out += dec.decode(c);
    })();
    await until("the first status", () => out.includes("current_operation: UPDATE_STATUS_IDLE"));
    expect((await client(["-check_for_update"], d.socket)).code).toBe(0);
    await until("a check and back to idle", () => out.split("Got status update:").length >= 4);
    expect(out).toContain("  current_operation: UPDATE_STATUS_CHECKING_FOR_UPDATE\n");
    expect(out).toMatch(/Got status update:\n {2}last_checked_time: \d+\n {2}progress: 0\n {2}current_operation: UPDATE_STATUS_IDLE\n {2}new_version: 0\.0\.0\n {2}new_size: 0\n$/);
    w.kill("SIGTERM");
    expect(await w.exited).toBe(0);
    await d.stop();
  }, 30000);

  test("the client without an engine: one line, exit 1; without an action: exit 2", async () => {
    const r = await client(["-status"], join(dir, "nothing.sock"));
    expect(r.code).toBe(1);
    expect(r.err.trim().split("\n")).toHaveLength(1);
    expect(r.err).toContain("cannot reach the update engine");
    const none = await client([], join(dir, "nothing.sock"));
    expect(none.code).toBe(2);
    expect(none.err).toBe("no action given: one of -reset_status, -status, -check_for_update, -update, -watch_for_updates\n");
  });

  test("com.coreos.update1 on the system bus: GetStatus, AttemptUpdate, StatusUpdate signals, ResetStatus", async () => {
    const bus = await startBus();
    const { root: r, disk: dk } = makeMachine(dir, "dbus", { server: server.url, publicPem: keys.publicPem });
    const d = await startDaemon({ root: r, disk: dk, usrPartition: "3", env: bus.env });
    daemons.push(d);
    const seen: Status[] = [];
    const sub = await subscribeUpdate1((s) => seen.push(s), {}, bus.env);
    try {
      await until("the daemon on the bus", () => d.stderr().includes("serving com.coreos.update1"));
      const send = async (member: string) => {
        const p = Bun.spawn(["dbus-send", "--system", "--print-reply", "--reply-timeout=5000", "--dest=com.coreos.update1", "/com/coreos/update1", `com.coreos.update1.Manager.${member}`], {
          env: { ...process.env, ...bus.env },
          stdout: "pipe",
          stderr: "pipe",
        });
        const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
        return { out, err, code };
      };
      const g = await send("GetStatus");
      expect(g.code).toBe(0);
      expect(g.out.split("\n").slice(1).map((l) => l.trim()).filter(Boolean)).toEqual(["int64 0", "double 0", 'string "UPDATE_STATUS_IDLE"', 'string "0.0.0"', "int64 0"]);
      server.reply = { kind: "update", version: "2.0.0", payload };
      expect((await send("AttemptUpdate")).code).toBe(0);
      await until("the update over D-Bus", () => seen.some((s) => s.current_operation === "UPDATE_STATUS_UPDATED_NEED_REBOOT"));
      const ops = [...new Set(seen.map((s) => s.current_operation))];
      expect(ops).toEqual(expect.arrayContaining(["UPDATE_STATUS_CHECKING_FOR_UPDATE", "UPDATE_STATUS_DOWNLOADING", "UPDATE_STATUS_FINALIZING", "UPDATE_STATUS_UPDATED_NEED_REBOOT"]));
      expect(seen.at(-1)).toMatchObject({ progress: 1, new_version: "2.0.0", new_size: payload.size });
      // update_engine_client without a socket named goes over the bus, as the original does.
      const viaBus = async (flag: string) => {
        const p = Bun.spawn([...COREOS, "update-engine", "client", flag], { env: { ...process.env, ...bus.env, UPDATE_ENGINE_CONTROL_SOCKET: "" }, stdout: "pipe", stderr: "pipe" });
        const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
        return { out, err, code };
      };
      const st = await viaBus("-status");
      expect(st.code).toBe(0);
      expect(parseStatusBlock(st.out)).toMatchObject({ CURRENT_OP: "UPDATE_STATUS_UPDATED_NEED_REBOOT", NEW_VERSION: "2.0.0", PROGRESS: "1.000000" });
      const reset = await send("ResetStatus");
      expect(reset.code).toBe(0);
      expect(reset.out).toContain("boolean true");
      await until("idle after the reset", () => seen.at(-1)!.current_operation === "UPDATE_STATUS_IDLE");
      server.reply = { kind: "noupdate" };
      const up = await viaBus("-update");
      expect(up.code).toBe(0);
      expect(up.err).toContain("No update available.");
      expect(up.out).toContain("CURRENT_OP=UPDATE_STATUS_CHECKING_FOR_UPDATE\n");
    } finally {
      sub?.close();
      await d.stop();
      await bus.stop();
    }
  }, 30000);
});
