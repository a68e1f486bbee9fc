// The catalog (apps, channels, packages, groups) and the read side (instances, history, events,
// activity, breakdowns) over the database. The catalog is small and read on every Omaha request,
// so it is cached in memory and reloaded after any change to it.
import type { Database, Statement } from "bun:sqlite";
import { logger } from "../log/log.ts";
import { badRequest, conflict, notFound } from "./errors.ts";
import {
  ACTIVITY_CLASS_NAME,
  SEVERITY_NAME,
  STATUS_NAME,
  type Activity,
  type App,
  type Arch,
  type Channel,
  type EventRow,
  type ExtraFile,
  type Group,
  type InstanceApp,
  type Package,
  type Page,
  type StatusHistoryEntry,
} from "./model.ts";
import { ActivityClass, Severity } from "./model.ts";
import type { Clock, Policy } from "./policy.ts";
import { compareVersions } from "./version.ts";

/** The app update_engine sends by default (CoreOS/Flatcar release app id), created at first start. */
const log = logger("update-server");

export const DEFAULT_APP_ID = "e96281a6-d1af-4bde-9a0a-97b76e56dc57";

/** Nebraska's sample policy for Stable/Beta (§5.3): 2 per 15 minutes, 60 minutes timeout. */
export const DEFAULT_POLICY: Policy = {
  updatesEnabled: true,
  safeMode: false,
  officeHours: false,
  timezone: "UTC",
  periodSeconds: 900,
  maxUpdatesPerPeriod: 2,
  updateTimeoutSeconds: 3600,
};

/** App ids arrive as `{UUID}` in any case; stored bare and lowercase. */
export function normalizeAppId(id: string): string {
  return id.trim().replace(/^\{/, "").replace(/\}$/, "").toLowerCase();
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

interface GroupRow {
  id: string;
  app_id: string;
  name: string;
  description: string;
  track: string;
  channel_id: string | null;
  updates_enabled: number;
  safe_mode: number;
  office_hours: number;
  timezone: string;
  period_seconds: number;
  max_updates_per_period: number;
  update_timeout_seconds: number;
  rollout_in_progress: number;
  created_at: number;
}

function groupFrom(r: GroupRow): Group {
  return {
    id: r.id,
    appId: r.app_id,
    name: r.name,
    description: r.description,
    track: r.track,
    channelId: r.channel_id,
    policy: {
      updatesEnabled: r.updates_enabled === 1,
      safeMode: r.safe_mode === 1,
      officeHours: r.office_hours === 1,
      timezone: r.timezone,
      periodSeconds: r.period_seconds,
      maxUpdatesPerPeriod: r.max_updates_per_period,
      updateTimeoutSeconds: r.update_timeout_seconds,
    },
    rolloutInProgress: r.rollout_in_progress === 1,
    createdAt: r.created_at,
  };
}

interface PackageRow {
  id: string;
  app_id: string;
  version: string;
  arch: Arch;
  filename: string;
  url: string;
  size: number;
  hash_sha1: string;
  hash_sha256: string;
  hosted: number;
  extra_files: string;
  created_at: number;
}

function packageFrom(r: PackageRow): Package {
  return {
    id: r.id,
    appId: r.app_id,
    version: r.version,
    arch: r.arch,
    filename: r.filename,
    url: r.url,
    size: r.size,
    hashSha1: r.hash_sha1,
    hashSha256: r.hash_sha256,
    hosted: r.hosted === 1,
    extraFiles: JSON.parse(r.extra_files) as ExtraFile[],
    createdAt: r.created_at,
  };
}

const INSTANCE_COLUMNS = `ia.instance_id AS instanceId, ia.app_id AS appId, ia.group_id AS groupId, i.ip, i.alias, i.oem,
  i.oem_version AS oemVersion, i.aleph_version AS alephVersion, ia.version, ia.status, ia.last_check AS lastCheck,
  ia.last_update_granted_ts AS lastUpdateGrantedAt, ia.last_update_version AS lastUpdateVersion,
  ia.update_in_progress AS updateInProgress, i.created_at AS createdAt`;

function instanceFrom(r: Omit<InstanceApp, "statusName" | "updateInProgress"> & { updateInProgress: number }): InstanceApp {
  return { ...r, statusName: STATUS_NAME[r.status] ?? "Unknown", updateInProgress: r.updateInProgress === 1 };
}

export interface Catalog {
  apps: Map<string, App>;
  channels: Map<string, Channel>;
  packages: Map<string, Package>;
  groups: Map<string, Group>;
  /** routeGroup's answers, keyed by app, track and arch. */
  routes: Map<string, Group | null>;
}

export interface InstanceFilter {
  appId: string;
  groupId?: string;
  status?: number;
  version?: string;
  /** Substring of id, alias or IP. */
  search?: string;
  sort?: "lastCheck" | "id" | "version" | "status";
  order?: "asc" | "desc";
  page: number;
  perPage: number;
}

export interface ActivityFilter {
  appId?: string;
  groupId?: string;
  channelId?: string;
  instanceId?: string;
  version?: string;
  severity?: number;
  start?: number;
  end?: number;
  page: number;
  perPage: number;
}

export type NewGroup = { name: string; description?: string; track?: string; channelId?: string | null; policy?: Partial<Policy> };
export type NewChannel = { name: string; arch?: Arch; color?: string; packageId?: string | null };
export type NewPackage = Omit<Package, "id" | "appId" | "createdAt" | "extraFiles"> & { extraFiles?: ExtraFile[] };

/** One app's channels or groups, by name. */
function ofApp<T extends { appId: string; name: string }>(all: Iterable<T>, appId: string): T[] {
  return [...all].filter((x) => x.appId === appId).sort((a, b) => a.name.localeCompare(b.name));
}

/** An app's channel or group by id, else by name (unique per app); a 404 naming `what` otherwise. */
function byIdOrName<T extends { id: string; name: string }>(items: T[], idOrName: string, what: string): T {
  const x = items.find((i) => i.id === idOrName) ?? items.find((i) => i.name === idOrName);
  if (!x) throw notFound(`${what} "${idOrName}"`);
  return x;
}

export class Store {
  private catalog: Catalog | null = null;
  private readonly insertActivity: Statement;

  constructor(
    readonly db: Database,
    readonly clock: Clock,
  ) {
    this.insertActivity = db.prepare(
      "INSERT INTO activity (app_id, group_id, channel_id, instance_id, version, class, severity, message, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    );
    if (!db.query("SELECT 1 FROM app LIMIT 1").get()) {
      db.query("INSERT INTO app (id, name, description, created_at) VALUES (?, ?, ?, ?)").run(
        DEFAULT_APP_ID,
        "CoreOS",
        "The OS itself (update_engine's default app id)",
        clock(),
      );
    }
  }

  // ---- catalog cache ----------------------------------------------------------------------

  /** Everything an Omaha request needs to route itself; rebuilt only after a change. */
  cat(): Catalog {
    if (this.catalog) return this.catalog;
    const apps = new Map<string, App>();
    for (const a of this.db.query("SELECT id, name, description, created_at AS createdAt FROM app").all() as App[]) apps.set(a.id, a);
    const channels = new Map<string, Channel>();
    for (const c of this.db
      .query("SELECT id, app_id AS appId, name, arch, color, package_id AS packageId, created_at AS createdAt FROM channel")
      .all() as Channel[])
      channels.set(c.id, c);
    const packages = new Map<string, Package>();
    for (const p of this.db.query("SELECT * FROM package").all() as PackageRow[]) packages.set(p.id, packageFrom(p));
    const groups = new Map<string, Group>();
    for (const g of this.db.query("SELECT * FROM grp ORDER BY created_at").all() as GroupRow[]) groups.set(g.id, groupFrom(g));
    this.catalog = { apps, channels, packages, groups, routes: new Map() };
    return this.catalog;
  }

  /** Called after every write to app, channel, package or group rows. */
  changed(): void {
    this.catalog = null;
  }

  activity(a: { appId: string; groupId?: string | null; channelId?: string | null; instanceId?: string | null; version?: string; class: number; severity: number; message: string }): void {
    this.insertActivity.run(a.appId, a.groupId ?? null, a.channelId ?? null, a.instanceId ?? null, a.version ?? "", a.class, a.severity, a.message, this.clock());
    // Each activity entry is one fact worth a log line.
    (a.severity === Severity.Error ? log.warn : log.info)(a.message);
  }

  // ---- apps -------------------------------------------------------------------------------

  apps(): App[] {
    return [...this.cat().apps.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  /** By id (braces and case tolerated) or by name. */
  app(idOrName: string): App {
    const c = this.cat();
    const a = c.apps.get(normalizeAppId(idOrName)) ?? [...c.apps.values()].find((x) => x.name === idOrName);
    if (!a) throw notFound(`application "${idOrName}"`);
    return a;
  }

  createApp(x: { name: string; description?: string; id?: string }): App {
    const id = x.id ? normalizeAppId(x.id) : crypto.randomUUID();
    if (!UUID.test(id)) throw badRequest(`application id "${x.id}" is not a UUID`);
    if (this.cat().apps.has(id)) throw conflict(`application ${id} already exists`);
    if ([...this.cat().apps.values()].some((a) => a.name === x.name)) throw conflict(`application name "${x.name}" is taken`);
    this.db.query("INSERT INTO app (id, name, description, created_at) VALUES (?, ?, ?, ?)").run(id, x.name, x.description ?? "", this.clock());
    this.changed();
    return this.app(id);
  }

  updateApp(idOrName: string, x: { name?: string; description?: string }): App {
    const a = this.app(idOrName);
    if (x.name !== undefined && x.name !== a.name && [...this.cat().apps.values()].some((o) => o.name === x.name))
      throw conflict(`application name "${x.name}" is taken`);
    this.db.query("UPDATE app SET name = ?, description = ? WHERE id = ?").run(x.name ?? a.name, x.description ?? a.description, a.id);
    this.changed();
    return this.app(a.id);
  }

  deleteApp(idOrName: string): void {
    const a = this.app(idOrName);
    this.db.transaction(() => {
      this.db.query("DELETE FROM grp WHERE app_id = ?").run(a.id);
      this.db.query("DELETE FROM channel WHERE app_id = ?").run(a.id);
      this.db.query("DELETE FROM package WHERE app_id = ?").run(a.id);
      this.db.query("DELETE FROM app WHERE id = ?").run(a.id);
    })();
    this.changed();
  }

  // ---- packages ---------------------------------------------------------------------------

  packages(appId: string): Package[] {
    return [...this.cat().packages.values()].filter((p) => p.appId === appId).sort((a, b) => compareVersions(b.version, a.version));
  }

  /** By id or by version (the newest of that version when several arches share it). */
  package(appId: string, idOrVersion: string): Package {
    const ps = this.packages(appId);
    const p = ps.find((x) => x.id === idOrVersion) ?? ps.find((x) => x.version === idOrVersion);
    if (!p) throw notFound(`package "${idOrVersion}"`);
    return p;
  }

  createPackage(appId: string, x: NewPackage, id: string = crypto.randomUUID()): Package {
    if (this.packages(appId).some((p) => p.version === x.version && p.arch === x.arch))
      throw conflict(`package ${x.version} (${x.arch}) already exists`);
    this.db
      .query(
        `INSERT INTO package (id, app_id, version, arch, filename, url, size, hash_sha1, hash_sha256, hosted, extra_files, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(id, appId, x.version, x.arch, x.filename, x.url, x.size, x.hashSha1, x.hashSha256, x.hosted ? 1 : 0, JSON.stringify(x.extraFiles ?? []), this.clock());
    this.changed();
    return this.package(appId, id);
  }

  setExtraFiles(p: Package, files: ExtraFile[]): Package {
    this.db.query("UPDATE package SET extra_files = ? WHERE id = ?").run(JSON.stringify(files), p.id);
    this.changed();
    return this.package(p.appId, p.id);
  }

  deletePackage(appId: string, idOrVersion: string): Package {
    const p = this.package(appId, idOrVersion);
    const pinned = [...this.cat().channels.values()].filter((c) => c.packageId === p.id);
    if (pinned.length > 0) throw conflict(`package ${p.version} is pinned by channel ${pinned.map((c) => c.name).join(", ")}`);
    this.db.query("DELETE FROM package WHERE id = ?").run(p.id);
    this.changed();
    return p;
  }

  // ---- channels ---------------------------------------------------------------------------

  channels(appId: string): Channel[] {
    return ofApp(this.cat().channels.values(), appId);
  }

  channel(appId: string, idOrName: string): Channel {
    return byIdOrName(this.channels(appId), idOrName, "channel");
  }

  private checkPin(appId: string, arch: Arch, packageId: string | null | undefined): string | null {
    if (!packageId) return null;
    const p = this.package(appId, packageId);
    if (arch !== "all" && p.arch !== "all" && p.arch !== arch) throw badRequest(`package ${p.version} is for ${p.arch}, the channel for ${arch}`);
    return p.id;
  }

  createChannel(appId: string, x: NewChannel): Channel {
    const arch = x.arch ?? "amd64";
    if (this.channels(appId).some((c) => c.name === x.name && c.arch === arch)) throw conflict(`channel ${x.name} (${arch}) already exists`);
    const pkg = this.checkPin(appId, arch, x.packageId);
    const id = crypto.randomUUID();
    this.db
      .query("INSERT INTO channel (id, app_id, name, arch, color, package_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)")
      .run(id, appId, x.name, arch, x.color ?? "#777777", pkg, this.clock());
    if (pkg) this.logPin(appId, id, x.name, pkg);
    this.changed();
    return this.channel(appId, id);
  }

  /** Pinning a new package is what starts a rollout: logged, and the groups' rollouts reset. */
  updateChannel(appId: string, idOrName: string, x: { name?: string; color?: string; packageId?: string | null }): Channel {
    const c = this.channel(appId, idOrName);
    const pkg = x.packageId === undefined ? c.packageId : this.checkPin(appId, c.arch, x.packageId);
    this.db.transaction(() => {
      this.db.query("UPDATE channel SET name = ?, color = ?, package_id = ? WHERE id = ?").run(x.name ?? c.name, x.color ?? c.color, pkg, c.id);
      if (pkg !== c.packageId) {
        this.db.query("UPDATE grp SET rollout_in_progress = 0 WHERE channel_id = ?").run(c.id);
        this.logPin(appId, c.id, c.name, pkg);
      }
    })();
    this.changed();
    return this.channel(appId, c.id);
  }

  private logPin(appId: string, channelId: string, name: string, pkg: string | null): void {
    const version = pkg ? this.package(appId, pkg).version : "";
    this.activity({
      appId,
      channelId,
      version,
      class: ActivityClass.ChannelPackageUpdated,
      severity: Severity.Info,
      message: pkg ? `channel ${name} now points at ${version}` : `channel ${name} has no package`,
    });
  }

  deleteChannel(appId: string, idOrName: string): void {
    const c = this.channel(appId, idOrName);
    this.db.query("DELETE FROM channel WHERE id = ?").run(c.id);
    this.changed();
  }

  // ---- groups -----------------------------------------------------------------------------

  groups(appId: string): Group[] {
    return ofApp(this.cat().groups.values(), appId);
  }

  group(appId: string, idOrName: string): Group {
    return byIdOrName(this.groups(appId), idOrName, "group");
  }

  createGroup(appId: string, x: NewGroup): Group {
    if (this.groups(appId).some((g) => g.name === x.name)) throw conflict(`group ${x.name} already exists`);
    const channel = x.channelId ? this.channel(appId, x.channelId).id : null;
    const p = { ...DEFAULT_POLICY, ...x.policy };
    const id = crypto.randomUUID();
    this.db
      .query(
        `INSERT INTO grp (id, app_id, name, description, track, channel_id, updates_enabled, safe_mode, office_hours, timezone,
           period_seconds, max_updates_per_period, update_timeout_seconds, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        id, appId, x.name, x.description ?? "", x.track || x.name, channel,
        p.updatesEnabled ? 1 : 0, p.safeMode ? 1 : 0, p.officeHours ? 1 : 0, p.timezone,
        p.periodSeconds, p.maxUpdatesPerPeriod, p.updateTimeoutSeconds, this.clock(),
      );
    this.changed();
    return this.group(appId, id);
  }

  updateGroup(appId: string, idOrName: string, x: Partial<Omit<NewGroup, "policy">> & { policy?: Partial<Policy> }): Group {
    const g = this.group(appId, idOrName);
    if (x.name !== undefined && x.name !== g.name && this.groups(appId).some((o) => o.name === x.name)) throw conflict(`group ${x.name} already exists`);
    const channel = x.channelId === undefined ? g.channelId : x.channelId === null ? null : this.channel(appId, x.channelId).id;
    const p = { ...g.policy, ...x.policy };
    this.db
      .query(
        `UPDATE grp SET name = ?, description = ?, track = ?, channel_id = ?, updates_enabled = ?, safe_mode = ?, office_hours = ?,
           timezone = ?, period_seconds = ?, max_updates_per_period = ?, update_timeout_seconds = ? WHERE id = ?`,
      )
      .run(
        x.name ?? g.name, x.description ?? g.description, x.track ?? g.track, channel,
        p.updatesEnabled ? 1 : 0, p.safeMode ? 1 : 0, p.officeHours ? 1 : 0, p.timezone,
        p.periodSeconds, p.maxUpdatesPerPeriod, p.updateTimeoutSeconds, g.id,
      );
    this.changed();
    return this.group(appId, g.id);
  }

  deleteGroup(appId: string, idOrName: string): void {
    const g = this.group(appId, idOrName);
    this.db.query("DELETE FROM grp WHERE id = ?").run(g.id);
    this.changed();
  }

  /** The group an Omaha client reaches with `track` on `arch`: track name or group id, newest wins. */
  routeGroup(appId: string, track: string, arch: Arch): Group | null {
    const c = this.cat();
    const key = `${appId}\u0000${track}\u0000${arch}`;
    let found = c.routes.get(key);
    if (found === undefined) {
      found = this.findGroup(c, appId, track, arch);
      // Bounded: tracks are whatever clients send.
      if (c.routes.size < 10_000) c.routes.set(key, found);
    }
    return found;
  }

  private findGroup(c: Catalog, appId: string, track: string, arch: Arch): Group | null {
    let found: Group | null = null;
    for (const g of c.groups.values()) {
      if (g.appId !== appId || (g.track !== track && g.id !== track) || !g.channelId) continue;
      const ch = c.channels.get(g.channelId);
      if (!ch || (ch.arch !== arch && ch.arch !== "all")) continue;
      if (!found || g.createdAt >= found.createdAt) found = g;
    }
    return found;
  }

  /** The package a group's channel pins, or null. */
  groupPackage(g: Group): Package | null {
    const c = this.cat();
    const ch = g.channelId ? c.channels.get(g.channelId) : undefined;
    return ch?.packageId ? (c.packages.get(ch.packageId) ?? null) : null;
  }

  // ---- instances --------------------------------------------------------------------------

  instances(f: InstanceFilter): Page<InstanceApp> {
    const where = ["ia.app_id = $app"];
    const params: Record<string, string | number> = { app: f.appId };
    if (f.groupId) (where.push("ia.group_id = $group"), (params.group = f.groupId));
    if (f.status !== undefined) (where.push("ia.status = $status"), (params.status = f.status));
    if (f.version) (where.push("ia.version = $version"), (params.version = f.version));
    if (f.search) {
      where.push("(ia.instance_id LIKE $search ESCAPE '\\' OR i.alias LIKE $search ESCAPE '\\' OR i.ip LIKE $search ESCAPE '\\')");
      params.search = `%${f.search.replace(/[\\%_]/g, (m) => `\\${m}`)}%`;
    }
    const sortCol = { lastCheck: "ia.last_check", id: "ia.instance_id", version: "ia.version", status: "ia.status" }[f.sort ?? "lastCheck"];
    const from = `FROM instance_app ia JOIN instance i ON i.id = ia.instance_id WHERE ${where.join(" AND ")}`;
    const total = (this.db.query(`SELECT count(*) AS n ${from}`).get(params) as { n: number }).n;
    const rows = this.db
      .query(`SELECT ${INSTANCE_COLUMNS} ${from} ORDER BY ${sortCol} ${f.order === "asc" ? "ASC" : "DESC"}, ia.instance_id LIMIT $limit OFFSET $offset`)
      .all({ ...params, limit: f.perPage, offset: (f.page - 1) * f.perPage }) as Parameters<typeof instanceFrom>[0][];
    return { items: rows.map(instanceFrom), total, page: f.page, perPage: f.perPage };
  }

  instance(appId: string, instanceId: string): InstanceApp {
    const r = this.db
      .query(`SELECT ${INSTANCE_COLUMNS} FROM instance_app ia JOIN instance i ON i.id = ia.instance_id WHERE ia.app_id = ? AND ia.instance_id = ?`)
      .get(appId, instanceId) as Parameters<typeof instanceFrom>[0] | null;
    if (!r) throw notFound(`instance "${instanceId}"`);
    return instanceFrom(r);
  }

  /** Forgets a retired machine (nebraska#352): its state, history and events in this app. */
  deleteInstance(appId: string, instanceId: string): void {
    this.db.transaction(() => {
      if (this.db.query("DELETE FROM instance_app WHERE app_id = ? AND instance_id = ?").run(appId, instanceId).changes === 0) throw notFound(`instance "${instanceId}"`);
      this.db.query("DELETE FROM status_history WHERE app_id = ? AND instance_id = ?").run(appId, instanceId);
      this.db.query("DELETE FROM event WHERE app_id = ? AND instance_id = ?").run(appId, instanceId);
      this.db.query("DELETE FROM instance WHERE id = ? AND NOT EXISTS (SELECT 1 FROM instance_app WHERE instance_id = ?)").run(instanceId, instanceId);
    })();
  }

  setAlias(instanceId: string, alias: string): void {
    const r = this.db.query("UPDATE instance SET alias = ? WHERE id = ?").run(alias, instanceId);
    if (r.changes === 0) throw notFound(`instance "${instanceId}"`);
  }

  statusHistory(appId: string, instanceId: string, limit = 100): StatusHistoryEntry[] {
    const rows = this.db
      .query(
        "SELECT status, version, error_code AS errorCode, created_at AS createdAt FROM status_history WHERE instance_id = ? AND app_id = ? ORDER BY id DESC LIMIT ?",
      )
      .all(instanceId, appId, limit) as Omit<StatusHistoryEntry, "statusName">[];
    return rows.map((r) => ({ ...r, statusName: STATUS_NAME[r.status] ?? "Unknown" }));
  }

  events(appId: string, instanceId: string, limit = 100): EventRow[] {
    return this.db
      .query(
        `SELECT id, instance_id AS instanceId, app_id AS appId, group_id AS groupId, type, result, error_code AS errorCode,
           previous_version AS previousVersion, version, created_at AS createdAt FROM event WHERE instance_id = ? AND app_id = ? ORDER BY id DESC LIMIT ?`,
      )
      .all(instanceId, appId, limit) as EventRow[];
  }

  /** Instances per status, per version, and how many run the channel's version. */
  groupStats(g: Group): { total: number; statuses: Record<string, number>; versions: { version: string; count: number }[]; onTarget: number; target: string | null } {
    const statuses: Record<string, number> = {};
    let total = 0;
    for (const r of this.db.query("SELECT status, count(*) AS n FROM instance_app WHERE group_id = ? GROUP BY status").all(g.id) as { status: number; n: number }[]) {
      statuses[STATUS_NAME[r.status] ?? String(r.status)] = r.n;
      total += r.n;
    }
    const versions = (this.db.query("SELECT version, count(*) AS count FROM instance_app WHERE group_id = ? GROUP BY version").all(g.id) as { version: string; count: number }[]).sort(
      (a, b) => compareVersions(b.version, a.version),
    );
    const target = this.groupPackage(g)?.version ?? null;
    const onTarget = target === null ? 0 : (versions.find((v) => v.version === target)?.count ?? 0);
    return { total, statuses, versions, onTarget, target };
  }

  /**
   * Rollout progress over time: per time bucket, how many instances of the group were granted the
   * target version and how many completed it (from the status history).
   */
  rolloutTimeline(g: Group, buckets = 24): { start: number; end: number; points: { t: number; granted: number; completed: number; failed: number }[] } {
    const target = this.groupPackage(g)?.version;
    const relevant = target
      ? (this.db
          .query("SELECT status, created_at AS t FROM status_history WHERE group_id = ? AND version = ? AND status IN (2, 3, 4) ORDER BY id")
          .all(g.id, target) as { status: number; t: number }[])
      : [];
    const now = this.clock();
    const start = relevant.length > 0 ? relevant[0]!.t : now;
    const end = Math.max(now, start + 1);
    const step = (end - start) / buckets;
    const points: { t: number; granted: number; completed: number; failed: number }[] = [];
    let i = 0;
    let granted = 0;
    let completed = 0;
    let failed = 0;
    for (let b = 1; b <= buckets; b++) {
      const t = start + step * b;
      while (i < relevant.length && relevant[i]!.t <= t) {
        const s = relevant[i]!.status;
        if (s === 2) granted++;
        else if (s === 4) completed++;
        else failed++;
        i++;
      }
      points.push({ t, granted, completed, failed });
    }
    return { start, end, points };
  }

  // ---- activity ---------------------------------------------------------------------------

  activities(f: ActivityFilter): Page<Activity> {
    const where: string[] = [];
    const params: Record<string, string | number> = {};
    const eq = (col: string, key: string, v: string | number | undefined) => {
      if (v === undefined || v === "") return;
      where.push(`${col} = $${key}`);
      params[key] = v;
    };
    eq("app_id", "app", f.appId);
    eq("group_id", "group", f.groupId);
    eq("channel_id", "channel", f.channelId);
    eq("instance_id", "instance", f.instanceId);
    eq("version", "version", f.version);
    eq("severity", "severity", f.severity);
    if (f.start !== undefined) (where.push("created_at >= $start"), (params.start = f.start));
    if (f.end !== undefined) (where.push("created_at <= $end"), (params.end = f.end));
    const w = where.length ? `WHERE ${where.join(" AND ")}` : "";
    const total = (this.db.query(`SELECT count(*) AS n FROM activity ${w}`).get(params) as { n: number }).n;
    const rows = this.db
      .query(
        `SELECT id, app_id AS appId, group_id AS groupId, channel_id AS channelId, instance_id AS instanceId, version, class, severity,
           message, created_at AS createdAt FROM activity ${w} ORDER BY id DESC LIMIT $limit OFFSET $offset`,
      )
      .all({ ...params, limit: f.perPage, offset: (f.page - 1) * f.perPage }) as Omit<Activity, "className" | "severityName">[];
    return {
      items: rows.map((r) => ({ ...r, className: ACTIVITY_CLASS_NAME[r.class] ?? String(r.class), severityName: SEVERITY_NAME[r.severity] ?? String(r.severity) })),
      total,
      page: f.page,
      perPage: f.perPage,
    };
  }
}
