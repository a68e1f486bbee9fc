// `coreos update-engine admin`: the update server's CLI over its JSON API, in the manner of
// updateservicectl (noun verb [flags]). Output is aligned text, or the API's JSON with --json.
import { FlagError, parseFlags, usage, type FlagDef } from "../flags/flags.ts";
import { decodeErrorCode } from "../omaha/index.ts";
import type { Activity, App, Channel, EventRow, InstanceApp, Package, Page, StatusHistoryEntry } from "./model.ts";

const str = (d: string, description: string): FlagDef => ({ kind: "string", default: d, description });
const bool = (description: string): FlagDef => ({ kind: "bool", default: false, description });

export const GLOBAL_FLAGS = {
  server: str("http://127.0.0.1:8000", "update server URL"),
  token: str("", "admin bearer token (printed by the server at its first start)"),
  app: str("e96281a6-d1af-4bde-9a0a-97b76e56dc57", "application id or name"),
  json: bool("print the API's JSON instead of text"),
};
const ENV = "UPDATECTL";

export interface Io {
  out(s: string): void;
  err(s: string): void;
  fetch: typeof fetch;
  /** Opens a file to upload (a Bun.file in production). */
  file(path: string): Blob & { exists(): Promise<boolean> };
}

/** A refusal by the server or the network: one line for the user, exit 1. */
export class AdminError extends Error {}

const POLICY_FLAGS = {
  "update-count": str("", "max updates per period"),
  "update-interval": str("", "the period (15m, 1h, \"15 minutes\")"),
  "update-timeout": str("", "time an update may take before it counts as timed out"),
  "safe-mode": str("", "true: one canary first, a failed or timed-out canary pauses the group"),
  "office-hours": str("", "true: grant updates only Mon-Fri 09:00-16:59"),
  timezone: str("", "time zone of the office hours (e.g. Europe/Berlin)"),
  enabled: str("", "true/false: updates enabled"),
};

interface Command {
  summary: string;
  flags: Record<string, FlagDef>;
  args?: string;
  run(c: Ctx, v: Record<string, string | boolean | number>, pos: string[]): Promise<void>;
}

interface Ctx {
  api<T>(method: string, path: string, body?: unknown): Promise<T>;
  upload<T>(method: "POST" | "PUT", path: string, file: string): Promise<T>;
  app: string;
  json: boolean;
  io: Io;
}

function table(rows: string[][]): string {
  if (rows.length === 0) return "";
  const w = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  return `${rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(w[i]!))).join("  ")).join("\n")}\n`;
}

const time = (ms: number | null): string => (ms === null ? "-" : new Date(ms).toISOString().replace(/\.\d+Z$/, "Z"));
const enc = encodeURIComponent;
const errName = (c: number | null) => (c === null ? "" : `${decodeErrorCode(c).name} (${c})`);

function boolFlag(name: string, raw: string): boolean {
  if (["true", "1", "yes"].includes(raw)) return true;
  if (["false", "0", "no"].includes(raw)) return false;
  throw new FlagError(`invalid value "${raw}" for flag -${name}: want true or false`);
}

function policyBody(v: Record<string, string | boolean | number>): Record<string, unknown> | undefined {
  const p: Record<string, unknown> = {};
  if (v["update-count"] !== "") {
    const n = String(v["update-count"]);
    if (!/^\d+$/.test(n)) throw new FlagError(`invalid value "${n}" for flag -update-count: want a number`);
    p.maxUpdatesPerPeriod = Number(n);
  }
  if (v["update-interval"] !== "") p.period = v["update-interval"];
  if (v["update-timeout"] !== "") p.updateTimeout = v["update-timeout"];
  if (v["safe-mode"] !== "") p.safeMode = boolFlag("safe-mode", String(v["safe-mode"]));
  if (v["office-hours"] !== "") p.officeHours = boolFlag("office-hours", String(v["office-hours"]));
  if (v.timezone !== "") p.timezone = v.timezone;
  if (v.enabled !== "") p.updatesEnabled = boolFlag("enabled", String(v.enabled));
  return Object.keys(p).length ? p : undefined;
}

interface GroupJson {
  id: string;
  name: string;
  track: string;
  channelId: string | null;
  rolloutInProgress: boolean;
  policy: { updatesEnabled: boolean; safeMode: boolean; officeHours: boolean; timezone: string; period: string; maxUpdatesPerPeriod: number; updateTimeout: string };
}

async function printGroups(c: Ctx, groups: GroupJson[]): Promise<void> {
  const channels = await c.api<Channel[]>("GET", `/api/apps/${enc(c.app)}/channels`);
  const chName = (id: string | null) => channels.find((x) => x.id === id)?.name ?? "-";
  c.io.out(
    table([
      ["NAME", "TRACK", "CHANNEL", "UPDATES", "POLICY", "ID"],
      ...groups.map((g) => [
        g.name,
        g.track,
        chName(g.channelId),
        g.policy.updatesEnabled ? "enabled" : "paused",
        `${g.policy.maxUpdatesPerPeriod}/${g.policy.period} timeout ${g.policy.updateTimeout}${g.policy.safeMode ? " safe-mode" : ""}${g.policy.officeHours ? ` office-hours ${g.policy.timezone}` : ""}`,
        g.id,
      ]),
    ]),
  );
}

function out(c: Ctx, data: unknown, text: () => string | Promise<void>): Promise<void> | void {
  if (c.json) {
    c.io.out(`${JSON.stringify(data, null, 2)}\n`);
    return;
  }
  const r = text();
  if (typeof r === "string") c.io.out(r);
  else return r;
}

const one = (pos: string[], what: string): string => {
  if (pos.length !== 1) throw new FlagError(`want exactly one ${what}`);
  return pos[0]!;
};

const COMMANDS: Record<string, Record<string, Command>> = {
  app: {
    list: {
      summary: "list applications",
      flags: {},
      async run(c) {
        const apps = await c.api<App[]>("GET", "/api/apps");
        await out(c, apps, () => table([["NAME", "ID", "DESCRIPTION"], ...apps.map((a) => [a.name, a.id, a.description])]));
      },
    },
    create: {
      summary: "create an application",
      flags: { name: str("", "name"), id: str("", "app id (a UUID; default: a new one)"), description: str("", "description") },
      async run(c, v) {
        if (!v.name) throw new FlagError("-name is required");
        const a = await c.api<App>("POST", "/api/apps", { name: v.name, description: v.description, ...(v.id ? { id: v.id } : {}) });
        await out(c, a, () => `${a.id}\n`);
      },
    },
  },
  group: {
    list: {
      summary: "list groups with their policy",
      flags: {},
      async run(c) {
        const gs = await c.api<GroupJson[]>("GET", `/api/apps/${enc(c.app)}/groups`);
        await out(c, gs, () => printGroups(c, gs));
      },
    },
    create: {
      summary: "create a group (track defaults to the name)",
      flags: { name: str("", "name"), track: str("", "track machines send as GROUP"), channel: str("", "channel name or id"), description: str("", "description"), ...POLICY_FLAGS },
      async run(c, v) {
        if (!v.name) throw new FlagError("-name is required");
        const g = await c.api<GroupJson>("POST", `/api/apps/${enc(c.app)}/groups`, {
          name: v.name,
          description: v.description,
          ...(v.track ? { track: v.track } : {}),
          ...(v.channel ? { channel: v.channel } : {}),
          policy: policyBody(v),
        });
        await out(c, g, () => printGroups(c, [g]));
      },
    },
    update: {
      summary: "change a group's channel, track or policy",
      args: "<group>",
      flags: { channel: str("", "channel name or id"), track: str("", "track"), description: str("", "description"), ...POLICY_FLAGS },
      async run(c, v, pos) {
        const body: Record<string, unknown> = { policy: policyBody(v) };
        if (v.channel) body.channel = v.channel;
        if (v.track) body.track = v.track;
        if (v.description) body.description = v.description;
        const g = await c.api<GroupJson>("PUT", `/api/apps/${enc(c.app)}/groups/${enc(one(pos, "group"))}`, body);
        await out(c, g, () => printGroups(c, [g]));
      },
    },
    pause: {
      summary: "stop granting updates in a group",
      args: "<group>",
      flags: {},
      async run(c, _v, pos) {
        const g = await c.api<GroupJson>("POST", `/api/apps/${enc(c.app)}/groups/${enc(one(pos, "group"))}/pause`);
        await out(c, g, () => `group ${g.name}: updates paused\n`);
      },
    },
    resume: {
      summary: "grant updates in a group again",
      args: "<group>",
      flags: {},
      async run(c, _v, pos) {
        const g = await c.api<GroupJson>("POST", `/api/apps/${enc(c.app)}/groups/${enc(one(pos, "group"))}/resume`);
        await out(c, g, () => `group ${g.name}: updates enabled\n`);
      },
    },
    show: {
      summary: "a group's instances per status and version",
      args: "<group>",
      flags: {},
      async run(c, _v, pos) {
        const s = await c.api<{ total: number; statuses: Record<string, number>; versions: { version: string; count: number }[]; onTarget: number; target: string | null }>(
          "GET",
          `/api/apps/${enc(c.app)}/groups/${enc(one(pos, "group"))}/stats`,
        );
        await out(
          c,
          s,
          () =>
            `instances: ${s.total}, on ${s.target ?? "-"}: ${s.onTarget}\n` +
            table([["STATUS", "COUNT"], ...Object.entries(s.statuses).map(([k, n]) => [k, String(n)])]) +
            table([["VERSION", "COUNT"], ...s.versions.map((x) => [x.version, String(x.count)])]),
        );
      },
    },
  },
  package: {
    list: {
      summary: "list packages",
      flags: {},
      async run(c) {
        const ps = await c.api<Package[]>("GET", `/api/apps/${enc(c.app)}/packages`);
        await out(c, ps, () => table([["VERSION", "ARCH", "SIZE", "FILE", "SHA256", "ID"], ...ps.map((p) => [p.version, p.arch, String(p.size), p.hosted ? p.filename : `${p.url}${p.filename}`, p.hashSha256, p.id])]));
      },
    },
    create: {
      summary: "upload a payload (--file) or register one hosted elsewhere (--url, --size, --sha1, --sha256)",
      flags: {
        version: str("", "version"),
        file: str("", "payload file to upload (hashes computed by the server)"),
        arch: str("amd64", "all, amd64, aarch64 or x86"),
        filename: str("", "name clients download (default: the file's name, or update.gz)"),
        url: str("", "codebase of an externally hosted payload"),
        size: str("", "size of an externally hosted payload"),
        sha1: str("", "base64 SHA-1 of an externally hosted payload"),
        sha256: str("", "base64 SHA-256 of an externally hosted payload"),
      },
      async run(c, v) {
        if (!v.version) throw new FlagError("-version is required");
        let p: Package;
        if (v.file) {
          const name = String(v.filename || String(v.file).split("/").pop() || "update.gz");
          p = await c.upload<Package>("POST", `/api/apps/${enc(c.app)}/packages/upload?version=${enc(String(v.version))}&arch=${enc(String(v.arch))}&filename=${enc(name)}`, String(v.file));
        } else {
          if (!v.url || !v.size || !v.sha1 || !v.sha256) throw new FlagError("want -file, or -url with -size, -sha1 and -sha256");
          p = await c.api<Package>("POST", `/api/apps/${enc(c.app)}/packages`, {
            version: v.version,
            arch: v.arch,
            filename: v.filename || "update.gz",
            url: v.url,
            size: Number(v.size),
            hashSha1: v.sha1,
            hashSha256: v.sha256,
          });
        }
        await out(c, p, () => `package ${p.version} (${p.arch}) ${p.size} bytes sha1 ${p.hashSha1} sha256 ${p.hashSha256} id ${p.id}\n`);
      },
    },
    "add-file": {
      summary: "upload an extra file (e.g. oem-qemu.gz) beside a hosted package",
      args: "<version>",
      flags: { file: str("", "the file"), name: str("", "name in the response (default: the file's name)") },
      async run(c, v, pos) {
        if (!v.file) throw new FlagError("-file is required");
        const name = String(v.name || String(v.file).split("/").pop());
        const p = await c.upload<Package>("PUT", `/api/apps/${enc(c.app)}/packages/${enc(one(pos, "package version"))}/files/${enc(name)}`, String(v.file));
        await out(c, p, () => `package ${p.version}: ${p.extraFiles.map((f) => `${f.name} (${f.size} bytes, sha256 ${f.hashSha256})`).join(", ")}\n`);
      },
    },
    delete: {
      summary: "delete a package no channel points at",
      args: "<version|id>",
      flags: {},
      async run(c, _v, pos) {
        await c.api("DELETE", `/api/apps/${enc(c.app)}/packages/${enc(one(pos, "package"))}`);
        if (!c.json) c.io.out("deleted\n");
      },
    },
  },
  channel: {
    list: {
      summary: "list channels and their versions",
      flags: {},
      async run(c) {
        const [cs, ps] = await Promise.all([c.api<Channel[]>("GET", `/api/apps/${enc(c.app)}/channels`), c.api<Package[]>("GET", `/api/apps/${enc(c.app)}/packages`)]);
        await out(c, cs, () => table([["NAME", "ARCH", "VERSION", "ID"], ...cs.map((x) => [x.name, x.arch, ps.find((p) => p.id === x.packageId)?.version ?? "-", x.id])]));
      },
    },
    create: {
      summary: "create a channel",
      flags: { name: str("", "name"), arch: str("amd64", "all, amd64, aarch64 or x86"), version: str("", "package version to point at"), color: str("", "#rrggbb") },
      async run(c, v) {
        if (!v.name) throw new FlagError("-name is required");
        const ch = await c.api<Channel>("POST", `/api/apps/${enc(c.app)}/channels`, {
          name: v.name,
          arch: v.arch,
          ...(v.version ? { package: v.version } : {}),
          ...(v.color ? { color: v.color } : {}),
        });
        await out(c, ch, () => `${ch.id}\n`);
      },
    },
    update: {
      summary: "point a channel at a package version (starts the rollout)",
      args: "<channel> <version>",
      flags: {},
      async run(c, _v, pos) {
        if (pos.length !== 2) throw new FlagError("want a channel and a version");
        const ch = await c.api<Channel>("PUT", `/api/apps/${enc(c.app)}/channels/${enc(pos[0]!)}`, { package: pos[1] });
        await out(c, ch, () => `channel ${ch.name} now points at ${pos[1]}\n`);
      },
    },
  },
  instance: {
    list: {
      summary: "list instances",
      flags: {
        group: str("", "group name or id"),
        status: str("", "status name or number (UpdateGranted, Error, Complete, ...)"),
        version: str("", "running version"),
        search: str("", "substring of id, alias or IP"),
        page: str("1", "page"),
        perpage: str("50", "instances per page"),
      },
      async run(c, v) {
        const q = new URLSearchParams();
        for (const k of ["group", "status", "version", "search", "page", "perpage"]) if (v[k]) q.set(k, String(v[k]));
        const pg = await c.api<Page<InstanceApp>>("GET", `/api/apps/${enc(c.app)}/instances?${q}`);
        await out(
          c,
          pg,
          () =>
            table([["ID", "ALIAS", "IP", "VERSION", "STATUS", "LAST CHECK"], ...pg.items.map((i) => [i.instanceId, i.alias, i.ip, i.version, i.statusName, time(i.lastCheck)])]) +
            `${pg.total} instances, page ${pg.page} of ${Math.max(1, Math.ceil(pg.total / pg.perPage))}\n`,
        );
      },
    },
    delete: {
      summary: "forget a retired machine (it registers again if it checks in)",
      args: "<machine-id>",
      flags: {},
      async run(c, _v, pos) {
        await c.api("DELETE", `/api/apps/${enc(c.app)}/instances/${enc(one(pos, "machine id"))}`);
        if (!c.json) c.io.out("deleted\n");
      },
    },
    show: {
      summary: "an instance with its status history and events",
      args: "<machine-id>",
      flags: {},
      async run(c, _v, pos) {
        const id = enc(one(pos, "machine id"));
        const base = `/api/apps/${enc(c.app)}/instances/${id}`;
        const [i, h, e] = await Promise.all([c.api<InstanceApp>("GET", base), c.api<StatusHistoryEntry[]>("GET", `${base}/status_history`), c.api<EventRow[]>("GET", `${base}/events`)]);
        await out(
          c,
          { instance: i, statusHistory: h, events: e },
          () =>
            `${i.instanceId} ${i.alias ? `(${i.alias}) ` : ""}${i.ip} version ${i.version} status ${i.statusName}\n\nstatus history:\n` +
            table([["TIME", "STATUS", "VERSION", "ERROR"], ...h.map((x) => [time(x.createdAt), x.statusName, x.version, errName(x.errorCode)])]) +
            "\nevents:\n" +
            table([["TIME", "TYPE", "RESULT", "ERROR", "PREVIOUS"], ...e.map((x) => [time(x.createdAt), String(x.type), String(x.result), errName(x.errorCode), x.previousVersion ?? ""])]),
        );
      },
    },
  },
  activity: {
    list: {
      summary: "the activity log, newest first",
      flags: { group: str("", "group"), instance: str("", "machine id"), severity: str("", "1 success, 2 info, 3 warning, 4 error"), page: str("1", "page"), perpage: str("50", "entries per page") },
      async run(c, v) {
        const q = new URLSearchParams({ app: c.app });
        for (const k of ["group", "instance", "severity", "page", "perpage"]) if (v[k]) q.set(k, String(v[k]));
        const pg = await c.api<Page<Activity>>("GET", `/api/activity?${q}`);
        await out(c, pg, () => table([["TIME", "SEVERITY", "KIND", "VERSION", "MESSAGE"], ...pg.items.map((a) => [time(a.createdAt), a.severityName, a.className, a.version, a.message])]));
      },
    },
  },
  token: {
    create: {
      summary: "create another admin token (printed once)",
      flags: { name: str("", "what the token is for") },
      async run(c, v) {
        if (!v.name) throw new FlagError("-name is required");
        const t = await c.api<{ id: string; token: string }>("POST", "/api/tokens", { name: v.name });
        await out(c, t, () => `${t.token}\n`);
      },
    },
    list: {
      summary: "list admin tokens (names only)",
      flags: {},
      async run(c) {
        const ts = await c.api<{ id: string; name: string; createdAt: number }[]>("GET", "/api/tokens");
        await out(c, ts, () => table([["NAME", "CREATED", "ID"], ...ts.map((t) => [t.name, time(t.createdAt), t.id])]));
      },
    },
    revoke: {
      summary: "revoke a token",
      args: "<id>",
      flags: {},
      async run(c, _v, pos) {
        await c.api("DELETE", `/api/tokens/${enc(one(pos, "token id"))}`);
        if (!c.json) c.io.out("revoked\n");
      },
    },
  },
};

export function adminHelp(): string {
  const lines = ["Usage: coreos update-engine admin [global flags] <noun> <verb> [flags] [args]", "", "Commands:"];
  for (const [noun, verbs] of Object.entries(COMMANDS)) {
    for (const [verb, cmd] of Object.entries(verbs)) lines.push(`  ${`${noun} ${verb}${cmd.args ? ` ${cmd.args}` : ""}`.padEnd(38)} ${cmd.summary}`);
  }
  lines.push("", "Global flags:", usage(GLOBAL_FLAGS, ENV), "", "`activity` alone means `activity list`.");
  return `${lines.join("\n")}\n`;
}

/** Go's flag package: globals end at the first word that is not a flag. */
function splitGlobals(args: string[]): [string[], string[]] {
  let i = 0;
  while (i < args.length && args[i]!.startsWith("-")) {
    const name = args[i]!.replace(/^--?/, "");
    i += name.includes("=") || name === "json" || name === "h" || name === "help" ? 1 : 2;
  }
  return [args.slice(0, i), args.slice(i)];
}

/** Runs one admin command; returns the exit status (0 ok, 1 refused by the server, 2 usage). */
export async function runAdmin(args: string[], env: Record<string, string | undefined>, io: Io): Promise<number> {
  try {
    const [head, rest] = splitGlobals(args);
    const g = parseFlags(GLOBAL_FLAGS, head, env, ENV);
    if (g.help || rest.length === 0) {
      io.out(adminHelp());
      return g.help ? 0 : 2;
    }
    const [noun, maybeVerb, ...more] = rest;
    const verbs = COMMANDS[noun!];
    if (!verbs) throw new FlagError(`unknown command "${noun}" (try: coreos update-engine admin --help)`);
    let verb = maybeVerb;
    let tail = more;
    if (noun === "activity" && (verb === undefined || verb.startsWith("-"))) {
      tail = verb === undefined ? [] : [verb, ...more];
      verb = "list";
    }
    const cmd = verbs[verb ?? ""];
    if (!cmd) throw new FlagError(`unknown command "${noun} ${verb ?? ""}" (want one of: ${Object.keys(verbs).join(", ")})`);
    const p = parseFlags(cmd.flags, tail, {}, ENV);
    if (p.help) {
      io.out(`Usage: coreos update-engine admin ${noun} ${verb}${cmd.args ? ` ${cmd.args}` : ""} [flags]\n\n${cmd.summary}\n\n${usage(cmd.flags, ENV)}\n`);
      return 0;
    }
    const server = String(g.values.server).replace(/\/+$/, "");
    const token = String(g.values.token);
    if (!token) throw new FlagError("no token: pass -token or set UPDATECTL_TOKEN");
    const headers = { Authorization: `Bearer ${token}` };
    const call = async <T>(method: string, path: string, init: RequestInit): Promise<T> => {
      let r: Response;
      try {
        r = await io.fetch(`${server}${path}`, { method, ...init, headers: { ...headers, ...(init.headers as Record<string, string>) } });
      } catch (e) {
        throw new AdminError(`cannot reach ${server}: ${(e as Error).message}`);
      }
      const text = await r.text();
      if (!r.ok) {
        let msg = text.trim();
        try {
          msg = (JSON.parse(text) as { error?: string }).error ?? msg;
        } catch {
          // not JSON: the text itself
        }
        throw new AdminError(`${r.status}: ${msg}`);
      }
      return (text ? JSON.parse(text) : null) as T;
    };
    const ctx: Ctx = {
      app: String(g.values.app),
      json: Boolean(g.values.json),
      io,
      api: (method, path, body) => call(method, path, body === undefined ? {} : { body: JSON.stringify(body), headers: { "Content-Type": "application/json" } }),
      async upload(method, path, file) {
        const f = io.file(file);
        if (!(await f.exists())) throw new AdminError(`${file}: no such file`);
        return call(method, path, { body: f, headers: { "Content-Type": "application/octet-stream" } });
      },
    };
    await cmd.run(ctx, p.values, p.positionals);
    return 0;
  } catch (e) {
    if (e instanceof FlagError) {
      io.err(`${e.message}\n`);
      return 2;
    }
    if (e instanceof AdminError) {
      io.err(`error: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
}
