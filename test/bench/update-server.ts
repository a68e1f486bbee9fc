// Update server benchmark: Omaha update checks per second from 10,000 distinct simulated machines
// over keep-alive connections (wrk with a generated Lua script), and the latency percentiles.
// The server is the real process (dist/coreos, or COREOS_CMD), measured with each --durability:
// "power" (the default: the WAL fdatasync'ed after each group commit, off the event loop) and
// "process" (no fsync per commit; survives kill -9, not a power loss). Half the fleet runs the channel's version (noupdate), half an
// older one, so every other check goes through the rollout policy of a group limited to 2 updates
// per 15 minutes (the grants run out at once; the rest are OnHold refusals, each one a write).
//
// env: BENCH_SECONDS=10, BENCH_CONNS=64, BENCH_MACHINES=10000, BENCH_THREADS=1 (wrk threads),
//      BENCH_DURABILITY=power,process (which modes, in order)
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { buildRequest, COREOS_APP_ID } from "../../internal/omaha/index.ts";
import { BIN, cleanup, freePort, tempDir, waitReady } from "../helpers/procs.ts";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const CONNS = Number(process.env.BENCH_CONNS ?? 64);
const MACHINES = Number(process.env.BENCH_MACHINES ?? 10000);
const THREADS = Number(process.env.BENCH_THREADS ?? 1);
const TARGET = 5000;
const MODES = (process.env.BENCH_DURABILITY ?? "power,process").split(",");

const LUA = `
-- One pre-built request per machine; each wrk thread walks the whole fleet from its own offset.
local reqs = {}
local n = 0
local i = 0
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("tid", counter - 1)
end
function init(args)
  local f = io.open(args[1], "r")
  local tpl = f:read("*a")
  f:close()
  n = tonumber(args[2])
  local headers = { ["Content-Type"] = "text/xml" }
  for m = 0, n - 1 do
    local id = string.format("%032x", m)
    local ver = (m % 2 == 0) and "4230.2.0" or "4152.2.0"
    local body = tpl:gsub("@ID@", id):gsub("@VER@", ver)
    reqs[m + 1] = wrk.format("POST", "/v1/update/", headers, body)
  end
  i = (tonumber(args[3]) + (tid or 0) * 7919) % n
end
function request()
  i = i % n + 1
  return reqs[i]
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('BENCH_RESULT {"requests":%d,"duration_us":%d,"errors":%d,"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d}\\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9), latency.max))
end
`;

interface WrkOut {
  requests: number;
  duration_us: number;
  errors: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
}

/** `offset`: the machine each wrk thread starts from (so that runs in a row cover the whole fleet). */
async function wrk(url: string, script: string, template: string, seconds: number, offset = 0): Promise<WrkOut> {
  const proc = Bun.spawn(["wrk", "-t", String(THREADS), "-c", String(CONNS), "-d", `${seconds}s`, "--timeout", "5s", "-s", script, url, "--", template, String(MACHINES), String(offset % MACHINES)], {
    stdout: "pipe",
    stderr: "pipe",
  });
  const timer = setTimeout(() => proc.kill("SIGKILL"), seconds * 1000 + 60_000);
  const [out, err] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  await proc.exited;
  clearTimeout(timer);
  const line = out.split("\n").find((l) => l.startsWith("BENCH_RESULT "));
  if (!line) throw new Error(`wrk gave no result (exit ${proc.exitCode}): ${out}${err}`);
  return JSON.parse(line.slice("BENCH_RESULT ".length)) as WrkOut;
}

/** CPU seconds (user + system) the process has used, from /proc (the machine may be shared). */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
}

async function measure(durability: string): Promise<void> {
  const dir = tempDir("bench-update-server-");
  const port = freePort();
  const url = `http://127.0.0.1:${port}`;
  const cmd = process.env.COREOS_CMD?.split(" ") ?? [BIN];
  const dataDir = join(dir, "data");
  mkdirSync(dataDir);
  const proc = Bun.spawn([...cmd, "update-engine", "serve", "--data-dir", dataDir, "--listen", url, "--token-file", join(dir, "token"), "--durability", durability], {
    stdout: "ignore",
    stderr: process.env.BENCH_VERBOSE ? "inherit" : "ignore",
  });
  try {
    await waitReady(url, proc);
    const token = (await Bun.file(join(dir, "token")).text()).trim();
    const auth = { Authorization: `Bearer ${token}` };
    const api = async (method: string, path: string, body?: unknown) => {
      const r = await fetch(`${url}${path}`, { method, headers: { ...auth, "Content-Type": "application/json" }, body: body === undefined ? undefined : JSON.stringify(body) });
      if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${await r.text()}`);
      return r.json();
    };
    const up = await fetch(`${url}/api/apps/CoreOS/packages/upload?version=4230.2.0&filename=update.gz`, { method: "POST", headers: auth, body: "x".repeat(4096) });
    if (!up.ok) throw new Error(`upload: ${await up.text()}`);
    await api("POST", "/api/apps/CoreOS/channels", { name: "stable", package: "4230.2.0" });
    await api("POST", "/api/apps/CoreOS/groups", { name: "stable", channel: "stable", policy: { maxUpdatesPerPeriod: 2, period: "15m", updateTimeout: "1h" } });

    const template = buildRequest(
      {
        updaterVersion: "update_engine-0.4.10",
        interactive: false,
        os: { version: "Chateau", platform: "CoreOS", sp: "@VER@_x86_64" },
        app: {
          appid: COREOS_APP_ID,
          version: "@VER@",
          track: "stable",
          bootid: "{3f0c1d1e-8a53-4a55-9a5e-4d2b8c1e7a10}",
          oem: "qemu",
          oemversion: "",
          alephversion: "3975.2.1",
          machineid: "@ID@",
          machinealias: "",
          lang: "en-US",
          board: "amd64-usr",
          hardware_class: "",
          delta_okay: false,
        },
      },
      { kind: "updatecheck", event: { type: 3, result: 2, previousVersion: "" } },
    );
    const tplFile = join(dir, "request.xml");
    writeFileSync(tplFile, template);
    const script = join(dir, "update-server.lua");
    writeFileSync(script, LUA);

    console.log(`\n--durability ${durability}: ${MACHINES} machines, ${CONNS} keep-alive connections, wrk ${THREADS} thread(s), ${SECONDS}s measured`);
    // Warm-up until every machine has registered (the inserts); the measured run is the steady state.
    let warmed = 0;
    for (let i = 0; i < 10; i++) {
      warmed += (await wrk(url, script, tplFile, 2, warmed)).requests;
      if (((await api("GET", "/api/apps/CoreOS/instances?perpage=1")) as { total: number }).total === MACHINES) break;
    }
    console.log(`warm-up: ${warmed} checks`);
    const before = Number(/omaha_update_checks_total (\d+)/.exec(await (await fetch(`${url}/metrics`)).text())?.[1]);
    const cpu0 = cpuSeconds(proc.pid);
    const r = await wrk(url, script, tplFile, SECONDS);
    const cpu = cpuSeconds(proc.pid) - cpu0;
    const metrics = await (await fetch(`${url}/metrics`)).text();
    const after = Number(/omaha_update_checks_total (\d+)/.exec(metrics)?.[1]);
    const batches = Number(/omaha_commit_batches_total (\d+)/.exec(metrics)?.[1]);
    const instances = (await api("GET", "/api/apps/CoreOS/instances?perpage=1")) as { total: number };
    const granted = (await api("GET", "/api/apps/CoreOS/instances?status=UpdateGranted&perpage=1")) as { total: number };
    const rps = r.requests / (r.duration_us / 1e6);
    const ms = (us: number) => (us / 1000).toFixed(2);
    console.log(`checks/s: ${rps.toFixed(0)} (target ${TARGET}: ${rps >= TARGET ? "met" : "NOT met"})`);
    console.log(`server CPU: ${cpu.toFixed(1)} s in ${(r.duration_us / 1e6).toFixed(1)} s (${((cpu * 1e6) / r.duration_us).toFixed(2)} cores) = ${(r.requests / cpu).toFixed(0)} checks per CPU-second; load average ${readFileSync("/proc/loadavg", "utf8").split(" ")[0]}`);
    console.log(`latency ms: p50 ${ms(r.p50)}  p90 ${ms(r.p90)}  p99 ${ms(r.p99)}  p99.9 ${ms(r.p999)}  max ${ms(r.max)}`);
    console.log(`errors: ${r.errors}; server counted ${after - before} checks in the run; ${instances.total} instances registered; ${granted.total} granted (policy max 2 per 15m)`);
    console.log(`group commit: ${batches} transactions for ${after} checks in total (${(after / Math.max(1, batches)).toFixed(1)} per commit)`);
    if (instances.total !== MACHINES) throw new Error(`expected ${MACHINES} instances, server has ${instances.total}`);
    if (granted.total > 2) throw new Error(`policy broken: ${granted.total} grants`);
    if (r.errors > 0) throw new Error(`${r.errors} failed requests`);
  } finally {
    proc.kill("SIGTERM");
    await proc.exited;
    cleanup(dir);
  }
}

console.log(`update server benchmark: Omaha update checks, target ${TARGET}/s`);
for (const mode of MODES) await measure(mode);
