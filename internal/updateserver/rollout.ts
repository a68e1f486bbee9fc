// What one `<app>` of an Omaha request does to the server's state (§5.2): register the instance,
// apply its events, and answer its update check under the group's rollout policy. Runs inside the
// caller's transaction; the caller answers the machine only after the commit.
import type { Statement } from "bun:sqlite";
import { decodeErrorCode } from "../omaha/index.ts";
import { ActivityClass, Severity, Status, type Arch, type Group, type Package } from "./model.ts";
import { decide, REFUSAL_STATUS, type RolloutStats } from "./policy.ts";
import { DEFAULT_APP_ID, normalizeAppId, type Store } from "./store.ts";
import { compareVersions } from "./version.ts";

export interface OmahaEvent {
  type: number;
  result: number;
  errorCode: number | null;
  previousVersion: string | null;
}

/** The parts of a request `<app>` (and its `<request>`) the server uses. */
export interface AppRequest {
  appId: string;
  version: string;
  track: string;
  machineId: string;
  machineAlias: string;
  oem: string;
  oemVersion: string;
  alephVersion: string;
  arch: Arch;
  ip: string;
  ping: boolean;
  updateCheck: boolean;
  events: OmahaEvent[];
}

export type UpdateCheckOutcome =
  | { status: "noupdate" }
  | { status: "ok"; pkg: Package }
  | { status: "error-internal" };

export interface AppOutcome {
  appId: string;
  /** `ok`, or one of Nebraska's `error-*` app statuses. */
  appStatus: string;
  ping: boolean;
  events: number;
  updateCheck: UpdateCheckOutcome | null;
  /** Nebraska stops at the first app it cannot route. */
  stop: boolean;
}

/** Nebraska's answer when the app or the (track, arch) group is unknown: one generic status. */
export const UNROUTABLE_STATUS = "error-failedToRetrieveUpdatePackageInfo";


interface InstanceState {
  group_id: string;
  version: string;
  status: number;
  last_update_granted_ts: number | null;
  last_update_version: string | null;
  update_in_progress: number;
}

/**
 * The group UUIDs CoreOS clients were configured with before groups had track names (Nebraska
 * maps them the same way): GROUP=<uuid> in update.conf reaches the group with that track name.
 */
export const LEGACY_GROUP_TRACKS: Readonly<Record<string, string>> = {
  // amd64
  "5b810680-e36a-4879-b98a-4f989e80b899": "alpha",
  "3fe10490-dd73-4b49-b72a-28ac19acfcdc": "beta",
  "9a2deb70-37be-4026-853f-bfdd6b347bbe": "stable",
  "72834a2b-ad86-4d6d-b498-e08a19ebe54e": "edge",
  // arm64
  "e641708d-fb48-4260-8bdf-ba2074a1147a": "alpha",
  "d112ec01-ba34-4a9e-9d4b-9814a685f266": "beta",
  "11a585f6-9418-4df0-8863-78b2fd3240f8": "stable",
  "b4b2fa22-c1ea-498c-a8ac-c1dc0b1d7c17": "edge",
};

/** Architecture from `app@board` (amd64-usr, arm64-usr), else `os@arch`, else amd64 (as Nebraska). */
export function archOf(board: string, osArch: string): Arch {
  if (board.startsWith("amd64")) return "amd64";
  if (board.startsWith("arm64")) return "aarch64";
  switch (osArch.toLowerCase()) {
    case "arm64":
    case "aarch64":
    case "arm":
      return "aarch64";
    case "x86":
      return "x86";
    default:
      return "amd64";
  }
}

export class Rollout {
  private readonly st: {
    getInstance: Statement;
    insertInstance: Statement;
    updateInstance: Statement;
    getState: Statement;
    insertState: Statement;
    touchState: Statement;
    moveState: Statement;
    setStatus: Statement;
    grant: Statement;
    history: Statement;
    event: Statement;
    stats: Statement;
    offTarget: Statement;
    setRollout: Statement;
    disableGroup: Statement;
    dropTimedOut: Statement;
    completedCount: Statement;
    logged: Statement;
  };

  constructor(private readonly store: Store) {
    const db = store.db;
    this.st = {
      getInstance: db.prepare("SELECT ip, alias, oem, oem_version, aleph_version FROM instance WHERE id = ?"),
      insertInstance: db.prepare("INSERT INTO instance (id, ip, alias, oem, oem_version, aleph_version, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)"),
      updateInstance: db.prepare("UPDATE instance SET ip = ?, alias = ?, oem = ?, oem_version = ?, aleph_version = ? WHERE id = ?"),
      getState: db.prepare(
        "SELECT group_id, version, status, last_update_granted_ts, last_update_version, update_in_progress FROM instance_app WHERE instance_id = ? AND app_id = ?",
      ),
      insertState: db.prepare("INSERT INTO instance_app (instance_id, app_id, group_id, version, status, last_check) VALUES (?, ?, ?, ?, ?, ?)"),
      // Only last_check changes on most checks: no indexed column is written.
      touchState: db.prepare("UPDATE instance_app SET last_check = ? WHERE instance_id = ? AND app_id = ?"),
      moveState: db.prepare("UPDATE instance_app SET group_id = ?, version = ?, last_check = ? WHERE instance_id = ? AND app_id = ?"),
      setStatus: db.prepare("UPDATE instance_app SET status = ?, update_in_progress = ? WHERE instance_id = ? AND app_id = ?"),
      grant: db.prepare(
        "UPDATE instance_app SET status = ?, update_in_progress = 1, last_update_granted_ts = ?, last_update_version = ? WHERE instance_id = ? AND app_id = ?",
      ),
      history: db.prepare(
        "INSERT INTO status_history (instance_id, app_id, group_id, status, version, error_code, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
      ),
      event: db.prepare(
        `INSERT INTO event (instance_id, app_id, group_id, type, result, error_code, previous_version, version, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      stats: db.prepare(
        `SELECT coalesce(sum(last_update_granted_ts > ?1), 0) AS grantedInPeriod,
                coalesce(sum(update_in_progress = 1 AND last_update_granted_ts > ?2), 0) AS inProgress,
                coalesce(sum(update_in_progress = 1 AND last_update_granted_ts <= ?2), 0) AS timedOut,
                coalesce(sum(status = 4 AND last_update_version = ?3), 0) AS completed
         FROM instance_app WHERE group_id = ?4 AND last_update_granted_ts IS NOT NULL`,
      ),
      offTarget: db.prepare("SELECT count(*) AS n FROM instance_app WHERE group_id = ? AND version <> ?"),
      setRollout: db.prepare("UPDATE grp SET rollout_in_progress = ? WHERE id = ?"),
      disableGroup: db.prepare("UPDATE grp SET updates_enabled = 0 WHERE id = ?"),
      dropTimedOut: db.prepare(
        "UPDATE instance_app SET update_in_progress = 0, status = 3 WHERE group_id = ? AND update_in_progress = 1 AND last_update_granted_ts <= ? RETURNING instance_id, app_id, last_update_version",
      ),
      completedCount: db.prepare("SELECT count(*) AS n FROM instance_app WHERE group_id = ? AND status = 4 AND last_update_version = ?"),
      logged: db.prepare("SELECT 1 FROM activity WHERE group_id = ? AND version = ? AND class = ? LIMIT 1"),
    };
  }

  /** Process one request `<app>`. Throws only on database failure. */
  handle(req: AppRequest): AppOutcome {
    const store = this.store;
    const appId = normalizeAppId(req.appId);
    const out: AppOutcome = { appId: req.appId, appStatus: "ok", ping: req.ping, events: req.events.length, updateCheck: null, stop: false };
    const unroutable = (): AppOutcome => ({ ...out, appStatus: UNROUTABLE_STATUS, ping: false, events: 0, updateCheck: { status: "error-internal" }, stop: true });
    if (!store.cat().apps.has(appId)) return unroutable();
    const group = store.routeGroup(appId, LEGACY_GROUP_TRACKS[req.track] ?? req.track, req.arch);
    if (!group) return unroutable();
    if (req.machineId === "") {
      return { ...out, appStatus: "error-instanceRegistrationFailed", updateCheck: req.updateCheck ? { status: "error-internal" } : null };
    }
    const now = store.clock();
    const state = this.register(req, appId, group, now);
    for (const ev of req.events) this.applyEvent(req, appId, group, state, ev, now);
    if (req.updateCheck) {
      const r = this.updateCheck(req, appId, group, state, now);
      out.updateCheck = r.check;
      if (r.appStatus) out.appStatus = r.appStatus;
    }
    return out;
  }

  private register(req: AppRequest, appId: string, group: Group, now: number): InstanceState {
    // Read before writing: most checks change nothing here, and an unwritten page costs no WAL.
    const i = this.st.getInstance.get(req.machineId) as { ip: string; alias: string; oem: string; oem_version: string; aleph_version: string } | null;
    if (!i) this.st.insertInstance.run(req.machineId, req.ip, req.machineAlias, req.oem, req.oemVersion, req.alephVersion, now);
    else {
      const alias = req.machineAlias || i.alias;
      const aleph = req.alephVersion || i.aleph_version;
      if (i.ip !== req.ip || i.alias !== alias || i.oem !== req.oem || i.oem_version !== req.oemVersion || i.aleph_version !== aleph) {
        this.st.updateInstance.run(req.ip, alias, req.oem, req.oemVersion, aleph, req.machineId);
      }
    }
    const s = this.st.getState.get(req.machineId, appId) as InstanceState | null;
    if (!s) {
      this.st.insertState.run(req.machineId, appId, group.id, req.version, Status.Undefined, now);
      this.st.history.run(req.machineId, appId, group.id, Status.Undefined, req.version, null, now);
      return { group_id: group.id, version: req.version, status: Status.Undefined, last_update_granted_ts: null, last_update_version: null, update_in_progress: 0 };
    }
    if (s.group_id !== group.id || s.version !== req.version) this.st.moveState.run(group.id, req.version, now, req.machineId, appId);
    else this.st.touchState.run(now, req.machineId, appId);
    if (s.group_id !== group.id && s.update_in_progress === 1) {
      // Moved to another group: the old group's update no longer applies.
      this.setStatus(req, appId, group, s, Status.Undefined, false, req.version, null, now);
    }
    s.group_id = group.id;
    s.version = req.version;
    return s;
  }

  private setStatus(req: AppRequest, appId: string, group: Group, s: InstanceState, status: number, inProgress: boolean, version: string, errorCode: number | null, now: number): void {
    const changed = s.status !== status || (s.update_in_progress === 1) !== inProgress;
    if (!changed) return;
    this.st.setStatus.run(status, inProgress ? 1 : 0, req.machineId, appId);
    if (s.status !== status) this.st.history.run(req.machineId, appId, group.id, status, version, errorCode, now);
    s.status = status;
    s.update_in_progress = inProgress ? 1 : 0;
  }

  private applyEvent(req: AppRequest, appId: string, group: Group, s: InstanceState, ev: OmahaEvent, now: number): void {
    // Every update check carries 3/2 with an empty previous version: a heartbeat, not worth a row.
    const routine = ev.type === 3 && ev.result === 2 && (!ev.previousVersion || ev.previousVersion === "0.0.0.0");
    if (routine) return;
    this.st.event.run(req.machineId, appId, group.id, ev.type, ev.result, ev.errorCode, ev.previousVersion, req.version, now);
    // Events matter only for an update this server granted (a 3/0 for a refused check is noise).
    if (s.update_in_progress !== 1) return;
    const target = s.last_update_version ?? req.version;
    if (ev.result === 0) {
      this.setStatus(req, appId, group, s, Status.Error, false, target, ev.errorCode, now);
      this.store.activity({
        appId,
        groupId: group.id,
        channelId: group.channelId,
        instanceId: req.machineId,
        version: target,
        class: ActivityClass.InstanceUpdateFailed,
        severity: Severity.Error,
        message: `instance ${req.machineId} failed to update to ${target}: ${decodeErrorCode(ev.errorCode ?? 0).name} (${ev.errorCode ?? 0})`,
      });
      if (group.policy.safeMode && group.policy.updatesEnabled && (this.st.completedCount.get(group.id, target) as { n: number }).n === 0) {
        this.pauseGroup(group, target, `the canary ${req.machineId} failed to update to ${target}: safe mode paused group ${group.name}`);
      }
      return;
    }
    if (ev.type === 13 && ev.result === 1) this.setStatus(req, appId, group, s, Status.Downloading, true, target, null, now);
    else if (ev.type === 14 && ev.result === 1) this.setStatus(req, appId, group, s, Status.Downloaded, true, target, null, now);
    else if (ev.type === 800 && ev.result === 1) this.setStatus(req, appId, group, s, Status.Installed, true, target, null, now);
    else if (ev.type === 3 && ev.result === 1 && appId === DEFAULT_APP_ID) {
      // The OS is installed but runs the old version until the reboot's 3/2 (§1.4).
      this.setStatus(req, appId, group, s, Status.Installed, true, target, null, now);
    } else if ((ev.type === 3 && ev.result === 1) || (ev.type === 3 && ev.result === 2 && ev.previousVersion && ev.previousVersion !== "0.0.0.0")) {
      // Other apps need no reboot: their 3/1 completes the update, as in Nebraska.
      this.setStatus(req, appId, group, s, Status.Complete, false, target, null, now);
      this.maybeFinished(group, appId, target);
    }
  }

  private pauseGroup(group: Group, version: string, message: string): void {
    this.st.disableGroup.run(group.id);
    this.store.changed();
    this.store.activity({ appId: group.appId, groupId: group.id, channelId: group.channelId, version, class: ActivityClass.RolloutFailed, severity: Severity.Error, message });
  }

  private maybeFinished(group: Group, appId: string, target: string): void {
    if ((this.st.offTarget.get(group.id, target) as { n: number }).n > 0) return;
    this.st.setRollout.run(0, group.id);
    this.store.changed();
    // Machines that check in one by one would otherwise "finish" the rollout once each.
    if (this.st.logged.get(group.id, target, ActivityClass.RolloutFinished)) return;
    this.store.activity({
      appId,
      groupId: group.id,
      channelId: group.channelId,
      version: target,
      class: ActivityClass.RolloutFinished,
      severity: Severity.Success,
      message: `rollout of ${target} in group ${group.name} finished`,
    });
  }

  private updateCheck(req: AppRequest, appId: string, group: Group, s: InstanceState, now: number): { check: UpdateCheckOutcome; appStatus?: string } {
    const pkg = this.store.groupPackage(group);
    if (!pkg) {
      return { check: { status: "error-internal" }, appStatus: "error-noPackageFound" };
    }
    if (compareVersions(req.version, pkg.version) >= 0) return { check: { status: "noupdate" } };
    const timeoutAt = (s.last_update_granted_ts ?? 0) + group.policy.updateTimeoutSeconds * 1000;
    if (s.update_in_progress === 1 && s.last_update_version === pkg.version && now < timeoutAt) {
      // update_engine checks only when idle, so a check in the middle of an update means that attempt
      // ended unreported (a crash, a lost event). Nebraska refuses it until the timeout and machines
      // sit "Downloading" (nebraska#853); this offers the granted update again, counted once.
      if (s.status !== Status.UpdateGranted) this.setStatus(req, appId, group, s, Status.UpdateGranted, true, pkg.version, null, now);
      return { check: { status: "ok", pkg } };
    }
    // Group policy, with this instance's own earlier attempt counted as the statistics see it.
    const st = this.st.stats.get(now - group.policy.periodSeconds * 1000, now - group.policy.updateTimeoutSeconds * 1000, pkg.version, group.id) as RolloutStats;
    const d = decide(group.policy, st, now);
    if (!d.grant) {
      if (d.disableGroup) {
        const dropped = this.st.dropTimedOut.all(group.id, now - group.policy.updateTimeoutSeconds * 1000) as { instance_id: string; app_id: string; last_update_version: string }[];
        for (const x of dropped) this.st.history.run(x.instance_id, x.app_id, group.id, Status.Error, x.last_update_version, null, now);
        if (dropped.some((x) => x.instance_id === req.machineId && x.app_id === appId)) {
          s.status = Status.Error;
          s.update_in_progress = 0;
        }
        this.pauseGroup(group, pkg.version, `${dropped.length} update(s) to ${pkg.version} timed out: safe mode paused group ${group.name}`);
      }
      if (d.onHold && s.update_in_progress !== 1) this.setStatus(req, appId, group, s, Status.OnHold, false, req.version, null, now);
      return { check: { status: "error-internal" }, appStatus: REFUSAL_STATUS[d.reason] };
    }
    this.st.grant.run(Status.UpdateGranted, now, pkg.version, req.machineId, appId);
    this.st.history.run(req.machineId, appId, group.id, Status.UpdateGranted, pkg.version, null, now);
    s.status = Status.UpdateGranted;
    s.update_in_progress = 1;
    s.last_update_granted_ts = now;
    s.last_update_version = pkg.version;
    if (!group.rolloutInProgress) {
      this.st.setRollout.run(1, group.id);
      this.store.changed();
    }
    if (!group.rolloutInProgress && !this.st.logged.get(group.id, pkg.version, ActivityClass.RolloutStarted)) {
      this.store.activity({
        appId,
        groupId: group.id,
        channelId: group.channelId,
        version: pkg.version,
        class: ActivityClass.RolloutStarted,
        severity: Severity.Info,
        message: `rollout of ${pkg.version} in group ${group.name} started`,
      });
    }
    return { check: { status: "ok", pkg } };
  }
}
