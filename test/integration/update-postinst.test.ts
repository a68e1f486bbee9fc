// flatcar-postinst's OEM hook (§4.4 step 1) end to end: update_engine writes and verifies USR-B,
// runs /oem/bin/oem-postinst B <new USR> and only then switches the table. A hook that fails
// stops the update: event 3/0 with PostinstallRunnerError (5) reaches the server and the table is
// as it was. No hook (or one that is not executable, as postinst's `[[ -x ]]`): the update as before.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, readSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { partitionRange, readDisk } from "../../internal/gpt/index.ts";
import { cleanup, tempDir } from "../helpers/procs.ts";
import {
  attrs,
  client,
  keyPair,
  makeMachine,
  makePayload,
  OmahaServer,
  parseStatusBlock,
  startDaemon,
  TEST_URL_FLAG,
  usr,
  type BuiltPayload,
  type Daemon,
} from "./update-engine-harness.ts";

const POSTINSTALL_RUNNER_ERROR = 5;
const dir = tempDir("coreos-ue-postinst-");
const keys = keyPair();
let payload: BuiltPayload;
const daemons: Daemon[] = [];
const servers: OmahaServer[] = [];

beforeAll(async () => {
  payload = await makePayload(dir, keys.privatePem, "payload");
});

afterAll(async () => {
  for (const d of daemons) if (d.proc.exitCode === null) await d.stop();
  for (const s of servers) s.stop();
  cleanup(dir);
});

function script(path: string, body: string, mode = 0o755): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, `#!/bin/sh\n${body}`);
  chmodSync(path, mode);
}

/** A machine at 1.0.0 on USR-A with its own server offering 2.0.0, and its daemon. */
async function machine(name: string, setup: (root: string) => string[] = () => []) {
  const srv = new OmahaServer();
  servers.push(srv);
  const m = makeMachine(dir, name, { server: srv.url, publicPem: keys.publicPem });
  const extra = setup(m.root);
  const d = await startDaemon({ root: m.root, disk: m.disk, usrPartition: "3", extra });
  daemons.push(d);
  srv.reply = { kind: "update", version: "2.0.0", payload };
  return { ...m, srv, d };
}

const sequence = (srv: OmahaServer) =>
  srv.log.map((l) => `${l.kind} ${l.events.map((e) => `${e.type}/${e.result}${e.errorCode !== undefined ? `/${e.errorCode}` : ""}`).join(",")}`);

function partitionBytes(disk: string, n: number, bytes: number): Buffer {
  const r = partitionRange(readDisk(disk), n);
  const buf = Buffer.alloc(bytes);
  const fd = openSync(disk, "r");
  readSync(fd, buf, 0, bytes, r.offset);
  closeSync(fd);
  return buf;
}

describe("the OEM post-install hook", () => {
  test("in /oem/bin under the root: runs with `B <new USR>` after the write, before the switch", async () => {
    const seen = join(dir, "seen-ok");
    const m = await machine("ok", (root) => {
      // The hook keeps its arguments and a copy of the disk as it was while it ran.
      // It also leaves a child holding its output open, which must not hold the update.
      script(
        join(root, "oem/bin/oem-postinst"),
        `echo "$@" > ${seen}.args\ncp --sparse=always "$2" ${seen}.img\necho hook says hello\nsleep 600 &\necho $! > ${seen}.child\n`,
      );
      return [];
    });
    let r;
    try {
      r = await client(["-update"], m.d.socket);
    } finally {
      if (existsSync(`${seen}.child`)) process.kill(Number(readFileSync(`${seen}.child`, "utf8")), "SIGKILL");
    }
    expect(r.err).toContain("Update succeeded -- reboot needed.");
    expect(readFileSync(`${seen}.args`, "utf8")).toBe(`B ${m.disk}\n`);
    // While it ran: USR-B already held the new image, the table still booted A only.
    expect(partitionBytes(`${seen}.img`, 4, payload.image.length).equals(Buffer.from(payload.image))).toBe(true);
    const during = usr(`${seen}.img`);
    expect([during.b.priority, during.b.tries, during.b.successful]).toEqual([0, 0, false]);
    // After it: the switch.
    const after = usr(m.disk);
    expect([after.b.priority, after.b.tries, after.b.successful]).toEqual([2, 1, false]);
    expect(sequence(m.srv)).toEqual(["check 3/2", "event 13/1", "event 14/1", "event 3/1"]);
    const log = m.d.stderr();
    expect(log).toContain(`running OEM post-install hook: ${join(m.root, "oem/bin/oem-postinst")} B ${m.disk}`);
    expect(log).toContain("oem-postinst: hook says hello");
    expect(log).toContain("succeeded");
  }, 60000);

  test("failing (--oem-postinst): error 5 reported, no switch, nothing recorded as installed", async () => {
    const hook = join(dir, "hooks/failing");
    script(hook, `echo "refusing $1" >&2\nexit 3\n`);
    const m = await machine("fail", () => ["--oem-postinst", hook]);
    const table = attrs(m.disk);
    const r = await client(["-update"], m.d.socket);
    expect(r.err).toContain("Update failed.");
    expect(attrs(m.disk)).toBe(table);
    expect(attrs(m.disk)).toStartWith("A P1 T0 S1");
    expect(sequence(m.srv)).toEqual(["check 3/2", "event 13/1", "event 14/1", `event 3/0/${POSTINSTALL_RUNNER_ERROR | TEST_URL_FLAG}`]);
    expect(parseStatusBlock((await client(["-status"], m.d.socket)).out).CURRENT_OP).toBe("UPDATE_STATUS_IDLE");
    expect(existsSync(join(m.root, "var/run/update_engine_autoupdate_completed"))).toBe(false);
    expect(existsSync(join(m.root, "run/reboot-required"))).toBe(false);
    // No previous-version: the next check must not claim a rollback.
    const prev = join(m.root, "var/lib/update_engine/prefs/previous-version");
    expect(existsSync(prev) ? readFileSync(prev, "utf8") : "").toBe("");
    const log = m.d.stderr();
    expect(log).toContain("oem-postinst: refusing B");
    expect(log).toContain("exit status 3");
  }, 60000);

  test("absent, or not executable: the update goes on as without one", async () => {
    const m = await machine("none", (root) => {
      script(join(root, "usr/share/oem/bin/oem-postinst"), `touch ${join(dir, "must-not-run")}\n`, 0o644);
      return [];
    });
    const r = await client(["-update"], m.d.socket);
    expect(r.err).toContain("Update succeeded -- reboot needed.");
    expect(existsSync(join(dir, "must-not-run"))).toBe(false);
    expect(m.d.stderr()).toContain("is not executable: not run");
    const after = usr(m.disk);
    expect([after.b.priority, after.b.tries, after.b.successful]).toEqual([2, 1, false]);
    expect(sequence(m.srv)).toEqual(["check 3/2", "event 13/1", "event 14/1", "event 3/1"]);
  }, 60000);
});
