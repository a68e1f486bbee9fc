// Durability of the real server process: kill -9 in the middle of a rollout, restart on the same
// data dir, and every instance, event and grant the server had acknowledged (answered 200) is
// there. Then the rollout finishes from where it stopped.
import { afterAll, expect, test } from "bun:test";
import { join } from "node:path";
import { cleanup, tempDir } from "../helpers/procs.ts";
import { api, Machine, NEW, startServer, type ServerProc } from "./update-server-machine.ts";

let dir: string;
let srv: ServerProc | undefined;

afterAll(async () => {
  await srv?.stop();
  if (dir) cleanup(dir);
});

interface EventRow {
  type: number;
  result: number;
  errorCode: number | null;
  previousVersion: string | null;
}

for (const durability of ["process", "power"]) {
  test(`--durability ${durability}: kill -9 during a rollout loses no acknowledged instance, event or grant`, async () => {
    dir = tempDir("update-server-persist-");
    const dataDir = join(dir, "data");
    const args = ["--durability", durability];
    srv = await startServer(dataDir, undefined, args);
    const first = srv;
    const token = srv.token;
    const up = await fetch(`${srv.url}/api/apps/CoreOS/packages/upload?version=${NEW}`, { method: "POST", headers: { Authorization: `Bearer ${token}` }, body: "payload-bytes" });
    expect(up.status).toBe(201);
    await api(srv, "POST", "/api/apps/CoreOS/channels", { name: "stable", package: NEW });
    await api(srv, "POST", "/api/apps/CoreOS/groups", { name: "fleet", channel: "stable", policy: { maxUpdatesPerPeriod: 1000000, period: "1m" } });

    const machines = Array.from({ length: 40 }, (_, i) => new Machine(srv!.url, `cc${String(i).padStart(30, "0")}`, "fleet"));
    let acked = 0;
    const deadline = Date.now() + 30_000;
    const runs = machines.map(async (m, i) => {
      await Bun.sleep((i % 10) * 15);
      try {
        while (Date.now() < deadline) {
          // Every fifth machine fails its update (3/0) and tries again.
          const r = await m.checkAndUpdate(i % 5 === 4 ? 14 : undefined);
          acked++;
          if (r === "noupdate" && m.version === NEW) await Bun.sleep(20);
        }
      } catch {
        // The server died under this machine: whatever it had not answered is not acknowledged.
      }
    });
    // Kill while requests are in flight, once a good share of the rollout has been acknowledged.
    for (let i = 0; i < 300 && acked < 60; i++) await Bun.sleep(10);
    expect(acked).toBeGreaterThanOrEqual(60);
    await first.kill9();
    await Promise.all(runs);

    srv = await startServer(dataDir, first.port, args);
    const s = { url: srv.url, token };
    let events = 0;
    let grants = 0;
    for (const m of machines) {
      if (!m.acks.registered) continue;
      const inst = await api<{ instanceId: string }>(s, "GET", `/api/apps/CoreOS/instances/${m.id}`);
      expect(inst.instanceId).toBe(m.id);
      const stored = await api<EventRow[]>(s, "GET", `/api/apps/CoreOS/instances/${m.id}/events`);
      const pool = stored.map((e) => `${e.type}/${e.result}/${e.errorCode ?? ""}/${e.previousVersion ?? ""}`);
      for (const e of m.acks.events) {
        const key = `${e.type}/${e.result}/${e.errorCode ?? ""}/${e.previousVersion ?? ""}`;
        const at = pool.indexOf(key);
        expect(at).toBeGreaterThanOrEqual(0);
        pool.splice(at, 1);
        events++;
      }
      const history = await api<{ statusName: string }[]>(s, "GET", `/api/apps/CoreOS/instances/${m.id}/status_history`);
      expect(history.filter((x) => x.statusName === "UpdateGranted").length).toBeGreaterThanOrEqual(m.acks.grants);
      grants += m.acks.grants;
    }
    expect(events).toBeGreaterThan(0);
    expect(grants).toBeGreaterThan(0);

    // The rollout goes on from the recovered state (same URL): the healthy machines all finish.
    const healthy = machines.filter((_, i) => i % 5 !== 4);
    const end = Date.now() + 30_000;
    await Promise.all(
      healthy.map(async (m) => {
        while (Date.now() < end) {
          const r = await m.checkAndUpdate();
          if (r === "noupdate" && m.version === NEW) return;
        }
      }),
    );
    const stats = await api<{ statuses: Record<string, number> }>(s, "GET", "/api/apps/CoreOS/groups/fleet/stats");
    expect(stats.statuses.Complete).toBe(healthy.length);
    await srv.stop();
    srv = undefined;
    cleanup(dir);
  }, 90_000);
}
