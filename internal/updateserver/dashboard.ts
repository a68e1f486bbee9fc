// The dashboard: server-rendered HTML (hono/html escapes every interpolated value) with inline SVG
// charts, no front-end build. Signing in stores the admin token in an HttpOnly, SameSite=Strict
// cookie; pause/resume are plain form posts that the same cookie authorizes.
import { Hono, type Context } from "hono";
import { deleteCookie, getCookie, setCookie } from "hono/cookie";
import { html, raw } from "hono/html";
import type { HtmlEscapedString } from "hono/utils/html";
import { decodeErrorCode, eventResultName, eventTypeName } from "../omaha/index.ts";
import type { Tokens } from "./auth.ts";
import { STATUS_NAME, Status, type App, type Group, type InstanceApp } from "./model.ts";
import { formatInterval, UNLIMITED } from "./policy.ts";
import type { Store } from "./store.ts";

export const TOKEN_COOKIE = "cu_token";

type H = HtmlEscapedString | Promise<HtmlEscapedString>;

const STYLE = `
body{font-family:system-ui,sans-serif;margin:0;background:#f4f5f7;color:#1d2330}
header{background:#1d2330;color:#fff;padding:10px 24px;display:flex;gap:24px;align-items:center}
header a{color:#cfe1ff;text-decoration:none}
main{padding:16px 24px;max-width:1200px}
.card{background:#fff;border-radius:6px;box-shadow:0 1px 3px #0002;padding:14px 18px;margin:0 0 16px}
h1{font-size:22px}h2{font-size:17px;margin:4px 0 10px}
table{border-collapse:collapse;width:100%;font-size:13px}
td,th{text-align:left;padding:4px 8px;border-bottom:1px solid #e4e6eb}
.muted{color:#6b7280}.paused{color:#b42318;font-weight:600}.enabled{color:#067647;font-weight:600}
.counts{display:flex;gap:10px;flex-wrap:wrap}.count{background:#f0f2f5;border-radius:4px;padding:6px 10px;min-width:80px}
.count b{display:block;font-size:20px}
button{padding:6px 14px;border-radius:4px;border:1px solid #888;background:#fff;cursor:pointer}
button.pause{border-color:#b42318;color:#b42318}button.resume{border-color:#067647;color:#067647}
.sev-4{color:#b42318}.sev-3{color:#b54708}.sev-1{color:#067647}
`;

const PALETTE = ["#2e90fa", "#12b76a", "#f79009", "#7a5af8", "#ee46bc", "#667085", "#06aed4", "#f04438"];

function page(title: string, body: H): H {
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${title} · CoreOS updates</title><style>${raw(STYLE)}</style></head>
<body><header><strong>CoreOS update server</strong><a href="/dashboard">Applications</a><a href="/dashboard/activity">Activity</a>
<form method="post" action="/dashboard/logout" style="margin-left:auto"><button>Sign out</button></form></header>
<main>${body}</main></body></html>`;
}

const time = (ms: number | null): string => (ms === null ? "—" : new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z"));

function policyText(g: Group): string {
  const p = g.policy;
  const limit = p.maxUpdatesPerPeriod >= UNLIMITED ? "unlimited updates" : `max ${p.maxUpdatesPerPeriod} updates per ${formatInterval(p.periodSeconds)}`;
  const parts = [limit, `timeout ${formatInterval(p.updateTimeoutSeconds)}`];
  if (p.safeMode) parts.push("safe mode (one canary first)");
  if (p.officeHours) parts.push(`office hours only (${p.timezone || "no time zone: never"})`);
  return parts.join(", ");
}

/** One stacked bar of the group's running versions, with a legend. */
function versionBar(versions: { version: string; count: number }[], target: string | null): H {
  const total = versions.reduce((a, v) => a + v.count, 0);
  if (total === 0) return html`<p class="muted">No instances yet.</p>`;
  let x = 0;
  const rects = versions.map((v, i) => {
    const w = (v.count / total) * 600;
    const r = html`<rect x="${x.toFixed(1)}" y="0" width="${w.toFixed(1)}" height="22" fill="${PALETTE[i % PALETTE.length]}"><title>${v.version}: ${v.count}</title></rect>`;
    x += w;
    return r;
  });
  const legend = versions.map(
    (v, i) =>
      html`<span style="margin-right:14px" data-version="${v.version}"><svg width="10" height="10"><rect width="10" height="10" fill="${PALETTE[i % PALETTE.length]}"/></svg>
      ${v.version}${v.version === target ? " (channel)" : ""}: <b class="version-count">${v.count}</b> (${((v.count / total) * 100).toFixed(0)}%)</span>`,
  );
  return html`<svg class="version-breakdown" width="600" height="22" role="img" aria-label="version breakdown">${rects}</svg><div>${legend}</div>`;
}

/** Cumulative grants, completions and failures of the channel's version over time. */
function rolloutChart(store: Store, g: Group, h = 160): H {
  const tl = store.rolloutTimeline(g, 40);
  const W = 600;
  const max = Math.max(1, ...tl.points.map((p) => Math.max(p.granted, p.completed, p.failed)));
  const line = (key: "granted" | "completed" | "failed") =>
    tl.points.map((p, i) => `${((i + 1) / tl.points.length) * W},${(h - (p[key] / max) * (h - 10)).toFixed(1)}`).join(" ");
  const last = tl.points.at(-1) ?? { granted: 0, completed: 0, failed: 0 };
  return html`<svg class="rollout-chart" width="${W}" height="${h + 20}" role="img" aria-label="rollout progress">
<rect width="${W}" height="${h}" fill="#fafbfc" stroke="#e4e6eb"/>
<polyline fill="none" stroke="#2e90fa" stroke-width="2" points="0,${h} ${line("granted")}"/>
<polyline fill="none" stroke="#12b76a" stroke-width="2" points="0,${h} ${line("completed")}"/>
<polyline fill="none" stroke="#f04438" stroke-width="2" points="0,${h} ${line("failed")}"/>
<text x="4" y="${h + 15}" font-size="11" fill="#6b7280">${time(tl.start)}</text>
<text x="${W - 4}" y="${h + 15}" font-size="11" fill="#6b7280" text-anchor="end">${time(tl.end)}</text>
<text x="4" y="12" font-size="11" fill="#6b7280">${max}</text></svg>
<div><span style="color:#2e90fa">■ granted <b data-testid="chart-granted">${last.granted}</b></span>
<span style="color:#12b76a;margin-left:12px">■ completed <b data-testid="chart-completed">${last.completed}</b></span>
<span style="color:#f04438;margin-left:12px">■ failed <b data-testid="chart-failed">${last.failed}</b></span></div>`;
}

function pauseButton(a: App, g: Group): H {
  const enabled = g.policy.updatesEnabled;
  return html`<form method="post" action="/dashboard/apps/${a.id}/groups/${g.id}/${enabled ? "pause" : "resume"}" style="display:inline">
<button class="${enabled ? "pause" : "resume"}" data-testid="toggle-updates">${enabled ? "Pause updates" : "Resume updates"}</button></form>
<span class="${enabled ? "enabled" : "paused"}" data-testid="updates-state">${enabled ? "updates enabled" : "updates paused"}</span>`;
}

function groupSummary(store: Store, a: App, g: Group): H {
  const s = store.groupStats(g);
  const ch = g.channelId ? store.cat().channels.get(g.channelId) : undefined;
  return html`<div class="card" data-group="${g.name}">
<h2><a href="/dashboard/apps/${a.id}/groups/${g.id}">${g.name}</a> <span class="muted">track “${g.track}” · channel ${ch?.name ?? "none"} → ${s.target ?? "no package"}</span></h2>
<p>${pauseButton(a, g)} <span class="muted">${policyText(g)}</span></p>
<p>${s.total} instances, ${s.onTarget} on ${s.target ?? "—"}${g.rolloutInProgress ? " · rollout in progress" : ""}</p>
${versionBar(s.versions, s.target)}${s.target ? rolloutChart(store, g, 120) : ""}</div>`;
}

function activityTable(items: ReturnType<Store["activities"]>["items"]): H {
  if (items.length === 0) return html`<p class="muted">No activity.</p>`;
  return html`<table class="activity"><tr><th>Time</th><th>Kind</th><th>Version</th><th>Message</th></tr>
${items.map((x) => html`<tr class="sev-${x.severity}"><td>${time(x.createdAt)}</td><td>${x.className}</td><td>${x.version}</td><td>${x.message}</td></tr>`)}</table>`;
}

function instanceRows(a: App, items: InstanceApp[]): H {
  return html`${items.map(
    (i) => html`<tr data-instance="${i.instanceId}"><td><a href="/dashboard/apps/${a.id}/instances/${i.instanceId}">${i.instanceId}</a></td><td>${i.alias}</td>
<td>${i.ip}</td><td>${i.version}</td><td class="status">${i.statusName}</td><td>${time(i.lastCheck)}</td></tr>`,
  )}`;
}

function errorName(code: number | null): string {
  return code === null ? "" : `${decodeErrorCode(code).name} (${code})`;
}

export function dashboardApp(store: Store, tokens: Tokens): Hono {
  const d = new Hono();
  const authed = (c: Context) => tokens.valid(getCookie(c, TOKEN_COOKIE));

  d.get("/login", (c) =>
    c.html(html`<!doctype html><html><head><meta charset="utf-8"><title>Sign in · CoreOS updates</title><style>${raw(STYLE)}</style></head>
<body><main><div class="card" style="max-width:480px;margin:60px auto"><h1>CoreOS update server</h1>
${c.req.query("failed") ? html`<p class="paused">That token is not valid.</p>` : ""}
<form method="post" action="/dashboard/login"><p><label>Admin token<br><input name="token" type="password" size="50" autofocus></label></p>
<button type="submit">Sign in</button></form></div></main></body></html>`),
  );
  d.post("/login", async (c) => {
    const form = await c.req.parseBody();
    const token = typeof form.token === "string" ? form.token.trim() : "";
    if (!tokens.valid(token)) return c.redirect("/dashboard/login?failed=1", 303);
    setCookie(c, TOKEN_COOKIE, token, { httpOnly: true, sameSite: "Strict", path: "/" });
    return c.redirect("/dashboard", 303);
  });
  d.post("/logout", (c) => {
    deleteCookie(c, TOKEN_COOKIE, { path: "/" });
    return c.redirect("/dashboard/login", 303);
  });
  d.use("*", async (c, next) => {
    if (!authed(c)) return c.redirect("/dashboard/login", 303);
    // Besides SameSite=Strict: a form posted from another origin changes nothing.
    const origin = c.req.header("origin");
    if (c.req.method === "POST" && origin && origin !== new URL(c.req.url).origin) return c.text("cross-origin form refused\n", 403);
    await next();
  });

  d.get("/", (c) => {
    const apps = store.apps();
    return c.html(
      page(
        "Applications",
        html`<h1>Applications</h1>${apps.map((a) => {
          const groups = store.groups(a.id);
          const n = groups.reduce((acc, g) => acc + store.groupStats(g).total, 0);
          return html`<div class="card"><h2><a href="/dashboard/apps/${a.id}">${a.name}</a></h2><p class="muted">${a.id} · ${groups.length} groups · ${n} instances</p>
<p>${a.description}</p></div>`;
        })}`,
      ),
    );
  });

  d.get("/activity", (c) => c.html(page("Activity", html`<h1>Activity</h1><div class="card">${activityTable(store.activities({ page: 1, perPage: 200 }).items)}</div>`)));

  d.get("/apps/:app", (c) => {
    const a = store.app(c.req.param("app"));
    const channels = store.channels(a.id);
    return c.html(
      page(
        a.name,
        html`<h1>${a.name}</h1>
<h2>Groups</h2>${store.groups(a.id).map((g) => groupSummary(store, a, g))}
<div class="card"><h2>Channels</h2><table><tr><th>Channel</th><th>Arch</th><th>Package</th></tr>
${channels.map((ch) => html`<tr><td><span style="color:${ch.color}">■</span> ${ch.name}</td><td>${ch.arch}</td><td>${ch.packageId ? (store.cat().packages.get(ch.packageId)?.version ?? "") : "none"}</td></tr>`)}</table></div>
<div class="card"><h2>Activity</h2>${activityTable(store.activities({ appId: a.id, page: 1, perPage: 30 }).items)}</div>`,
      ),
    );
  });

  d.get("/apps/:app/groups/:group", (c) => {
    const a = store.app(c.req.param("app"));
    const g = store.group(a.id, c.req.param("group"));
    const s = store.groupStats(g);
    const q = c.req.query();
    const status = q.status && /^\d+$/.test(q.status) ? Number(q.status) : undefined;
    const pageNo = Math.max(1, Math.min(100000, Number(q.page) || 1));
    const list = store.instances({ appId: a.id, groupId: g.id, status, search: q.search?.slice(0, 200), page: pageNo, perPage: 50 });
    const counts = Object.values(Status).map(
      (st) => html`<div class="count"><b data-testid="count-${STATUS_NAME[st]}">${s.statuses[STATUS_NAME[st]!] ?? 0}</b>${STATUS_NAME[st]}</div>`,
    );
    const pages = Math.max(1, Math.ceil(list.total / list.perPage));
    const qs = (p: number) => `?page=${p}${status !== undefined ? `&status=${status}` : ""}${q.search ? `&search=${encodeURIComponent(q.search)}` : ""}`;
    return c.html(
      page(
        g.name,
        html`<h1><a href="/dashboard/apps/${a.id}">${a.name}</a> / ${g.name}</h1>
<div class="card"><p>${pauseButton(a, g)}</p><p class="muted" data-testid="policy">${policyText(g)}</p>
<p>Total instances: <b data-testid="count-total">${s.total}</b> · on the channel's version ${s.target ?? "—"}: <b data-testid="count-on-target">${s.onTarget}</b></p>
<div class="counts">${counts}</div></div>
<div class="card"><h2>Version breakdown</h2>${versionBar(s.versions, s.target)}</div>
<div class="card"><h2>Rollout progress of ${s.target ?? "—"}</h2>${rolloutChart(store, g)}</div>
<div class="card"><h2>Instances</h2>
<form method="get"><input name="search" placeholder="id, alias or IP" value="${q.search ?? ""}">
<select name="status"><option value="">any status</option>${Object.values(Status).map((st) => html`<option value="${st}" ${status === st ? "selected" : ""}>${STATUS_NAME[st]}</option>`)}</select>
<button>Filter</button></form>
<table class="instances"><tr><th>Machine id</th><th>Alias</th><th>IP</th><th>Version</th><th>Status</th><th>Last check</th></tr>${instanceRows(a, list.items)}</table>
<p class="muted">${list.total} instances · page ${list.page} of ${pages}
${list.page > 1 ? html`<a href="${qs(list.page - 1)}">previous</a>` : ""} ${list.page < pages ? html`<a href="${qs(list.page + 1)}">next</a>` : ""}</p></div>
<div class="card"><h2>Activity</h2>${activityTable(store.activities({ appId: a.id, groupId: g.id, page: 1, perPage: 30 }).items)}</div>`,
      ),
    );
  });

  d.get("/apps/:app/instances/:id", (c) => {
    const a = store.app(c.req.param("app"));
    const i = store.instance(a.id, c.req.param("id"));
    const g = store.cat().groups.get(i.groupId);
    return c.html(
      page(
        i.instanceId,
        html`<p class="muted"><a href="/dashboard/apps/${a.id}">${a.name}</a>${g ? html` / <a href="/dashboard/apps/${a.id}/groups/${g.id}">${g.name}</a>` : ""}</p><h1>Instance ${i.instanceId}</h1>
<div class="card"><table>
<tr><th>Alias</th><td>${i.alias}</td></tr><tr><th>IP</th><td>${i.ip}</td></tr>
<tr><th>Group</th><td>${g ? html`<a href="/dashboard/apps/${a.id}/groups/${g.id}">${g.name}</a>` : i.groupId}</td></tr>
<tr><th>Version</th><td>${i.version}</td></tr><tr><th>Status</th><td data-testid="instance-status">${i.statusName}</td></tr>
<tr><th>OEM</th><td>${i.oem} ${i.oemVersion}</td></tr><tr><th>First installed</th><td>${i.alephVersion}</td></tr>
<tr><th>Last check</th><td>${time(i.lastCheck)}</td></tr><tr><th>Last update granted</th><td>${time(i.lastUpdateGrantedAt)} ${i.lastUpdateVersion ?? ""}</td></tr></table></div>
<div class="card"><h2>Status history</h2><table class="history"><tr><th>Time</th><th>Status</th><th>Version</th><th>Error</th></tr>
${store.statusHistory(a.id, i.instanceId).map((h) => html`<tr><td>${time(h.createdAt)}</td><td>${h.statusName}</td><td>${h.version}</td><td class="error-code">${errorName(h.errorCode)}</td></tr>`)}</table></div>
<div class="card"><h2>Events</h2><table class="events"><tr><th>Time</th><th>Type</th><th>Result</th><th>Error</th><th>Previous version</th></tr>
${store.events(a.id, i.instanceId).map((e) => html`<tr><td>${time(e.createdAt)}</td><td>${eventTypeName(e.type)} (${e.type})</td><td>${eventResultName(e.result)} (${e.result})</td><td class="error-code">${errorName(e.errorCode)}</td><td>${e.previousVersion ?? ""}</td></tr>`)}</table></div>`,
      ),
    );
  });

  for (const [verb, enabled] of [["pause", false], ["resume", true]] as const) {
    d.post(`/apps/:app/groups/:group/${verb}`, (c) => {
      const a = store.app(c.req.param("app"));
      const g = store.updateGroup(a.id, c.req.param("group"), { policy: { updatesEnabled: enabled } });
      return c.redirect(`/dashboard/apps/${a.id}/groups/${g.id}`, 303);
    });
  }
  return d;
}
