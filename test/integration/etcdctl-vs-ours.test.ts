// The real etcdctl (Debian etcd-client, API v2) against the real etcd and against our server: every
// command must print the same and exit the same, after indexes are shifted by each server's
// starting index and member IDs and ports are blurred.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startEtcd, startOurs, type Server } from "../helpers/procs.ts";

interface Run {
  stdout: string;
  stderr: string;
  code: number;
}

// Each entry is one etcdctl command line (after the global flags).
const commands: string[][] = [
  ["set", "/a", "1"],
  ["get", "/a"],
  ["-o", "json", "get", "/a"],
  ["-o", "extended", "get", "/a"],
  ["mk", "/b", "2"],
  ["mk", "/b", "3"],
  ["mk", "--in-order", "/q", "job1"],
  ["mk", "--in-order", "/q", "job2"],
  ["ls", "--sort", "/q"],
  ["mkdir", "/d"],
  ["mkdir", "/d"],
  ["setdir", "/sd"],
  ["setdir", "/sd"],
  ["update", "/a", "5"],
  ["update", "/none", "1"],
  ["updatedir", "/sd", "--ttl", "100"],
  ["updatedir", "/none"],
  ["set", "/a", "6", "--swap-with-value", "5"],
  ["set", "/a", "7", "--swap-with-value", "nope"],
  ["set", "/a", "8", "--swap-with-index", "1"],
  ["set", "/ttl", "x", "--ttl", "100"],
  ["-o", "extended", "get", "/ttl"],
  ["get", "/none"],
  ["get", "/d"],
  ["set", "/r/x", "1"],
  ["set", "/r/y/z", "2"],
  // Without --sort the order is Go's map order on etcd: compared as sorted lines.
  ["ls", "/"],
  ["ls", "--sort", "--recursive", "/"],
  ["ls", "--sort", "-r", "-p", "/"],
  ["-o", "json", "ls", "--sort", "/r"],
  ["ls", "/none"],
  ["rm", "/r"],
  ["rm", "--dir", "/r"],
  ["rm", "--recursive", "/r"],
  ["rm", "/a", "--with-value", "nope"],
  ["rm", "/a", "--with-index", "1"],
  ["rm", "/a"],
  ["rm", "/a"],
  ["rm", "/b", "--with-value", "2"],
  ["rmdir", "/d"],
  ["rmdir", "/sd"],
  ["mkdir", "/full"],
  ["set", "/full/k", "v"],
  ["rmdir", "/full"],
  ["watch", "--after-index", "{i:1}", "/a"],
  ["watch", "--after-index", "{i:1}", "--recursive", "/r"],
  ["-o", "extended", "watch", "--after-index", "{i:1}", "/a"],
  ["member", "list"],
  ["cluster-health"],
  ["member", "remove", "ffffffffffffffff"],
  ["member", "update", "ffffffffffffffff", "http://127.0.0.1:1"],
  ["member", "add", "n2", "http://127.0.0.1:9999"],
  ["member", "list"],
];

async function etcdctl(url: string, args: string[]): Promise<Run> {
  const p = Bun.spawn(["etcdctl", "--endpoints", url, ...args], {
    env: { ...process.env, ETCDCTL_API: "2" },
    stdout: "pipe",
    stderr: "pipe",
  });
  const timer = setTimeout(() => p.kill(), 15_000);
  const [stdout, stderr] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text()]);
  clearTimeout(timer);
  return { stdout, stderr, code: await p.exited };
}

function normalize(s: string, base: number): string {
  return s
    .replace(/\b[0-9a-f]{12,16}\b/g, "<id>")
    .replace(/127\.0\.0\.1:\d+/g, "127.0.0.1:<port>")
    .replace(/\d{4}-\d\d-\d\dT[\d:.]+Z/g, "<time>")
    .replace(/"ttl":\d+/g, '"ttl":<ttl>')
    .replace(/^TTL: \d+$/gm, "TTL: <ttl>")
    .replace(/\/(\d{20})\b/g, (_, d) => `/#${Number(d) - base}`)
    .replace(/\[(\d+) != (\d+)\]/g, (_, a, b) => `[${a} != ${Number(b) - base}]`)
    .replace(/\[(\d+)\]/g, (_, n) => `[${Number(n) - base}]`)
    .replace(/("(?:modifiedIndex|createdIndex)":|(?:Created-Index|Modified-Index|Index): )(\d+)/g, (_, k, n) =>
      `${k}${Number(n) - base}`,
    )
    // The order of members follows their IDs, which differ between the two clusters.
    .replace(/^ETCD_INITIAL_CLUSTER="(.*)"$/m, (_, list: string) => `ETCD_INITIAL_CLUSTER="${list.split(",").sort().join(",")}"`);
}

let etcd: Server;
let ours: Server;
const runs: Array<{ etcd: Run; ours: Run }> = [];

beforeAll(async () => {
  [etcd, ours] = await Promise.all([startEtcd(), startOurs()]);
  const bases = await Promise.all(
    [etcd, ours].map(async (s) => Number((await fetch(`${s.url}/v2/keys/`)).headers.get("x-etcd-index"))),
  );
  for (const args of commands) {
    const [a, b] = await Promise.all(
      [etcd, ours].map(async (s, i) => {
        const r = await etcdctl(s.url, args.map((x) => x.replace(/\{i:(\d+)\}/, (_, n) => String(bases[i]! + Number(n)))));
        let stdout = normalize(r.stdout, bases[i]!);
        // Members are listed by ID, and the two clusters' IDs differ.
        const unordered = (args[0] === "ls" && !args.includes("--sort")) || args.join(" ") === "member list";
        if (unordered) stdout = stdout.split("\n").sort().join("\n");
        return { ...r, stdout, stderr: normalize(r.stderr, bases[i]!) };
      }),
    );
    runs.push({ etcd: a!, ours: b! });
  }
}, 120_000);

afterAll(async () => {
  await Promise.all([etcd?.stop(), ours?.stop()]);
});

describe("the real etcdctl sees our server as it sees etcd", () => {
  commands.forEach((args, i) => {
    test(`etcdctl ${args.join(" ")}`, () => {
      expect(runs[i]!.ours).toEqual(runs[i]!.etcd);
    });
  });
  test("the commands covered successes and each kind of failure", () => {
    const codes = new Set(runs.map((r) => r.ours.code));
    expect(codes.has(0)).toBe(true);
    expect(codes.has(4)).toBe(true);
  });
});
