// update.conf as update_engine reads it (§2.1) and what the engine learns about the machine, plus
// what update_engine_client prints (§2.6).
import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { ConfigError, ConfLookup, defaultPaths, loadHostConfig, parseConf, PRODUCTION_SERVER } from "../../internal/update/conf.ts";
import { formatStatusBlock, progressBar, watchLines } from "../../internal/update/client.ts";
import { cleanup, tempDir } from "../helpers/procs.ts";

const dir = tempDir("coreos-ue-conf-");
afterAll(() => cleanup(dir));

function put(root: string, path: string, text: string): void {
  mkdirSync(dirname(join(root, path)), { recursive: true });
  writeFileSync(join(root, path), text);
}

describe("update.conf syntax", () => {
  test.each([
    ["SERVER=https://x/", "SERVER", "https://x/"],
    ['GROUP="beta"', "GROUP", "beta"],
    ["GROUP='beta'", "GROUP", "beta"],
    [`GROUP="beta'`, "GROUP", `"beta'`],
    ['GROUP=""', "GROUP", ""],
    ['GROUP="', "GROUP", '"'],
    ["GROUP= beta ", "GROUP", " beta "],
    [" GROUP=beta", " GROUP", "beta"],
    ["A=b=c", "A", "b=c"],
    ["GROUP=a\nGROUP=b", "GROUP", "b"],
  ])("%p: %s is %p", (text, key, value) => {
    expect(parseConf(text).get(key)).toBe(value);
  });

  test("lines without = are ignored; nothing is trimmed", () => {
    const m = parseConf("# comment\nSERVER\n\nGROUP=x\r\n");
    expect([...m.entries()]).toEqual([["GROUP", "x\r"]]);
  });

  test("the first file that has a key wins, even with an empty value", () => {
    const l = new ConfLookup(["GROUP=\n", null, "GROUP=stable\nSERVER=s\n"]);
    expect(l.get("GROUP")).toBe("");
    expect(l.get("SERVER")).toBe("s");
    expect(l.get("MISSING")).toBeUndefined();
    expect(new ConfLookup(["FLATCAR_RELEASE_VERSION=2"]).any("COREOS_RELEASE_VERSION", "FLATCAR_RELEASE_VERSION")).toBe("2");
  });
});

describe("the machine", () => {
  test("etc over usr/share over release; oem-release; machine id; defaults", () => {
    const root = join(dir, "a");
    put(root, "usr/share/coreos/update.conf", "SERVER=https://public.update.core-os.net/v1/update/\nGROUP=stable\n");
    put(root, "usr/share/coreos/release", "COREOS_RELEASE_VERSION=4152.2.0\nCOREOS_RELEASE_BOARD=amd64-usr\nGROUP=release-group\n");
    put(root, "etc/coreos/update.conf", "GROUP=beta\nMACHINE_ALIAS=db-1\n");
    put(root, "etc/machine-id", "0b2c6f1f4d7e4a9c8f3e2d1c0b9a8f7e\n");
    put(root, "usr/share/oem/oem-release", "ID=qemu\nVERSION_ID=0.1\n");
    put(root, "etc/oem-release", "ID=ec2\n");
    const h = loadHostConfig(defaultPaths(root));
    expect(h).toMatchObject({
      server: PRODUCTION_SERVER,
      group: "beta",
      machineAlias: "db-1",
      version: "4152.2.0",
      board: "amd64-usr",
      appId: "{e96281a6-d1af-4bde-9a0a-97b76e56dc57}",
      oem: "ec2",
      oemVersion: "0.1",
      machineId: "0b2c6f1f4d7e4a9c8f3e2d1c0b9a8f7e",
      devMode: false,
    });
    expect(h.bootId).toMatch(/^\{[0-9a-f-]{36}\}$/);
  });

  test("no release version or no machine id: one clear error", () => {
    const root = join(dir, "b");
    put(root, "etc/machine-id", "x\n");
    expect(() => loadHostConfig(defaultPaths(root))).toThrow(ConfigError);
    expect(() => loadHostConfig(defaultPaths(root))).toThrow(/no COREOS_RELEASE_VERSION/);
    const root2 = join(dir, "c");
    put(root2, "usr/share/coreos/release", "COREOS_RELEASE_VERSION=1\n");
    expect(() => loadHostConfig(defaultPaths(root2))).toThrow(/machine-id: missing or empty/);
  });

  test("/root/.dev_mode makes a test image", () => {
    const root = join(dir, "d");
    put(root, "usr/share/coreos/release", "COREOS_RELEASE_VERSION=1\n");
    put(root, "etc/machine-id", "m\n");
    put(root, "root/.dev_mode", "");
    expect(loadHostConfig(defaultPaths(root)).devMode).toBe(true);
  });
});

describe("update_engine_client output", () => {
  const s = { last_checked_time: 1715600000, progress: 0.4567, current_operation: "UPDATE_STATUS_DOWNLOADING", new_version: "4230.2.0", new_size: 123456 };
  test("-status block", () => {
    expect(formatStatusBlock(s)).toBe("LAST_CHECKED_TIME=1715600000\nPROGRESS=0.456700\nCURRENT_OP=UPDATE_STATUS_DOWNLOADING\nNEW_VERSION=4230.2.0\nNEW_SIZE=123456\n");
  });
  test("-watch_for_updates lines", () => {
    expect(watchLines(s)).toBe(
      "Got status update:\n  last_checked_time: 1715600000\n  progress: 0.4567\n  current_operation: UPDATE_STATUS_DOWNLOADING\n  new_version: 4230.2.0\n  new_size: 123456\n",
    );
  });
  test.each([
    [0, "[..............................]   0%"],
    [0.4567, "[##############................]  45%"],
    [1, "[##############################] 100%"],
  ])("progress bar at %p", (progress, bar) => {
    expect(progressBar({ ...s, progress })).toStartWith(`${bar} DOWNLOADING`);
  });
});
