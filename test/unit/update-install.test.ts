// The system files of `coreos update-engine install`: the unit's text read back by our unit parser
// and checked by systemd's own `systemd-analyze verify`; the installer's atomic, idempotent writes.
import { afterAll, describe, expect, test } from "bun:test";
import { chmodSync, existsSync, readFileSync, readdirSync, statSync, writeFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { getValue, getWords, parseUnit } from "../../internal/systemd/unitfile.ts";
import { update1Policy } from "../../internal/dbus/update1.ts";
import { installSystemFiles } from "../../internal/update/install.ts";
import { DEFAULT_BIN, execWord, POLICY_PATH, SERVICE_PATH, systemFiles, updateEngineService } from "../../internal/update/units.ts";
import { cleanup, tempDir } from "../helpers/procs.ts";

const dir = tempDir("coreos-ue-install-");
afterAll(() => cleanup(dir));

/** An executable at `path`, so systemd-analyze finds the ExecStart command. */
function executable(path: string): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, "#!/bin/sh\nexit 0\n");
  chmodSync(path, 0o755);
}

function verify(unitPath: string): { code: number; out: string } {
  // Offline: systemd is not PID 1 here; verify loads the unit with the host's unit search path.
  const p = Bun.spawnSync(["systemd-analyze", "verify", "--man=no", unitPath], { stdout: "pipe", stderr: "pipe" });
  return { code: p.exitCode, out: `${p.stdout.toString()}${p.stderr.toString()}` };
}

describe("update-engine.service", () => {
  test("says what §2.7 says, read back with our unit parser", () => {
    const { unit, problems } = parseUnit(updateEngineService());
    expect(problems).toEqual([]);
    expect(getValue(unit, "Service", "Type")).toBe("dbus");
    expect(getValue(unit, "Service", "BusName")).toBe("com.coreos.update1");
    expect(getWords(unit, "Service", "ExecStart")).toEqual([DEFAULT_BIN, "-foreground", "-logtostderr"]);
    expect(getValue(unit, "Service", "Restart")).toBe("always");
    expect(getValue(unit, "Service", "RestartSec")).toBe("30");
    expect(getValue(unit, "Unit", "ConditionVirtualization")).toBe("!container");
    expect(getValue(unit, "Unit", "ConditionPathExists")).toBe("!/usr/.noupdate");
    expect(getValue(unit, "Install", "WantedBy")).toBe("default.target");
  });

  test("systemd-analyze verify accepts it without a word", () => {
    const bin = join(dir, "verify/usr/sbin/update_engine");
    executable(bin);
    const unit = join(dir, "verify/update-engine.service");
    writeFileSync(unit, updateEngineService(bin));
    expect(verify(unit)).toEqual({ code: 0, out: "" });
  });

  test("systemd-analyze verify notices a bad one (the check can fail)", () => {
    const unit = join(dir, "verify/broken.service");
    writeFileSync(unit, updateEngineService(join(dir, "verify/usr/sbin/update_engine")).replace("BusName=com.coreos.update1\n", ""));
    const r = verify(unit);
    expect(r.code).not.toBe(0);
    expect(r.out).toContain("no D-Bus service name");
  });

  test("an ExecStart path with a space, %, $ and ; reaches systemd as that path", () => {
    const bin = join(dir, `odd dir/100% $HOME;x/update_engine`);
    executable(bin);
    const unit = join(dir, "verify/odd.service");
    writeFileSync(unit, updateEngineService(bin));
    expect(verify(unit)).toEqual({ code: 0, out: "" });
    // systemd-analyze says "is not executable" for any other path; our parser agrees on the word.
    const word = getWords(parseUnit(updateEngineService(bin)).unit, "Service", "ExecStart")[0]!;
    expect(word.replace(/%%/g, "%")).toBe(bin);
  });

  test("a path no unit can hold is refused", () => {
    expect(execWord("update_engine")).toBeNull();
    expect(execWord("/usr/sbin/a\nb")).toBeNull();
    // systemd itself refuses these in an executable name, quoted or not.
    for (const c of [`'`, `"`, "\\"]) expect(execWord(`/opt/a${c}b/update_engine`)).toBeNull();
    expect(() => updateEngineService("relative/update_engine")).toThrow(/absolute path/);
  });
});

describe("installSystemFiles", () => {
  test("writes both files under the root, 0644, creating directories", () => {
    const root = join(dir, "root1");
    const got = installSystemFiles(root, "/opt/bin/update_engine");
    expect(got).toEqual([
      { path: join(root, SERVICE_PATH), changed: true },
      { path: join(root, POLICY_PATH), changed: true },
    ]);
    expect(readFileSync(join(root, SERVICE_PATH), "utf8")).toBe(updateEngineService("/opt/bin/update_engine"));
    expect(readFileSync(join(root, POLICY_PATH), "utf8")).toBe(update1Policy());
    for (const f of systemFiles()) expect(statSync(join(root, f.path)).mode & 0o7777).toBe(0o644);
    // No temp files left beside them.
    expect(readdirSync(dirname(join(root, SERVICE_PATH)))).toEqual(["update-engine.service"]);
  });

  test("a second run changes nothing; a different --bin or a changed mode is put right", () => {
    const root = join(dir, "root2");
    installSystemFiles(root, DEFAULT_BIN);
    const ino = statSync(join(root, SERVICE_PATH)).ino;
    expect(installSystemFiles(root, DEFAULT_BIN).map((f) => f.changed)).toEqual([false, false]);
    expect(statSync(join(root, SERVICE_PATH)).ino).toBe(ino);

    expect(installSystemFiles(root, "/opt/bin/update_engine").map((f) => f.changed)).toEqual([true, false]);
    expect(readFileSync(join(root, SERVICE_PATH), "utf8")).toContain("ExecStart=/opt/bin/update_engine -foreground");

    chmodSync(join(root, POLICY_PATH), 0o600);
    expect(installSystemFiles(root, "/opt/bin/update_engine").map((f) => f.changed)).toEqual([false, true]);
    expect(statSync(join(root, POLICY_PATH)).mode & 0o7777).toBe(0o644);
  });

  test("a root that is a file is an error, and nothing is written", () => {
    const root = join(dir, "a-file");
    writeFileSync(root, "x");
    expect(() => installSystemFiles(root, DEFAULT_BIN)).toThrow(/ENOTDIR|not a directory/);
    expect(existsSync(join(dir, "a-file", "usr"))).toBe(false);
  });
});
