// locksmith benchmark: lock/unlock cycles per second from 50 concurrent clients on one group, so
// every cycle is two read-modify-CAS rounds fighting over one key. Max is 50: only the CAS
// contends, never the count. Our `coreos kv serve` and the real etcd (v2 API), one fresh single
// member each, one at a time; prints cycles/s, lost swaps per cycle, and the ratio ours/etcd.
//
// env: BENCH_SECONDS=10 (measured seconds per side), BENCH_CLIENTS=50
import { Client } from "../../internal/kvclient/index.ts";
import { EtcdLock, isCompareFailed } from "../../internal/locksmith/etcdlock.ts";
import { startEtcd, startOurs, type Server } from "../helpers/procs.ts";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 50);

interface Result {
  cycles: number;
  conflicts: number;
  perSecond: number;
}

async function retry(f: () => Promise<unknown>, onConflict: () => void): Promise<void> {
  for (;;) {
    try {
      await f();
      return;
    } catch (e) {
      if (!isCompareFailed(e)) throw e;
      onConflict();
    }
  }
}

async function measure(url: string): Promise<Result> {
  const admin = new EtcdLock(new Client({ endpoints: [url] }), { group: "bench" });
  await admin.init();
  await admin.setMax(CLIENTS);
  const locks = Array.from({ length: CLIENTS }, () => new EtcdLock(new Client({ endpoints: [url] }), { group: "bench" }));
  let cycles = 0;
  let conflicts = 0;
  let measuring = false;
  const conflict = () => void (measuring && conflicts++);
  const warmupEnd = Date.now() + 1000;
  const end = warmupEnd + SECONDS * 1000;
  let start = 0;
  await Promise.all(
    locks.map(async (l, i) => {
      const id = `bench-${i}`;
      while (Date.now() < end) {
        await retry(() => l.lock(id), conflict);
        await retry(() => l.unlock(id), conflict);
        if (!measuring && Date.now() >= warmupEnd) {
          measuring = true;
          start = Date.now();
        }
        if (measuring) cycles++;
      }
    }),
  );
  const secs = (Date.now() - start) / 1000;
  const { sem } = await admin.get();
  if ((sem.holders ?? []).length !== 0 || sem.semaphore !== CLIENTS) throw new Error(`semaphore not back to idle: ${JSON.stringify(sem)}`);
  return { cycles, conflicts, perSecond: cycles / secs };
}

async function side(name: string, start: () => Promise<Server>): Promise<Result> {
  const srv = await start();
  try {
    const r = await measure(srv.url);
    console.log(`${name.padEnd(5)} ${r.perSecond.toFixed(1).padStart(8)} cycles/s  (${r.cycles} cycles, ${(r.conflicts / Math.max(1, r.cycles)).toFixed(2)} lost swaps per cycle)`);
    return r;
  } finally {
    await srv.stop();
  }
}

console.log(`locksmith lock/unlock: ${CLIENTS} clients, one group, ${SECONDS}s per side`);
const ours = await side("ours", () => startOurs());
const etcd = await side("etcd", () => startEtcd());
console.log(`ratio ours/etcd: ${(ours.perSecond / etcd.perSecond).toFixed(2)}`);
