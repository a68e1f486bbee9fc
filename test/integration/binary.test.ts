// The multi-call binary itself: help, version, dispatch by program name, one-line errors.
import { expect, test } from "bun:test";
import { join } from "node:path";
import { BIN, DIST } from "../helpers/procs.ts";

function run(cmd: string[]) {
  const r = Bun.spawnSync(cmd, { stdout: "pipe", stderr: "pipe", env: { ...process.env, NO_COLOR: "1" } });
  return { code: r.exitCode, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
}

test("coreos --help lists every subcommand; --version names the etcd API", () => {
  const help = run([BIN, "--help"]);
  expect(help.code).toBe(0);
  for (const tool of ["kv", "ctl", "fleet", "locksmith", "update-engine", "cloudinit"]) expect(help.stdout).toContain(tool);
  const version = run([BIN, "--version"]);
  expect(version.code).toBe(0);
  expect(version.stdout).toContain("etcd API v2");
});

test("every subcommand has --help", () => {
  for (const args of [["kv", "serve", "--help"], ["ctl", "--help"], ["locksmith", "help"], ["fleet", "--help"], ["update-engine", "--help"], ["cloudinit", "--help"]]) {
    const r = run([BIN, ...args]);
    expect({ args, code: r.code }).toEqual({ args, code: 0 });
    expect(r.stdout.length).toBeGreaterThan(20);
  }
  expect(run([BIN, "kv", "serve", "--help"]).stdout).toContain("ETCD_INITIAL_CLUSTER_TOKEN");
});

test("the program name picks the tool", () => {
  expect(run([join(DIST, "etcdctl"), "--help"]).stdout).toContain("etcdctl");
  expect(run([join(DIST, "etcd"), "--help"]).stdout).toContain("coreos kv serve");
  expect(run([join(DIST, "locksmithctl"), "help"]).stdout).toContain("locksmithctl");
});

test("bad input: one readable line on stderr and a non-zero exit", () => {
  for (const [cmd, code, line] of [
    [[BIN, "nope"], 2, 'coreos: unknown command "nope" (try: coreos --help)'],
    [[BIN, "--bogus"], 2, 'coreos: unknown flag "--bogus" (try: coreos --help)'],
    [[join(DIST, "etcd"), "--bogus"], 2, "etcd: flag provided but not defined: -bogus"],
    [[join(DIST, "etcd"), "--election-timeout", "soon"], 2, 'etcd: invalid value "soon" for flag -election-timeout: parse error'],
    [[join(DIST, "fleetctl"), "list-units"], 2, "coreos: fleet is not built yet in this version (0.1.0)"],
  ] as const) {
    const r = run([...cmd]);
    expect({ cmd, code: r.code, stderr: r.stderr }).toEqual({ cmd, code, stderr: `${line}\n` });
  }
});
