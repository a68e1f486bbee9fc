// Cluster benchmark: a 3-member cluster of our `coreos kv serve` against a 3-member cluster of
// the real etcd 3.4 (v2 API), both on loopback, one cluster at a time, same flags, a fresh
// cluster (fresh data dirs) for every scenario and side. The wrk load is the single-member
// benchmark's (kv.ts, kv.lua), aimed at the leader, or spread over every member; then the
// failover time: kill -9 the leader under a light write load, time to the first acknowledged
// write. Prints req/s, p99 and failover times with the ratios ours/etcd. See test/bench/README.md.
//
// env:
//   BENCH_SECONDS=10        measured seconds per wrk scenario
//   BENCH_WARMUP=2          warm-up seconds before each measured wrk run (0 = none)
//   BENCH_ONLY=etcd|ours    run one side only
//   BENCH_SCENARIOS=a,b     subset of: put1,put16,put64,qget16,qget64,getall64,failover
//   BENCH_REPEAT=1          run each scenario N times per side, interleaved; report medians
//   BENCH_FAILOVER_ROUNDS=3 failover rounds per side (each on a fresh cluster), per repeat
//   BENCH_FAILOVER_WRITERS=4           writers during failover (spread over the members)
//   BENCH_FAILOVER_REQ_TIMEOUT_MS=500  a writer gives up on a request after this and tries the next member
//   BENCH_FAILOVER_RETRY_TIMEOUT_MS=100  ... the same for a writer whose last request failed
//   BENCH_FAILOVER_STEADY=2            seconds of steady writes before the kill
//   BENCH_FAILOVER_MAX=30              seconds to wait for a write after the kill before the round fails
//   BENCH_MEMBERS=3         cluster size
//   BENCH_OURS_CMD / BENCH_ETCD_CMD / BENCH_EXTRA_ARGS / BENCH_JSON / TEST_VERBOSE: as kv.ts
import { cpus, loadavg } from "node:os";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { freePort, type Server } from "../helpers/procs.ts";
import {
  benchTempDir,
  cpuSeconds,
  describeCmd,
  envNum,
  sidesRunnable,
  runBench,
  removeBenchDir,
  startMember,
  stopServer,
  type MemberSpec,
  type Side,
} from "./kv-procs.ts";
import { errorCount, mergeWrk, runWrk, type WrkResult } from "./kv-wrk.ts";
import { median } from "./kv-watch.ts";
import { pickScenarios, pickSides, progressLog, ratio, table } from "./report.ts";

// ---------- configuration ----------

const SECONDS = envNum("BENCH_SECONDS", 10);
const WARMUP = envNum("BENCH_WARMUP", 2);
const REPEAT = Math.max(1, Math.floor(envNum("BENCH_REPEAT", 1)));
const MEMBERS = Math.max(1, Math.floor(envNum("BENCH_MEMBERS", 3)));
const FO_ROUNDS = Math.max(1, Math.floor(envNum("BENCH_FAILOVER_ROUNDS", 3)));
const FO_WRITERS = Math.max(1, Math.floor(envNum("BENCH_FAILOVER_WRITERS", 4)));
const FO_REQ_TIMEOUT_MS = Math.max(50, envNum("BENCH_FAILOVER_REQ_TIMEOUT_MS", 500));
const FO_RETRY_TIMEOUT_MS = Math.max(20, envNum("BENCH_FAILOVER_RETRY_TIMEOUT_MS", 100));
const FO_STEADY_MS = envNum("BENCH_FAILOVER_STEADY", 2) * 1000;
const FO_MAX_MS = Math.max(1, envNum("BENCH_FAILOVER_MAX", 30)) * 1000;
const NKEYS = 10_000;
const VALUE_BYTES = 100;
const EXTRA_ARGS = (process.env.BENCH_EXTRA_ARGS ?? "").split(/\s+/).filter(Boolean);

/** --election-timeout from BENCH_EXTRA_ARGS, else etcd's default (1000 ms). */
function electionMs(): number {
  for (let i = 0; i < EXTRA_ARGS.length; i++) {
    const a = EXTRA_ARGS[i]!;
    const m = /^--?election-timeout(?:=(\d+))?$/.exec(a);
    if (m) return Number(m[1] ?? EXTRA_ARGS[i + 1]) || 1000;
  }
  return 1000;
}
const FAILOVER_TARGET_MS = 3 * electionMs();

type WrkScenario = {
  kind: "wrk";
  name: string;
  title: string;
  mode: "put" | "get";
  conns: number;
  query?: string;
  prefill: boolean;
  /** leader: one wrk at the leader's client URL; all: one wrk per member, connections split */
  target: "leader" | "all";
};
type Scenario = WrkScenario | { kind: "failover"; name: string; title: string };

const ALL: Scenario[] = [
  { kind: "wrk", name: "put1", title: "PUT to the leader, 1 conn", mode: "put", conns: 1, prefill: false, target: "leader" },
  { kind: "wrk", name: "put16", title: "PUT to the leader, 16 conns", mode: "put", conns: 16, prefill: false, target: "leader" },
  { kind: "wrk", name: "put64", title: "PUT to the leader, 64 conns", mode: "put", conns: 64, prefill: false, target: "leader" },
  { kind: "wrk", name: "qget16", title: "GET ?quorum=true at the leader, 16 conns", mode: "get", conns: 16, query: "quorum=true", prefill: true, target: "leader" },
  { kind: "wrk", name: "qget64", title: "GET ?quorum=true at the leader, 64 conns", mode: "get", conns: 64, query: "quorum=true", prefill: true, target: "leader" },
  { kind: "wrk", name: "getall64", title: "GET spread over every member, 64 conns in all", mode: "get", conns: 64, prefill: true, target: "all" },
  { kind: "failover", name: "failover", title: `kill -9 the leader under ${FO_WRITERS} writers` },
];



const log = progressLog("cluster");

const ms = (us: number): string => (us / 1000).toFixed(2);
const errMsg = (e: unknown): string => (e instanceof Error ? e.message : String(e));

// ---------- the cluster ----------

interface Cluster {
  side: Side;
  dir: string;
  specs: MemberSpec[];
  servers: (Server | null)[];
}

function running(s: Server): boolean {
  return s.proc.exitCode === null && s.proc.signalCode === null;
}

/** 2 * MEMBERS distinct ports that are free right now. */
function freePorts(n: number): number[] {
  const ports = new Set<number>();
  for (let guard = 0; ports.size < n && guard < 100 * n; guard++) ports.add(freePort());
  if (ports.size < n) throw new Error(`could not find ${n} distinct free ports`);
  return [...ports];
}

/** A fresh cluster of `side`: MEMBERS members started together (each is ready once a leader is
 * known), same flags as kv.ts plus --initial-cluster/-token/-state. A free port can be taken by
 * another process (an outgoing connection's ephemeral port) before the member binds it; then the
 * member exits and the whole cluster is started again with new ports (3 attempts). */
async function startCluster(side: Side): Promise<Cluster> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startClusterOnce(side);
    } catch (e) {
      if (attempt >= 3) throw e;
      log(`  cluster start failed (${errMsg(e).split("\n")[0]}); again with new ports`);
    }
  }
}

async function startClusterOnce(side: Side): Promise<Cluster> {
  const dir = benchTempDir(`coreos-bench-cluster-${side}-`);
  const ports = freePorts(2 * MEMBERS);
  const specs: MemberSpec[] = Array.from({ length: MEMBERS }, (_, i) => ({
    name: `m${i}`,
    dataDir: join(dir, `m${i}.etcd`),
    clientPort: ports[2 * i]!,
    peerPort: ports[2 * i + 1]!,
  }));
  const initialCluster = specs.map((s) => `${s.name}=http://127.0.0.1:${s.peerPort}`).join(",");
  const args = [
    "--initial-cluster", initialCluster,
    "--initial-cluster-token", `bench-${Math.random().toString(36).slice(2)}`,
    "--initial-cluster-state", "new",
    ...EXTRA_ARGS,
  ];
  const started = await Promise.allSettled(specs.map((m) => startMember(side, m, args, 30_000)));
  const c: Cluster = { side, dir, specs, servers: started.map((r) => (r.status === "fulfilled" ? r.value : null)) };
  const failed = started.flatMap((r, i) => (r.status === "rejected" ? [`${specs[i]!.name}: ${errMsg(r.reason)}`] : []));
  if (failed.length) {
    await stopCluster(c);
    throw new Error(`cluster did not start: ${failed.join("; ")}`);
  }
  return c;
}

/** Stops every member (SIGTERM, then SIGKILL after 1.5 s: an etcd leader whose peers stop at the
 * same moment waits out its leadership transfer) and removes the data dirs. */
async function stopCluster(c: Cluster): Promise<void> {
  await Promise.all(c.servers.map((s) => (s ? stopServer(s, 1500) : undefined)));
  removeBenchDir(c.dir);
}

function assertAlive(c: Cluster, except?: number): void {
  c.servers.forEach((s, i) => {
    if (i === except || !s) return;
    if (!running(s)) {
      throw new Error(`member ${c.specs[i]!.name} exited during the run (exit code ${s.proc.exitCode}, signal ${s.proc.signalCode})`);
    }
  });
}

interface Leader {
  index: number;
  id: string;
}

/** The member that reports StateLeader in /v2/stats/self (bounded wait). */
async function findLeader(c: Cluster, ms = 20_000, skip?: number): Promise<Leader> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    for (let i = 0; i < c.servers.length; i++) {
      const s = c.servers[i];
      if (i === skip || !s || !running(s)) continue;
      try {
        const r = await fetch(`${s.url}/v2/stats/self`, { signal: AbortSignal.timeout(1000) });
        const self = (await r.json()) as { state?: string; id?: string };
        if (self.state === "StateLeader") return { index: i, id: String(self.id) };
      } catch {
        // not answering: the next one
      }
    }
    await Bun.sleep(50);
  }
  throw new Error(`no member of the ${c.side} cluster reports StateLeader within ${ms} ms`);
}

/** The Raft term a member reports (X-Raft-Term on a v2 keys answer): a rise between two readings
 * means an election happened in between (a leader re-elected keeps its ID, so IDs do not tell). */
async function raftTerm(url: string): Promise<number | undefined> {
  try {
    const r = await fetch(`${url}/v2/keys/`, { signal: AbortSignal.timeout(5000) });
    await r.arrayBuffer();
    const t = Number(r.headers.get("x-raft-term"));
    return Number.isFinite(t) && t > 0 ? t : undefined;
  } catch {
    return undefined;
  }
}

/** Waits (bounded) until every member serves `key` (followers apply a moment after the leader). */
async function waitKeyEverywhere(c: Cluster, key: string, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  for (const s of c.servers) {
    if (!s) continue;
    for (;;) {
      let status = 0;
      try {
        const r = await fetch(`${s.url}/v2/keys${key}`, { signal: AbortSignal.timeout(2000) });
        await r.arrayBuffer();
        status = r.status;
      } catch {
        // retry
      }
      if (status === 200) break;
      if (Date.now() > deadline) throw new Error(`${s.name} does not serve ${key} ${ms} ms after the fill (last status ${status})`);
      await Bun.sleep(50);
    }
  }
}

function clusterCpu(c: Cluster): number[] {
  return c.servers.map((s) => (s ? cpuSeconds(s.proc.pid) : 0));
}

/** n connections over k targets: 64 over 3 = 22, 21, 21. */
function splitConns(n: number, k: number): number[] {
  return Array.from({ length: k }, (_, i) => Math.floor(n / k) + (i < n % k ? 1 : 0));
}

// ---------- results ----------

interface WrkOut {
  kind: "wrk";
  r: WrkResult;
  /** member CPU (1.0 = one core), summed over the cluster */
  serverCpu: number;
  /** per member, in member order */
  memberCpu: number[];
  /** per wrk process (target all: one per member) */
  parts: { url: string; conns: number; rps: number; p99: number }[];
  leaderChanged: boolean;
  /** the Raft term rose during the measured run (an election, even if the same leader won) */
  electionDuring: boolean;
  /** ... during the fill or the warm-up */
  electionBefore: boolean;
  /** term at the start, before and after the measured run */
  terms: (number | undefined)[];
}
interface FailoverOut {
  kind: "failover";
  /** kill -> end of the first successful write sent after the kill */
  failoverMs: number;
  /** kill -> first /v2/stats/self of a survivor saying StateLeader (polled every 25 ms) */
  leaderMs: number | null;
  beforeRps: number;
  afterRps: number;
  /** failed requests between the kill and the first acknowledged write, by kind */
  errors: Record<string, number>;
  firstAckMember: string;
}
type Out = WrkOut | FailoverOut | { kind: "error"; error: string };

const results = new Map<string, Partial<Record<Side, Out[]>>>();

// ---------- wrk scenarios ----------

async function runWrkScenario(sc: WrkScenario, c: Cluster): Promise<WrkOut> {
  const lead = await findLeader(c);
  const leaderUrl = c.servers[lead.index]!.url;
  const term0 = await raftTerm(leaderUrl);
  log(`  leader ${c.specs[lead.index]!.name} (${lead.id}), term ${term0}`);
  const prefix = "/v2/keys/bench";
  if (sc.prefill) {
    log(`  pre-populating ${NKEYS} keys through the leader`);
    // kv-fill.lua: every key exactly once, 16 connections, one thread
    const f = await runWrk({
      url: leaderUrl,
      threads: 1,
      conns: 16,
      seconds: 600,
      timeoutMs: 600_000,
      fill: true,
      args: [String(NKEYS), String(VALUE_BYTES), prefix, "1"],
    });
    if (errorCount(f)) throw new Error(`fill: ${JSON.stringify(f.errors)}`);
    assertAlive(c);
    await waitKeyEverywhere(c, "/bench/k0");
    await waitKeyEverywhere(c, `/bench/k${NKEYS - 1}`);
  }
  const targets = sc.target === "leader" ? [leaderUrl] : c.servers.map((s) => s!.url);
  const split = splitConns(sc.conns, targets.length);
  const args = [sc.mode, String(NKEYS), String(VALUE_BYTES), prefix, sc.query ?? "-"];
  const runAll = (seconds: number) =>
    Promise.all(targets.map((url, i) => runWrk({ url, threads: 1, conns: split[i]!, seconds, args, pct: targets.length > 1 })));
  if (WARMUP > 0) {
    log(`  warm-up ${WARMUP}s`);
    await runAll(WARMUP);
    assertAlive(c);
  }
  const term1 = await raftTerm(leaderUrl);
  if (term1 !== term0) log(`  ELECTION before the measured run (fill or warm-up): term ${term0} -> ${term1}`);
  log(`  measuring ${SECONDS}s (${targets.length > 1 ? `${targets.length} wrk side by side, -t1 -c${split.join("/")}` : `wrk -t1 -c${sc.conns}`})`);
  const c0 = clusterCpu(c);
  const rs = await runAll(SECONDS);
  const c1 = clusterCpu(c);
  const r = mergeWrk(rs);
  const secs = r.duration_us / 1e6;
  const memberCpu = c1.map((x, i) => Math.max(0, x - c0[i]!) / secs);
  const serverCpu = memberCpu.reduce((a, b) => a + b, 0);
  assertAlive(c);
  const lead2 = await findLeader(c, 5000).catch(() => undefined);
  const term2 = lead2 ? await raftTerm(c.servers[lead2.index]!.url) : undefined;
  const leaderChanged = !lead2 || lead2.id !== lead.id;
  const electionDuring = term2 === undefined || term1 === undefined || term2 !== term1;
  const errs = errorCount(r);
  const cpuText = memberCpu.map((x, i) => `${c.specs[i]!.name}${i === lead.index ? "*" : ""} ${(x * 100).toFixed(0)}%`).join(", ");
  log(
    `  ${Math.round(r.rps)} req/s, p50 ${ms(r.lat_us.p50)} ms, p99 ${ms(r.lat_us.p99)} ms, max ${ms(r.lat_us.max)} ms; ` +
      `member cpu ${cpuText} (* leader); wrk cpu ${(r.wrkCpu * 100).toFixed(0)}%` +
      (errs ? `; ERRORS ${JSON.stringify(r.errors)}` : "") +
      (leaderChanged ? `; LEADER CHANGED during the run (now ${lead2 ? c.specs[lead2.index]!.name : "none"})` : "") +
      (electionDuring ? `; ELECTION during the run (term ${term1} -> ${term2})` : ""),
  );
  const parts = rs.map((x, i) => ({ url: targets[i]!, conns: split[i]!, rps: x.rps, p99: x.lat_us.p99 }));
  if (parts.length > 1) {
    log(`  per member: ${parts.map((p, i) => `${c.specs[i]!.name}${i === lead.index ? "*" : ""} ${Math.round(p.rps)} req/s p99 ${ms(p.p99)} ms`).join("; ")}`);
  }
  if (r.requests === 0) throw new Error("no requests completed");
  if (errs > r.requests * 0.001) throw new Error(`${errs} of ${r.requests} requests failed: ${JSON.stringify(r.errors)}`);
  return { kind: "wrk", r, serverCpu, memberCpu, parts, leaderChanged, electionDuring, electionBefore: term1 !== term0, terms: [term0, term1, term2] };
}

// ---------- failover ----------

function errKind(e: unknown, timeoutMs: number): string {
  if (e instanceof Error) {
    if (e.name === "TimeoutError" || e.name === "AbortError") return `no answer in ${timeoutMs} ms`;
    const code = (e as { code?: string }).code;
    return code ? code : e.name;
  }
  return String(e);
}

/** Writers PUT back to back, each starting on member w % n; a failed or unanswered request
 * (FO_REQ_TIMEOUT_MS) moves the writer to the next member, and until its next success the writer
 * waits only FO_RETRY_TIMEOUT_MS for an answer (so that the writers, all stuck at the same moment
 * on requests the dead leader swallowed, probe every ~100 ms instead of every 500 ms, and the
 * first ack measures the cluster rather than the client's timeout). After FO_STEADY_MS the leader gets
 * SIGKILL; the result is the time from the kill to the end of the first successful write that was
 * SENT after the kill (a write in flight at the kill may still be acknowledged by a follower that
 * applies it, which would say nothing about the failover). */
async function runFailover(c: Cluster): Promise<FailoverOut> {
  const lead = await findLeader(c);
  const urls = c.servers.map((s) => s!.url);
  const term0 = await raftTerm(urls[lead.index]!);
  log(`  leader ${c.specs[lead.index]!.name} (${lead.id}), term ${term0}; ${FO_WRITERS} writers over ${urls.length} members`);
  let stop = false;
  let killAt = Infinity;
  let firstAck: { end: number; member: number } | null = null;
  const okTimes: number[] = [];
  const errors: Record<string, number> = {};
  const writer = async (w: number): Promise<void> => {
    let m = w % urls.length;
    let seq = 0;
    let retrying = false;
    while (!stop) {
      const t0 = performance.now();
      const timeoutMs = retrying ? FO_RETRY_TIMEOUT_MS : FO_REQ_TIMEOUT_MS;
      let kind: string;
      try {
        const r = await fetch(`${urls[m]}/v2/keys/failover/w${w}`, {
          method: "PUT",
          headers: { "Content-Type": "application/x-www-form-urlencoded" },
          body: `value=${seq++}`,
          signal: AbortSignal.timeout(timeoutMs),
        });
        const body = await r.text();
        const t1 = performance.now();
        if (r.status === 200 || r.status === 201) {
          okTimes.push(t1);
          retrying = false;
          if (t0 >= killAt && (!firstAck || t1 < firstAck.end)) firstAck = { end: t1, member: m };
          continue;
        }
        kind = `HTTP ${r.status} ${body.trim().slice(0, 80)}`;
      } catch (e) {
        kind = errKind(e, timeoutMs);
      }
      retrying = true;
      if (t0 >= killAt && !firstAck) errors[kind] = (errors[kind] ?? 0) + 1;
      m = (m + 1) % urls.length;
      await Bun.sleep(10);
    }
  };
  const writers = Array.from({ length: FO_WRITERS }, (_, w) => writer(w));
  let leaderAt: number | null = null;
  let poller: Promise<void> | undefined;
  try {
    await Bun.sleep(FO_STEADY_MS);
    const steadyFrom = performance.now() - FO_STEADY_MS;
    if (okTimes.length === 0) throw new Error(`no write succeeded in ${FO_STEADY_MS} ms before the kill: ${JSON.stringify(errors)}`);
    assertAlive(c);
    const beforeRps = okTimes.filter((t) => t >= steadyFrom).length / (FO_STEADY_MS / 1000);
    const term1 = await raftTerm(urls[lead.index]!);
    if (term1 !== term0) throw new Error(`an election happened under the steady load, before the kill (term ${term0} -> ${term1})`);
    const victim = c.servers[lead.index]!;
    killAt = performance.now();
    victim.proc.kill("SIGKILL");
    log(`  kill -9 ${c.specs[lead.index]!.name} (pid ${victim.proc.pid}) at ${Math.round(beforeRps)} writes/s`);
    // who leads next, as the survivors report it
    poller = (async () => {
      while (!stop && leaderAt === null && performance.now() - killAt < FO_MAX_MS) {
        for (let i = 0; i < c.servers.length && leaderAt === null; i++) {
          const s = c.servers[i];
          if (i === lead.index || !s || !running(s)) continue;
          try {
            const r = await fetch(`${s.url}/v2/stats/self`, { signal: AbortSignal.timeout(500) });
            const self = (await r.json()) as { state?: string };
            if (self.state === "StateLeader") leaderAt = performance.now();
          } catch {
            // busy or gone
          }
        }
        await Bun.sleep(25);
      }
    })();
    while ((!firstAck || leaderAt === null) && performance.now() - killAt < FO_MAX_MS) await Bun.sleep(10);
    const ack = firstAck as { end: number; member: number } | null;
    if (!ack) throw new Error(`no write acknowledged within ${FO_MAX_MS} ms of the kill; failures: ${JSON.stringify(errors)}`);
    // one more second of writes: is the cluster back to its pace?
    const afterFrom = performance.now();
    await Bun.sleep(1000);
    const afterRps = okTimes.filter((t) => t >= afterFrom).length / ((performance.now() - afterFrom) / 1000);
    assertAlive(c, lead.index);
    const out: FailoverOut = {
      kind: "failover",
      failoverMs: ack.end - killAt,
      leaderMs: leaderAt === null ? null : leaderAt - killAt,
      beforeRps,
      afterRps,
      errors: { ...errors },
      firstAckMember: c.specs[ack.member]!.name,
    };
    log(
      `  first acknowledged write ${out.failoverMs.toFixed(0)} ms after the kill (via ${out.firstAckMember}); ` +
        `a survivor reported StateLeader after ${out.leaderMs === null ? "-" : out.leaderMs.toFixed(0)} ms; ` +
        `${Math.round(afterRps)} writes/s in the next second; failures meanwhile: ${JSON.stringify(out.errors)}`,
    );
    return out;
  } finally {
    stop = true;
    // every request is bounded by FO_REQ_TIMEOUT_MS, the poller by 500 ms per request
    await Promise.race([Promise.all([...writers, poller]), Bun.sleep(FO_REQ_TIMEOUT_MS + 5000)]);
  }
}

// ---------- one run ----------

async function runOne(sc: Scenario, side: Side): Promise<Out> {
  log(`${sc.name} (${sc.title}) on ${side}: starting a fresh ${MEMBERS}-member cluster`);
  let c: Cluster | undefined;
  try {
    const t0 = performance.now();
    c = await startCluster(side);
    log(`  cluster up in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    if (sc.kind === "wrk") return await runWrkScenario(sc, c);
    return await runFailover(c);
  } catch (e) {
    const msg = errMsg(e);
    log(`  ERROR ${sc.name} on ${side}: ${msg.split("\n")[0]}`);
    return { kind: "error", error: msg };
  } finally {
    if (c) await stopCluster(c);
  }
}

// ---------- report ----------



/** Median of the successful runs' values (undefined if none), and whether some runs failed. */
function agg<T extends Out>(outs: Out[] | undefined, pick: (o: T) => number | null, kind: T["kind"]): { v?: number; partial: boolean; n: number } {
  const all = outs ?? [];
  const good = all.filter((o): o is T => o.kind === kind);
  const xs = good.map(pick).filter((x): x is number => x !== null && Number.isFinite(x));
  return { v: xs.length ? median(xs) : undefined, partial: good.length > 0 && good.length < all.length, n: all.length };
}

function report(scenarios: Scenario[]): void {
  const notes: string[] = [];
  const wrkRows: string[][] = [];
  const foRows: string[][] = [];
  const int = (n: number) => Math.round(n).toString();
  const pctf = (n: number) => `${(n * 100).toFixed(0)}%`;
  const cell = (a: { v?: number; partial: boolean; n: number }, f: (n: number) => string) =>
    a.n === 0 ? "-" : a.v === undefined ? "ERR" : f(a.v) + (a.partial ? "*" : "");
  let partial = false;
  for (const sc of scenarios) {
    const per = results.get(sc.name) ?? {};
    for (const side of ["etcd", "ours"] as const) {
      const outs = per[side] ?? [];
      outs.forEach((x, i) => {
        const tag = `${sc.name} ${side}${outs.length > 1 ? ` run ${i + 1}` : ""}`;
        if (x.kind === "error") notes.push(`${tag}: ${x.error.split("\n")[0]}`);
        if (x.kind === "wrk") {
          if (errorCount(x.r)) notes.push(`${tag}: wrk errors ${JSON.stringify(x.r.errors)}`);
          if (x.leaderChanged) notes.push(`${tag}: the leader changed during the measured run`);
          if (x.electionDuring) notes.push(`${tag}: ELECTION during the measured run (Raft term ${x.terms[1]} -> ${x.terms[2]})`);
          if (x.electionBefore) notes.push(`${tag}: election during fill/warm-up (Raft term ${x.terms[0]} -> ${x.terms[1]})`);
          if (x.r.wrkCpu > 0.9 * x.parts.length) notes.push(`${tag}: wrk used ${(x.r.wrkCpu * 100).toFixed(0)}% CPU, the load generator may be the limit`);
        }
      });
      if (outs.some((o) => o.kind === "error") && outs.some((o) => o.kind !== "error")) partial = true;
    }
    if (sc.kind === "wrk") {
      const w = (side: Side, f: (o: WrkOut) => number) => agg<WrkOut>(per[side], f, "wrk");
      const er = w("etcd", (o) => o.r.rps), or = w("ours", (o) => o.r.rps);
      const ep = w("etcd", (o) => o.r.lat_us.p99), op = w("ours", (o) => o.r.lat_us.p99);
      wrkRows.push([
        sc.name,
        cell(er, int),
        cell(or, int),
        ratio(or.v, er.v, true),
        cell(ep, ms),
        cell(op, ms),
        ratio(op.v, ep.v, false),
        cell(w("etcd", (o) => o.serverCpu), pctf),
        cell(w("ours", (o) => o.serverCpu), pctf),
      ]);
    } else {
      const f = (side: Side, g: (o: FailoverOut) => number | null) => agg<FailoverOut>(per[side], g, "failover");
      const ef = f("etcd", (o) => o.failoverMs), of = f("ours", (o) => o.failoverMs);
      const target = (a: { v?: number }) => (a.v === undefined ? "" : a.v <= FAILOVER_TARGET_MS ? "" : " !");
      const list = (side: Side) =>
        (per[side] ?? []).map((o) => (o.kind === "failover" ? o.failoverMs.toFixed(0) : "ERR")).join(" / ") || "-";
      foRows.push([
        "kill -> first acked write, median (ms)",
        cell(ef, int) + target(ef),
        cell(of, int) + target(of),
        ratio(of.v, ef.v, false),
        `<= ${FAILOVER_TARGET_MS}`,
      ]);
      foRows.push(["  each round (ms)", list("etcd"), list("ours"), "", ""]);
      const el = f("etcd", (o) => o.leaderMs), ol = f("ours", (o) => o.leaderMs);
      foRows.push(["kill -> a survivor is StateLeader, median (ms)", cell(el, int), cell(ol, int), ratio(ol.v, el.v, false), ""]);
      const eb = f("etcd", (o) => o.beforeRps), ob = f("ours", (o) => o.beforeRps);
      foRows.push([`writes/s before the kill (${FO_WRITERS} writers)`, cell(eb, int), cell(ob, int), ratio(ob.v, eb.v, true), ""]);
      const ea = f("etcd", (o) => o.afterRps), oa = f("ours", (o) => o.afterRps);
      foRows.push(["writes/s in the second after the first ack", cell(ea, int), cell(oa, int), ratio(oa.v, ea.v, true), ""]);
      for (const side of ["etcd", "ours"] as const) {
        const errs: Record<string, number> = {};
        for (const o of per[side] ?? []) if (o.kind === "failover") for (const [k, n] of Object.entries(o.errors)) errs[k] = (errs[k] ?? 0) + n;
        if (Object.keys(errs).length) notes.push(`failover ${side}: failed requests between kill and first ack, all rounds: ${JSON.stringify(errs)}`);
      }
    }
  }

  console.log("");
  console.log(`etcd: ${describeCmd("etcd")}`);
  console.log(`ours: ${describeCmd("ours")}`);
  console.log(
    `${MEMBERS}-member clusters on loopback, one at a time; ${cpus().length} CPUs shared by the cluster and wrk; ` +
      `${SECONDS}s per run after ${WARMUP}s warm-up; wrk -t1 per target; ${NKEYS} keys, ${VALUE_BYTES} B values; ` +
      `ratios are ours/etcd ("!" = misses the target)` +
      (REPEAT > 1 ? `; medians of ${REPEAT} interleaved repeats` : ""),
  );
  if (wrkRows.length) {
    console.log("");
    console.log(
      table(
        ["scenario", "etcd req/s", "ours req/s", "ratio (>=1)", "etcd p99 ms", "ours p99 ms", "ratio (<=1)", "etcd cpu", "ours cpu"],
        wrkRows,
      ),
    );
    console.log("(cpu: all members together, 100% = one core)");
  }
  if (foRows.length) {
    console.log("");
    console.log(
      `failover: ${FO_WRITERS} writers over every member (a request unanswered in ${FO_REQ_TIMEOUT_MS} ms, ${FO_RETRY_TIMEOUT_MS} ms after a failure, ` +
        `moves on to the next member), ` +
        `kill -9 the leader after ${FO_STEADY_MS / 1000}s; target 3 election timeouts = ${FAILOVER_TARGET_MS} ms`,
    );
    console.log(table(["", "etcd", "ours", "ratio (<=1)", "target"], foRows));
  }
  if (partial) notes.push("* = some runs failed; the median is over the ones that succeeded");
  if (notes.length) {
    console.log("");
    for (const n of notes) console.log(`note: ${n}`);
  }
}

// ---------- main ----------

async function main(): Promise<number> {
  const scenarios = pickScenarios(ALL);
  const sides = pickSides();
  if (!sidesRunnable(sides)) return 2;
  log(`sides ${sides.join(", ")}; scenarios ${scenarios.map((s) => s.name).join(", ")}; ${MEMBERS} members; ${SECONDS}s per run`);
  const load0 = loadavg()[0]!;
  log(`load average before start: ${load0.toFixed(2)}` + (load0 > 0.5 ? " (other work is running: expect noise)" : ""));
  for (const side of sides) log(`${side}: ${describeCmd(side)}`);
  for (const sc of scenarios) {
    const per: Partial<Record<Side, Out[]>> = {};
    results.set(sc.name, per);
    const runs = sc.kind === "failover" ? REPEAT * FO_ROUNDS : REPEAT;
    // interleaved: etcd, ours, etcd, ours, ... so slow drifts of the machine hit both sides
    for (let rep = 0; rep < runs; rep++) {
      for (const side of sides) {
        if (runs > 1) log(`${sc.kind === "failover" ? "round" : "repeat"} ${rep + 1}/${runs}`);
        (per[side] ??= []).push(await runOne(sc, side));
      }
    }
  }
  report(scenarios);
  console.log(`load average (1/5/15 min) at the end: ${loadavg().map((x) => x.toFixed(2)).join(" / ")}; this run itself adds about 2`);
  if (process.env.BENCH_JSON) {
    const obj = {
      config: { SECONDS, WARMUP, REPEAT, MEMBERS, FO_ROUNDS, FO_WRITERS, FO_REQ_TIMEOUT_MS, FO_RETRY_TIMEOUT_MS, FO_STEADY_MS, NKEYS, VALUE_BYTES, cpus: cpus().length },
      results: Object.fromEntries(results),
    };
    writeFileSync(process.env.BENCH_JSON, JSON.stringify(obj, (k, v) => (k === "pct" ? undefined : v), 2));
    log(`wrote ${process.env.BENCH_JSON}`);
  }
  const anyError = [...results.values()].some((r) => Object.values(r).some((os) => os?.some((o) => o.kind === "error")));
  return anyError ? 1 : 0;
}

await runBench("cluster", main);
