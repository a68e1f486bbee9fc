// Rollout through the real server process: 20 simulated machines (update_engine's Omaha requests
// from internal/omaha, payload downloads verified) in a group limited to 2 updates per period;
// the server's own grant times show no period ever had more than 2. Then safe mode: the canary's
// 3/0 pauses the group. Set up with the admin CLI, as an operator would.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { writeFileSync } from "node:fs";
import { cleanup, tempDir } from "../helpers/procs.ts";
import { admin, api, Machine, NEW, OLD, startServer, type ServerProc } from "./update-server-machine.ts";

let dir: string;
let srv: ServerProc;

beforeAll(async () => {
  dir = tempDir("update-server-rollout-");
  srv = await startServer(join(dir, "data"));
  const payload = join(dir, "flatcar_production_update.gz");
  writeFileSync(payload, "flatcar-example-payload");
  await admin(srv, "package", "create", "--version", NEW, "--file", payload);
  await admin(srv, "channel", "create", "--name", "stable", "--version", NEW);
});

afterAll(async () => {
  await srv?.stop();
  cleanup(dir);
});

interface History {
  statusName: string;
  createdAt: number;
}

async function grantTimes(machines: Machine[]): Promise<number[]> {
  const times: number[] = [];
  for (const m of machines) {
    const h = await api<History[]>(srv, "GET", `/api/apps/CoreOS/instances/${m.id}/status_history`);
    times.push(...h.filter((x) => x.statusName === "UpdateGranted").map((x) => x.createdAt));
  }
  return times.sort((a, b) => a - b);
}

describe("rollout", () => {
  test("20 machines, 2 updates per 1s period: never more than 2 grants in any period, all updated", async () => {
    const out = await admin(srv, "group", "create", "--name", "limited", "--channel", "stable", "--update-count", "2", "--update-interval", "1s", "--update-timeout", "1m");
    expect(out).toContain("2/1s");
    const machines = Array.from({ length: 20 }, (_, i) => new Machine(srv.url, `aa${String(i).padStart(30, "0")}`, "limited"));
    const deadline = Date.now() + 60_000;
    await Promise.all(
      machines.map(async (m, i) => {
        await Bun.sleep(i * 7);
        // Bounded: until updated and reported back, or the deadline.
        while (Date.now() < deadline) {
          const r = await m.checkAndUpdate();
          if (r === "noupdate" && m.version === NEW) return;
          await Bun.sleep(40 + ((i * 13) % 30));
        }
      }),
    );
    expect(machines.every((m) => m.version === NEW)).toBe(true);
    const times = await grantTimes(machines);
    expect(times.length).toBe(20);
    for (const t of times) {
      const inWindow = times.filter((x) => x > t - 1000 && x <= t).length;
      expect(inWindow).toBeLessThanOrEqual(2);
    }
    // It took at least 10 periods to hand out 20 updates at 2 per period.
    expect(times.at(-1)! - times[0]!).toBeGreaterThanOrEqual(9 * 1000);
    const stats = await api<{ total: number; onTarget: number; statuses: Record<string, number> }>(srv, "GET", "/api/apps/CoreOS/groups/limited/stats");
    expect(stats).toMatchObject({ total: 20, onTarget: 20, statuses: { Complete: 20 } });
    const act = await admin(srv, "activity", "--group", "limited");
    expect(act).toContain("RolloutStarted");
    expect(act).toContain("RolloutFinished");
    // Machines turned away were held (OnHold), all but the first two at least once.
    let held = 0;
    for (const m of machines) {
      const h = await api<History[]>(srv, "GET", `/api/apps/CoreOS/instances/${m.id}/status_history`);
      if (h.some((x) => x.statusName === "OnHold")) held++;
    }
    expect(held).toBeGreaterThanOrEqual(18);
  }, 90_000);

  test("safe mode: the canary reports 3/0, the group pauses and nobody else is granted", async () => {
    await admin(srv, "group", "create", "--name", "careful", "--channel", "stable", "--update-count", "5", "--update-interval", "1m", "--safe-mode", "true");
    const machines = Array.from({ length: 6 }, (_, i) => new Machine(srv.url, `bb${String(i).padStart(30, "0")}`, "careful"));
    const results = [];
    for (const [i, m] of machines.entries()) results.push(await m.checkAndUpdate(i === 0 ? 268435477 : undefined));
    expect(results[0]).toBe("failed");
    expect(results.slice(1).every((r) => r === "refused")).toBe(true);
    const groups = await admin(srv, "group", "list");
    expect(groups).toMatch(/careful\s+careful\s+stable\s+paused/);
    for (const m of machines.slice(1)) {
      expect(await m.checkAndUpdate()).toBe("refused");
      expect(m.lastAppStatus).toBe("error-updatesDisabled");
      expect(m.acks.grants).toBe(0);
    }
    const canary = await admin(srv, "instance", "show", machines[0]!.id);
    expect(canary).toContain("status Error");
    expect(canary).toContain("DownloadInvalidMetadataMagicString with TestOmahaUrlFlag (268435477)");
    const act = await api<{ items: { className: string }[] }>(srv, "GET", "/api/activity?app=CoreOS&group=careful&severity=4");
    expect(act.items.map((a) => a.className)).toEqual(["RolloutFailed", "InstanceUpdateFailed"]);
    // Resumed: the next machine becomes the new canary and succeeds; then the rest follow.
    expect(await admin(srv, "group", "resume", "careful")).toContain("updates enabled");
    expect(await machines[1]!.checkAndUpdate()).toBe("updated");
    expect(await machines[2]!.checkAndUpdate()).toBe("refused");
    expect(await machines[1]!.checkAndUpdate()).toBe("noupdate");
    expect(await machines[2]!.checkAndUpdate()).toBe("updated");
    expect(machines[3]!.version).toBe(OLD);
  }, 30_000);
});
