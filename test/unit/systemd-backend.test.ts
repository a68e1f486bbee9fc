// The systemd back end against the real systemctl with --root (no running systemd needed), our own
// [Install] handling checked against systemctl's on the same trees, the online argument shapes
// through a stand-in systemctl, and pickManager's choice.
import { describe, expect, test } from "bun:test";
import { chmodSync, existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { SupervisorClient } from "../../internal/systemd/client.ts";
import { disableUnitFiles, enableUnitFiles, loadUnit, systemDirs, unitFileState } from "../../internal/systemd/paths.ts";
import { pickManager } from "../../internal/systemd/pick.ts";
import { parseShow, runProgram, SystemdManager } from "../../internal/systemd/systemctl.ts";
import { cleanup, tempDir } from "../helpers/procs.ts";

const UNIT = "[Unit]\nDescription=Foo\n[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n";

async function withRoot(f: (root: string) => Promise<void>): Promise<void> {
  const root = tempDir("coreos-sdroot-");
  try {
    await f(root);
  } finally {
    cleanup(root);
  }
}

function put(root: string, path: string, text: string): void {
  mkdirSync(dirname(join(root, path)), { recursive: true });
  writeFileSync(join(root, path), text);
}

/** Every symlink under the root: path → target. */
function links(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isSymbolicLink()) out[`/${relative(root, p)}`] = readlinkSync(p);
      else if (e.isDirectory()) walk(p);
    }
  };
  walk(root);
  return out;
}

const isEnabled = async (root: string, name: string) => (await runProgram(["systemctl", `--root=${root}`, "is-enabled", name])).stdout.trim();

describe("systemd back end, offline root (real systemctl --root)", () => {
  test("writeUnit and writeDropIn: /etc or /run, networkd units in systemd/network, mode 0644, no temp files left", () =>
    withRoot(async (root) => {
      const m = new SystemdManager({ root });
      await m.writeUnit("foo.service", UNIT, { runtime: false });
      await m.writeUnit("bar.service", UNIT, { runtime: true });
      await m.writeUnit("10-eth.network", "[Match]\nName=eth0\n", { runtime: false });
      await m.writeDropIn("foo.service", "20-cloudinit.conf", "[Service]\nEnvironment=A=1\n", { runtime: true });
      expect(readFileSync(join(root, "etc/systemd/system/foo.service"), "utf8")).toBe(UNIT);
      expect(statSync(join(root, "etc/systemd/system/foo.service")).mode & 0o777).toBe(0o644);
      expect(existsSync(join(root, "run/systemd/system/bar.service"))).toBe(true);
      expect(existsSync(join(root, "etc/systemd/network/10-eth.network"))).toBe(true);
      expect(readFileSync(join(root, "run/systemd/system/foo.service.d/20-cloudinit.conf"), "utf8")).toBe("[Service]\nEnvironment=A=1\n");
      expect(readdirSync(join(root, "etc/systemd/system"))).toEqual(["foo.service"]);
      await expect(m.writeDropIn("foo.service", "../evil.conf", "", { runtime: false })).rejects.toThrow("invalid drop-in name");
      await expect(m.writeUnit("no-type", UNIT, { runtime: false })).rejects.toThrow("invalid unit name");
    }));

  test("enable: systemctl --root creates the wants symlink; --runtime under /run", () =>
    withRoot(async (root) => {
      const m = new SystemdManager({ root });
      await m.writeUnit("foo.service", UNIT, { runtime: false });
      await m.enable(["foo.service"]);
      expect(readlinkSync(join(root, "etc/systemd/system/multi-user.target.wants/foo.service"))).toBe("/etc/systemd/system/foo.service");
      expect(await isEnabled(root, "foo.service")).toBe("enabled");
      await m.writeUnit("rt.service", UNIT, { runtime: true });
      await m.enable(["rt.service"], { runtime: true });
      expect(readlinkSync(join(root, "run/systemd/system/multi-user.target.wants/rt.service"))).toBe("/run/systemd/system/rt.service");
      await expect(m.enable(["missing.service"])).rejects.toThrow("systemctl");
    }));

  test("mask replaces the unit file with a link to /dev/null (systemctl says masked); unmask removes only a mask", () =>
    withRoot(async (root) => {
      const m = new SystemdManager({ root });
      await m.writeUnit("foo.service", UNIT, { runtime: false });
      await m.mask("foo.service", { runtime: false });
      expect(readlinkSync(join(root, "etc/systemd/system/foo.service"))).toBe("/dev/null");
      expect(await isEnabled(root, "foo.service")).toBe("masked");
      expect(await m.status("foo.service")).toMatchObject({ load: "masked", active: "inactive", sub: "dead" });
      await m.unmask("foo.service", { runtime: false });
      expect(existsSync(join(root, "etc/systemd/system/foo.service"))).toBe(false);
      await m.writeUnit("keep.service", UNIT, { runtime: true });
      await m.unmask("keep.service", { runtime: true });
      expect(lstatSync(join(root, "run/systemd/system/keep.service")).isFile()).toBe(true);
      await m.mask("locksmithd.service", { runtime: true });
      expect(await isEnabled(root, "locksmithd.service")).toBe("masked-runtime");
    }));

  test("what needs a running systemd: daemon-reload is a no-op, commands are recorded and skipped, status from files", () =>
    withRoot(async (root) => {
      const m = new SystemdManager({ root });
      await m.writeUnit("foo.service", UNIT, { runtime: false });
      await m.daemonReload();
      await m.run("restart", "foo.service");
      expect(m.skipped).toEqual([{ command: "restart", name: "foo.service" }]);
      expect(await m.status("foo.service")).toEqual({ name: "foo.service", load: "loaded", active: "inactive", sub: "dead", path: "/etc/systemd/system/foo.service" });
      expect(await m.status("nope.service")).toMatchObject({ load: "not-found" });
      expect(await m.journal("foo.service")).toEqual([]);
    }));

  test("without systemctl on the machine, enable makes the same links by itself", () =>
    withRoot(async (root) => {
      const m = new SystemdManager({ root, systemctl: "/nonexistent/systemctl" });
      await m.writeUnit("foo.service", UNIT, { runtime: false });
      await m.enable(["foo.service"]);
      expect(readlinkSync(join(root, "etc/systemd/system/multi-user.target.wants/foo.service"))).toBe("/etc/systemd/system/foo.service");
    }));
});

describe("our [Install] handling gives systemctl's links", () => {
  const trees: [string, Record<string, string>, string[]][] = [
    ["WantedBy with two targets, RequiredBy, Alias", { "/etc/systemd/system/a.service": "[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target graphical.target\nRequiredBy=b.service\nAlias=a-alias.service\n" }, ["a.service"]],
    ["a unit in /usr/lib", { "/usr/lib/systemd/system/u.service": UNIT }, ["u.service"]],
    ["Also= enables the other unit", { "/etc/systemd/system/m.service": "[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\nAlso=n.socket\n", "/etc/systemd/system/n.socket": "[Socket]\nListenStream=1\n[Install]\nWantedBy=sockets.target\n" }, ["m.service"]],
    ["template with DefaultInstance", { "/etc/systemd/system/t@.service": "[Service]\nExecStart=/bin/echo %i\n[Install]\nWantedBy=multi-user.target\nDefaultInstance=def\n" }, ["t@.service"]],
    ["an instance of a template", { "/etc/systemd/system/g@.service": "[Service]\nExecStart=/bin/echo %i\n[Install]\nWantedBy=multi-user.target\n" }, ["g@tty1.service"]],
  ];
  for (const [name, files, enable] of trees) {
    test(name, async () => {
      const a = tempDir("coreos-inst-a-");
      const b = tempDir("coreos-inst-b-");
      try {
        for (const [p, t] of Object.entries(files)) {
          put(a, p, t);
          put(b, p, t);
        }
        for (const u of enable) {
          const r = await runProgram(["systemctl", `--root=${a}`, "enable", "--force", u]);
          expect(r.code).toBe(0);
          enableUnitFiles(systemDirs(b), u, { runtime: false });
        }
        const theirs = links(a);
        expect(Object.keys(theirs).length).toBeGreaterThan(0);
        expect(links(b)).toEqual(theirs);
      } finally {
        cleanup(a);
        cleanup(b);
      }
    });
  }

  test("disable removes what systemctl disable removes", async () => {
    const a = tempDir("coreos-dis-a-");
    const b = tempDir("coreos-dis-b-");
    try {
      const files = {
        "/etc/systemd/system/d.service": "[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\nRequiredBy=x.service\nAlias=d2.service\nAlso=e.service\n",
        "/etc/systemd/system/e.service": UNIT,
        "/etc/systemd/system/keep.service": UNIT,
      };
      for (const root of [a, b]) {
        for (const [p, t] of Object.entries(files)) put(root, p, t);
        for (const u of ["d.service", "keep.service"]) expect((await runProgram(["systemctl", `--root=${root}`, "enable", u])).code).toBe(0);
      }
      expect((await runProgram(["systemctl", `--root=${a}`, "disable", "d.service"])).code).toBe(0);
      const removed = disableUnitFiles(systemDirs(b), "d.service", { runtime: false });
      expect(removed.length).toBe(4);
      expect(links(b)).toEqual(links(a));
      expect(Object.keys(links(b))).toEqual(["/etc/systemd/system/multi-user.target.wants/keep.service"]);
    } finally {
      cleanup(a);
      cleanup(b);
    }
  });

  test("unitFileState agrees with systemctl is-enabled", () =>
    withRoot(async (root) => {
      put(root, "/etc/systemd/system/on.service", UNIT);
      put(root, "/etc/systemd/system/off.service", UNIT);
      put(root, "/etc/systemd/system/rt.service", UNIT);
      put(root, "/etc/systemd/system/plain.service", "[Service]\nExecStart=/bin/true\n");
      expect((await runProgram(["systemctl", `--root=${root}`, "enable", "on.service"])).code).toBe(0);
      expect((await runProgram(["systemctl", `--root=${root}`, "--runtime", "enable", "rt.service"])).code).toBe(0);
      for (const name of ["on.service", "off.service", "rt.service", "plain.service"]) {
        const l = loadUnit(systemDirs(root), name);
        expect(unitFileState(systemDirs(root), name, l.load === "loaded" ? l.unit : undefined)).toBe(await isEnabled(root, name));
      }
    }));

  test("no [Install] section: nothing linked, a warning like systemctl's", () =>
    withRoot(async (root) => {
      put(root, "/etc/systemd/system/s.service", "[Service]\nExecStart=/bin/true\n");
      const r = enableUnitFiles(systemDirs(root), "s.service", { runtime: false });
      expect(r.created).toEqual([]);
      expect(r.warnings[0]).toContain("no installation config");
      expect(() => enableUnitFiles(systemDirs(root), "absent.service", { runtime: false })).toThrow("does not exist");
    }));
});

describe("systemd back end, running system (stand-in systemctl)", () => {
  test("commands are queued with --no-block; status comes from systemctl show", () =>
    withRoot(async (root) => {
      const log = join(root, "calls");
      const fake = join(root, "systemctl");
      writeFileSync(
        fake,
        `#!/bin/sh\necho "$@" >> ${log}\ncase "$*" in\n  show*) printf 'LoadState=loaded\\nActiveState=active\\nSubState=running\\nResult=success\\nMainPID=42\\nNRestarts=2\\nDescription=Foo daemon\\nFragmentPath=/etc/systemd/system/foo.service\\nUnitFileState=enabled\\n';;\n  *fail*) echo "Unit fail.service not found." >&2; exit 5;;\nesac\n`,
      );
      chmodSync(fake, 0o755);
      const m = new SystemdManager({ systemctl: fake });
      await m.daemonReload();
      await m.run("start", "foo.service");
      await m.enable(["foo.service"], { runtime: true });
      expect(await m.status("foo.service")).toEqual({
        name: "foo.service", load: "loaded", active: "active", sub: "running", result: "success", mainPid: 42, restarts: 2, description: "Foo daemon", path: "/etc/systemd/system/foo.service", enabled: "enabled",
      });
      await expect(m.run("restart", "fail.service")).rejects.toThrow("Unit fail.service not found.");
      expect(readFileSync(log, "utf8").split("\n").slice(0, 4)).toEqual([
        "daemon-reload",
        "--no-block start foo.service",
        "--runtime enable --force foo.service",
        "show --property=LoadState,ActiveState,SubState,Result,MainPID,NRestarts,Description,FragmentPath,UnitFileState foo.service",
      ]);
    }));

  test("parseShow: unknown values fall back, MainPID=0 means none", () => {
    expect(parseShow("x.service", "LoadState=bad-setting\nActiveState=weird\nSubState=dead\nMainPID=0\n")).toEqual({ name: "x.service", load: "error", active: "inactive", sub: "dead" });
  });
});

describe("pickManager", () => {
  test("a root means systemd offline on that root", () => {
    const m = pickManager({ root: "/tmp/some-root" });
    expect(m.kind).toBe("systemd");
    expect((m as SystemdManager).root).toBe("/tmp/some-root");
  });
  test("no systemd running here (no /run/systemd/system): the supervisor client on the given socket", () => {
    expect(existsSync("/run/systemd/system")).toBe(false);
    const m = pickManager({ socket: "/tmp/x.sock" });
    expect(m.kind).toBe("supervisor");
    expect((m as SupervisorClient).socket).toBe("/tmp/x.sock");
    const saved = process.env.COREOS_SUPERVISOR_SOCKET;
    process.env.COREOS_SUPERVISOR_SOCKET = "/tmp/env.sock";
    try {
      expect((pickManager({}) as SupervisorClient).socket).toBe("/tmp/env.sock");
    } finally {
      if (saved === undefined) delete process.env.COREOS_SUPERVISOR_SOCKET;
      else process.env.COREOS_SUPERVISOR_SOCKET = saved;
    }
  });
});
