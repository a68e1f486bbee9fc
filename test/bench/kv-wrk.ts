// Runs wrk (a separate process) with test/bench/kv.lua and parses the one-line JSON result that
// the script's done() prints. Also reports wrk's own CPU use so a saturated load generator shows.
import { join } from "node:path";
import { track } from "./kv-procs.ts";

export const LUA = join(import.meta.dir, "kv.lua");
export const FILL_LUA = join(import.meta.dir, "kv-fill.lua");

export interface WrkResult {
  requests: number;
  duration_us: number;
  bytes: number;
  errors: { connect: number; read: number; write: number; status: number; timeout: number };
  lat_us: { min: number; mean: number; max: number; p50: number; p90: number; p99: number; p999: number };
  /** requests / duration */
  rps: number;
  /** wrk's CPU seconds / wall seconds (1.0 = one core busy). */
  wrkCpu: number;
  /** With `pct`: [percentile, latency us] pairs, ascending (kv.lua's BENCH_PCT line). */
  pct?: [number, number][];
}

export interface WrkOptions {
  url: string;
  threads: number;
  conns: number;
  seconds: number;
  /** Arguments after `--` for the script (kv.lua: MODE NKEYS VALUE_BYTES PREFIX [QUERY];
   * kv-fill.lua: NKEYS VALUE_BYTES PREFIX THREADS). */
  args: string[];
  /** Use kv-fill.lua: SIGINT wrk once every thread printed BENCH_FILL_DONE; fail if no progress
   * line arrives for `stallMs`. */
  fill?: boolean;
  stallMs?: number;
  /** Hard bound on the whole wrk run (default: seconds + 30 s). */
  timeoutMs?: number;
  /** kv.lua also reports a percentile grid (for mergeWrk). */
  pct?: boolean;
}

export async function runWrk(o: WrkOptions): Promise<WrkResult> {
  const threads = Math.max(1, Math.min(o.threads, o.conns));
  const cmd = [
    "wrk",
    "-t", String(threads),
    "-c", String(o.conns),
    "-d", `${o.seconds}s`,
    "--timeout", "5s",
    "--latency",
    "-s", o.fill ? FILL_LUA : LUA,
    o.url,
    "--",
    ...o.args,
  ];
  const started = performance.now();
  const proc = track(
    Bun.spawn(cmd, { stdout: "pipe", stderr: "pipe", env: { ...process.env, BENCH_WRK_PCT: o.pct ? "1" : "0" } }),
  );
  const timeoutMs = o.timeoutMs ?? o.seconds * 1000 + 30_000;
  let timedOut = false;
  let stalled = false;
  const timer = setTimeout(() => {
    timedOut = true;
    proc.kill("SIGKILL");
  }, timeoutMs);
  let lastOutput = performance.now();
  const stallMs = o.stallMs ?? 30_000;
  const stallTimer = o.fill
    ? setInterval(() => {
        if (!interrupted && performance.now() - lastOutput > stallMs) {
          stalled = true;
          proc.kill("SIGKILL");
        }
      }, 1000)
    : undefined;
  let out = "";
  let fillDone = 0;
  let interrupted = false;
  const stderrP = new Response(proc.stderr).text();
  try {
    const dec = new TextDecoder();
    for await (const chunk of proc.stdout) {
      out += dec.decode(chunk, { stream: true });
      lastOutput = performance.now();
      if (o.fill && !interrupted) {
        fillDone = (out.match(/BENCH_FILL_DONE/g) ?? []).length;
        if (fillDone >= threads) {
          interrupted = true;
          proc.kill("SIGINT"); // wrk prints its summary (and runs done()) on SIGINT
        }
      }
    }
    await proc.exited;
  } finally {
    clearTimeout(timer);
    clearInterval(stallTimer);
  }
  const wall = (performance.now() - started) / 1000;
  const stderr = await stderrP;
  if (stalled) {
    const last = out.trim().split("\n").pop() ?? "";
    throw new Error(`wrk fill made no progress for ${stallMs} ms (last: ${last}); a request lost or the server stuck?\n${stderr}`);
  }
  if (timedOut) throw new Error(`wrk did not finish within ${timeoutMs} ms: ${cmd.join(" ")}\n${out}\n${stderr}`);
  const line = out.split("\n").find((l) => l.startsWith("BENCH_RESULT "));
  if (!line) throw new Error(`wrk gave no result (exit ${proc.exitCode}): ${cmd.join(" ")}\n${out}\n${stderr}`);
  const r = JSON.parse(line.slice("BENCH_RESULT ".length)) as Omit<WrkResult, "rps" | "wrkCpu">;
  const ru = proc.resourceUsage();
  const cpu = ru ? Number(ru.cpuTime.user + ru.cpuTime.system) / 1e6 : 0;
  const res: WrkResult = { ...r, rps: r.requests / (r.duration_us / 1e6), wrkCpu: wall > 0 ? cpu / wall : 0 };
  const pl = out.split("\n").find((l) => l.startsWith("BENCH_PCT "));
  if (pl) {
    res.pct = pl
      .slice("BENCH_PCT ".length)
      .trim()
      .split(",")
      .map((kv) => kv.split(":").map(Number) as [number, number]);
    res.pct.push([100, r.lat_us.max]);
  }
  return res;
}

/** The latency at percentile `p` of the mixture of several runs' distributions, each known on its
 * percentile grid and weighted by its request count. F_i(x) is taken as the highest grid
 * percentile whose latency is <= x (a lower bound), so the result errs high by at most one grid
 * step (0.02 around p99). For a single run at a grid point it is that run's own percentile. */
export function mergedPercentile(runs: { weight: number; pct: [number, number][] }[], p: number): number {
  const total = runs.reduce((n, r) => n + r.weight, 0);
  if (total <= 0) return 0;
  const xs = [...new Set(runs.flatMap((r) => r.pct.map(([, v]) => v)))].sort((a, b) => a - b);
  const cdf = (pct: [number, number][], x: number): number => {
    let f = 0;
    for (const [q, v] of pct) if (v <= x && q > f) f = q;
    return f;
  };
  for (const x of xs) {
    let f = 0;
    for (const r of runs) f += (r.weight / total) * cdf(r.pct, x);
    if (f >= p - 1e-9) return x;
  }
  return xs[xs.length - 1] ?? 0;
}

/** Several wrk runs made side by side (same duration, different targets) as one: requests, bytes
 * and errors summed, req/s summed (each over its own duration), wrk CPU summed, latencies merged
 * (percentiles with mergedPercentile; every run needs `pct`). */
export function mergeWrk(rs: WrkResult[]): WrkResult {
  if (rs.length === 1) return rs[0]!;
  if (rs.length === 0) throw new Error("mergeWrk: no runs");
  const withPct = rs.map((r) => {
    if (!r.pct?.length) throw new Error("mergeWrk: a run has no percentile grid (runWrk with pct: true)");
    return { weight: r.requests, pct: r.pct };
  });
  const requests = rs.reduce((n, r) => n + r.requests, 0);
  const sum = (f: (r: WrkResult) => number) => rs.reduce((n, r) => n + f(r), 0);
  const pc = (p: number) => mergedPercentile(withPct, p);
  return {
    requests,
    duration_us: Math.max(...rs.map((r) => r.duration_us)),
    bytes: sum((r) => r.bytes),
    errors: {
      connect: sum((r) => r.errors.connect),
      read: sum((r) => r.errors.read),
      write: sum((r) => r.errors.write),
      status: sum((r) => r.errors.status),
      timeout: sum((r) => r.errors.timeout),
    },
    lat_us: {
      min: Math.min(...rs.map((r) => r.lat_us.min)),
      mean: requests > 0 ? sum((r) => r.lat_us.mean * r.requests) / requests : 0,
      max: Math.max(...rs.map((r) => r.lat_us.max)),
      p50: pc(50),
      p90: pc(90),
      p99: pc(99),
      p999: pc(99.9),
    },
    rps: sum((r) => r.rps),
    wrkCpu: sum((r) => r.wrkCpu),
  };
}

export function errorCount(r: WrkResult): number {
  const e = r.errors;
  return e.connect + e.read + e.write + e.status + e.timeout;
}
