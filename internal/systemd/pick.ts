// Which unit manager a command uses when nobody says: an offline root is systemd's layout written
// for a later boot; a running systemd announces itself with /run/systemd/system (sd_booted(3));
// anything else is run by coreos's own supervisor.
import { existsSync } from "node:fs";
import type { UnitManager } from "./manager.ts";
import { SystemdManager } from "./systemctl.ts";
import { SupervisorClient } from "./client.ts";
import { supervisorSocket } from "./control.ts";

export function pickManager(opts: { root?: string; socket?: string }): UnitManager {
  if (opts.root && opts.root !== "/") return new SystemdManager({ root: opts.root });
  if (existsSync("/run/systemd/system")) return new SystemdManager();
  return new SupervisorClient({ socket: supervisorSocket(opts.socket) });
}
