// `coreos update-engine install` as a real process, and what it wrote in use: the unit through
// systemd-analyze verify, the bus policy as the config of a real dbus-daemon under which the real
// update_engine owns com.coreos.update1 and answers root, while another user is refused.
import { afterAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { POLICY_PATH, SERVICE_PATH } from "../../internal/update/units.ts";
import { cleanup, tempDir } from "../helpers/procs.ts";
import { startBus } from "./dbus-daemon.ts";
import { coreos, keyPair, makeMachine, startDaemon, until } from "./update-engine-harness.ts";

const dir = tempDir("coreos-ue-install-cli-");
afterAll(() => cleanup(dir));

describe("coreos update-engine install", () => {
  test("writes both files and says so; a rerun says unchanged", async () => {
    const root = join(dir, "image");
    const bin = join(dir, "bin/update_engine");
    mkdirSync(join(dir, "bin"), { recursive: true });
    writeFileSync(bin, "#!/bin/sh\n");
    chmodSync(bin, 0o755);
    const first = await coreos(["update-engine", "install", "--root", root, "--bin", bin]);
    expect(first).toEqual({ code: 0, out: `wrote ${join(root, SERVICE_PATH)}\nwrote ${join(root, POLICY_PATH)}\n`, err: "" });
    const again = await coreos(["update-engine", "install", "--root", root, "--bin", bin]);
    expect(again).toEqual({ code: 0, out: `unchanged ${join(root, SERVICE_PATH)}\nunchanged ${join(root, POLICY_PATH)}\n`, err: "" });
    expect(readFileSync(join(root, SERVICE_PATH), "utf8")).toContain(`ExecStart=${bin} -foreground -logtostderr\n`);
    const v = Bun.spawnSync(["systemd-analyze", "verify", "--man=no", join(root, SERVICE_PATH)], { stdout: "pipe", stderr: "pipe" });
    expect(`${v.exitCode} ${v.stdout}${v.stderr}`).toBe("0 ");
  });

  test("is listed among the verbs; bad input is one line and a non-zero exit", async () => {
    expect((await coreos(["update-engine", "--help"])).out).toMatch(/\n {2}install +write update-engine\.service/);
    const rel = await coreos(["update-engine", "install", "--root", join(dir, "x"), "--bin", "update_engine"]);
    expect(rel.code).toBe(2);
    expect(rel.err).toBe('invalid value "update_engine" for flag -bin: want an absolute path without quotes, backslashes or control characters\n');
    writeFileSync(join(dir, "a-file"), "");
    const notDir = await coreos(["update-engine", "install", "--root", join(dir, "a-file")]);
    expect(notDir.code).toBe(1);
    expect(notDir.err.trim().split("\n")).toHaveLength(1);
    expect(notDir.err).toStartWith("coreos update-engine install: ");
  });

  test("under the installed policy, update_engine owns com.coreos.update1; root may call it, nobody may not", async () => {
    expect(process.getuid!()).toBe(0); // the policy's owner is root, as on the image
    const root = join(dir, "image-bus");
    expect((await coreos(["update-engine", "install", "--root", root])).code).toBe(0);
    const bus = await startBus({ policy: readFileSync(join(root, POLICY_PATH), "utf8") });
    // Other users reach the socket, so that the refusal below is the policy's.
    chmodSync(bus.dir, 0o755);
    const m = makeMachine(dir, "bus", { server: "http://127.0.0.1:1/v1/update/", publicPem: keyPair().publicPem });
    const d = await startDaemon({ root: m.root, disk: m.disk, usrPartition: "3", env: bus.env });
    try {
      await until("the name on the bus", () => d.stderr().includes("serving com.coreos.update1 on the system bus"));
      const call = (as: string[]) =>
        Bun.spawnSync([...as, "dbus-send", "--system", "--print-reply", "--reply-timeout=5000", "--dest=com.coreos.update1", "/com/coreos/update1", "com.coreos.update1.Manager.GetStatus"], {
          env: { ...process.env, ...bus.env },
          stdout: "pipe",
          stderr: "pipe",
        });
      const asRoot = call([]);
      expect(asRoot.exitCode).toBe(0);
      expect(asRoot.stdout.toString()).toContain('string "UPDATE_STATUS_IDLE"');
      const asNobody = call(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]);
      expect(asNobody.exitCode).not.toBe(0);
      expect(asNobody.stderr.toString()).toContain("org.freedesktop.DBus.Error.AccessDenied");
    } finally {
      await d.stop();
      await bus.stop();
    }
  }, 30000);
});
