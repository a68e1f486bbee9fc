// What update_engine knows about the machine (spec §2.1, §1.2): update.conf and release keys with
// the original's lookup rule, OEM release, machine id, boot id. Reading files is the edge; the
// parsing and the lookup are pure.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { COREOS_APP_ID } from "../omaha/index.ts";

/** The compiled-in production server; any other SERVER marks error codes with TestOmahaUrlFlag. */
export const PRODUCTION_SERVER = "https://public.update.core-os.net/v1/update/";

/** Every path the engine reads or writes, relative to a root so tests run on a directory tree. */
export interface Paths {
  /** Lookup order of §2.1: the first file that has a key wins. */
  confFiles: string[];
  oemReleaseFiles: string[];
  machineId: string;
  bootId: string;
  prefsDir: string;
  /** Present while an applied update waits for a reboot (on tmpfs, so a reboot removes it). */
  rebootMarker: string;
  /** kured's signal, written with the switch as flatcar-postinst does. */
  rebootRequired: string;
  publicKey: string;
  /** A test image: periodic checks off, payload backoff off, TestImageFlag on codes. */
  devMode: string;
  /** Where the payload module keeps its resume state. */
  downloadStateDir: string;
  /** Where the kernels of the USR slots live (vmlinuz-a, vmlinuz-b): the first that exists. */
  kernelDirs: string[];
}

export function defaultPaths(root = "/"): Paths {
  const r = (p: string) => join(root, p);
  return {
    confFiles: [r("/etc/coreos/update.conf"), r("/usr/share/coreos/update.conf"), r("/usr/share/coreos/release")],
    oemReleaseFiles: [r("/etc/oem-release"), r("/usr/share/oem/oem-release")],
    machineId: r("/etc/machine-id"),
    // The kernel's, also under a test root: it is what identifies this boot.
    bootId: "/proc/sys/kernel/random/boot_id",
    prefsDir: r("/var/lib/update_engine/prefs"),
    rebootMarker: r("/var/run/update_engine_autoupdate_completed"),
    rebootRequired: r("/run/reboot-required"),
    publicKey: r("/usr/share/update_engine/update-payload-key.pub.pem"),
    devMode: r("/root/.dev_mode"),
    downloadStateDir: r("/var/lib/update_engine/download"),
    kernelDirs: [r("/boot/coreos"), r("/boot/flatcar")],
  };
}

/**
 * update.conf syntax as update_engine reads it: split at the first "=", strip one pair of matching
 * surrounding quotes, no trimming, lines without "=" ignored, a later duplicate wins.
 */
export function parseConf(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split("\n")) {
    const eq = line.indexOf("=");
    if (eq === -1) continue;
    let value = line.slice(eq + 1);
    if (value.length >= 2 && (value[0] === '"' || value[0] === "'") && value.at(-1) === value[0]) value = value.slice(1, -1);
    out.set(line.slice(0, eq), value);
  }
  return out;
}

/** Keys looked up file by file: the first file that has the key wins (missing files are skipped). */
export class ConfLookup {
  private readonly files: Map<string, string>[];
  constructor(texts: (string | null)[]) {
    this.files = texts.filter((t): t is string => t !== null).map(parseConf);
  }
  get(key: string): string | undefined {
    for (const f of this.files) if (f.has(key)) return f.get(key);
    return undefined;
  }
  /** The first of several spellings (COREOS_RELEASE_* before FLATCAR_RELEASE_*). */
  any(...keys: string[]): string | undefined {
    for (const k of keys) {
      const v = this.get(k);
      if (v !== undefined) return v;
    }
    return undefined;
  }
}

function readOrNull(path: string): string | null {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return null;
  }
}

/** What the engine puts into its requests and how it reaches the server. */
export interface HostConfig {
  server: string;
  group: string;
  machineAlias: string;
  downloadUser: string;
  downloadPassword: string;
  version: string;
  board: string;
  appId: string;
  oem: string;
  oemVersion: string;
  machineId: string;
  /** With braces. */
  bootId: string;
  /** `uname -m`. */
  arch: string;
  devMode: boolean;
}

export class ConfigError extends Error {}

export function unameMachine(arch: string = process.arch): string {
  return ({ x64: "x86_64", arm64: "aarch64", ia32: "i686", arm: "armv7l", ppc64: "ppc64le", s390x: "s390x", riscv64: "riscv64" } as Record<string, string>)[arch] ?? arch;
}

export function loadHostConfig(paths: Paths): HostConfig {
  const conf = new ConfLookup(paths.confFiles.map(readOrNull));
  const oem = new ConfLookup(paths.oemReleaseFiles.map(readOrNull));
  const version = conf.any("COREOS_RELEASE_VERSION", "FLATCAR_RELEASE_VERSION");
  if (version === undefined || version === "") {
    throw new ConfigError(`no COREOS_RELEASE_VERSION in ${paths.confFiles.join(", ")}: the running version is unknown`);
  }
  const machineId = readOrNull(paths.machineId)?.trim() ?? "";
  if (machineId === "") throw new ConfigError(`${paths.machineId}: missing or empty (the machine id goes into every request)`);
  const bootId = readOrNull(paths.bootId)?.trim() ?? "";
  return {
    server: conf.get("SERVER") ?? PRODUCTION_SERVER,
    group: conf.get("GROUP") ?? "stable",
    machineAlias: conf.get("MACHINE_ALIAS") ?? "",
    downloadUser: conf.get("DOWNLOAD_USER") ?? "",
    downloadPassword: conf.get("DOWNLOAD_PASSWORD") ?? "",
    version,
    board: conf.any("COREOS_RELEASE_BOARD", "FLATCAR_RELEASE_BOARD") ?? "",
    appId: conf.any("COREOS_RELEASE_APPID", "FLATCAR_RELEASE_APPID") ?? COREOS_APP_ID,
    oem: oem.get("ID") ?? "",
    oemVersion: oem.get("VERSION_ID") ?? "",
    machineId,
    bootId: bootId === "" ? "" : `{${bootId}}`,
    arch: unameMachine(),
    devMode: existsSync(paths.devMode),
  };
}
