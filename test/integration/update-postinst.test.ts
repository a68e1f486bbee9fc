// flatcar-postinst's OEM hook (§4.4 step 1) end to end: update_engine writes and verifies USR-B,
// mounts it read-only (the payload here is a real ext2 image), runs
// /oem/bin/oem-postinst B <mount point> and only then switches the table. A hook that fails stops
// the update: event 3/0 with PostinstallRunnerError (5) reaches the server and the table is as it
// was. No hook (or one that is not executable, as postinst's `[[ -x ]]`): the update as before.
// Mounting needs root and loop devices, as update_engine on a machine has.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { cleanup, tempDir } from "../helpers/procs.ts";
import {
  attrs,
  client,
  keyPair,
  makeMachine,
  makePayload,
  OmahaServer,
  parseStatusBlock,
  payloadOf,
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

/** A 2 MiB ext2 USR image holding /marker, as mke2fs builds it from a directory. */
function ext2Image(): Uint8Array {
  const tree = join(dir, "usr-tree");
  mkdirSync(tree, { recursive: true });
  writeFileSync(join(tree, "marker"), "USR 2.0.0\n");
  const img = join(dir, "usr-ext2.img");
  const r = Bun.spawnSync(["mke2fs", "-q", "-F", "-t", "ext2", "-d", tree, img, "2048"], { stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`mke2fs: ${r.stderr.toString()}`);
  return new Uint8Array(readFileSync(img));
}

beforeAll(async () => {
  payload = await payloadOf(dir, keys.privatePem, "payload", ext2Image());
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
async function machine(name: string, setup: (m: { root: string; disk: string }) => string[] = () => []) {
  const srv = new OmahaServer();
  servers.push(srv);
  const m = makeMachine(dir, name, { server: srv.url, publicPem: keys.publicPem });
  const extra = setup(m);
  const d = await startDaemon({ root: m.root, disk: m.disk, usrPartition: "3", extra });
  daemons.push(d);
  srv.reply = { kind: "update", version: "2.0.0", payload };
  return { ...m, srv, d };
}

const sequence = (srv: OmahaServer) =>
  srv.log.map((l) => `${l.kind} ${l.events.map((e) => `${e.type}/${e.result}${e.errorCode !== undefined ? `/${e.errorCode}` : ""}`).join(",")}`);

describe("the OEM post-install hook", () => {
  test("in /oem/bin under the root: runs with `B <new USR mounted ro>` after the write, before the switch", async () => {
    const seen = join(dir, "seen-ok");
    const m = await machine("ok", ({ root, disk }) => {
      // The hook keeps its arguments, what it finds at the mount point, whether it can write
      // there, and a copy of the disk as it was while it ran. It also leaves a child holding its
      // output open, which must not hold the update.
      script(
        join(root, "oem/bin/oem-postinst"),
        `echo "$@" > ${seen}.args
cat "$2/marker" > ${seen}.marker
touch "$2/written" 2> /dev/null && echo writable > ${seen}.rw || echo read-only > ${seen}.rw
cp --sparse=always ${disk} ${seen}.img
echo hook says hello
sleep 600 &
echo $! > ${seen}.child
`,
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
    const [slot, mnt] = readFileSync(`${seen}.args`, "utf8").trim().split(" ");
    expect(slot).toBe("B");
    expect(mnt).toMatch(/\/au_postint_mount\.[^/]+$/);
    // The new USR, read-only, and gone again afterwards.
    expect(readFileSync(`${seen}.marker`, "utf8")).toBe("USR 2.0.0\n");
    expect(readFileSync(`${seen}.rw`, "utf8")).toBe("read-only\n");
    expect(existsSync(mnt!)).toBe(false);
    expect(readFileSync("/proc/self/mountinfo", "utf8")).not.toContain(mnt!);
    // While it ran the table still booted A only; after it, the switch.
    const during = usr(`${seen}.img`);
    expect([during.b.priority, during.b.tries, during.b.successful]).toEqual([0, 0, false]);
    const after = usr(m.disk);
    expect([after.b.priority, after.b.tries, after.b.successful]).toEqual([2, 1, false]);
    expect(sequence(m.srv)).toEqual(["check 3/2", "event 13/1", "event 14/1", "event 3/1"]);
    const log = m.d.stderr();
    expect(log).toContain(`running OEM post-install hook: ${join(m.root, "oem/bin/oem-postinst")} B ${mnt}`);
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

  test("a new USR that does not mount: error 5, the hook not run, no switch", async () => {
    const ran = join(dir, "ran-on-garbage");
    const m = await machine("garbage", ({ root }) => {
      script(join(root, "oem/bin/oem-postinst"), `touch ${ran}\n`);
      return [];
    });
    m.srv.reply = { kind: "update", version: "2.0.0", payload: await makePayload(dir, keys.privatePem, "not-a-filesystem") };
    const table = attrs(m.disk);
    const r = await client(["-update"], m.d.socket);
    expect(r.err).toContain("Update failed.");
    expect(existsSync(ran)).toBe(false);
    expect(attrs(m.disk)).toBe(table);
    expect(sequence(m.srv).at(-1)).toBe(`event 3/0/${POSTINSTALL_RUNNER_ERROR | TEST_URL_FLAG}`);
    expect(m.d.stderr()).toContain("mounting the new USR");
  }, 60000);

  test("absent, or not executable: the update goes on as without one", async () => {
    const m = await machine("none", ({ root }) => {
      script(join(root, "usr/share/oem/bin/oem-postinst"), `touch ${join(dir, "must-not-run")}\n`, 0o644);
      return [];
    });
    const r = await client(["-update"], m.d.socket);
    expect(r.err).toContain("Update succeeded -- reboot needed.");
    expect(existsSync(join(dir, "must-not-run"))).toBe(false);
    expect(m.d.stderr()).toContain("is not executable: not run");
    expect(m.d.stderr()).not.toContain("mounted read-only");
    const after = usr(m.disk);
    expect([after.b.priority, after.b.tries, after.b.successful]).toEqual([2, 1, false]);
    expect(sequence(m.srv)).toEqual(["check 3/2", "event 13/1", "event 14/1", "event 3/1"]);
  }, 60000);
});
