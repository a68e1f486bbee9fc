// The unit manager: what cloud-config (and later fleet) asks of an init system, with two back ends
// behind it: systemd (a host whose PID 1 is systemd, or `--root DIR` for an offline tree) and
// coreos's own supervisor (hosts and containers without systemd).
//
// This file is the contract between the unit layer and its users; the back ends live beside it.

/** systemd's ActiveState values. */
export type ActiveState = "active" | "reloading" | "inactive" | "failed" | "activating" | "deactivating";

/** What `systemctl show -p LoadState,ActiveState,SubState` reports, and the supervisor mirrors. */
export interface UnitStatus {
  name: string;
  load: "loaded" | "not-found" | "masked" | "error";
  active: ActiveState;
  /** `running`, `dead`, `exited`, `failed`, `auto-restart`, ... as systemd names them. */
  sub: string;
  /** The rest is what a back end knows beyond the three states (systemctl show's names in comments). */
  /** Description= */
  description?: string;
  /** FragmentPath= (inside the root). */
  path?: string;
  /** Result=: `success`, `exit-code`, `signal`, `core-dump`, `timeout`, `resources`, `start-limit-hit`. */
  result?: string;
  /** MainPID= (absent when none runs). */
  mainPid?: number;
  /** ExecMainPID=/ExecMainStatus= of the last main process that ended: `code=exited, status=1/FAILURE`. */
  lastExit?: { pid?: number; status: string };
  /** NRestarts=: automatic restarts since the unit was loaded. */
  restarts?: number;
  /** Unix ms of the last change of `active` (ActiveEnterTimestamp / InactiveEnterTimestamp). */
  since?: number;
  /** UnitFileState=: `enabled`, `disabled`, `static`, ... */
  enabled?: string;
}

/** The verbs a cloud-config unit's `command:` may name (coreos-cloudinit passes them to systemd). */
export type UnitCommand = "start" | "stop" | "restart" | "reload" | "try-restart" | "reload-or-restart" | "reload-or-try-restart";

export interface Placement {
  /** Under /run/systemd/system (gone at reboot) instead of /etc/systemd/system. */
  runtime: boolean;
}

export interface UnitManager {
  readonly kind: "systemd" | "supervisor";
  /** Writes the unit file atomically (temp file in the same directory, then rename). */
  writeUnit(name: string, content: string, where: Placement): Promise<void>;
  /** Writes `<unit>.d/<dropIn>` (dropIn ends in .conf) atomically. */
  writeDropIn(unit: string, dropIn: string, content: string, where: Placement): Promise<void>;
  /** Links the unit to /dev/null, as `systemctl mask` does. */
  mask(name: string, where: Placement): Promise<void>;
  unmask(name: string, where: Placement): Promise<void>;
  /**
   * Follows the units' [Install] sections, as `systemctl enable` does (`--runtime` when
   * where.runtime). Several names at once: one systemctl run serves them all.
   */
  enable(names: readonly string[], where?: Placement): Promise<void>;
  /** Re-reads unit files; cloud-config calls it once after writing every unit. */
  daemonReload(): Promise<void>;
  /**
   * Queues the job and returns without waiting for it (systemctl --no-block; coreos-cloudinit's
   * D-Bus StartUnit did not wait either, and waiting at boot can deadlock on ordering). Refusals
   * (unknown or masked unit, ...) are errors; the job's outcome is in status() and journal().
   */
  run(command: UnitCommand, name: string): Promise<void>;
  status(name: string): Promise<UnitStatus>;
  /** The unit's captured output, oldest first (the supervisor keeps it; systemd asks journalctl). */
  journal(name: string, lines?: number): Promise<string[]>;
}
