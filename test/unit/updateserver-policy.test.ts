// Rollout policy (§5.3): the pure decision table, office hours in time zones, intervals, version
// order; then the policy at work in a server with a hand-driven clock.
import { afterEach, describe, expect, test } from "bun:test";
import { decide, formatInterval, inOfficeHours, parseInterval, type Policy, type RolloutStats } from "../../internal/updateserver/policy.ts";
import { compareVersions } from "../../internal/updateserver/version.ts";
import { check, event, harness, MONDAY_10_UTC, setupStable, statuses, type Harness } from "./updateserver-harness.ts";

const P: Policy = { updatesEnabled: true, safeMode: false, officeHours: false, timezone: "UTC", periodSeconds: 900, maxUpdatesPerPeriod: 2, updateTimeoutSeconds: 3600 };
const S: RolloutStats = { grantedInPeriod: 0, inProgress: 0, timedOut: 0, completed: 0 };

describe("decide", () => {
  const cases: [string, Partial<Policy>, Partial<RolloutStats>, string][] = [
    ["open group, nothing going on", {}, {}, "grant"],
    ["paused", { updatesEnabled: false }, {}, "updatesDisabled"],
    ["period full", {}, { grantedInPeriod: 2 }, "maxUpdatesPerPeriod+hold"],
    ["one slot left in the period", {}, { grantedInPeriod: 1, inProgress: 1 }, "grant"],
    ["too many in flight", {}, { grantedInPeriod: 0, inProgress: 2 }, "maxConcurrentUpdates+hold"],
    ["unlimited skips the statistics", { maxUpdatesPerPeriod: 900000 }, { grantedInPeriod: 5_000_000 }, "grant"],
    ["safe mode: the canary", { safeMode: true }, {}, "grant"],
    ["safe mode: the canary is still out", { safeMode: true }, { grantedInPeriod: 1, inProgress: 1 }, "maxConcurrentUpdates+hold"],
    ["safe mode: canary done, normal limits", { safeMode: true }, { grantedInPeriod: 1, completed: 1 }, "grant"],
    ["safe mode: canary timed out closes the group", { safeMode: true }, { timedOut: 1 }, "maxTimedOutUpdates+hold+disable"],
    ["safe mode: too many timed out closes the group", { safeMode: true }, { timedOut: 2, completed: 3 }, "maxTimedOutUpdates+hold+disable"],
    ["no safe mode: timeouts only free their slot", {}, { timedOut: 5 }, "grant"],
    ["max 0 grants nothing", { maxUpdatesPerPeriod: 0 }, {}, "maxUpdatesPerPeriod+hold"],
  ];
  for (const [name, p, s, want] of cases) {
    test(name, () => {
      const d = decide({ ...P, ...p }, { ...S, ...s }, MONDAY_10_UTC);
      const got = d.grant ? "grant" : `${d.reason}${d.onHold ? "+hold" : ""}${d.disableGroup ? "+disable" : ""}`;
      expect(got).toBe(want);
    });
  }

  test("office hours: Mon-Fri 09:00-16:59 in the group's time zone", () => {
    const oh = { ...P, officeHours: true, timezone: "America/New_York" };
    // Monday 10:00 UTC is 05:00 in New York: closed; 14:00 UTC is 09:00 there: open.
    expect(decide(oh, S, MONDAY_10_UTC).grant).toBe(false);
    expect(decide(oh, S, MONDAY_10_UTC + 4 * 3600_000).grant).toBe(true);
    expect(inOfficeHours(Date.UTC(2026, 10, 23, 16, 59), "UTC")).toBe(true);
    expect(inOfficeHours(Date.UTC(2026, 10, 23, 17, 0), "UTC")).toBe(false);
    expect(inOfficeHours(Date.UTC(2026, 10, 23, 8, 59), "UTC")).toBe(false);
    // Saturday and Sunday never.
    expect(inOfficeHours(Date.UTC(2026, 10, 21, 12, 0), "UTC")).toBe(false);
    expect(inOfficeHours(Date.UTC(2026, 10, 22, 12, 0), "UTC")).toBe(false);
    // Friday 23:30 UTC is Saturday 08:30 in Tokyo.
    expect(inOfficeHours(Date.UTC(2026, 10, 27, 23, 30), "Asia/Tokyo")).toBe(false);
    expect(inOfficeHours(Date.UTC(2026, 10, 27, 1, 0), "Asia/Tokyo")).toBe(true);
    // No or an unknown zone: never open.
    expect(inOfficeHours(MONDAY_10_UTC, "")).toBe(false);
    expect(inOfficeHours(MONDAY_10_UTC, "Mars/Olympus")).toBe(false);
  });
});

test("intervals in Go and Postgres spelling", () => {
  expect(parseInterval("15m")).toBe(900);
  expect(parseInterval("1h30m")).toBe(5400);
  expect(parseInterval("15 minutes")).toBe(900);
  expect(parseInterval("1 hour")).toBe(3600);
  expect(parseInterval("90s")).toBe(90);
  expect(parseInterval("2 days")).toBe(172800);
  for (const bad of ["", "15", "-5m", "0s", "fortnight", "15m junk"]) expect(typeof parseInterval(bad)).toBe("string");
  expect(formatInterval(900)).toBe("15m");
  expect(formatInterval(5400)).toBe("1h30m");
  expect(formatInterval(61)).toBe("1m1s");
});

test("version order", () => {
  expect(compareVersions("4152.2.0", "4230.2.0")).toBe(-1);
  expect(compareVersions("4230.2.0", "4230.2.0")).toBe(0);
  expect(compareVersions("4230.10.0", "4230.9.0")).toBe(1);
  expect(compareVersions("4230.0.0-rc1", "4230.0.0")).toBe(-1);
  expect(compareVersions("4230.0.0-rc.2", "4230.0.0-rc.10")).toBe(-1);
  expect(compareVersions("4230.0.0+build1", "4230.0.0")).toBe(0);
  expect(compareVersions("", "1.0.0")).toBe(-1);
});

describe("policy in the server (injected clock)", () => {
  let h: Harness;
  afterEach(() => h?.close());
  const m = (i: number) => ({ id: `machine-${String(i).padStart(2, "0")}` });

  async function complete(i: number): Promise<void> {
    for (const [type, result] of [[13, 1], [14, 1], [3, 1]] as const) await h.omaha(event(m(i), { type, result }));
    await h.omaha(check({ ...m(i), version: "4230.2.0" }, "4152.2.0"));
  }

  test("at most 2 per 15 minutes; refused machines are OnHold with Nebraska's status", async () => {
    h = harness();
    await setupStable(h, { maxUpdatesPerPeriod: 2, period: "15m", updateTimeout: "1h" });
    const updated = new Set<number>();
    const granted = async () => {
      const out: number[] = [];
      for (let i = 0; i < 6; i++) {
        const r = await h.omaha(check({ ...m(i), version: updated.has(i) ? "4230.2.0" : "4152.2.0" }));
        if (statuses(r.text).updatecheck === "ok") out.push(i);
      }
      return out;
    };
    const first = await granted();
    expect(first).toEqual([0, 1]);
    for (const i of first) {
      await complete(i);
      updated.add(i);
    }
    const held = await h.omaha(check(m(2)));
    expect(statuses(held.text)).toEqual({ app: "error-maxUpdatesPerPeriodLimitReached", updatecheck: "error-internal" });
    const i2 = await h.api<{ statusName: string }>("GET", `/api/apps/CoreOS/instances/${m(2).id}`);
    expect(i2.body.statusName).toBe("OnHold");
    h.now.t += 14 * 60_000;
    expect((await granted()).length).toBe(0);
    h.now.t += 61_000;
    expect(await granted()).toEqual([2, 3]);
  });

  test("in-flight updates hold the next ones even in a new period; a timed-out one frees its slot", async () => {
    h = harness();
    await setupStable(h, { maxUpdatesPerPeriod: 2, period: "1m", updateTimeout: "10m" });
    for (const i of [0, 1]) expect(statuses((await h.omaha(check(m(i)))).text).updatecheck).toBe("ok");
    await h.omaha(event(m(0), { type: 13, result: 1 }));
    h.now.t += 2 * 60_000;
    expect(statuses((await h.omaha(check(m(2)))).text).app).toBe("error-maxConcurrentUpdatesLimitReached");
    h.now.t += 9 * 60_000;
    expect(statuses((await h.omaha(check(m(2)))).text).updatecheck).toBe("ok");
  });

  test("safe mode: one canary; its 3/0 pauses the group and is logged", async () => {
    h = harness();
    await setupStable(h, { safeMode: true, maxUpdatesPerPeriod: 5 });
    expect(statuses((await h.omaha(check(m(0)))).text).updatecheck).toBe("ok");
    expect(statuses((await h.omaha(check(m(1)))).text).app).toBe("error-maxConcurrentUpdatesLimitReached");
    await h.omaha(event(m(0), { type: 13, result: 1 }));
    await h.omaha(event(m(0), { type: 3, result: 0, errorCode: 10 }));
    const g = await h.api<{ policy: { updatesEnabled: boolean } }>("GET", "/api/apps/CoreOS/groups/stable");
    expect(g.body.policy.updatesEnabled).toBe(false);
    expect(statuses((await h.omaha(check(m(1)))).text).app).toBe("error-updatesDisabled");
    const act = await h.api<{ items: { className: string }[] }>("GET", "/api/activity?app=CoreOS&severity=4");
    expect(act.body.items.map((a) => a.className)).toEqual(["RolloutFailed", "InstanceUpdateFailed"]);
    // Resumed by an admin: a new canary goes first.
    await h.api("POST", "/api/apps/CoreOS/groups/stable/resume");
    expect(statuses((await h.omaha(check(m(1)))).text).updatecheck).toBe("ok");
    expect(statuses((await h.omaha(check(m(2)))).text).app).toBe("error-maxConcurrentUpdatesLimitReached");
  });

  test("safe mode: a successful canary opens the group to its normal limit", async () => {
    h = harness();
    await setupStable(h, { safeMode: true, maxUpdatesPerPeriod: 3 });
    expect(statuses((await h.omaha(check(m(0)))).text).updatecheck).toBe("ok");
    await complete(0);
    expect(statuses((await h.omaha(check(m(1)))).text).updatecheck).toBe("ok");
    expect(statuses((await h.omaha(check(m(2)))).text).updatecheck).toBe("ok");
    expect(statuses((await h.omaha(check(m(3)))).text).app).toBe("error-maxUpdatesPerPeriodLimitReached");
  });

  test("safe mode: a canary that times out pauses the group", async () => {
    h = harness();
    await setupStable(h, { safeMode: true, maxUpdatesPerPeriod: 5, updateTimeout: "30m" });
    expect(statuses((await h.omaha(check(m(0)))).text).updatecheck).toBe("ok");
    await h.omaha(event(m(0), { type: 13, result: 1 }));
    h.now.t += 31 * 60_000;
    expect(statuses((await h.omaha(check(m(1)))).text).app).toBe("error-maxTimedOutUpdatesLimitReached");
    const g = await h.api<{ policy: { updatesEnabled: boolean } }>("GET", "/api/apps/CoreOS/groups/stable");
    expect(g.body.policy.updatesEnabled).toBe(false);
    const c = await h.api<{ statusName: string; updateInProgress: boolean }>("GET", `/api/apps/CoreOS/instances/${m(0).id}`);
    expect(c.body).toMatchObject({ statusName: "Error", updateInProgress: false });
    const act = await h.api<{ items: { className: string; message: string }[] }>("GET", "/api/activity?app=CoreOS&severity=4");
    expect(act.body.items[0]!.className).toBe("RolloutFailed");
  });

  test("office hours with a time zone, by the injected clock", async () => {
    h = harness(Date.UTC(2026, 10, 23, 7, 0)); // Monday 07:00 UTC = 08:00 in Berlin
    await setupStable(h, { officeHours: true, timezone: "Europe/Berlin" });
    expect(statuses((await h.omaha(check(m(0)))).text).app).toBe("error-updatesDisabled");
    h.now.t += 3600_000;
    expect(statuses((await h.omaha(check(m(0)))).text).updatecheck).toBe("ok");
  });

  test("a new channel version starts a new rollout for the same machines", async () => {
    h = harness();
    await setupStable(h, { maxUpdatesPerPeriod: 10 });
    await h.omaha(check(m(0)));
    await complete(0);
    const up = await h.fetch("/api/apps/CoreOS/packages/upload?version=4300.0.0", { method: "POST", headers: { Authorization: `Bearer ${h.token}` }, body: "next" });
    expect(up.status).toBe(201);
    expect((await h.api("PUT", "/api/apps/CoreOS/channels/stable", { package: "4300.0.0" })).status).toBe(200);
    const r = await h.omaha(check({ ...m(0), version: "4230.2.0" }));
    expect(r.text).toContain('<manifest version="4300.0.0">');
  });
});
