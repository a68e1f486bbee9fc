// locksmithctl's commands (B2): output formats, error lines and exit codes of the original.
import type { Bus } from "../dbus/bus.ts";
import { STATUS_SIGNATURE, statusBody, UPDATE1_INTERFACE, UPDATE1_PATH } from "../dbus/update1.ts";
import { emitStatus, NEED_REBOOT, StatusServer } from "../update/status.ts";
import type { EtcdLock } from "./etcdlock.ts";
import { type Semaphore } from "./semaphore.ts";

export interface CtlIO {
  out(s: string): void;
  err(s: string): void;
}

export interface CtlContext {
  io: CtlIO;
  open(): Promise<EtcdLock>;
  /** Defaults to /etc/machine-id. */
  machineId(): string;
  isRoot(): boolean;
  /** The host's reboot (host.ts reboot with the flags' options). */
  reboot(): Promise<void>;
  /** The system bus, or null where none runs (then the control socket is used). */
  systemBus(): Promise<Bus | null>;
  updateSocket: string;
  /** send-need-reboot's pause before exiting (1s, as the original). */
  sendPauseMs?: number;
}

export const CTL_USAGE = `Usage: locksmithctl [global flags] <command> [command flags]

Manage the cluster reboot lock.

Commands:
  help              Show a list of commands or help for one command
  reboot            Reboot honoring reboot locks.
  send-need-reboot  Send a 'need reboot' signal to locksmithd
  set-max           Set the maximum number of lock holders
  status            Get the status of the cluster wide reboot lock.
  unlock            Unlock this machine or a given machine-id in the cluster wide reboot lock.
  lock              Lock this machine or a given machine-id in the cluster wide reboot lock.

Global flags:
  -endpoint, -etcd-cafile, -etcd-certfile, -etcd-keyfile, -etcd-username, -etcd-password,
  -group, -debug, -version (each also LOCKSMITHCTL_<FLAG>)
`;

const HELP: Record<string, string> = {
  status: "Usage: locksmithctl status\n\nStatus will return the number of locks that are held and available and a list of the holders.\n",
  lock: "Usage: locksmithctl lock [machine-id]\n\nLock is for manual locking of the reboot lock for this machine or a given machine-id.\n",
  unlock: "Usage: locksmithctl unlock [machine-id]\n\nUnlock is for manual unlocking of the reboot lock for this machine or a given machine-id.\n",
  "set-max": "Usage: locksmithctl set-max <max>\n\nSet-Max sets the maximum number of hosts that can hold the reboot lock.\n",
  reboot: "Usage: locksmithctl reboot\n\nReboot takes the reboot lock for this machine and reboots. The lock is released by locksmithd after boot.\n",
  "send-need-reboot": "Usage: locksmithctl send-need-reboot\n\nEmits StatusUpdate(UPDATE_STATUS_UPDATED_NEED_REBOOT) on the system bus, or through the update engine's control socket where there is no bus (for testing).\n",
};

async function withClient(ctx: CtlContext, f: (l: EtcdLock) => Promise<number>): Promise<number> {
  let lock: EtcdLock;
  try {
    lock = await ctx.open();
  } catch (e) {
    ctx.io.err(`Error initializing etcd client: ${(e as Error).message}\n`);
    return 1;
  }
  return f(lock);
}

export function formatStatus(s: Semaphore): string {
  let out = `Available: ${s.semaphore}\nMax: ${s.max}\n`;
  const holders = s.holders ?? [];
  if (holders.length > 0) out += `\nMACHINE ID\n${holders.map((h) => `${h}\n`).join("")}`;
  return out;
}

/** strconv.Atoi: optional sign, decimal digits, within int64. */
function atoi(s: string): number | null {
  if (!/^[+-]?[0-9]+$/.test(s)) return null;
  const n = Number(s);
  return Number.isSafeInteger(n) ? n : null;
}

export async function runCtlCommand(ctx: CtlContext, cmd: string | undefined, args: string[]): Promise<number> {
  const { io } = ctx;
  switch (cmd) {
    case undefined:
    case "help": {
      const topic = args[0];
      if (topic !== undefined && HELP[topic]) io.out(HELP[topic]);
      else io.out(CTL_USAGE);
      return 0;
    }
    case "status":
      return withClient(ctx, async (l) => {
        try {
          io.out(formatStatus((await l.get()).sem));
          return 0;
        } catch (e) {
          io.err(`Error getting semaphore: ${(e as Error).message}\n`);
          return 1;
        }
      });
    case "lock":
    case "unlock": {
      const id = args[0] ?? ctx.machineId();
      return withClient(ctx, async (l) => {
        try {
          if (cmd === "lock") await l.lock(id);
          else await l.unlock(id);
          return 0;
        } catch (e) {
          io.err(`Error ${cmd === "lock" ? "locking" : "unlocking"}: ${(e as Error).message}\n`);
          return 1;
        }
      });
    }
    case "set-max": {
      if (args.length !== 1) {
        io.err(HELP["set-max"]!);
        return 2;
      }
      const n = atoi(args[0]!);
      if (n === null) {
        io.err(`Invalid maximum value: ${args[0]}\n`);
        return 1;
      }
      return withClient(ctx, async (l) => {
        try {
          const { before, after } = await l.setMax(n);
          io.out(`Old-Max: ${before.max}\nMax: ${after.max}\n`);
          return 0;
        } catch (e) {
          io.err(`Error setting value: ${(e as Error).message}\n`);
          return 1;
        }
      });
    }
    case "reboot": {
      if (!ctx.isRoot()) {
        io.err("Must be root to initiate reboot.\n");
        return 1;
      }
      return withClient(ctx, async (l) => {
        try {
          await l.lock(ctx.machineId());
        } catch (e) {
          io.err(`Error locking: ${(e as Error).message}\n`);
          return 1;
        }
        // Never unlocks: locksmithd does that after boot.
        try {
          await ctx.reboot();
          return 0;
        } catch (e) {
          io.err(`Error rebooting: ${(e as Error).message}\n`);
          return 1;
        }
      });
    }
    case "send-need-reboot":
      return sendNeedReboot(ctx);
    default:
      io.err(`locksmithctl: unknown subcommand: ${JSON.stringify(cmd)}\nRun 'locksmithctl help' for usage.\n`);
      return 2;
  }
}

/**
 * As the original: StatusUpdate(0, 0, NEED_REBOOT, "", 0) from /com/coreos/update1 on the system
 * bus. Where there is no bus the signal goes through the update engine's control socket to its
 * subscribers; with no engine listening there either, this command serves that status on the
 * socket itself for the pause, so a locksmithd that (re)connects meanwhile still hears it.
 */
async function sendNeedReboot(ctx: CtlContext): Promise<number> {
  const pause = ctx.sendPauseMs ?? 1000;
  let bus: Bus | null;
  try {
    bus = await ctx.systemBus();
  } catch (e) {
    ctx.io.err(`Error connecting to the system bus: ${(e as Error).message}\n`);
    return 1;
  }
  if (bus !== null) {
    try {
      bus.emit({ path: UPDATE1_PATH, interface: UPDATE1_INTERFACE, member: "StatusUpdate", signature: STATUS_SIGNATURE, body: statusBody(NEED_REBOOT) });
      await bus.flush();
      await Bun.sleep(pause);
      return 0;
    } catch (e) {
      ctx.io.err(`Error sending need-reboot: ${(e as Error).message}\n`);
      return 1;
    } finally {
      bus.close();
    }
  }
  try {
    await emitStatus(ctx.updateSocket, NEED_REBOOT, AbortSignal.timeout(5000));
    await Bun.sleep(pause);
    return 0;
  } catch {
    // nobody serving: become the server for the pause
  }
  const server = new StatusServer(ctx.updateSocket, NEED_REBOOT);
  try {
    await server.start();
  } catch (e) {
    ctx.io.err(`Error sending need-reboot: ${(e as Error).message}\n`);
    return 1;
  }
  await Bun.sleep(pause);
  await server.close();
  return 0;
}
