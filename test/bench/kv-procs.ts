// Server processes for the kv benchmark: start either side (optionally with an overriding
// command), stop with a bound, read /proc figures (RSS, CPU ticks), and track every child process
// so that an error or Ctrl-C still stops them all.
import { existsSync, mkdirSync, readdirSync, readFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import type { Subprocess } from "bun";
import {
  BIN,
  cleanup,
  freePort,
  startEtcd,
  startOurs,
  tempDir,
  serverFor,
  waitReady,
  type Server,
} from "../helpers/procs.ts";

export type Side = "etcd" | "ours";

/** Every child we started and have not yet seen exit. */
const live = new Set<Subprocess>();

export function track<P extends Subprocess>(p: P): P {
  live.add(p);
  void p.exited.then(() => live.delete(p));
  return p;
}

/** Data dirs (their temp parents) of servers not yet stopped by stopServer. */
const dirs = new Set<string>();

/** SIGKILL whatever is still running and remove leftover data dirs (error paths, signals). */
export function killAll(): void {
  for (const p of live) {
    try {
      p.kill("SIGKILL");
    } catch {
      // already gone
    }
  }
  live.clear();
  for (const d of dirs) {
    try {
      cleanup(d);
    } catch {
      // best effort
    }
  }
  dirs.clear();
}

function splitCmd(s: string): string[] {
  return s.trim().split(/\s+/).filter((x) => x.length > 0);
}

/** The command line for a side when overridden by env (BENCH_OURS_CMD / BENCH_ETCD_CMD). */
export function overrideCmd(side: Side): string[] | undefined {
  const v = side === "ours" ? process.env.BENCH_OURS_CMD : process.env.BENCH_ETCD_CMD;
  return v && v.trim() ? splitCmd(v) : undefined;
}

export function describeCmd(side: Side): string {
  const o = overrideCmd(side);
  if (o) return o.join(" ");
  return side === "ours" ? `${BIN} kv serve` : `etcd --enable-v2=true (${Bun.which("etcd") ?? "etcd not on PATH"})`;
}

/** Why this side cannot run at all (e.g. the binary is missing), or undefined. */
export function sideProblem(side: Side): string | undefined {
  if (side === "ours" && !overrideCmd("ours") && !existsSync(BIN)) {
    return `${BIN} does not exist (run \`bun build.ts\`, or set BENCH_OURS_CMD / BENCH_ONLY=etcd)`;
  }
  if (side === "etcd" && !overrideCmd("etcd") && !Bun.which("etcd")) return "etcd is not on PATH (apt-get install etcd-server)";
  return undefined;
}

/** Same member flags as test/helpers/procs.ts (kept identical for both sides). */
function memberArgs(name: string, dataDir: string, clientPort: number, peerPort: number): string[] {
  const c = `http://127.0.0.1:${clientPort}`;
  const p = `http://127.0.0.1:${peerPort}`;
  return [
    "--name", name,
    "--data-dir", dataDir,
    "--listen-client-urls", c,
    "--advertise-client-urls", c,
    "--listen-peer-urls", p,
    "--initial-advertise-peer-urls", p,
    "--initial-cluster", `${name}=${p}`,
    "--initial-cluster-token", "t1",
  ];
}

async function startCmd(cmd: string[], dataDir: string, extraArgs: string[]): Promise<Server> {
  return spawnMember(cmd, { name: "n1", dataDir, clientPort: freePort(), peerPort: freePort() }, extraArgs);
}

/** One member of a (possibly multi-member) cluster: name, data dir, loopback ports. */
export interface MemberSpec {
  name: string;
  dataDir: string;
  clientPort: number;
  peerPort: number;
}

/** The command line (before the member flags) that a side runs: the env override, else
 * `dist/coreos kv serve` (or COREOS_CMD, as test/helpers/procs.ts) / `etcd --enable-v2=true`. */
export function sideCmd(side: Side): string[] {
  const o = overrideCmd(side);
  if (o) return o;
  if (side === "etcd") return ["etcd", "--enable-v2=true"];
  return [...(process.env.COREOS_CMD ? splitCmd(process.env.COREOS_CMD) : [BIN]), "kv", "serve"];
}

/** Starts one member of `side` (tracked from the moment it is spawned, so killAll() reaches it
 * even while it waits for its peers). `extraArgs` follow the member flags and so override them,
 * e.g. `--initial-cluster` for a multi-member cluster. Ready = `/health` answers 200, which for a
 * cluster member means a leader is known: start the members of a cluster together. */
export function startMember(side: Side, m: MemberSpec, extraArgs: string[], readyMs = 15000): Promise<Server> {
  return spawnMember(sideCmd(side), m, extraArgs, readyMs);
}

/** Registers a temp dir (made now) that killAll() removes if the run ends early. */
export function benchTempDir(prefix: string): string {
  const d = tempDir(prefix);
  dirs.add(d);
  return d;
}

/** Removes a dir made by benchTempDir. */
export function removeBenchDir(d: string): void {
  cleanup(d);
  dirs.delete(d);
}

async function spawnMember(cmd: string[], m: MemberSpec, extraArgs: string[], readyMs = 15000): Promise<Server> {
  const { name, dataDir, clientPort, peerPort } = m;
  // BENCH_LOG_DIR: each member's stderr to <dir>/<program>-<name>-<client port>.log (kept)
  const logDir = process.env.BENCH_LOG_DIR;
  if (logDir) mkdirSync(logDir, { recursive: true });
  const stderr = logDir
    ? Bun.file(join(logDir, `${basename(cmd[0]!)}-${name}-${clientPort}.log`))
    : process.env.TEST_VERBOSE ? "inherit" : "ignore";
  const proc = Bun.spawn([...cmd, ...memberArgs(name, dataDir, clientPort, peerPort), ...extraArgs], {
    stdout: "ignore",
    stderr,
    env: { ...process.env },
  });
  track(proc);
  const server = serverFor(proc, { name, dataDir, peerPort, url: `http://127.0.0.1:${clientPort}` });
  await waitReady(server.url, proc, readyMs);
  return server;
}

/** A fresh single member of one side, with its own data dir. */
export async function startSide(side: Side, extraArgs: string[]): Promise<Server> {
  const o = overrideCmd(side);
  // the data dir is chosen here so that it is known (for cleanup) before the process starts
  const dataDir = join(tempDir("coreos-bench-"), "n1.etcd");
  dirs.add(dirname(dataDir));
  if (o) return startCmd(o, dataDir, extraArgs);
  const s = side === "ours" ? await startOurs({ dataDir, extraArgs }) : await startEtcd({ dataDir, extraArgs });
  track(s.proc);
  return s;
}

/** SIGTERM, wait at most `ms`, then SIGKILL; removes the data dir. */
export async function stopServer(s: Server, ms = 5000): Promise<void> {
  try {
    if (s.proc.exitCode === null && s.proc.signalCode === null) {
      s.proc.kill("SIGTERM");
      const t = await Promise.race([s.proc.exited.then(() => "exited"), Bun.sleep(ms).then(() => "timeout")]);
      if (t === "timeout") {
        s.proc.kill("SIGKILL");
        await Promise.race([s.proc.exited, Bun.sleep(2000)]);
      }
    }
  } finally {
    // tempDir()/n1.etcd: remove the temp parent as well
    cleanup(dirname(s.dataDir));
    dirs.delete(dirname(s.dataDir));
  }
}

/** pid and all its descendants (in case a server forks helpers), via /proc/<pid>/task/<t>/children. */
export function processTree(pid: number): number[] {
  const out: number[] = [];
  const todo = [pid];
  for (let guard = 0; todo.length > 0 && guard < 10_000; guard++) {
    const p = todo.pop()!;
    out.push(p);
    let tasks: string[] = [];
    try {
      tasks = readdirSync(`/proc/${p}/task`);
    } catch {
      continue; // gone
    }
    for (const t of tasks) {
      try {
        const kids = readFileSync(`/proc/${p}/task/${t}/children`, "utf8").trim();
        if (kids) for (const k of kids.split(/\s+/)) todo.push(Number(k));
      } catch {
        // thread gone
      }
    }
  }
  return out;
}

export interface MemInfo {
  /** VmHWM: peak resident set, bytes (summed over the process tree). */
  peakRss: number;
  /** VmRSS: current resident set, bytes (summed over the process tree). */
  rss: number;
  /** how many processes were summed (1 unless the server forks) */
  procs: number;
}

/** VmHWM and VmRSS from /proc/<pid>/status, summed over pid and its descendants. */
export function readMem(pid: number): MemInfo {
  let peakRss = 0;
  let rss = 0;
  let procs = 0;
  for (const p of processTree(pid)) {
    let text: string;
    try {
      text = readFileSync(`/proc/${p}/status`, "utf8");
    } catch {
      continue;
    }
    const kb = (k: string): number => {
      const m = new RegExp(`^${k}:\\s+(\\d+)\\s+kB`, "m").exec(text);
      return m ? Number(m[1]) * 1024 : 0;
    };
    peakRss += kb("VmHWM");
    rss += kb("VmRSS");
    procs++;
  }
  if (procs === 0) throw new Error(`process ${pid} is gone`);
  return { peakRss, rss, procs };
}

const CLK_TCK = 100; // Linux USER_HZ

/** user+system CPU seconds consumed so far by a pid and its descendants (0 if gone). */
export function cpuSeconds(pid: number): number {
  let total = 0;
  for (const p of processTree(pid)) {
    try {
      const text = readFileSync(`/proc/${p}/stat`, "utf8");
      // fields after "(comm)": state is field 3; utime = 14, stime = 15 (1-based)
      const rest = text.slice(text.lastIndexOf(")") + 2).split(" ");
      total += (Number(rest[11]) + Number(rest[12])) / CLK_TCK;
    } catch {
      // gone
    }
  }
  return total;
}

/** Runs a benchmark's main, stopping every child process on the way out, also on Ctrl-C. */
export async function runBench(tag: string, main: () => Promise<number>): Promise<never> {
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    process.on(sig, () => {
      console.error(`\n[${tag}] ${sig}: stopping every child process`);
      killAll();
      process.exit(130);
    });
  }
  let code = 1;
  try {
    code = await main();
  } catch (e) {
    console.error(e instanceof Error ? (e.stack ?? e.message) : e);
    code = 1;
  } finally {
    killAll();
  }
  process.exit(code);
}

/** A non-negative number from the environment (the benchmarks' knobs), or the default. */
export function envNum(name: string, dflt: number): number {
  const v = process.env[name];
  if (v === undefined || v.trim() === "") return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name} must be a non-negative number, got ${v}`);
  return n;
}

/** Whether every side's command can run; says why not on stderr. */
export function sidesRunnable(sides: readonly Side[]): boolean {
  for (const side of sides) {
    const p = sideProblem(side);
    if (p) {
      console.error(`cannot run ${side}: ${p}`);
      return false;
    }
  }
  return true;
}
