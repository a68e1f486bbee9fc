// KV benchmark: our `coreos kv serve` against the real etcd 3.4 (v2 API), same flags, same load,
// one server at a time, fresh single member (fresh data dir) for every scenario and side.
// Prints requests/s and p99 per scenario and the ratios ours/etcd. See test/bench/README.md.
//
// env:
//   BENCH_SECONDS=10        measured seconds per wrk scenario
//   BENCH_WARMUP=2          warm-up seconds before each measured wrk run (0 = none)
//   BENCH_ONLY=etcd|ours    run one side only
//   BENCH_SCENARIOS=a,b     subset of: put1,put16,put64,get16,get64,qget16,watch,mem
//   BENCH_REPEAT=1          run each scenario N times per side, interleaved; report medians
//   BENCH_WRK_THREADS=1     wrk threads (1 leaves the second core to the server)
//   BENCH_WATCHERS=1000     watchers for the fan-out scenario; BENCH_WATCH_ROUNDS=5
//   BENCH_WATCH_FLOOR=0     skip measuring the watch harness floor (trivial server)
//   BENCH_MEM_KEYS=100000   keys written in the memory scenario
//   BENCH_OURS_CMD="..."    command for "ours" instead of dist/coreos kv serve (member flags appended)
//   BENCH_ETCD_CMD="..."    command for "etcd" instead of etcd --enable-v2=true
//   BENCH_EXTRA_ARGS="..."  extra flags given to both servers
//   BENCH_JSON=path         also write all results as JSON
import { cpus, loadavg } from "node:os";
import { writeFileSync } from "node:fs";
import type { Server } from "../helpers/procs.ts";
import {
  cpuSeconds,
  describeCmd,
  envNum,
  sidesRunnable,
  runBench,
  readMem,
  startSide,
  stopServer,
  type MemInfo,
  type Side,
} from "./kv-procs.ts";
import { errorCount, runWrk, type WrkResult } from "./kv-wrk.ts";
import { median, runWatch, type WatchRound } from "./kv-watch.ts";
import { startFloor } from "./kv-watch-floor.ts";
import { pickScenarios, pickSides, progressLog, ratio, table } from "./report.ts";

// ---------- configuration ----------

const SECONDS = envNum("BENCH_SECONDS", 10);
const WARMUP = envNum("BENCH_WARMUP", 2);
const WRK_THREADS = Math.max(1, Math.floor(envNum("BENCH_WRK_THREADS", 1)));
const WATCHERS = Math.max(1, Math.floor(envNum("BENCH_WATCHERS", 1000)));
const WATCH_ROUNDS = Math.max(1, Math.floor(envNum("BENCH_WATCH_ROUNDS", 5)));
const MEM_KEYS = Math.max(1, Math.floor(envNum("BENCH_MEM_KEYS", 100_000)));
const REPEAT = Math.max(1, Math.floor(envNum("BENCH_REPEAT", 1)));
const NKEYS = 10_000;
const VALUE_BYTES = 100;
const EXTRA_ARGS = (process.env.BENCH_EXTRA_ARGS ?? "").split(/\s+/).filter(Boolean);

type WrkScenario = {
  kind: "wrk";
  name: string;
  title: string;
  mode: "put" | "get";
  conns: number;
  query?: string;
  prefill: boolean;
};
type Scenario = WrkScenario | { kind: "watch"; name: string; title: string } | { kind: "mem"; name: string; title: string };

const ALL: Scenario[] = [
  { kind: "wrk", name: "put1", title: "PUT, 1 conn", mode: "put", conns: 1, prefill: false },
  { kind: "wrk", name: "put16", title: "PUT, 16 conns", mode: "put", conns: 16, prefill: false },
  { kind: "wrk", name: "put64", title: "PUT, 64 conns", mode: "put", conns: 64, prefill: false },
  { kind: "wrk", name: "get16", title: "GET, 16 conns", mode: "get", conns: 16, prefill: true },
  { kind: "wrk", name: "get64", title: "GET, 64 conns", mode: "get", conns: 64, prefill: true },
  { kind: "wrk", name: "qget16", title: "GET ?quorum=true, 16 conns", mode: "get", conns: 16, query: "quorum=true", prefill: true },
  { kind: "watch", name: "watch", title: `watch fan-out, ${WATCHERS} watchers` },
  { kind: "mem", name: "mem", title: `memory after ${MEM_KEYS} PUTs of ${VALUE_BYTES} B` },
];



// ---------- results ----------

interface WrkOut {
  kind: "wrk";
  r: WrkResult;
  serverCpu: number;
}
interface WatchOut {
  kind: "watch";
  rounds: WatchRound[];
  medianLastMs: number;
  maxLastMs: number;
}
interface MemOut {
  kind: "mem";
  idle: MemInfo;
  after: MemInfo;
  keys: number;
  fillRps: number;
}
type Out = WrkOut | WatchOut | MemOut | { kind: "error"; error: string };

/** scenario -> side -> one Out per repeat */
const results = new Map<string, Partial<Record<Side, Out[]>>>();
/** The watch scenario against a trivial server: the harness's own floor. */
let watchFloor: WatchOut | { kind: "error"; error: string } | undefined;

const log = progressLog("bench");

// ---------- helpers ----------

/** PUT exactly `keys` keys (kv-fill.lua); bounded by a stall detector and a 10-minute cap. */
async function fill(url: string, prefix: string, keys: number, conns: number): Promise<WrkResult> {
  const threads = Math.min(WRK_THREADS, conns);
  const c = Math.max(threads, Math.min(conns, Math.floor(keys / threads)));
  const r = await runWrk({
    url,
    threads,
    conns: c,
    seconds: 600,
    timeoutMs: 600_000,
    fill: true,
    args: [String(keys), String(VALUE_BYTES), prefix, String(threads)],
  });
  if (errorCount(r)) throw new Error(`fill of ${prefix}: ${JSON.stringify(r.errors)}`);
  return r;
}

async function expectKey(url: string, key: string): Promise<void> {
  const r = await fetch(`${url}/v2/keys${key}`, { signal: AbortSignal.timeout(30_000) });
  const body = await r.text();
  if (r.status !== 200) throw new Error(`GET ${key} after fill: ${r.status} ${body.slice(0, 200)}`);
}

async function countDir(url: string, key: string): Promise<number> {
  const r = await fetch(`${url}/v2/keys${key}`, { signal: AbortSignal.timeout(30_000) });
  if (r.status !== 200) throw new Error(`GET ${key}: ${r.status}`);
  const j = (await r.json()) as { node?: { nodes?: unknown[] } };
  return j.node?.nodes?.length ?? 0;
}

function ms(us: number): string {
  return (us / 1000).toFixed(2);
}

/** Throws if the server process has exited (a crash or exit mid-run would otherwise show up only
 * as wrk socket errors). */
function assertAlive(s: Server): void {
  if (s.proc.exitCode !== null || s.proc.signalCode !== null) {
    throw new Error(`the server exited during the run (exit code ${s.proc.exitCode}, signal ${s.proc.signalCode})`);
  }
}

// ---------- scenarios ----------

async function runWrkScenario(sc: WrkScenario, s: Server): Promise<WrkOut> {
  const prefix = "/v2/keys/bench";
  if (sc.prefill) {
    log(`  pre-populating ${NKEYS} keys`);
    await fill(s.url, prefix, NKEYS, 16);
    assertAlive(s);
    await expectKey(s.url, "/bench/k0");
    await expectKey(s.url, `/bench/k${NKEYS - 1}`);
  }
  const args = [sc.mode, String(NKEYS), String(VALUE_BYTES), prefix, sc.query ?? "-"];
  if (WARMUP > 0) {
    log(`  warm-up ${WARMUP}s`);
    await runWrk({ url: s.url, threads: WRK_THREADS, conns: sc.conns, seconds: WARMUP, args });
    assertAlive(s);
  }
  log(`  measuring ${SECONDS}s (wrk -t${Math.min(WRK_THREADS, sc.conns)} -c${sc.conns})`);
  const c0 = cpuSeconds(s.proc.pid);
  const r = await runWrk({ url: s.url, threads: WRK_THREADS, conns: sc.conns, seconds: SECONDS, args });
  const serverCpu = Math.max(0, cpuSeconds(s.proc.pid) - c0) / (r.duration_us / 1e6);
  assertAlive(s);
  const errs = errorCount(r);
  log(
    `  ${Math.round(r.rps)} req/s, p50 ${ms(r.lat_us.p50)} ms, p99 ${ms(r.lat_us.p99)} ms, max ${ms(r.lat_us.max)} ms; ` +
      `server cpu ${(serverCpu * 100).toFixed(0)}%, wrk cpu ${(r.wrkCpu * 100).toFixed(0)}%` +
      (errs ? `; ERRORS ${JSON.stringify(r.errors)}` : ""),
  );
  if (r.requests === 0) throw new Error("no requests completed");
  // error answers are cheap: a run with more than 0.1 % of them does not count
  if (errs > r.requests * 0.001) throw new Error(`${errs} of ${r.requests} requests failed: ${JSON.stringify(r.errors)}`);
  return { kind: "wrk", r, serverCpu };
}

async function runWatchScenario(url: string): Promise<WatchOut> {
  const rounds = await runWatch({ url, watchers: WATCHERS, rounds: WATCH_ROUNDS, log });
  const lasts = rounds.map((r) => r.lastMs);
  return { kind: "watch", rounds, medianLastMs: median(lasts), maxLastMs: Math.max(...lasts) };
}

/** Same watch measurement against kv-watch-floor.ts (a tight-loop server): the client's floor. */
async function runWatchFloor(): Promise<void> {
  log(`watch harness floor: ${WATCHERS} watchers against a trivial tight-loop server`);
  let f: Awaited<ReturnType<typeof startFloor>> | undefined;
  try {
    f = await startFloor();
    watchFloor = await runWatchScenario(f.url);
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    log(`  ERROR watch floor: ${msg.split("\n")[0]}`);
    watchFloor = { kind: "error", error: msg };
  } finally {
    await f?.stop();
  }
}

async function runMemScenario(s: Server): Promise<MemOut> {
  await Bun.sleep(500);
  const idle = readMem(s.proc.pid);
  log(`  idle: rss ${mb(idle.rss)} MB, peak ${mb(idle.peakRss)} MB; writing ${MEM_KEYS} keys (64 conns)`);
  const r = await fill(s.url, "/v2/keys/mem", MEM_KEYS, 64);
  assertAlive(s);
  const after = readMem(s.proc.pid);
  const keys = await countDir(s.url, "/mem");
  log(
    `  wrote ${r.requests} PUTs at ${Math.round(r.rps)}/s; peak rss ${mb(after.peakRss)} MB, rss ${mb(after.rss)} MB; ` +
      `${keys} keys listed` + (after.procs > 1 ? ` (RSS summed over ${after.procs} processes)` : ""),
  );
  if (keys !== MEM_KEYS) throw new Error(`expected ${MEM_KEYS} keys under /mem, listed ${keys}`);
  return { kind: "mem", idle, after, keys, fillRps: r.rps };
}

function mb(b: number): string {
  return (b / 1024 / 1024).toFixed(1);
}

async function runOne(sc: Scenario, side: Side): Promise<Out> {
  log(`${sc.name} (${sc.title}) on ${side}: starting a fresh member`);
  let s: Server | undefined;
  try {
    s = await startSide(side, EXTRA_ARGS);
    if (sc.kind === "wrk") return await runWrkScenario(sc, s);
    if (sc.kind === "watch") return await runWatchScenario(s.url);
    return await runMemScenario(s);
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    log(`  ERROR ${sc.name} on ${side}: ${msg.split("\n")[0]}`);
    return { kind: "error", error: msg };
  } finally {
    if (s) {
      if (s.proc.exitCode !== null || s.proc.signalCode !== null) {
        log(`  note: ${side} exited during the scenario (code ${s.proc.exitCode}, signal ${s.proc.signalCode})`);
      }
      await stopServer(s);
    }
  }
}

// ---------- report ----------



interface Agg {
  /** runs that succeeded / all runs */
  ok: number;
  n: number;
  vals: Record<string, number>;
}

const med = (xs: number[]): number => median(xs);

/** Medians over the successful repeats of one scenario on one side. */
function aggregate(outs: Out[] | undefined): Agg | undefined {
  if (!outs || outs.length === 0) return undefined;
  const good = outs.filter((o) => o.kind !== "error");
  const agg: Agg = { ok: good.length, n: outs.length, vals: {} };
  if (good.length === 0) return agg;
  const put = (k: string, xs: number[]) => (agg.vals[k] = med(xs));
  const w = good.filter((o): o is WrkOut => o.kind === "wrk");
  if (w.length) {
    put("rps", w.map((o) => o.r.rps));
    put("p50", w.map((o) => o.r.lat_us.p50));
    put("p99", w.map((o) => o.r.lat_us.p99));
    put("cpu", w.map((o) => o.serverCpu));
    put("wrkCpu", w.map((o) => o.r.wrkCpu));
    agg.vals.errors = w.reduce((n, o) => n + errorCount(o.r), 0);
  }
  const wa = good.filter((o): o is WatchOut => o.kind === "watch");
  if (wa.length) {
    const rounds = wa.flatMap((o) => o.rounds);
    put("lastMed", rounds.map((r) => r.lastMs));
    agg.vals.lastMax = Math.max(...rounds.map((r) => r.lastMs));
    put("harnessCpu", rounds.map((r) => r.harnessCpuMs));
  }
  const m = good.filter((o): o is MemOut => o.kind === "mem");
  if (m.length) {
    put("peak", m.map((o) => o.after.peakRss));
    put("rss", m.map((o) => o.after.rss));
    put("idle", m.map((o) => o.idle.rss));
    put("fillRps", m.map((o) => o.fillRps));
  }
  return agg;
}

function report(scenarios: Scenario[]): void {
  const wrkRows: string[][] = [];
  const watchRows: string[][] = [];
  const memRows: string[][] = [];
  const notes: string[] = [];
  const cell = (a: Agg | undefined, k: string, f: (n: number) => string): string => {
    if (!a) return "-";
    const v = a.vals[k];
    if (a.ok === 0 || v === undefined) return "ERR";
    return f(v) + (a.ok < a.n ? "*" : "");
  };
  const int = (n: number) => Math.round(n).toString();
  const f1 = (n: number) => n.toFixed(1);
  const pctf = (n: number) => `${(n * 100).toFixed(0)}%`;
  let partial = false;
  for (const sc of scenarios) {
    const per = results.get(sc.name) ?? {};
    const e = aggregate(per.etcd);
    const o = aggregate(per.ours);
    for (const side of ["etcd", "ours"] as const) {
      const outs = per[side] ?? [];
      outs.forEach((x, i) => {
        const tag = `${sc.name} ${side}${outs.length > 1 ? ` run ${i + 1}` : ""}`;
        if (x.kind === "error") notes.push(`${tag}: ${x.error.split("\n")[0]}`);
        if (x.kind === "wrk" && errorCount(x.r)) notes.push(`${tag}: wrk errors ${JSON.stringify(x.r.errors)}`);
        if (x.kind === "wrk" && sc.kind === "wrk" && x.r.wrkCpu > 0.9 * Math.min(WRK_THREADS, sc.conns)) {
          notes.push(`${tag}: wrk used ${(x.r.wrkCpu * 100).toFixed(0)}% CPU, the load generator may be the limit`);
        }
      });
      const a = side === "etcd" ? e : o;
      if (a && a.ok > 0 && a.ok < a.n) partial = true;
    }
    const ev = (k: string) => (e && e.ok ? e.vals[k] : undefined);
    const ov = (k: string) => (o && o.ok ? o.vals[k] : undefined);
    if (sc.kind === "wrk") {
      wrkRows.push([
        sc.name,
        cell(e, "rps", int),
        cell(o, "rps", int),
        ratio(ov("rps"), ev("rps"), true),
        cell(e, "p99", ms),
        cell(o, "p99", ms),
        ratio(ov("p99"), ev("p99"), false),
        cell(e, "cpu", pctf),
        cell(o, "cpu", pctf),
      ]);
    } else if (sc.kind === "watch") {
      watchRows.push(["last watcher, median of rounds (ms)", cell(e, "lastMed", f1), cell(o, "lastMed", f1), ratio(ov("lastMed"), ev("lastMed"), false)]);
      watchRows.push(["last watcher, max of rounds (ms)", cell(e, "lastMax", f1), cell(o, "lastMax", f1), ratio(ov("lastMax"), ev("lastMax"), false)]);
      watchRows.push(["harness cpu in window, median (ms)", cell(e, "harnessCpu", f1), cell(o, "harnessCpu", f1), ""]);
      if (watchFloor?.kind === "watch") {
        watchRows.push([
          "harness floor: trivial server, median/max last (ms)",
          `${watchFloor.medianLastMs.toFixed(1)}/${watchFloor.maxLastMs.toFixed(1)}`,
          "",
          "",
        ]);
      } else if (watchFloor?.kind === "error") {
        notes.push(`watch harness floor: ${watchFloor.error.split("\n")[0]}`);
      }
    } else {
      const mbf = (n: number) => mb(n);
      memRows.push(["peak RSS, VmHWM (MB)", cell(e, "peak", mbf), cell(o, "peak", mbf), ratio(ov("peak"), ev("peak"), false)]);
      memRows.push(["current RSS, VmRSS (MB)", cell(e, "rss", mbf), cell(o, "rss", mbf), ratio(ov("rss"), ev("rss"), false)]);
      memRows.push(["idle RSS before writes (MB)", cell(e, "idle", mbf), cell(o, "idle", mbf), ratio(ov("idle"), ev("idle"), false)]);
      memRows.push(["write rate while filling (PUT/s)", cell(e, "fillRps", int), cell(o, "fillRps", int), ratio(ov("fillRps"), ev("fillRps"), true)]);
    }
  }

  console.log("");
  console.log(`etcd: ${describeCmd("etcd")}`);
  console.log(`ours: ${describeCmd("ours")}`);
  console.log(
    `${cpus().length} CPUs; ${SECONDS}s per run after ${WARMUP}s warm-up; wrk -t${WRK_THREADS}; ` +
      `${NKEYS} keys, ${VALUE_BYTES} B values; ratios are ours/etcd ("!" = misses the target)` +
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
  }
  if (watchRows.length) {
    console.log("");
    console.log(`watch fan-out: ${WATCHERS} long-poll watchers on one key, one PUT, ${WATCH_ROUNDS} rounds per run`);
    console.log(table(["", "etcd", "ours", "ratio (<=1)"], watchRows));
  }
  if (memRows.length) {
    console.log("");
    console.log(`memory: ${MEM_KEYS} keys of ${VALUE_BYTES} B written with 64 connections`);
    console.log(table(["", "etcd", "ours", "ratio (<=1)"], memRows));
  }
  if (partial) notes.push("* = some repeats failed; the median is over the ones that succeeded");
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
  log(`sides ${sides.join(", ")}; scenarios ${scenarios.map((s) => s.name).join(", ")}; ${SECONDS}s per run`);
  const load0 = loadavg()[0]!;
  log(`load average before start: ${load0.toFixed(2)}` + (load0 > 0.5 ? " (other work is running: expect noise)" : ""));
  for (const side of sides) log(`${side}: ${describeCmd(side)}`);
  for (const sc of scenarios) {
    const per: Partial<Record<Side, Out[]>> = {};
    results.set(sc.name, per);
    if (sc.kind === "watch" && process.env.BENCH_WATCH_FLOOR !== "0") await runWatchFloor();
    // interleaved: etcd, ours, etcd, ours, ... so slow drifts of the machine hit both sides
    for (let rep = 0; rep < REPEAT; rep++) {
      for (const side of sides) {
        if (REPEAT > 1) log(`repeat ${rep + 1}/${REPEAT}`);
        (per[side] ??= []).push(await runOne(sc, side));
      }
    }
  }
  report(scenarios);
  console.log(`load average (1/5/15 min) at the end: ${loadavg().map((x) => x.toFixed(2)).join(" / ")}; this run itself adds about 1.5`);
  if (process.env.BENCH_JSON) {
    const obj: Record<string, unknown> = {
      config: { SECONDS, WARMUP, REPEAT, WRK_THREADS, WATCHERS, WATCH_ROUNDS, MEM_KEYS, NKEYS, VALUE_BYTES, cpus: cpus().length },
      results: Object.fromEntries(results),
      watchFloor,
    };
    writeFileSync(process.env.BENCH_JSON, JSON.stringify(obj, null, 2));
    log(`wrote ${process.env.BENCH_JSON}`);
  }
  const anyError = [...results.values()].some((r) => Object.values(r).some((os) => os?.some((o) => o.kind === "error")));
  return anyError ? 1 : 0;
}

await runBench("bench", main);
