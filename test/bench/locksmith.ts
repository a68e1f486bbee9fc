// locksmith benchmark: lock/unlock cycles per second from 50 concurrent clients on one group, so
// every cycle is two read-modify-CAS rounds fighting over one key. Max is 50: only the CAS
// contends, never the count. Our `coreos kv serve` and the real etcd (v2 API), one fresh single
// member each, one at a time; prints cycles/s, lost swaps per cycle, and the ratio ours/etcd.
//
// Also printed per side: requests/s and the CPU each request costs the client (this process: kvclient
// + locksmith) and the server (from /proc/<pid>/stat), so a change of the ratio can be placed on one
// side or the other. With immediate retries most requests are lost swaps, on both servers alike.
//
// env: BENCH_SECONDS=10 (measured seconds per side), BENCH_CLIENTS=50
import { readFileSync } from "node:fs";
import { Client } from "../../internal/kvclient/index.ts";
import { EtcdLock, isCompareFailed } from "../../internal/locksmith/etcdlock.ts";
import { startEtcd, startOurs, type Server } from "../helpers/procs.ts";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 50);

interface Result {
  cycles: number;
  conflicts: number;
  perSecond: number;
  requestsPerSecond: number;
  clientUsPerRequest: number;
  serverUsPerRequest: number;
}

/** CPU seconds a process has used (utime + stime, clock ticks of 1/100 s). */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
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

async function measure(url: string, serverPid: number): Promise<Result> {
  const admin = new EtcdLock(new Client({ endpoints: [url] }), { group: "bench" });
  await admin.init();
  await admin.setMax(CLIENTS);
  const locks = Array.from({ length: CLIENTS }, () => new EtcdLock(new Client({ endpoints: [url] }), { group: "bench" }));
  let cycles = 0;
  let conflicts = 0;
  let measuring = false;
  const conflict = () => void (measuring && conflicts++);
  let server0 = 0;
  let client0 = process.cpuUsage();
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
          server0 = cpuSeconds(serverPid);
          client0 = process.cpuUsage();
        }
        if (measuring) cycles++;
      }
    }),
  );
  const secs = (Date.now() - start) / 1000;
  const client = process.cpuUsage(client0);
  const serverCpu = cpuSeconds(serverPid) - server0;
  // Every attempt, won or lost, is one GET and one CAS.
  const requests = 2 * (2 * cycles + conflicts);
  const { sem } = await admin.get();
  if ((sem.holders ?? []).length !== 0 || sem.semaphore !== CLIENTS) throw new Error(`semaphore not back to idle: ${JSON.stringify(sem)}`);
  return {
    cycles,
    conflicts,
    perSecond: cycles / secs,
    requestsPerSecond: requests / secs,
    clientUsPerRequest: (client.user + client.system) / requests,
    serverUsPerRequest: (serverCpu * 1e6) / requests,
  };
}

async function side(name: string, start: () => Promise<Server>): Promise<Result> {
  const srv = await start();
  try {
    const r = await measure(srv.url, srv.proc.pid);
    console.log(
      `${name.padEnd(5)} ${r.perSecond.toFixed(1).padStart(8)} cycles/s  (${r.cycles} cycles, ${(r.conflicts / Math.max(1, r.cycles)).toFixed(2)} lost swaps per cycle; ` +
        `${r.requestsPerSecond.toFixed(0)} requests/s, CPU per request: client ${r.clientUsPerRequest.toFixed(0)}µs, server ${r.serverUsPerRequest.toFixed(0)}µs)`,
    );
    return r;
  } finally {
    await srv.stop();
  }
}

console.log(`locksmith lock/unlock: ${CLIENTS} clients, one group, ${SECONDS}s per side`);
const ours = await side("ours", () => startOurs());
const etcd = await side("etcd", () => startEtcd());
console.log(`ratio ours/etcd: ${(ours.perSecond / etcd.perSecond).toFixed(2)}`);
