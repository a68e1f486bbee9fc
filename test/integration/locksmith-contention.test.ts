// Ten locksmithd processes (etcd-lock, max 2) told at once that an update needs a reboot. The
// "reboot" is a script that records its start and end; after it ran, the test plays the boot: the
// machine's update engine says idle again and the daemon is restarted, which must release its own
// lock (B3 step 4). Never more than 2 in the reboot phase, all 10 rebooted once, every lock back.
// Against our kv serve (3 members, leader killed midway) and the real etcd.
import { afterAll, expect, test } from "bun:test";
import { readFileSync, writeFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { Client } from "../../internal/kvclient/index.ts";
import { EtcdLock } from "../../internal/locksmith/etcdlock.ts";
import { encodeSemaphore } from "../../internal/locksmith/semaphore.ts";
import { IDLE, NEED_REBOOT, StatusServer } from "../../internal/update/status.ts";
import { TestCluster } from "../helpers/cluster.ts";
import { cleanup, startEtcd, tempDir, type Server } from "../helpers/procs.ts";
import { LOCKSMITH, NO_BUS } from "./locksmith-cmd.ts";

const N = 10;
const MAX = 2;
const cleanups: (() => Promise<void> | void)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

interface Machine {
  id: string;
  sock: string;
  status: StatusServer;
  proc: Subprocess | null;
  restarted: boolean;
}

/** Most intervals open at one moment (an end at the same instant as a start counts as before it). */
function maxOverlap(intervals: [number, number][]): number {
  const ev = intervals.flatMap(([s, e]) => [[s, 1], [e, -1]] as [number, number][]);
  ev.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let cur = 0;
  let max = 0;
  for (const [, d] of ev) max = Math.max(max, (cur += d));
  return max;
}

async function contention(endpoints: () => string[], allEndpoints: string[], midway?: () => Promise<void>): Promise<void> {
  const dir = tempDir("coreos-locksmith-contention-");
  cleanups.push(() => cleanup(dir));
  const log = join(dir, "reboots.log");
  const script = join(dir, "reboot.sh");
  // A few lines of shell: the "reboot" of machine $1, with ns timestamps on one clock.
  writeFileSync(script, `#!/bin/sh\necho "start $1 $(date +%s%N)" >> ${log}\nsleep 0.3\necho "end $1 $(date +%s%N)" >> ${log}\n`);

  const admin = new EtcdLock(new Client({ endpoints: endpoints(), headerTimeout: 3000 }));
  await admin.init();
  await admin.setMax(MAX);

  const machines: Machine[] = [];
  for (let i = 0; i < N; i++) {
    const sock = join(dir, `ue${i}.sock`);
    const status = new StatusServer(sock, IDLE);
    await status.start();
    machines.push({ id: `machine-${i}`, sock, status, proc: null, restarted: false });
  }
  const spawn = (m: Machine) =>
    Bun.spawn(
      [
        ...LOCKSMITH, "daemon",
        "--machine-id", m.id,
        "--update-socket", m.sock,
        "--state-file", join(dir, `${m.id}.state`),
        "--reboot-command", `sh ${script} ${m.id}`,
        "--unlock-delay", "50ms", "--lock-retry", "100ms", "--retry-max", "800ms", "--login-delay", "0s", "--wall=false",
      ],
      {
        env: { ...process.env, ...NO_BUS, REBOOT_STRATEGY: "etcd-lock", LOCKSMITHD_ENDPOINT: allEndpoints.join(",") },
        stdout: "ignore",
        stderr: process.env.TEST_VERBOSE ? "inherit" : "ignore",
      },
    );
  const stopAll = async () => {
    for (const m of machines) m.proc?.kill("SIGTERM");
    await Promise.all(machines.map((m) => m.proc?.exited));
    for (const m of machines) await m.status.close();
  };
  cleanups.push(stopAll);
  for (const m of machines) m.proc = spawn(m);

  // Every daemon is up and listening to its engine before the news arrives.
  const deadline0 = Date.now() + 20_000;
  while (!machines.every((m) => existsSync(join(dir, `${m.id}.state`)) && readFileSync(join(dir, `${m.id}.state`), "utf8").includes("STATE=running"))) {
    if (Date.now() > deadline0) throw new Error("daemons did not start");
    await Bun.sleep(50);
  }
  for (const m of machines) m.status.setStatus(NEED_REBOOT);

  const read = () =>
    (existsSync(log) ? readFileSync(log, "utf8") : "")
      .split("\n")
      .filter((l) => l !== "")
      .map((l) => l.split(" ") as [string, string, string]);
  let midwayDone = midway === undefined;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (Date.now() > deadline) throw new Error(`not all rebooted in time: ${JSON.stringify(read())}`);
    const ended = new Set(read().filter(([k]) => k === "end").map(([, id]) => id));
    for (const m of machines) {
      if (m.restarted || !ended.has(m.id)) continue;
      // The boot: the new system's engine is idle, and locksmithd starts afresh.
      m.status.setStatus(IDLE);
      m.proc!.kill("SIGTERM");
      expect(await m.proc!.exited).toBe(0);
      m.proc = spawn(m);
      m.restarted = true;
    }
    if (!midwayDone && ended.size >= 4) {
      midwayDone = true;
      await midway!();
    }
    if (machines.every((m) => m.restarted)) {
      const { sem } = await new EtcdLock(new Client({ endpoints: endpoints(), headerTimeout: 3000 })).get().catch(() => ({ sem: null }));
      if (sem && (sem.holders ?? []).length === 0) {
        expect(encodeSemaphore(sem)).toBe(`{"semaphore":${MAX},"max":${MAX},"holders":[]}`);
        break;
      }
    }
    await Bun.sleep(50);
  }

  const lines = read();
  const starts = new Map(lines.filter(([k]) => k === "start").map(([, id, t]) => [id, Number(t) / 1e6]));
  const ends = new Map(lines.filter(([k]) => k === "end").map(([, id, t]) => [id, Number(t) / 1e6]));
  // Each machine rebooted exactly once.
  expect(lines.filter(([k]) => k === "start").length).toBe(N);
  expect([...starts.keys()].sort()).toEqual(machines.map((m) => m.id).sort());
  const intervals = machines.map((m) => [starts.get(m.id)!, ends.get(m.id)!] as [number, number]);
  const overlap = maxOverlap(intervals);
  expect(overlap).toBeLessThanOrEqual(MAX);
  // The test would be vacuous if the daemons had taken turns one by one.
  expect(overlap).toBe(MAX);
  await stopAll();
  cleanups.splice(cleanups.indexOf(stopAll), 1);
}

test("10 locksmithd, max 2, against our kv serve (3 members, leader killed midway)", async () => {
  const cluster = await TestCluster.start(3, "ours");
  cleanups.push(() => cluster.stopAll());
  const all = cluster.endpoints;
  let killed = -1;
  await contention(
    () => cluster.endpoints,
    all,
    async () => {
      killed = await cluster.leader();
      await cluster.kill(killed);
    },
  );
  expect(killed).toBeGreaterThanOrEqual(0);
  await cluster.stopAll();
}, 90_000);

test("10 locksmithd, max 2, against the real etcd", async () => {
  const etcd: Server = await startEtcd();
  cleanups.push(() => etcd.kill());
  await contention(() => [etcd.url], [etcd.url]);
  await etcd.stop();
}, 90_000);
