// Omaha conformance of the update server: the §1.2 request gets the §1.5/§1.7 response; bad
// documents, unknown apps and groups get the originals' statuses (never a 500); events move the
// instance through the §5.1 statuses as §5.2 says.
import { afterEach, describe, expect, test } from "bun:test";
import { parseResponse } from "../../internal/omaha/index.ts";
import { SPEC_CHECK_REQUEST, SPEC_UPDATE_RESPONSE } from "../helpers/omaha-spec.ts";
import { check, event, harness, PAYLOAD, request, setupStable, statuses, type Harness } from "./updateserver-harness.ts";

let h: Harness;
afterEach(() => h?.close());

const M = { id: "0b2c6f1f4d7e4a9c8f3e2d1c0b9a8f7e" };

async function instance(id: string): Promise<{ statusName: string; version: string; updateInProgress: boolean; ip: string; alias: string; alephVersion: string; oem: string }> {
  const r = await h.api<{ statusName: string; version: string; updateInProgress: boolean; ip: string; alias: string; alephVersion: string; oem: string }>("GET", `/api/apps/CoreOS/instances/${id}`);
  expect(r.status).toBe(200);
  return r.body;
}

describe("Omaha conformance", () => {
  test("the §1.2 request with every attribute gets the §1.7 response", async () => {
    h = harness();
    const pkg = await h.api("POST", "/api/apps/CoreOS/packages", {
      version: "4230.2.0",
      filename: "flatcar_production_update.gz",
      url: "https://updates.example.internal/amd64-usr/4230.2.0/",
      size: 23,
      hashSha1: "7q+AMyPfLG6MDIeWTVFPra22Mz0=",
      hashSha256: "LxysmGf8yIgBvFgnNvoVbPnx1cVjKjA8S7oBAWC5JRk=",
      extraFiles: [{ name: "oem-qemu.gz", size: 3, hash: "YGFijdFweA8Dn0fURPUU6Arz4sw=", hashSha256: "4321c39bec40289e14ab42503a533efb43dbe0e355be787bb3c89f4519f503b7" }],
    });
    expect(pkg.status).toBe(201);
    expect((await h.api("POST", "/api/apps/CoreOS/channels", { name: "stable", package: "4230.2.0" })).status).toBe(201);
    expect((await h.api("POST", "/api/apps/CoreOS/groups", { name: "stable", channel: "stable" })).status).toBe(201);
    const r = await h.omaha(SPEC_CHECK_REQUEST);
    expect(r.status).toBe(200);
    expect(r.text.replace('server="coreos-update-server"', 'server="bun-omaha"')).toBe(SPEC_UPDATE_RESPONSE);
    // What update_engine reads from it (§1.5).
    const o = parseResponse(r.text);
    expect(o.kind).toBe("update");
    if (o.kind === "update") {
      expect(o.offer.urls).toEqual(["https://updates.example.internal/amd64-usr/4230.2.0/flatcar_production_update.gz"]);
      expect(o.offer.disablePayloadBackoff).toBe(true);
    }
    // The instance is registered with what the request said (§1.6 step 1).
    const i = await instance(M.id);
    expect(i).toMatchObject({ statusName: "UpdateGranted", version: "4152.2.0", updateInProgress: true, ip: "10.0.0.7", alias: "db-1", alephVersion: "3975.2.1", oem: "qemu" });
  });

  test("an uploaded payload is hosted with the hashes of §1.7 and served with Range", async () => {
    h = harness();
    await setupStable(h);
    const r = await h.omaha(check(M));
    const o = parseResponse(r.text);
    if (o.kind !== "update") throw new Error(r.text);
    expect(r.text).toContain('hash="7q+AMyPfLG6MDIeWTVFPra22Mz0=" size="23"');
    expect(o.offer.sha256).toBe("LxysmGf8yIgBvFgnNvoVbPnx1cVjKjA8S7oBAWC5JRk=");
    const url = o.offer.urls[0]!;
    expect(url).toMatch(/^http:\/\/updates\.test\/payloads\/[0-9a-f-]+\/flatcar_production_update\.gz$/);
    const path = new URL(url).pathname;
    const full = await h.fetch(path);
    expect(full.status).toBe(200);
    expect(await full.text()).toBe(PAYLOAD);
    const part = await h.fetch(path, { headers: { Range: "bytes=8-14" } });
    expect(part.status).toBe(206);
    expect(part.headers.get("content-range")).toBe("bytes 8-14/23");
    expect(await part.text()).toBe(PAYLOAD.slice(8, 15));
    const resume = await h.fetch(path, { headers: { Range: "bytes=20-" } });
    expect(await resume.text()).toBe("oad");
    const suffix = await h.fetch(path, { headers: { Range: "bytes=-4" } });
    expect(await suffix.text()).toBe("load");
    const past = await h.fetch(path, { headers: { Range: "bytes=23-" } });
    expect(past.status).toBe(416);
    expect(past.headers.get("content-range")).toBe("bytes */23");
    expect((await h.fetch(path.replace("flatcar_production_update.gz", "other.gz"))).status).toBe(404);
  });

  test("malformed XML, a non-request document and protocol 2.0 are 400, as go-omaha answers", async () => {
    h = harness();
    await setupStable(h);
    const bad = [
      "<request protocol=\"3.0\"><app appid=\"x\"></request>",
      "not xml at all",
      "",
      "<response protocol=\"3.0\"></response>",
      check(M).replace('protocol="3.0"', 'protocol="2.0"'),
      check(M).replace('eventtype="3"', 'eventtype="three"'),
    ];
    for (const doc of bad) {
      const r = await h.omaha(doc);
      expect(r.status).toBe(400);
    }
    expect((await h.omaha(check(M).replace('protocol="3.0"', 'protocol="2.0"'))).text).toStartWith("Omaha 3.0 Required");
    expect((await h.fetch("/v1/update/")).status).toBe(400);
    // Over 1 MiB, declared or streamed without a length: refused before parsing.
    const big = check(M).replace("<ping", `<!--${"x".repeat(1024 * 1024)}--><ping`);
    expect((await h.omaha(big)).status).toBe(400);
    const streamed = (doc: string) =>
      new ReadableStream<Uint8Array>({
        start(c) {
          c.enqueue(new TextEncoder().encode(doc));
          c.close();
        },
      });
    const chunked = await h.fetch("/v1/update/", { method: "POST", body: streamed(big) });
    expect(chunked.status).toBe(400);
    expect(await chunked.text()).toContain("larger than 1 MiB");
    const ok = await h.fetch("/v1/update/", { method: "POST", body: streamed(check({ id: "streamed" })) });
    expect(ok.status).toBe(200);
    // Nothing was registered by any of the refused ones.
    expect((await h.api<{ total: number }>("GET", "/api/apps/CoreOS/instances?search=0b2c6f")).body.total).toBe(0);
  });

  test("unknown app and unknown group: 200 with Nebraska's app status and updatecheck error-internal", async () => {
    h = harness();
    await setupStable(h);
    const unknownApp = await h.omaha(check({ ...M, appid: "{11111111-2222-3333-4444-555555555555}" }));
    expect(unknownApp.status).toBe(200);
    expect(statuses(unknownApp.text)).toEqual({ app: "error-failedToRetrieveUpdatePackageInfo", updatecheck: "error-internal" });
    expect(unknownApp.text).toContain('appid="{11111111-2222-3333-4444-555555555555}"');
    const unknownGroup = await h.omaha(check({ ...M, track: "nightly" }));
    expect(unknownGroup.status).toBe(200);
    expect(statuses(unknownGroup.text)).toEqual({ app: "error-failedToRetrieveUpdatePackageInfo", updatecheck: "error-internal" });
    // What update_engine makes of it: an invalid response (code 34), not an HTTP error.
    expect(parseResponse(unknownGroup.text)).toMatchObject({ kind: "error", code: 34 });
    // A channel for another arch is not reachable from amd64.
    const arm = await h.omaha(check({ ...M, board: "arm64-usr" }));
    expect(statuses(arm.text).app).toBe("error-failedToRetrieveUpdatePackageInfo");
    expect((await h.api<{ total: number }>("GET", "/api/apps/CoreOS/instances")).body.total).toBe(0);
  });

  test("app ids with or without braces, any case, and the group's id as track", async () => {
    h = harness();
    await setupStable(h);
    const g = await h.api<{ id: string }>("GET", "/api/apps/CoreOS/groups/stable");
    for (const [i, appid] of ["E96281A6-D1AF-4BDE-9A0A-97B76E56DC57", "e96281a6-d1af-4bde-9a0a-97b76e56dc57"].entries()) {
      const r = await h.omaha(check({ id: `m${i}`, appid, track: g.body.id }));
      expect(statuses(r.text)).toEqual({ app: "ok", updatecheck: "ok" });
    }
  });

  test("the old CoreOS group UUIDs reach the group with that track name", async () => {
    h = harness();
    await setupStable(h);
    const r = await h.omaha(check({ ...M, track: "9a2deb70-37be-4026-853f-bfdd6b347bbe" }));
    expect(statuses(r.text)).toEqual({ app: "ok", updatecheck: "ok" });
    expect(statuses((await h.omaha(check({ id: "m2", track: "3fe10490-dd73-4b49-b72a-28ac19acfcdc" }))).text).app).toBe("error-failedToRetrieveUpdatePackageInfo");
  });

  test("a group without a package: error-noPackageFound", async () => {
    h = harness();
    await h.api("POST", "/api/apps/CoreOS/channels", { name: "stable" });
    await h.api("POST", "/api/apps/CoreOS/groups", { name: "stable", channel: "stable" });
    expect(statuses((await h.omaha(check(M))).text)).toEqual({ app: "error-noPackageFound", updatecheck: "error-internal" });
  });
});

describe("events and statuses (§5.1, §5.2)", () => {
  test("a successful update: granted, downloading, downloaded, installed, complete; rollout finished", async () => {
    h = harness();
    await setupStable(h);
    expect(statuses((await h.omaha(check(M))).text).updatecheck).toBe("ok");
    // Until it starts downloading, a granted instance is offered the same update again.
    expect(statuses((await h.omaha(check(M))).text).updatecheck).toBe("ok");
    const steps: [number, number, string][] = [
      [13, 1, "Downloading"],
      [14, 1, "Downloaded"],
      [3, 1, "Installed"],
    ];
    for (const [type, result, status] of steps) {
      const r = await h.omaha(event(M, { type, result }));
      expect(r.text).toContain('<event status="ok"></event>');
      expect((await instance(M.id)).statusName).toBe(status);
    }
    // Rebooted into the new version: the check carries 3/2 with the previous version.
    const done = await h.omaha(check({ ...M, version: "4230.2.0" }, "4152.2.0"));
    expect(statuses(done.text)).toEqual({ app: "ok", updatecheck: "noupdate" });
    const i = await instance(M.id);
    expect(i).toMatchObject({ statusName: "Complete", version: "4230.2.0", updateInProgress: false });
    const hist = await h.api<{ statusName: string }[]>("GET", `/api/apps/CoreOS/instances/${M.id}/status_history`);
    expect(hist.body.map((x) => x.statusName).reverse()).toEqual(["Undefined", "UpdateGranted", "Downloading", "Downloaded", "Installed", "Complete"]);
    const act = await h.api<{ items: { className: string }[] }>("GET", "/api/activity?app=CoreOS");
    expect(act.body.items.map((a) => a.className)).toEqual(["RolloutFinished", "RolloutStarted", "ChannelPackageUpdated"]);
    // The checks' routine 3/2 events are not stored; the rest are, newest first.
    const evs = await h.api<{ type: number; result: number; previousVersion: string | null }[]>("GET", `/api/apps/CoreOS/instances/${M.id}/events`);
    expect(evs.body.map((e) => `${e.type}/${e.result}`)).toEqual(["3/2", "3/1", "14/1", "13/1"]);
    expect(evs.body[0]!.previousVersion).toBe("4152.2.0");
  });

  test("a check in the middle of an update (its events were lost) gets the same update again, counted once", async () => {
    h = harness();
    await setupStable(h, { maxUpdatesPerPeriod: 1 });
    await h.omaha(check(M));
    await h.omaha(event(M, { type: 13, result: 1 }));
    const again = await h.omaha(check(M));
    expect(statuses(again.text)).toEqual({ app: "ok", updatecheck: "ok" });
    expect((await instance(M.id)).statusName).toBe("UpdateGranted");
    // Still the one grant of the period: another machine is held.
    expect(statuses((await h.omaha(check({ id: "other" }))).text).app).toBe("error-maxUpdatesPerPeriodLimitReached");
    // Past the update timeout the attempt counts as timed out and is granted anew by the policy.
    h.now.t += 3601_000;
    expect(statuses((await h.omaha(check(M))).text).updatecheck).toBe("ok");
    const hist = await h.api<{ statusName: string }[]>("GET", `/api/apps/CoreOS/instances/${M.id}/status_history`);
    expect(hist.body.map((x) => x.statusName).reverse()).toEqual(["Undefined", "UpdateGranted", "Downloading", "UpdateGranted", "UpdateGranted"]);
  });

  test("3/0 marks the instance failed, is logged with its code, and a later check may retry", async () => {
    h = harness();
    await setupStable(h);
    await h.omaha(check(M));
    await h.omaha(event(M, { type: 13, result: 1 }));
    await h.omaha(event(M, { type: 3, result: 0, errorCode: 268435477 }));
    const i = await instance(M.id);
    expect(i).toMatchObject({ statusName: "Error", updateInProgress: false });
    const hist = await h.api<{ statusName: string; errorCode: number | null }[]>("GET", `/api/apps/CoreOS/instances/${M.id}/status_history`);
    expect(hist.body[0]).toMatchObject({ statusName: "Error", errorCode: 268435477 });
    const act = await h.api<{ items: { className: string; severityName: string; instanceId: string }[] }>("GET", "/api/activity?app=CoreOS&severity=4");
    expect(act.body.items[0]).toMatchObject({ className: "InstanceUpdateFailed", severityName: "error", instanceId: M.id });
    const dash = await h.fetch(`/dashboard/apps/CoreOS/instances/${M.id}`, { headers: { Cookie: `cu_token=${h.token}` } });
    expect(await dash.text()).toContain("DownloadInvalidMetadataMagicString with TestOmahaUrlFlag (268435477)");
    h.now.t += 16 * 60_000;
    expect(statuses((await h.omaha(check(M))).text).updatecheck).toBe("ok");
  });

  test("events of an instance with no update in progress are stored but change nothing", async () => {
    h = harness();
    await setupStable(h, { updatesEnabled: false });
    expect(statuses((await h.omaha(check(M))).text).app).toBe("error-updatesDisabled");
    // update_engine reports the refusal as error 34; that is no failed update.
    await h.omaha(event(M, { type: 3, result: 0, errorCode: 34 }));
    expect((await instance(M.id)).statusName).toBe("Undefined");
    const evs = await h.api<{ errorCode: number }[]>("GET", `/api/apps/CoreOS/instances/${M.id}/events`);
    expect(evs.body.map((e) => e.errorCode)).toEqual([34]);
  });

  test("an up-to-date machine gets noupdate; one ahead of the channel too", async () => {
    h = harness();
    await setupStable(h);
    expect(statuses((await h.omaha(check({ ...M, version: "4230.2.0" }))).text)).toEqual({ app: "ok", updatecheck: "noupdate" });
    expect(statuses((await h.omaha(check({ id: "n2", version: "4300.0.0" }))).text).updatecheck).toBe("noupdate");
    expect((await instance(M.id)).statusName).toBe("Undefined");
  });

  test("a ping-only request (waiting for reboot) and several events answer each element", async () => {
    h = harness();
    await setupStable(h);
    const r = await h.omaha(request(M, { kind: "ping" }));
    expect(r.text).toContain('<ping status="ok"></ping>');
    expect(r.text).not.toContain("<updatecheck");
    expect(r.text).not.toContain("<event");
  });
});
