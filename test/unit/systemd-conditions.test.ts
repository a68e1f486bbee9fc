// Condition*=/Assert*= rules against a made-up host.
import { describe, expect, test } from "bun:test";
import { checkConditions, globMatch, type Probe } from "../../internal/systemd/conditions.ts";
import { parseUnit } from "../../internal/systemd/unitfile.ts";

const files: Record<string, number> = { "/etc/empty": 0, "/etc/full": 10, "/usr/bin/tool": 100 };
const dirs: Record<string, string[]> = { "/var/lib/data": ["a"], "/var/lib/empty": [".hidden"], "/etc": ["empty", "full"] };
const host: Probe = {
  exists: (p) => p in files || p in dirs,
  isDirectory: (p) => p in dirs,
  isSymlink: (p) => p === "/etc/link",
  fileSize: (p) => files[p],
  dirEntries: (p) => dirs[p],
  isExecutable: (p) => p === "/usr/bin/tool",
  isMountPoint: (p) => p === "/",
  glob: (g) => (g === "/etc/f*" ? ["/etc/full"] : []),
  kernelCommandLine: () => "root=/dev/sda1 cloud-config-url=http://x/y quiet",
  hostname: () => "node-7.example",
  machineId: () => "0123abcd",
  env: () => ({ ROLE: "worker", EMPTY: "" }),
  user: () => ({ name: "root", uid: 0 }),
};

const check = (lines: string, family: "Condition" | "Assert" = "Condition") => checkConditions(parseUnit(`[Unit]\n${lines}\n`).unit, family, host);

describe("conditions", () => {
  const table: [string, boolean][] = [
    ["ConditionPathExists=/etc/full", true],
    ["ConditionPathExists=/nope", false],
    ["ConditionPathExists=!/nope", true],
    ["ConditionPathExists=! /etc/full", false],
    ["ConditionPathExistsGlob=/etc/f*", true],
    ["ConditionPathIsDirectory=/var/lib/data", true],
    ["ConditionPathIsDirectory=/etc/full", false],
    ["ConditionPathIsSymbolicLink=/etc/link", true],
    ["ConditionPathIsMountPoint=/", true],
    ["ConditionDirectoryNotEmpty=/var/lib/data", true],
    ["ConditionDirectoryNotEmpty=/var/lib/empty", false],
    ["ConditionFileNotEmpty=/etc/full", true],
    ["ConditionFileNotEmpty=/etc/empty", false],
    ["ConditionFileNotEmpty=/var/lib/data", false],
    ["ConditionFileIsExecutable=/usr/bin/tool", true],
    ["ConditionKernelCommandLine=cloud-config-url", true],
    ["ConditionKernelCommandLine=root=/dev/sda1", true],
    ["ConditionKernelCommandLine=root=/dev/sdb1", false],
    ["ConditionKernelCommandLine=!quiet", false],
    ["ConditionKernelCommandLine=roo", false],
    ["ConditionHost=node-*.example", true],
    ["ConditionHost=0123abcd", true],
    ["ConditionHost=other", false],
    ["ConditionEnvironment=ROLE", true],
    ["ConditionEnvironment=ROLE=worker", true],
    ["ConditionEnvironment=ROLE=master", false],
    ["ConditionUser=root", true],
    ["ConditionUser=0", true],
    ["ConditionUser=@system", true],
    ["ConditionUser=core", false],
    // Every plain condition must hold.
    ["ConditionPathExists=/etc/full\nConditionPathExists=/nope", false],
    // Triggering ones: any one is enough, and plain ones still count.
    ["ConditionPathExists=|/nope\nConditionPathExists=|/etc/full", true],
    ["ConditionPathExists=|/nope\nConditionPathExists=|!/etc/full", false],
    ["ConditionPathExists=|/etc/full\nConditionUser=core", false],
    // An empty assignment resets the list.
    ["ConditionPathExists=/nope\nConditionPathExists=", true],
  ];
  for (const [lines, ok] of table) test(`${lines.replaceAll("\n", " + ")} → ${ok}`, () => expect(check(lines).ok).toBe(ok));

  test("the failed check is named; unknown ones are reported and taken as met", () => {
    expect(check("ConditionPathExists=/etc/full\nConditionFileNotEmpty=/etc/empty")).toEqual({ ok: false, failed: "ConditionFileNotEmpty=/etc/empty", unsupported: [] });
    expect(check("ConditionVirtualization=container")).toEqual({ ok: true, unsupported: ["ConditionVirtualization=container"] });
  });

  test("Assert*= is its own family", () => {
    expect(check("AssertPathExists=/nope").ok).toBe(true);
    expect(check("AssertPathExists=/nope", "Assert")).toMatchObject({ ok: false, failed: "AssertPathExists=/nope" });
  });

  test("hostname globs", () => {
    expect(globMatch("node-?", "node-1")).toBe(true);
    expect(globMatch("node.x", "nodeAx")).toBe(false);
  });
});
