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
  const proc = track(Bun.spawn(cmd, { stdout: "pipe", stderr: "pipe" }));
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
  return { ...r, rps: r.requests / (r.duration_us / 1e6), wrkCpu: wall > 0 ? cpu / wall : 0 };
}

export function errorCount(r: WrkResult): number {
  const e = r.errors;
  return e.connect + e.read + e.write + e.status + e.timeout;
}
