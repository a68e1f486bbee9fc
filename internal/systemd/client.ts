// The supervisor back end as cloud-config sees it: files are written straight into the unit
// directories (the daemon reads the same tree systemd would), and what needs the running
// supervisor (reload, start/stop, status, journal) goes over its control socket.
import type { Placement, UnitCommand, UnitManager, UnitStatus } from "./manager.ts";
import { call, ControlError, NotRunningError, type JournalEntry } from "./control.ts";
import { enableUnitFiles, maskUnitFile, systemDirs, unmaskUnitFile, writeDropInFile, writeUnitFile } from "./paths.ts";
import { logger } from "../log/log.ts";

const log = logger("supervisor");

export interface ClientOptions {
  socket: string;
  /** Where unit files are written ("/" for the host). */
  root?: string;
}

export class SupervisorClient implements UnitManager {
  readonly kind = "supervisor" as const;
  readonly socket: string;
  readonly root: string;

  constructor(o: ClientOptions) {
    this.socket = o.socket;
    this.root = o.root ?? "/";
  }

  async writeUnit(name: string, content: string, where: Placement): Promise<void> {
    writeUnitFile(this.root, name, content, where);
  }

  async writeDropIn(unit: string, dropIn: string, content: string, where: Placement): Promise<void> {
    writeDropInFile(this.root, unit, dropIn, content, where);
  }

  async mask(name: string, where: Placement): Promise<void> {
    maskUnitFile(this.root, name, where);
  }

  async unmask(name: string, where: Placement): Promise<void> {
    unmaskUnitFile(this.root, name, where);
  }

  /** The same links systemctl would make; `serve` starts what multi-user.target wants at boot. */
  async enable(names: readonly string[], where: Placement = { runtime: false }): Promise<void> {
    for (const name of names) {
      const r = enableUnitFiles(systemDirs(this.root), name, where);
      for (const w of r.warnings) log.warn(`${name}: ${w}`);
    }
  }

  /**
   * Without a running supervisor there is nothing loaded to refresh: `serve` reads the files when
   * it starts (cloud-config may run before it, e.g. in a container's entry point).
   */
  async daemonReload(): Promise<void> {
    try {
      await call(this.socket, { method: "daemon-reload" });
    } catch (e) {
      if (!(e instanceof NotRunningError)) throw e;
    }
  }

  /**
   * Queues the job without waiting, like the systemd back end's `systemctl --no-block` (and
   * coreos-cloudinit's D-Bus StartUnit): cloud-config behaves the same on both. Refusals (unknown
   * or masked unit, reload not applicable) are errors; how the job ends is in the unit's journal.
   */
  async run(command: UnitCommand, name: string): Promise<void> {
    await call(this.socket, { method: "run", command, unit: name, noBlock: true });
  }

  /** Waits for the job, as `systemctl start` does; a failed job is an error with systemctl's words. */
  async runAndWait(command: UnitCommand, name: string): Promise<void> {
    const a = await call(this.socket, { method: "run", command, unit: name });
    if (a.result && a.result !== "done") throw new ControlError("failed", jobFailure(command, name, a.result));
  }

  async status(name: string): Promise<UnitStatus> {
    const a = await call(this.socket, { method: "status", unit: name });
    if (!a.status) throw new Error(`${this.socket}: status answer without a status`);
    return a.status;
  }

  async resetFailed(name: string): Promise<void> {
    await call(this.socket, { method: "reset-failed", unit: name });
  }

  async list(): Promise<UnitStatus[]> {
    return (await call(this.socket, { method: "list" })).units ?? [];
  }

  async journalEntries(name: string, lines?: number): Promise<JournalEntry[]> {
    return (await call(this.socket, { method: "journal", unit: name, ...(lines !== undefined ? { lines } : {}) })).entries ?? [];
  }

  async journal(name: string, lines?: number): Promise<string[]> {
    return (await this.journalEntries(name, lines)).map((e) => e.message);
  }
}

/** systemctl's message for a job that did not end "done". */
export function jobFailure(command: string, name: string, result: string): string {
  const verb = command.replace(/-/g, " ");
  if (result === "canceled") return `Job for ${name} canceled.`;
  if (result === "timeout") return `Job for ${name} timed out.`;
  return `Job for ${name} failed (${verb}). See "coreos supervisor status ${name}" and "coreos supervisor journal ${name}" for details.`;
}
