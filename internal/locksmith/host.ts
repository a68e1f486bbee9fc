// What locksmith touches on the machine: the machine id, the coordinator state file, logged-in
// users' terminals, and the reboot itself (login1 on a systemd host).
import { closeSync, constants, existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { systemBus, type Bus } from "../dbus/bus.ts";
import { logger } from "../log/log.ts";
import { tryLockExclusive } from "../flock/flock.ts";

const log = logger("locksmith");

export const MACHINE_ID_FILE = "/etc/machine-id";
export const COORDINATOR_FILE = "/run/update-engine/coordinator.conf";

export function machineId(file = MACHINE_ID_FILE): string {
  return readFileSync(file, "utf8").trim();
}

export type CoordinatorState = "starting" | "running" | "reboot-planned" | "rebooting";

export class CoordinatorLockedError extends Error {}

/**
 * NAME/STRATEGY/STATE for other tools to read, under an exclusive flock for as long as the daemon
 * runs (B3, locksmith's pkg/filelock): a second locksmithd fails to take it instead of fighting
 * over the reboot. Each update is written to a temp file that is locked first and then renamed
 * over the old one, so the path is never without a lock and a reader never sees half a file.
 */
export class CoordinatorFile {
  private fd = -1;

  constructor(
    readonly path: string,
    private readonly strategy: string,
  ) {}

  /** Creates and locks the file; throws CoordinatorLockedError when another process holds it. */
  private lock(): void {
    mkdirSync(dirname(this.path), { recursive: true });
    const fd = openSync(this.path, constants.O_RDONLY | constants.O_CREAT, 0o644);
    if (!tryLockExclusive(fd)) {
      closeSync(fd);
      throw new CoordinatorLockedError(`${this.path}: file already locked (is another locksmithd running?)`);
    }
    this.fd = fd;
  }

  /** The first update takes the lock (and fails when another process holds it). */
  update(state: CoordinatorState): void {
    if (this.fd < 0) this.lock();
    const tmp = join(dirname(this.path), `.${basename(this.path)}.${process.pid}`);
    writeFileSync(tmp, `NAME=locksmithd\nSTRATEGY=${this.strategy}\nSTATE=${state}\n`, { mode: 0o644 });
    const fd = openSync(tmp, constants.O_RDONLY);
    try {
      if (!tryLockExclusive(fd)) throw new Error(`${tmp}: could not lock the new state file`);
      renameSync(tmp, this.path);
    } catch (e) {
      closeSync(fd);
      rmSync(tmp, { force: true });
      throw e;
    }
    closeSync(this.fd);
    this.fd = fd;
  }

  close(): void {
    if (this.fd < 0) return;
    closeSync(this.fd);
    this.fd = -1;
  }
}

/** A systemd host: /run/systemd/system exists under `root` (sd_booted's test; tests give a temp root). */
export function isSystemdHost(root = "/"): boolean {
  return existsSync(join(root, "run/systemd/system"));
}

export interface RebootOptions {
  /** Run by /bin/sh instead of the host's reboot; "" = none. */
  command: string;
  /** Root under which /run/systemd/system is looked for. */
  root: string;
  env?: Record<string, string | undefined>;
}

const LOGIN1 = { destination: "org.freedesktop.login1", path: "/org/freedesktop/login1", interface: "org.freedesktop.login1.Manager" };

/**
 * The reboot: a configured command (run by /bin/sh) where one is given; on a systemd host,
 * login1's Manager.Reboot(false) on the system bus as the original does, or `systemctl reboot`
 * when that bus or logind is not there.
 */
export async function reboot(o: RebootOptions): Promise<void> {
  let argv: string[];
  if (o.command !== "") argv = ["/bin/sh", "-c", o.command];
  else if (isSystemdHost(o.root)) {
    const why = await login1Reboot(o.env ?? process.env);
    if (why === null) return;
    log.warn(`login1 Reboot failed (${why}); running systemctl reboot`);
    argv = ["systemctl", "reboot"];
  } else throw new Error("no way to reboot: not a systemd host and no --reboot-command given");
  const p = Bun.spawn(argv, { stdin: "ignore", stdout: "inherit", stderr: "inherit" });
  const code = await p.exited;
  if (code !== 0) throw new Error(`${argv.join(" ")} exited with ${code}`);
}

/** null once logind has accepted the reboot, else why not. */
async function login1Reboot(env: Record<string, string | undefined>): Promise<string | null> {
  let bus: Bus | null;
  try {
    bus = await systemBus(env);
  } catch (e) {
    return (e as Error).message;
  }
  if (bus === null) return "no system bus";
  try {
    await bus.call({ ...LOGIN1, member: "Reboot", signature: "b", body: [false] });
    return null;
  } catch (e) {
    return (e as Error).message;
  } finally {
    bus.close();
  }
}

const UTMP_FILE = "/var/run/utmp";
const UTMP_RECORD = 384; // glibc struct utmp on 64-bit Linux
const USER_PROCESS = 7;

/** The ttys of logged-in users, from utmp (ut_type at 0, ut_line[32] at 8). */
export function loggedInTtys(data: Uint8Array): string[] {
  const ttys: string[] = [];
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  for (let off = 0; off + UTMP_RECORD <= data.byteLength; off += UTMP_RECORD) {
    if (view.getInt16(off, true) !== USER_PROCESS) continue;
    const line = data.subarray(off + 8, off + 40);
    const end = line.indexOf(0);
    const name = new TextDecoder().decode(end === -1 ? line : line.subarray(0, end));
    if (name !== "" && !name.includes("/..") && !name.startsWith("..")) ttys.push(name);
  }
  return ttys;
}

/** Writes `message` to every logged-in user's tty; returns how many took it. */
export function wall(message: string, utmp = UTMP_FILE): number {
  let data: Uint8Array;
  try {
    data = readFileSync(utmp);
  } catch {
    return 0;
  }
  let reached = 0;
  for (const tty of loggedInTtys(data)) {
    try {
      // Non-blocking: a user's stuck terminal must not stall the reboot.
      const fd = openSync(`/dev/${tty}`, constants.O_WRONLY | constants.O_NOCTTY | constants.O_NONBLOCK);
      try {
        writeSync(fd, message.replaceAll("\n", "\r\n"));
        reached++;
      } finally {
        closeSync(fd);
      }
    } catch {
      // gone or not ours: skip
    }
  }
  return reached;
}
