// The systemd back end: a host whose PID 1 is systemd, driven through systemctl and journalctl;
// or, with a root directory, an offline tree (an image being built, a test) that systemd will boot
// later. Files are written by us in both cases (the same tree cloud-config writes for the
// supervisor); enable goes through `systemctl --root`, which needs no running systemd.
import type { Placement, UnitCommand, UnitManager, UnitStatus } from "./manager.ts";
import { enableUnitFiles, findFragment, maskUnitFile, systemDirs, unmaskUnitFile, writeDropInFile, writeUnitFile } from "./paths.ts";
import { logger } from "../log/log.ts";

const log = logger("systemd");

export interface SystemdOptions {
  /** An offline tree instead of the running system. */
  root?: string;
  /** Program names (tests point them elsewhere). */
  systemctl?: string;
  journalctl?: string;
}

export interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a program to completion; a missing program is code 127 like a shell says. */
export async function runProgram(argv: string[]): Promise<Ran> {
  let proc;
  try {
    proc = Bun.spawn(argv, { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  } catch (e) {
    return { code: 127, stdout: "", stderr: `${argv[0]}: ${(e as Error).message}` };
  }
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { code, stdout, stderr };
}

function failure(argv: string[], r: Ran): Error {
  const msg = r.stderr.trim().split("\n").filter(Boolean).pop() ?? `exit status ${r.code}`;
  return new Error(`${argv.join(" ")}: ${msg}`);
}

export class SystemdManager implements UnitManager {
  readonly kind = "systemd" as const;
  readonly root: string | undefined;
  private readonly systemctl: string;
  private readonly journalctl: string;
  /**
   * Commands asked of an offline root. Starting a unit of an image being built would start it on
   * the build host, so nothing runs; they are kept here (and logged) for the caller to report.
   */
  readonly skipped: { command: UnitCommand; name: string }[] = [];

  constructor(o: SystemdOptions = {}) {
    this.root = o.root && o.root !== "/" ? o.root : undefined;
    this.systemctl = o.systemctl ?? "systemctl";
    this.journalctl = o.journalctl ?? "journalctl";
  }

  private get fsRoot(): string {
    return this.root ?? "/";
  }

  private async ctl(args: string[]): Promise<Ran> {
    const argv = [this.systemctl, ...(this.root ? [`--root=${this.root}`] : []), ...args];
    const r = await runProgram(argv);
    if (r.code !== 0) throw failure(argv, r);
    return r;
  }

  async writeUnit(name: string, content: string, where: Placement): Promise<void> {
    writeUnitFile(this.fsRoot, name, content, where);
  }

  async writeDropIn(unit: string, dropIn: string, content: string, where: Placement): Promise<void> {
    writeDropInFile(this.fsRoot, unit, dropIn, content, where);
  }

  // Masking by hand, as coreos-cloudinit does: `systemctl mask` refuses when a unit file already
  // sits at the destination, and cloud-config's mask must replace it.
  async mask(name: string, where: Placement): Promise<void> {
    maskUnitFile(this.fsRoot, name, where);
  }

  async unmask(name: string, where: Placement): Promise<void> {
    unmaskUnitFile(this.fsRoot, name, where);
  }

  async enable(names: readonly string[], where: Placement = { runtime: false }): Promise<void> {
    if (names.length === 0) return;
    // An offline root on a machine without systemctl (a container building an image): the same
    // links from our own reading of [Install].
    if (this.root && !Bun.which(this.systemctl)) {
      for (const name of names) {
        const r = enableUnitFiles(systemDirs(this.root), name, where);
        for (const w of r.warnings) log.warn(`${name}: ${w}`);
      }
      return;
    }
    await this.ctl([...(where.runtime ? ["--runtime"] : []), "enable", "--force", ...names]);
  }

  /** Offline: nothing has the old files loaded, so there is nothing to reload (the next boot reads them). */
  async daemonReload(): Promise<void> {
    if (this.root) return;
    await this.ctl(["daemon-reload"]);
  }

  /**
   * `systemctl --no-block`: the job is queued and not waited for, as coreos-cloudinit's D-Bus
   * StartUnit(mode "replace") did. Waiting could deadlock at boot: cloud-config runs inside a
   * unit, and a unit ordered after it would wait for cloud-config while cloud-config waits for it.
   */
  async run(command: UnitCommand, name: string): Promise<void> {
    if (this.root) {
      this.skipped.push({ command, name });
      log.warn(`${command} ${name}: skipped, ${this.root} is an offline root (no running systemd there)`);
      return;
    }
    await this.ctl(["--no-block", command, name]);
  }

  async status(name: string): Promise<UnitStatus> {
    if (this.root) return offlineStatus(this.root, name);
    const props = "LoadState,ActiveState,SubState,Result,MainPID,NRestarts,Description,FragmentPath,UnitFileState";
    const r = await this.ctl(["show", `--property=${props}`, name]);
    return parseShow(name, r.stdout);
  }

  async journal(name: string, lines = 100): Promise<string[]> {
    // An offline root has no journal of its own worth reading: nothing there has run.
    if (this.root) return [];
    const argv = [this.journalctl, "--no-pager", "-o", "cat", "-n", String(lines), "-u", name];
    const r = await runProgram(argv);
    if (r.code !== 0) throw failure(argv, r);
    return r.stdout.split("\n").filter((l, i, a) => !(l === "" && i === a.length - 1));
  }
}

/** An offline unit is never running; its load state comes from the files. */
function offlineStatus(root: string, name: string): UnitStatus {
  const f = findFragment(systemDirs(root), name);
  const load = f.state === "found" ? "loaded" : f.state;
  return { name, load, active: "inactive", sub: "dead", ...(f.state !== "not-found" ? { path: f.path } : {}) };
}

const ACTIVE = new Set(["active", "reloading", "inactive", "failed", "activating", "deactivating"]);
const LOAD = new Set(["loaded", "not-found", "masked", "error"]);

/** `systemctl show` output (Key=Value lines) as a status. */
export function parseShow(name: string, text: string): UnitStatus {
  const kv = new Map<string, string>();
  for (const line of text.split("\n")) {
    const eq = line.indexOf("=");
    if (eq > 0) kv.set(line.slice(0, eq), line.slice(eq + 1));
  }
  const load = kv.get("LoadState") ?? "not-found";
  const active = kv.get("ActiveState") ?? "inactive";
  const s: UnitStatus = {
    name,
    load: (LOAD.has(load) ? load : "error") as UnitStatus["load"],
    active: (ACTIVE.has(active) ? active : "inactive") as UnitStatus["active"],
    sub: kv.get("SubState") ?? "dead",
  };
  const num = (k: string) => (kv.has(k) && /^[0-9]+$/.test(kv.get(k)!) ? Number(kv.get(k)) : undefined);
  if (kv.get("Description")) s.description = kv.get("Description");
  if (kv.get("FragmentPath")) s.path = kv.get("FragmentPath");
  if (kv.get("Result")) s.result = kv.get("Result");
  if (kv.get("UnitFileState")) s.enabled = kv.get("UnitFileState");
  const pid = num("MainPID");
  if (pid) s.mainPid = pid;
  const restarts = num("NRestarts");
  if (restarts !== undefined) s.restarts = restarts;
  return s;
}
