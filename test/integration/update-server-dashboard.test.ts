// The dashboard in headless Chromium (Debian's chromium driven by playwright-core): after a rollout
// the group page shows the counts the API reports, error codes by name on the instance page, and
// the pause button pauses the group (machines are then refused). Screenshots go to test/artifacts/.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium, type BrowserContext } from "playwright-core";
import { cleanup, ROOT, tempDir } from "../helpers/procs.ts";
import { api, Machine, NEW, startServer, type ServerProc } from "./update-server-machine.ts";

const ARTIFACTS = join(ROOT, "test/artifacts");
let dir: string;
let srv: ServerProc;
let browser: BrowserContext;

beforeAll(async () => {
  dir = tempDir("update-server-dashboard-");
  srv = await startServer(join(dir, "data"));
  browser = await chromium.launchPersistentContext(join(dir, "chromium-profile"), {
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
});

afterAll(async () => {
  await browser?.close();
  await srv?.stop();
  cleanup(dir);
});

test("group page after a rollout: counts, chart, instance history; pause button pauses the group", async () => {
  const up = await fetch(`${srv.url}/api/apps/CoreOS/packages/upload?version=${NEW}&filename=flatcar_production_update.gz`, {
    method: "POST",
    headers: { Authorization: `Bearer ${srv.token}` },
    body: "flatcar-example-payload",
  });
  expect(up.status).toBe(201);
  await api(srv, "POST", "/api/apps/CoreOS/channels", { name: "stable", package: NEW });
  await api(srv, "POST", "/api/apps/CoreOS/groups", { name: "stable", channel: "stable", policy: { maxUpdatesPerPeriod: 100, period: "1m" } });
  // 4 machines update, 1 fails (3/0 with the non-production-server flag), 1 already runs NEW.
  const ms = Array.from({ length: 6 }, (_, i) => new Machine(srv.url, `dd${String(i).padStart(30, "0")}`, "stable", i === 5 ? NEW : undefined));
  for (const [i, m] of ms.entries()) {
    const r = await m.checkAndUpdate(i === 4 ? 268435477 : undefined);
    expect(r).toBe(i === 5 ? "noupdate" : i === 4 ? "failed" : "updated");
    if (r === "updated") expect(await m.checkAndUpdate()).toBe("noupdate");
  }
  const stats = await api<{ total: number; onTarget: number; statuses: Record<string, number> }>(srv, "GET", "/api/apps/CoreOS/groups/stable/stats");
  expect(stats).toEqual(expect.objectContaining({ total: 6, onTarget: 5, statuses: { Complete: 4, Error: 1, Undefined: 1 } }));

  const page = await browser.newPage();
  page.setDefaultTimeout(10_000);
  await page.goto(`${srv.url}/dashboard`);
  expect(page.url()).toEndWith("/dashboard/login");
  await page.fill("input[name=token]", "cu_wrong");
  await page.click("button[type=submit]");
  expect(await page.textContent("body")).toContain("not valid");
  await page.fill("input[name=token]", srv.token);
  await page.click("button[type=submit]");
  await page.click('h2 a:text-is("CoreOS")');
  // The app page: each group with its version breakdown and rollout chart.
  expect(await page.locator("[data-group=stable] svg.version-breakdown").count()).toBe(1);
  expect(await page.locator("[data-group=stable] svg.rollout-chart").count()).toBe(1);
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, "update-server-app.png"), fullPage: true });
  await page.click("[data-group=stable] h2 a");
  const count = async (id: string) => Number(await page.textContent(`[data-testid=${id}]`));
  expect(await count("count-total")).toBe(stats.total);
  expect(await count("count-on-target")).toBe(stats.onTarget);
  expect(await count("count-Complete")).toBe(4);
  expect(await count("count-Error")).toBe(1);
  expect(await count("count-Undefined")).toBe(1);
  expect(await count("count-UpdateGranted")).toBe(0);
  expect(await count("chart-granted")).toBe(5);
  expect(await count("chart-completed")).toBe(4);
  expect(await count("chart-failed")).toBe(1);
  expect(await page.locator("svg.rollout-chart polyline").count()).toBe(3);
  expect(await page.locator(`[data-version="${NEW}"] .version-count`).textContent()).toBe("5");
  expect(await page.locator("table.instances tr[data-instance]").count()).toBe(6);
  expect(await page.textContent("[data-testid=policy]")).toContain("max 100 updates per 1m");
  await page.screenshot({ path: join(ARTIFACTS, "update-server-dashboard.png"), fullPage: true });

  // The failed machine's page names its error code.
  await page.click(`a:text-is("${ms[4]!.id}")`);
  expect(await page.textContent("[data-testid=instance-status]")).toBe("Error");
  expect(await page.locator("table.history .error-code").first().textContent()).toBe("DownloadInvalidMetadataMagicString with TestOmahaUrlFlag (268435477)");
  await page.screenshot({ path: join(ARTIFACTS, "update-server-instance.png"), fullPage: true });
  await page.goBack();

  // Pause from the page.
  expect(await page.textContent("[data-testid=updates-state]")).toBe("updates enabled");
  await page.click("[data-testid=toggle-updates]");
  expect(await page.textContent("[data-testid=updates-state]")).toBe("updates paused");
  const g = await api<{ policy: { updatesEnabled: boolean } }>(srv, "GET", "/api/apps/CoreOS/groups/stable");
  expect(g.policy.updatesEnabled).toBe(false);
  const late = new Machine(srv.url, `ee${"0".repeat(30)}`, "stable");
  expect(await late.checkAndUpdate()).toBe("refused");
  expect(late.lastAppStatus).toBe("error-updatesDisabled");
  await page.screenshot({ path: join(ARTIFACTS, "update-server-paused.png"), fullPage: true });
  // Resume again from the page.
  await page.click("[data-testid=toggle-updates]");
  expect(await page.textContent("[data-testid=updates-state]")).toBe("updates enabled");
  expect(await late.checkAndUpdate()).toBe("updated");
}, 60_000);
