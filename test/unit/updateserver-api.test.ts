// The admin API: bearer tokens (hashed, first one made at start), validation with one-line 400s,
// apps/groups/channels/packages CRUD, instance filters and pagination, activity filters, metrics,
// and the admin CLI over it.
import { afterEach, describe, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { join } from "node:path";
import { runAdmin } from "../../internal/updateserver/admin.ts";
import { check, event, harness, setupStable, type Harness } from "./updateserver-harness.ts";

let h: Harness;
afterEach(() => h?.close());

describe("tokens", () => {
  test("the admin API needs a bearer token; the Omaha endpoint, health and payloads do not", async () => {
    h = harness();
    expect((await h.fetch("/api/apps")).status).toBe(401);
    expect((await h.fetch("/api/apps", { headers: { Authorization: "Bearer cu_nope" } })).status).toBe(401);
    expect((await h.fetch("/api/apps", { headers: { Authorization: `Basic ${h.token}` } })).status).toBe(401);
    expect((await h.api("GET", "/api/apps")).status).toBe(200);
    expect((await h.fetch("/health")).status).toBe(200);
    expect((await h.omaha(check({ id: "m" }))).status).toBe(200);
    // The dashboard wants a signed-in cookie, and its forms their own origin.
    const d = await h.fetch("/dashboard/", { redirect: "manual" });
    expect(d.status).toBe(303);
    expect(d.headers.get("location")).toBe("/dashboard/login");
    await setupStable(h);
    const cookie = `cu_token=${h.token}`;
    const post = (origin: string) => h.fetch("/dashboard/apps/CoreOS/groups/stable/pause", { method: "POST", redirect: "manual", headers: { Cookie: cookie, Origin: origin } });
    expect((await post("https://evil.example")).status).toBe(403);
    expect((await h.api<{ policy: { updatesEnabled: boolean } }>("GET", "/api/apps/CoreOS/groups/stable")).body.policy.updatesEnabled).toBe(true);
    expect((await post("http://updates.test")).status).toBe(303);
    expect((await h.api<{ policy: { updatesEnabled: boolean } }>("GET", "/api/apps/CoreOS/groups/stable")).body.policy.updatesEnabled).toBe(false);
  });

  test("stored hashed; new tokens work, revoked ones stop working; a restart keeps them", async () => {
    h = harness();
    const db = new Database(join(h.dir, "update-server.db"), { readonly: true });
    const rows = db.query("SELECT hash FROM token").all() as { hash: string }[];
    db.close();
    expect(rows.length).toBe(1);
    expect(rows[0]!.hash).not.toContain(h.token);
    expect(rows[0]!.hash).toBe(new Bun.CryptoHasher("sha256").update(h.token).digest("hex"));
    const made = await h.api<{ id: string; token: string }>("POST", "/api/tokens", { name: "ci" });
    expect(made.status).toBe(201);
    const auth = (t: string) => h.fetch("/api/apps", { headers: { Authorization: `Bearer ${t}` } });
    expect((await auth(made.body.token)).status).toBe(200);
    const list = await h.api<{ name: string }[]>("GET", "/api/tokens");
    expect(list.body.map((t) => t.name)).toEqual(["admin", "ci"]);
    expect(JSON.stringify(list.body)).not.toContain(made.body.token);
    expect((await h.api("DELETE", `/api/tokens/${made.body.id}`)).status).toBe(204);
    expect((await auth(made.body.token)).status).toBe(401);
  });
});

describe("validation and CRUD", () => {
  test("bad input is a 400 with one line naming the field; nothing is stored", async () => {
    h = harness();
    const cases: [string, string, unknown, RegExp][] = [
      ["POST", "/api/apps/CoreOS/groups", { name: "" }, /^name: must not be empty$/],
      ["POST", "/api/apps/CoreOS/groups", { name: "g", policy: { period: "often" } }, /^policy\.period: invalid interval/],
      ["POST", "/api/apps/CoreOS/groups", { name: "g", policy: { timezone: "Mars/Base" } }, /^policy\.timezone: unknown time zone$/],
      ["POST", "/api/apps/CoreOS/groups", { name: "g", policy: { maxUpdatesPerPeriod: -1 } }, /^policy\.maxUpdatesPerPeriod: /],
      ["POST", "/api/apps/CoreOS/groups", { name: "g", bogus: 1 }, /bogus/],
      ["POST", "/api/apps/CoreOS/channels", { name: "c", arch: "sparc" }, /^arch: arch must be one of all, amd64, aarch64, x86$/],
      ["POST", "/api/apps/CoreOS/packages", { version: "not-a-version", filename: "u.gz", url: "https://x/", size: 1, hashSha1: "", hashSha256: "" }, /^version: not a version/],
      ["POST", "/api/apps/CoreOS/packages", { version: "1.2.3", filename: "../etc/passwd", url: "https://x/", size: 1, hashSha1: "", hashSha256: "" }, /^filename: invalid file name$/],
      ["POST", "/api/apps/CoreOS/packages", { version: "1.2.3", filename: "u.gz", url: "https://x/", size: 1, hashSha1: "AAAA", hashSha256: "" }, /^hashSha1: must be 20 bytes in base64$/],
      ["POST", "/api/apps", { name: "x", id: "not-a-uuid" }, /is not a UUID$/],
    ];
    for (const [method, path, body, msg] of cases) {
      const r = await h.api<{ error: string }>(method, path, body);
      expect(r.status).toBe(400);
      expect(r.body.error).toMatch(msg);
    }
    const raw = await h.fetch("/api/apps/CoreOS/groups", { method: "POST", headers: { Authorization: `Bearer ${h.token}` }, body: "{nope" });
    expect(raw.status).toBe(400);
    expect((await h.api<unknown[]>("GET", "/api/apps/CoreOS/groups")).body).toEqual([]);
    expect((await h.api<unknown[]>("GET", "/api/apps/CoreOS/packages")).body).toEqual([]);
  });

  test("not found is 404, a duplicate is 409, a pinned package cannot be deleted", async () => {
    h = harness();
    await setupStable(h);
    expect((await h.api("GET", "/api/apps/nosuch")).status).toBe(404);
    expect((await h.api("GET", "/api/apps/CoreOS/groups/nosuch")).status).toBe(404);
    expect((await h.api("POST", "/api/apps/CoreOS/groups", { name: "stable" })).status).toBe(409);
    expect((await h.api("POST", "/api/apps/CoreOS/channels", { name: "stable" })).status).toBe(409);
    const dup = await h.fetch("/api/apps/CoreOS/packages/upload?version=4230.2.0", { method: "POST", headers: { Authorization: `Bearer ${h.token}` }, body: "again" });
    expect(dup.status).toBe(409);
    const del = await h.api<{ error: string }>("DELETE", "/api/apps/CoreOS/packages/4230.2.0");
    expect(del.status).toBe(409);
    expect(del.body.error).toContain("pinned by channel stable");
    expect((await h.api("PUT", "/api/apps/CoreOS/channels/stable", { package: null })).status).toBe(200);
    expect((await h.api("DELETE", "/api/apps/CoreOS/packages/4230.2.0")).status).toBe(204);
    expect((await h.api("GET", "/api/apps/CoreOS/packages/4230.2.0")).status).toBe(404);
  });

  test("apps, groups and policy round trip; a second app is routed by its own id", async () => {
    h = harness();
    const app = await h.api<{ id: string }>("POST", "/api/apps", { name: "Custom", id: "{11111111-2222-3333-4444-555555555555}" });
    expect(app.status).toBe(201);
    expect(app.body.id).toBe("11111111-2222-3333-4444-555555555555");
    const up = await h.fetch("/api/apps/Custom/packages/upload?version=2.0.0&arch=all&filename=app.raw", { method: "POST", headers: { Authorization: `Bearer ${h.token}` }, body: "v2" });
    expect(up.status).toBe(201);
    await h.api("POST", "/api/apps/Custom/channels", { name: "main", arch: "all", package: "2.0.0" });
    const g = await h.api<{ track: string; policy: Record<string, unknown> }>("POST", "/api/apps/Custom/groups", {
      name: "prod",
      track: "production",
      channel: "main",
      policy: { period: "1 hour", updateTimeout: "2h", maxUpdatesPerPeriod: 7, safeMode: true, officeHours: true, timezone: "Europe/Berlin" },
    });
    expect(g.status).toBe(201);
    expect(g.body.track).toBe("production");
    expect(g.body.policy).toMatchObject({ periodSeconds: 3600, period: "1h", updateTimeoutSeconds: 7200, updateTimeout: "2h", maxUpdatesPerPeriod: 7, safeMode: true, officeHours: true, timezone: "Europe/Berlin" });
    const upd = await h.api<{ policy: Record<string, unknown>; name: string }>("PUT", "/api/apps/Custom/groups/prod", { name: "production", policy: { officeHours: false } });
    expect(upd.body.name).toBe("production");
    expect(upd.body.policy).toMatchObject({ officeHours: false, safeMode: true, maxUpdatesPerPeriod: 7 });
    const x1 = { id: "x1", appid: "{11111111-2222-3333-4444-555555555555}", track: "production", version: "1.0.0", board: "arm64-usr" };
    const r = await h.omaha(check(x1));
    expect(r.text).toContain('<manifest version="2.0.0">');
    expect(r.text).toContain('<package name="app.raw"');
    // An app other than the OS needs no reboot: 3/1 completes its update.
    await h.omaha(event(x1, { type: 3, result: 1 }));
    const i = await h.api<{ statusName: string; updateInProgress: boolean }>("GET", "/api/apps/Custom/instances/x1");
    expect(i.body).toMatchObject({ statusName: "Complete", updateInProgress: false });
  });
});

describe("instances and activity", () => {
  test("filters, search and pagination", async () => {
    h = harness();
    await setupStable(h, { maxUpdatesPerPeriod: 3 });
    for (let i = 0; i < 12; i++) await h.omaha(check({ id: `machine-${String(i).padStart(2, "0")}`, alias: i === 7 ? "db-seven" : "", version: i < 4 ? "4230.2.0" : "4152.2.0" }));
    await h.omaha(event({ id: "machine-04" }, { type: 3, result: 0, errorCode: 9 }));
    type P = { items: { instanceId: string; statusName: string }[]; total: number; page: number; perPage: number };
    const all = await h.api<P>("GET", "/api/apps/CoreOS/instances?perpage=5&sort=id&order=asc");
    expect(all.body).toMatchObject({ total: 12, page: 1, perPage: 5 });
    expect(all.body.items.map((i) => i.instanceId)).toEqual(["machine-00", "machine-01", "machine-02", "machine-03", "machine-04"]);
    const p3 = await h.api<P>("GET", "/api/apps/CoreOS/instances?perpage=5&page=3&sort=id&order=asc");
    expect(p3.body.items.map((i) => i.instanceId)).toEqual(["machine-10", "machine-11"]);
    expect((await h.api<P>("GET", "/api/apps/CoreOS/instances?version=4230.2.0")).body.total).toBe(4);
    const granted = await h.api<P>("GET", "/api/apps/CoreOS/groups/stable/instances?status=UpdateGranted");
    expect(granted.body.items.map((i) => i.instanceId).sort()).toEqual(["machine-05", "machine-06"]);
    expect((await h.api<P>("GET", "/api/apps/CoreOS/instances?status=3")).body.items.map((i) => i.instanceId)).toEqual(["machine-04"]);
    expect((await h.api<P>("GET", "/api/apps/CoreOS/instances?status=OnHold")).body.total).toBe(5);
    expect((await h.api<P>("GET", "/api/apps/CoreOS/instances?search=seven")).body.items.map((i) => i.instanceId)).toEqual(["machine-07"]);
    expect((await h.api<P>("GET", "/api/apps/CoreOS/instances?search=%25")).body.total).toBe(0);
    expect((await h.api("GET", "/api/apps/CoreOS/instances?perpage=0")).status).toBe(400);
    expect((await h.api("GET", "/api/apps/CoreOS/instances?status=Sleeping")).status).toBe(400);
    expect((await h.api("GET", "/api/apps/CoreOS/instances/nosuch")).status).toBe(404);
    expect((await h.api("PUT", "/api/instances/machine-03", { alias: "web-3" })).status).toBe(200);
    expect((await h.api<{ alias: string }>("GET", "/api/apps/CoreOS/instances/machine-03")).body.alias).toBe("web-3");
    expect((await h.api("DELETE", "/api/apps/CoreOS/instances/machine-04")).status).toBe(204);
    expect((await h.api("GET", "/api/apps/CoreOS/instances/machine-04")).status).toBe(404);
    expect((await h.api<P>("GET", "/api/apps/CoreOS/instances")).body.total).toBe(11);
    expect((await h.api("DELETE", "/api/apps/CoreOS/instances/machine-04")).status).toBe(404);

    type A = { items: { className: string; instanceId: string | null }[]; total: number };
    const errors = await h.api<A>("GET", "/api/activity?app=CoreOS&severity=4");
    expect(errors.body.items).toEqual([expect.objectContaining({ className: "InstanceUpdateFailed", instanceId: "machine-04" })]);
    expect((await h.api<A>("GET", "/api/activity?group=stable&app=CoreOS")).body.items.map((a) => a.className)).toEqual(["InstanceUpdateFailed", "RolloutStarted"]);
    expect((await h.api<A>("GET", `/api/activity?end=${h.now.t - 1}`)).body.total).toBe(0);
    expect((await h.api<A>("GET", `/api/activity?start=${new Date(h.now.t).toISOString()}`)).body.total).toBe(3);
    expect((await h.api("GET", "/api/activity?start=yesterday")).status).toBe(400);
  });

  test("metrics: instances per channel and version, failed updates, Omaha counters", async () => {
    h = harness();
    await setupStable(h);
    await h.omaha(check({ id: "a", version: "4230.2.0" }));
    await h.omaha(check({ id: "b" }));
    await h.omaha(event({ id: "b" }, { type: 3, result: 0, errorCode: 9 }));
    await h.omaha("garbage");
    const text = await (await h.fetch("/metrics")).text();
    expect(text).toContain('application_instances_per_channel{application="CoreOS",channel="stable",version="4230.2.0"} 1');
    expect(text).toContain('application_instances_per_channel{application="CoreOS",channel="stable",version="4152.2.0"} 1');
    expect(text).toContain('failed_updates{application="CoreOS",group="stable"} 1');
    expect(text).toContain("omaha_requests_total 4");
    expect(text).toContain("omaha_bad_requests_total 1");
    expect(text).toContain("omaha_updates_offered_total 1");
    expect(text).toContain("# TYPE failed_updates gauge");
  });
});

describe("admin CLI", () => {
  async function cli(...args: string[]): Promise<{ code: number; out: string; err: string }> {
    let out = "";
    let err = "";
    const code = await runAdmin(["--server", "http://updates.test", "--token", h.token, ...args], {}, {
      out: (s) => void (out += s),
      err: (s) => void (err += s),
      fetch: ((url: string, init?: RequestInit) => h.srv.fetch(new Request(url, init), "127.0.0.1")) as typeof fetch,
      file: (p) => Bun.file(p),
    });
    return { code, out, err };
  }

  test("verbs, one-line errors and exit codes", async () => {
    h = harness();
    await setupStable(h);
    expect((await cli("group", "create", "--name", "beta", "--channel", "stable", "--update-count", "1", "--update-interval", "30m", "--safe-mode", "true")).out).toMatch(/beta\s+beta\s+stable\s+enabled\s+1\/30m timeout 1h safe-mode/);
    expect((await cli("group", "pause", "beta")).out).toBe("group beta: updates paused\n");
    expect((await cli("group", "list")).out).toMatch(/beta\s+beta\s+stable\s+paused/);
    expect((await cli("channel", "list")).out).toMatch(/stable\s+amd64\s+4230\.2\.0/);
    const json = JSON.parse((await cli("--json", "package", "list")).out) as { version: string; hashSha1: string }[];
    expect(json[0]).toMatchObject({ version: "4230.2.0", hashSha1: "7q+AMyPfLG6MDIeWTVFPra22Mz0=" });
    const bad = await cli("group", "create", "--name", "x", "--safe-mode", "maybe");
    expect(bad).toMatchObject({ code: 2, out: "" });
    expect(bad.err).toBe('invalid value "maybe" for flag -safe-mode: want true or false\n');
    const missing = await cli("group", "pause", "nosuch");
    expect(missing).toMatchObject({ code: 1, err: 'error: 404: group "nosuch" not found\n' });
    expect((await cli("frobnicate")).code).toBe(2);
    expect((await cli("group", "explode")).err).toContain("want one of: list, create, update, pause, resume, show");
    const noToken = await runAdmin(["group", "list"], {}, { out: () => {}, err: () => {}, fetch, file: (p) => Bun.file(p) });
    expect(noToken).toBe(2);
  });
});
