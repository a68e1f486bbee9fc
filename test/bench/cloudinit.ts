// cloud-config benchmark (`npm run bench:cloudinit`): a generated 1,000-line cloud-config (200
// files, 50 units, 20 users) validated and applied with `dist/coreos cloudinit --root` into a fresh
// seeded root; and the binary's cold start for `--version`. Targets: apply under 1 s, cold start
// under 50 ms. The apply is also timed with the 20 users alone (each a real `useradd` process) and
// the 50 units alone (each enable a `systemctl --root` process). Wall and CPU time are printed:
// on a shared machine the CPU time (of the binary and the children it waited for) is the steadier.
//
// env: BENCH_RUNS=5 (applies, each into a new root), BENCH_STARTS=30 (--version runs)
import { mkdirSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { validate } from "../../internal/cloudinit/validate.ts";
import { seedRoot } from "../fixtures/cloudinit/root.ts";
import { BIN, cleanup, tempDir } from "../helpers/procs.ts";

const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const STARTS = Number(process.env.BENCH_STARTS ?? 30);

function generate(): string {
  const l = ["#cloud-config", "hostname: bench-node", "ssh_authorized_keys:", "  - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBench bench@host", "users:"];
  for (let i = 0; i < 20; i++) {
    l.push(`  - name: user${i}`, `    gecos: Bench User ${i}`, "    groups: [docker]", `    passwd: $6$salt${i}$hash${i}`);
  }
  l.push("write_files:");
  for (let i = 0; i < 200; i++) {
    l.push(`  - path: /etc/bench/d${i % 10}/file${i}.conf`, `    permissions: "06${i % 2 === 0 ? "44" : "00"}"`, `    content: "value ${i} on $private_ipv4\\n"`);
  }
  l.push("coreos:", "  update:", "    reboot_strategy: etcd-lock", "  units:");
  for (let i = 0; i < 50; i++) {
    l.push(`    - name: bench${i}.service`, "      enable: true", "      command: start", `      content: "[Service]\\nExecStart=/bin/echo ${i}\\n[Install]\\nWantedBy=multi-user.target\\n"`);
  }
  while (l.length < 1000) l.push(`# padding line ${l.length}`);
  return `${l.join("\n")}\n`;
}

/** The header and the users: what 20 useradd runs cost. */
function usersOnly(full: string): string {
  return full.slice(0, full.indexOf("write_files:"));
}

/** The header and the units: what enabling 50 units (one `systemctl --root enable` run) costs. */
function unitsOnly(full: string): string {
  return full.slice(0, full.indexOf("users:")) + full.slice(full.indexOf("coreos:"));
}

/** Wall time, and CPU time of the process with the children it waited for (useradd, systemctl). */
async function timeRun(argv: string[]): Promise<{ ms: number; cpuMs: number; code: number; stderr: string }> {
  const t0 = performance.now();
  const p = Bun.spawn(argv, { stdout: "ignore", stderr: "pipe", env: { ...process.env, COREOS_PRIVATE_IPV4: "10.0.0.1" } });
  const [stderr, code] = await Promise.all([new Response(p.stderr).text(), p.exited]);
  const ms = performance.now() - t0;
  const cpu = p.resourceUsage()?.cpuTime;
  return { ms, cpuMs: cpu ? Number(cpu.total) / 1000 : NaN, code, stderr };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const f = (ms: number) => `${ms.toFixed(1)} ms`;

const dir = tempDir("cloudinit-bench-");
try {
  const text = generate();
  const file = join(dir, "bench.yml");
  writeFileSync(file, text);
  const usersFile = join(dir, "users.yml");
  writeFileSync(usersFile, usersOnly(text));
  const unitsFile = join(dir, "units.yml");
  writeFileSync(unitsFile, unitsOnly(text));
  console.log(`config: ${text.split("\n").length - 1} lines, 200 files, 50 units, 20 users; load average ${loadavg().map((x) => x.toFixed(1)).join(" ")}`);

  // Validate in process (warm), and through the binary (with its start).
  // Each round validates a different text (a trailing comment), so no parse is reused.
  for (let i = 0; i < 3; i++) validate(`${text}# warm-up ${i}\n`);
  const inProc: number[] = [];
  for (let i = 0; i < 10; i++) {
    const t0 = performance.now();
    const entries = validate(`${text}# round ${i}\n`);
    inProc.push(performance.now() - t0);
    if (entries.length > 0) throw new Error(`generated config does not validate: ${JSON.stringify(entries[0])}`);
  }
  const viaBin: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const r = await timeRun([BIN, "cloudinit", "validate", file]);
    if (r.code !== 0) throw new Error(`validate exited ${r.code}: ${r.stderr}`);
    viaBin.push(r.ms);
  }
  console.log(`validate: ${f(median(inProc))} in process (median of 10), ${f(median(viaBin))} as \`coreos cloudinit validate\` (median of ${RUNS})`);

  const apply = async (cfg: string, tag: string): Promise<{ wall: number[]; cpu: number[] }> => {
    const out = { wall: [] as number[], cpu: [] as number[] };
    for (let i = 0; i < RUNS; i++) {
      const root = join(dir, `${tag}-${i}`);
      mkdirSync(root);
      seedRoot(root);
      const r = await timeRun([BIN, "cloudinit", "--from-file", cfg, "--root", root]);
      if (r.code !== 0) throw new Error(`apply exited ${r.code}: ${r.stderr.split("\n").filter((x) => / [EW] \| /.test(x) && !x.includes("skipped")).join("\n")}`);
      out.wall.push(r.ms);
      out.cpu.push(r.cpuMs);
      process.stdout.write(`  ${tag} run ${i + 1}: ${f(r.ms)} wall, ${f(r.cpuMs)} CPU\n`);
    }
    return out;
  };
  const all = await apply(file, "apply");
  const users = await apply(usersFile, "users");
  const units = await apply(unitsFile, "units");
  const applyMs = median(all.wall);
  const usersMs = median(users.wall);
  console.log(
    `apply into an empty root: ${f(applyMs)} wall (median of ${RUNS}, min ${f(Math.min(...all.wall))}), ${f(median(all.cpu))} CPU; target < 1000 ms: ${applyMs < 1000 ? "met" : "MISSED"}`,
  );
  console.log(
    `  the 20 users alone (20 useradd processes, plus the same binary start): ${f(usersMs)} wall, ${f(median(users.cpu))} CPU = ${((100 * usersMs) / applyMs).toFixed(0)}% of the apply${usersMs > applyMs / 2 ? " -- the useradd runs dominate" : ""}`,
  );
  console.log(`  the 50 units alone (written, then enabled by one \`systemctl --root enable\` run, plus the binary start): ${f(median(units.wall))} wall, ${f(median(units.cpu))} CPU`);

  for (let i = 0; i < 3; i++) await timeRun([BIN, "--version"]);
  const starts: number[] = [];
  const startCpu: number[] = [];
  for (let i = 0; i < STARTS; i++) {
    const r = await timeRun([BIN, "--version"]);
    starts.push(r.ms);
    startCpu.push(r.cpuMs);
  }
  const startMs = median(starts);
  console.log(
    `cold start \`dist/coreos --version\`: ${f(startMs)} wall median of ${STARTS} (min ${f(Math.min(...starts))}), ${f(median(startCpu))} CPU; target < 50 ms: ${startMs < 50 ? "met" : "MISSED"}`,
  );
} finally {
  cleanup(dir);
}
