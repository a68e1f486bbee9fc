// The admin JSON API under /api/ (Hono + valibot): apps, groups, channels, packages (uploads are
// hashed on the way in), instances with filters and pagination, activity, tokens. Every input is
// validated here; the store below trusts what it gets.
import { rmSync } from "node:fs";
import { Hono, type Context } from "hono";
import * as v from "valibot";
import type { Tokens } from "./auth.ts";
import { ApiError, badRequest } from "./errors.ts";
import { ARCHES, Status, type Group } from "./model.ts";
import { payloadDir, savePayload, validFilename } from "./payloads.ts";
import { formatInterval, parseInterval, validTimezone, type Policy } from "./policy.ts";
import type { Store } from "./store.ts";
import { isVersion } from "./version.ts";

export interface ApiDeps {
  store: Store;
  tokens: Tokens;
  dataDir: string;
  /** Largest payload accepted by an upload. */
  maxPayloadBytes: number;
}

export function parse<S extends v.GenericSchema>(schema: S, data: unknown): v.InferOutput<S> {
  const r = v.safeParse(schema, data);
  if (r.success) return r.output;
  const issue = r.issues[0];
  const path = issue.path?.map((p) => String(p.key)).join(".");
  throw badRequest(`${path ? `${path}: ` : ""}${issue.message}`);
}

async function json(c: Context): Promise<unknown> {
  try {
    return await c.req.json();
  } catch {
    throw badRequest("request body is not JSON");
  }
}

const name = v.pipe(v.string(), v.trim(), v.minLength(1, "must not be empty"), v.maxLength(100, "too long (100 at most)"));
const interval = v.pipe(
  v.string(),
  v.check((s) => typeof parseInterval(s) === "number", "invalid interval (use e.g. 15m, 1h30m or \"15 minutes\")"),
  v.transform((s) => parseInterval(s) as number),
);
const arch = v.picklist(ARCHES, `arch must be one of ${ARCHES.join(", ")}`);
const version = v.pipe(v.string(), v.check(isVersion, "not a version (e.g. 4152.2.0)"));
const b64 = (bytes: number) => v.pipe(v.string(), v.check((s) => /^[A-Za-z0-9+/]+=*$/.test(s) && Buffer.from(s, "base64").length === bytes, `must be ${bytes} bytes in base64`));
const hex256 = v.pipe(v.string(), v.regex(/^[0-9a-f]{64}$/, "must be a lowercase hex SHA-256"));
const filename = v.pipe(v.string(), v.check(validFilename, "invalid file name"));

const PolicyIn = v.strictObject({
  updatesEnabled: v.optional(v.boolean()),
  safeMode: v.optional(v.boolean()),
  officeHours: v.optional(v.boolean()),
  timezone: v.optional(v.pipe(v.string(), v.check((s) => s === "" || validTimezone(s), "unknown time zone"))),
  period: v.optional(interval),
  maxUpdatesPerPeriod: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(1_000_000_000))),
  updateTimeout: v.optional(interval),
});

function policyFrom(p: v.InferOutput<typeof PolicyIn> | undefined): Partial<Policy> | undefined {
  if (!p) return undefined;
  const { period, updateTimeout, ...rest } = p;
  const out: Partial<Policy> = { ...rest };
  if (period !== undefined) out.periodSeconds = period;
  if (updateTimeout !== undefined) out.updateTimeoutSeconds = updateTimeout;
  return out;
}

const GroupIn = v.strictObject({
  name,
  description: v.optional(v.pipe(v.string(), v.maxLength(1000))),
  track: v.optional(v.pipe(v.string(), v.trim(), v.minLength(1, "must not be empty"), v.maxLength(100))),
  channel: v.optional(v.nullable(v.string())),
  policy: v.optional(PolicyIn),
});
const GroupUpdate = v.partial(GroupIn);

const ChannelIn = v.strictObject({
  name,
  arch: v.optional(arch),
  color: v.optional(v.pipe(v.string(), v.regex(/^#[0-9a-fA-F]{6}$/, "must be #rrggbb"))),
  package: v.optional(v.nullable(v.string())),
});
const ChannelUpdate = v.partial(ChannelIn);

const ExtraFileIn = v.strictObject({ name: filename, size: v.pipe(v.number(), v.integer(), v.minValue(1)), hash: b64(20), hashSha256: hex256 });
const PackageIn = v.strictObject({
  version,
  arch: v.optional(arch, "amd64"),
  filename,
  url: v.pipe(v.string(), v.url("must be a URL")),
  size: v.pipe(v.number(), v.integer(), v.minValue(1)),
  hashSha1: b64(20),
  hashSha256: b64(32),
  extraFiles: v.optional(v.array(ExtraFileIn)),
});
const UploadQuery = v.object({ version, arch: v.optional(arch, "amd64"), filename: v.optional(filename, "update.gz") });

const AppIn = v.strictObject({ name, description: v.optional(v.pipe(v.string(), v.maxLength(1000))), id: v.optional(v.string()) });
const AppUpdate = v.partial(v.strictObject({ name, description: v.pipe(v.string(), v.maxLength(1000)) }));

const int = (min: number, max: number) => v.pipe(v.string(), v.regex(/^\d+$/, "must be a number"), v.transform(Number), v.minValue(min), v.maxValue(max));
const Paging = { page: v.optional(int(1, 1_000_000), "1"), perpage: v.optional(int(1, 1000), "50") };
const statusParam = v.pipe(
  v.string(),
  v.transform((s) => (/^\d+$/.test(s) ? Number(s) : (Status as Record<string, number>)[s])),
  v.number("unknown status"),
);
const InstanceQuery = v.object({
  ...Paging,
  status: v.optional(statusParam),
  version: v.optional(v.string()),
  search: v.optional(v.pipe(v.string(), v.maxLength(200))),
  group: v.optional(v.string()),
  sort: v.optional(v.picklist(["lastCheck", "id", "version", "status"])),
  order: v.optional(v.picklist(["asc", "desc"])),
});
const time = v.pipe(
  v.string(),
  v.transform((s) => (/^\d+$/.test(s) ? Number(s) : Date.parse(s))),
  v.check((n) => Number.isFinite(n), "must be an ISO time or epoch milliseconds"),
);
const ActivityQuery = v.object({
  ...Paging,
  app: v.optional(v.string()),
  group: v.optional(v.string()),
  channel: v.optional(v.string()),
  instance: v.optional(v.string()),
  version: v.optional(v.string()),
  severity: v.optional(int(1, 4)),
  start: v.optional(time),
  end: v.optional(time),
});
const TokenIn = v.strictObject({ name });
const AliasIn = v.strictObject({ alias: v.pipe(v.string(), v.maxLength(100)) });

export function groupJson(g: Group): unknown {
  return { ...g, policy: { ...g.policy, period: formatInterval(g.policy.periodSeconds), updateTimeout: formatInterval(g.policy.updateTimeoutSeconds) } };
}

export function apiApp(d: ApiDeps): Hono {
  const { store, tokens } = d;
  const api = new Hono();
  const app = (c: Context) => store.app(c.req.param("app")!);

  // Apps
  api.get("/apps", (c) => c.json(store.apps()));
  api.post("/apps", async (c) => c.json(store.createApp(parse(AppIn, await json(c))), 201));
  api.get("/apps/:app", (c) => c.json(app(c)));
  api.put("/apps/:app", async (c) => c.json(store.updateApp(app(c).id, parse(AppUpdate, await json(c)))));
  api.delete("/apps/:app", (c) => {
    store.deleteApp(app(c).id);
    return c.body(null, 204);
  });

  // Groups
  api.get("/apps/:app/groups", (c) => c.json(store.groups(app(c).id).map(groupJson)));
  api.post("/apps/:app/groups", async (c) => {
    const a = app(c);
    const x = parse(GroupIn, await json(c));
    return c.json(groupJson(store.createGroup(a.id, { ...x, channelId: x.channel ?? null, policy: policyFrom(x.policy) })), 201);
  });
  api.get("/apps/:app/groups/:group", (c) => c.json(groupJson(store.group(app(c).id, c.req.param("group")))));
  api.put("/apps/:app/groups/:group", async (c) => {
    const a = app(c);
    const { channel, policy, ...x } = parse(GroupUpdate, await json(c));
    const upd: Parameters<Store["updateGroup"]>[2] = { ...x, policy: policyFrom(policy) };
    if (channel !== undefined) upd.channelId = channel;
    return c.json(groupJson(store.updateGroup(a.id, c.req.param("group"), upd)));
  });
  api.delete("/apps/:app/groups/:group", (c) => {
    store.deleteGroup(app(c).id, c.req.param("group"));
    return c.body(null, 204);
  });
  for (const [verb, enabled] of [["pause", false], ["resume", true]] as const) {
    api.post(`/apps/:app/groups/:group/${verb}`, (c) =>
      c.json(groupJson(store.updateGroup(app(c).id, c.req.param("group"), { policy: { updatesEnabled: enabled } }))),
    );
  }
  api.get("/apps/:app/groups/:group/stats", (c) => c.json(store.groupStats(store.group(app(c).id, c.req.param("group")))));
  api.get("/apps/:app/groups/:group/version_breakdown", (c) => c.json(store.groupStats(store.group(app(c).id, c.req.param("group"))).versions));
  api.get("/apps/:app/groups/:group/rollout_timeline", (c) => c.json(store.rolloutTimeline(store.group(app(c).id, c.req.param("group")))));
  api.get("/apps/:app/groups/:group/instances", (c) => {
    const a = app(c);
    const g = store.group(a.id, c.req.param("group"));
    return c.json(listInstances(store, a.id, { ...c.req.query(), group: g.id }));
  });

  // Instances
  api.get("/apps/:app/instances", (c) => {
    const a = app(c);
    const q = c.req.query();
    return c.json(listInstances(store, a.id, { ...q, group: q.group ? store.group(a.id, q.group).id : undefined }));
  });
  api.get("/apps/:app/instances/:id", (c) => c.json(store.instance(app(c).id, c.req.param("id"))));
  api.delete("/apps/:app/instances/:id", (c) => {
    store.deleteInstance(app(c).id, c.req.param("id"));
    return c.body(null, 204);
  });
  api.get("/apps/:app/instances/:id/status_history", (c) => {
    const a = app(c);
    store.instance(a.id, c.req.param("id"));
    return c.json(store.statusHistory(a.id, c.req.param("id")));
  });
  api.get("/apps/:app/instances/:id/events", (c) => {
    const a = app(c);
    store.instance(a.id, c.req.param("id"));
    return c.json(store.events(a.id, c.req.param("id")));
  });
  api.put("/instances/:id", async (c) => {
    store.setAlias(c.req.param("id"), parse(AliasIn, await json(c)).alias);
    return c.json({ id: c.req.param("id") });
  });

  // Channels
  api.get("/apps/:app/channels", (c) => c.json(store.channels(app(c).id)));
  api.post("/apps/:app/channels", async (c) => {
    const a = app(c);
    const x = parse(ChannelIn, await json(c));
    return c.json(store.createChannel(a.id, { name: x.name, arch: x.arch, color: x.color, packageId: x.package ?? null }), 201);
  });
  api.get("/apps/:app/channels/:channel", (c) => c.json(store.channel(app(c).id, c.req.param("channel"))));
  api.put("/apps/:app/channels/:channel", async (c) => {
    const a = app(c);
    const x = parse(ChannelUpdate, await json(c));
    return c.json(store.updateChannel(a.id, c.req.param("channel"), { name: x.name, color: x.color, packageId: x.package }));
  });
  api.delete("/apps/:app/channels/:channel", (c) => {
    store.deleteChannel(app(c).id, c.req.param("channel"));
    return c.body(null, 204);
  });

  // Packages
  api.get("/apps/:app/packages", (c) => c.json(store.packages(app(c).id)));
  api.post("/apps/:app/packages", async (c) => {
    const a = app(c);
    const x = parse(PackageIn, await json(c));
    return c.json(store.createPackage(a.id, { ...x, hosted: false }), 201);
  });
  api.post("/apps/:app/packages/upload", async (c) => {
    const a = app(c);
    const q = parse(UploadQuery, c.req.query());
    if (store.packages(a.id).some((p) => p.version === q.version && p.arch === q.arch)) throw new ApiError(409, `package ${q.version} (${q.arch}) already exists`);
    const body = c.req.raw.body;
    if (!body) throw badRequest("no payload in the request body");
    const id = crypto.randomUUID();
    const dir = payloadDir(d.dataDir, id);
    try {
      const h = await savePayload(dir, q.filename, body, d.maxPayloadBytes);
      const pkg = store.createPackage(
        a.id,
        { version: q.version, arch: q.arch, filename: q.filename, url: "", size: h.size, hashSha1: h.sha1, hashSha256: h.sha256, hosted: true },
        id,
      );
      return c.json(pkg, 201);
    } catch (e) {
      rmSync(dir, { recursive: true, force: true });
      throw e;
    }
  });
  api.get("/apps/:app/packages/:pkg", (c) => c.json(store.package(app(c).id, c.req.param("pkg"))));
  api.put("/apps/:app/packages/:pkg/files/:name", async (c) => {
    const a = app(c);
    const p = store.package(a.id, c.req.param("pkg"));
    const fname = c.req.param("name");
    if (!p.hosted) throw badRequest(`package ${p.version} is hosted elsewhere (${p.url}): its extra files are too`);
    if (!validFilename(fname) || fname === p.filename) throw badRequest(`invalid extra file name "${fname}"`);
    const body = c.req.raw.body;
    if (!body) throw badRequest("no file in the request body");
    const h = await savePayload(payloadDir(d.dataDir, p.id), fname, body, d.maxPayloadBytes);
    const files = [...p.extraFiles.filter((f) => f.name !== fname), { name: fname, size: h.size, hash: h.sha1, hashSha256: h.sha256Hex }];
    return c.json(store.setExtraFiles(p, files));
  });
  api.delete("/apps/:app/packages/:pkg", (c) => {
    const p = store.deletePackage(app(c).id, c.req.param("pkg"));
    if (p.hosted) rmSync(payloadDir(d.dataDir, p.id), { recursive: true, force: true });
    return c.body(null, 204);
  });

  // Activity
  api.get("/activity", (c) => {
    const q = parse(ActivityQuery, c.req.query());
    const appId = q.app ? store.app(q.app).id : undefined;
    const groupId = q.group && appId ? store.group(appId, q.group).id : q.group;
    const channelId = q.channel && appId ? store.channel(appId, q.channel).id : q.channel;
    return c.json(
      store.activities({
        appId,
        groupId,
        channelId,
        instanceId: q.instance,
        version: q.version,
        severity: q.severity,
        start: q.start,
        end: q.end,
        page: q.page,
        perPage: q.perpage,
      }),
    );
  });

  // Tokens
  api.get("/tokens", (c) => c.json(tokens.list()));
  api.post("/tokens", async (c) => {
    const { token, info } = tokens.create(parse(TokenIn, await json(c)).name);
    return c.json({ ...info, token }, 201);
  });
  api.delete("/tokens/:id", (c) => {
    tokens.revoke(c.req.param("id"));
    return c.body(null, 204);
  });

  return api;
}

function listInstances(store: Store, appId: string, query: Record<string, string | undefined>) {
  const clean = Object.fromEntries(Object.entries(query).filter(([, x]) => x !== undefined));
  const q = parse(InstanceQuery, clean);
  return store.instances({
    appId,
    groupId: q.group,
    status: q.status,
    version: q.version,
    search: q.search,
    sort: q.sort,
    order: q.order,
    page: q.page,
    perPage: q.perpage,
  });
}
