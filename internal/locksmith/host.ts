// What locksmith touches on the machine: the machine id, the coordinator state file, logged-in
// users' terminals, and the reboot itself.
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, writeFileSync, writeSync, constants } from "node:fs";
import { dirname } from "node:path";

export const MACHINE_ID_FILE = "/etc/machine-id";
export const COORDINATOR_FILE = "/run/update-engine/coordinator.conf";

export function machineId(file = MACHINE_ID_FILE): string {
  return readFileSync(file, "utf8").trim();
}

export type CoordinatorState = "starting" | "running" | "reboot-planned" | "rebooting";

/**
 * NAME/STRATEGY/STATE for other tools to read. Replaced by rename so a reader never sees half a
 * file; the original also held an flock on it, which Bun cannot take (readers must not rely on it).
 */
export function writeCoordinator(file: string, strategy: string, state: CoordinatorState): void {
  mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.tmp`;
  writeFileSync(tmp, `NAME=locksmithd\nSTRATEGY=${strategy}\nSTATE=${state}\n`);
  renameSync(tmp, file);
}

export function isSystemdHost(): boolean {
  return existsSync("/run/systemd/system");
}

/**
 * The reboot: a configured command (run by /bin/sh) where one is given, else `systemctl reboot`
 * on a systemd host; login1's Reboot needs a system bus this userland does not assume.
 */
export async function reboot(command: string): Promise<void> {
  let argv: string[];
  if (command !== "") argv = ["/bin/sh", "-c", command];
  else if (isSystemdHost()) argv = ["systemctl", "reboot"];
  else throw new Error("no way to reboot: not a systemd host and no --reboot-command given");
  const p = Bun.spawn(argv, { stdin: "ignore", stdout: "inherit", stderr: "inherit" });
  const code = await p.exited;
  if (code !== 0) throw new Error(`${argv.join(" ")} exited with ${code}`);
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
