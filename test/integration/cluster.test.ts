// Real processes: clusters of our binary on loopback. A killed leader is replaced and nothing
// acknowledged is lost; a member that missed many writes catches up by snapshot; members are
// added and removed at runtime; the real etcdctl sees the cluster as it sees etcd's.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { TestCluster } from "../helpers/cluster.ts";
import { spawnOurs, tempDir } from "../helpers/procs.ts";

const form = { "Content-Type": "application/x-www-form-urlencoded" };

interface Ack {
  key: string;
  value: string;
  index: number;
}

async function put(url: string, key: string, value: string): Promise<Ack | null> {
  try {
    const r = await fetch(`${url}/v2/keys${key}`, { method: "PUT", body: `value=${value}`, headers: form, signal: AbortSignal.timeout(10_000) });
    if (r.status !== 200 && r.status !== 201) return null;
    const body = (await r.json()) as { node: { modifiedIndex: number } };
    return { key, value, index: body.node.modifiedIndex };
  } catch {
    return null;
  }
}

/** Writers that keep writing their own keys through whichever member answers. */
function writers(c: TestCluster, count: number, acks: Ack[], stop: { now: boolean }, prefix = "/load"): Promise<void>[] {
  return Array.from({ length: count }, async (_, w) => {
    for (let n = 0; n < 200_000 && !stop.now; n++) {
      const endpoints = c.endpoints;
      const ack = await put(endpoints[n % endpoints.length]!, `${prefix}/w${w}/k${n % 20}`, `v${n}`);
      if (ack) acks.push(ack);
      else await Bun.sleep(20);
    }
  });
}

async function quorumGet(url: string, key: string): Promise<{ value: string; modifiedIndex: number } | null> {
  const r = await fetch(`${url}/v2/keys${key}?quorum=true`, { signal: AbortSignal.timeout(10_000) });
  if (r.status === 404) return null;
  return ((await r.json()) as { node: { value: string; modifiedIndex: number } }).node;
}

async function etcdctl(endpoints: string[], args: string[]) {
  const p = Bun.spawn(["etcdctl", "--endpoints", endpoints.join(","), ...args], {
    env: { ...process.env, ETCDCTL_API: "2" },
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdout, stderr] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text()]);
  return { stdout, stderr, code: await p.exited };
}

async function until(what: string, cond: () => Promise<boolean>, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await cond().catch(() => false)) return;
    await Bun.sleep(50);
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe("a 3-member cluster", () => {
  let c: TestCluster;
  beforeAll(async () => {
    // A small snapshot count so that the member left behind below needs a snapshot.
    c = await TestCluster.start(3, "ours", ["--snapshot-count", "2000"]);
  }, 60_000);
  afterAll(async () => {
    await c?.stopAll();
  });

  test("the real etcdctl lists the members with one leader, and finds the cluster healthy", async () => {
    const leader = await c.leader();
    const list = await etcdctl(c.endpoints, ["member", "list"]);
    expect(list.code).toBe(0);
    const lines = list.stdout.trim().split("\n");
    expect(lines).toHaveLength(3);
    expect(lines.filter((l) => l.endsWith("isLeader=true"))).toHaveLength(1);
    expect(list.stdout).toContain(`clientURLs=${c.url(leader)} isLeader=true`);
    for (let i = 0; i < 3; i++) expect(list.stdout).toContain(`name=m${i} `);
    const health = await etcdctl(c.endpoints, ["cluster-health"]);
    expect(health.code).toBe(0);
    expect(health.stdout).toContain("cluster is healthy");
  });

  test("a write through any member is read back through every member", async () => {
    for (let i = 0; i < 3; i++) expect(await put(c.url(i), `/via/m${i}`, `from${i}`)).not.toBeNull();
    for (let i = 0; i < 3; i++)
      for (let j = 0; j < 3; j++) expect((await quorumGet(c.url(i), `/via/m${j}`))?.value).toBe(`from${j}`);
    // Followers answer after applying locally: a plain GET on the writer's member sees its write.
    const ack = (await put(c.url(1), "/ryw", "mine"))!;
    const local = (await (await fetch(`${c.url(1)}/v2/keys/ryw`)).json()) as { node: { modifiedIndex: number } };
    expect(local.node.modifiedIndex).toBe(ack.index);
  });

  test("kill -9 of the leader under write load: a new leader, writes resume, nothing acknowledged lost", async () => {
    const acks: Ack[] = [];
    const stop = { now: false };
    const load = writers(c, 6, acks, stop);
    await until("writes before the kill", async () => acks.length > 500);
    const old = await c.leader();
    await c.kill(old);
    const before = acks.length;
    const next = await c.leader();
    expect(next).not.toBe(old);
    await until("writes after the kill", async () => acks.length > before + 500);
    stop.now = true;
    await Promise.all(load);

    const last = new Map<string, Ack>();
    for (const a of acks) if ((last.get(a.key)?.index ?? 0) < a.index) last.set(a.key, a);
    for (const [key, a] of last) {
      const got = (await quorumGet(c.url(next), key))!;
      expect(got.modifiedIndex).toBeGreaterThanOrEqual(a.index);
      if (got.modifiedIndex === a.index) expect(got.value).toBe(a.value);
    }
  }, 90_000);

  test("a member that missed 20,000 writes catches up by snapshot", async () => {
    const down = c.servers.findIndex((s) => s === null);
    expect(down).toBeGreaterThanOrEqual(0);
    const up = c.endpoints;
    // 20,000 writes while it is down, 32 at a time.
    for (let n = 0; n < 20_000; n += 32) {
      const batch = await Promise.all(Array.from({ length: 32 }, (_, j) => put(up[(n + j) % up.length]!, `/bulk/k${(n + j) % 1000}`, `v${n + j}`)));
      expect(batch.every((a) => a !== null)).toBe(true);
    }
    const final = (await put(up[0]!, "/bulk/final", "done"))!;
    await c.startMember(down);
    await until("the restarted member to apply the final write", async () => {
      const r = await fetch(`${c.url(down)}/v2/keys/bulk/final`);
      if (r.status !== 200) return false;
      return ((await r.json()) as { node: { modifiedIndex: number } }).node.modifiedIndex === final.index;
    });
    // It could only have caught up from a snapshot: the others kept far fewer entries in memory.
    const snaps = readdirSync(join(c.specs[down]!.dataDir, "member", "snap")).filter((f) => f.endsWith(".snap"));
    expect(snaps.length).toBeGreaterThan(0);
    expect(((await (await fetch(`${c.url(down)}/v2/keys/bulk/k999`)).json()) as { node: { value: string } }).node.value).toBe("v19999");
  }, 90_000);

  test("a member added at runtime joins and serves the data; removed, it stops by itself", async () => {
    const dir = tempDir("coreos-join-");
    const i = c.addSpec(dir);
    const peer = `http://127.0.0.1:${c.specs[i]!.peerPort}`;
    // etcd's strict check refuses while a voter has been connected for less than 5 s (the member
    // restarted just above): retry as an operator would.
    let add = await etcdctl(c.endpoints, ["member", "add", c.specs[i]!.name, peer]);
    for (let tries = 0; add.code !== 0 && tries < 40; tries++) {
      await Bun.sleep(250);
      add = await etcdctl(c.endpoints, ["member", "add", c.specs[i]!.name, peer]);
    }
    expect(add.code).toBe(0);
    const line = add.stdout.split("\n").find((l) => l.startsWith("ETCD_INITIAL_CLUSTER="))!;
    const initial = line.slice("ETCD_INITIAL_CLUSTER=".length).replaceAll('"', "");
    await c.startMember(i, "existing", initial);
    await until("the new member to serve the data", async () => (await fetch(`${c.url(i)}/v2/keys/via/m0`)).status === 200);
    const list = await etcdctl(c.endpoints, ["member", "list"]);
    expect(list.stdout.trim().split("\n")).toHaveLength(4);
    expect(list.stdout).toContain(`name=${c.specs[i]!.name} `);

    const id = list.stdout.split("\n").find((l) => l.includes(`name=${c.specs[i]!.name} `))!.split(":")[0]!;
    const rm = await etcdctl(c.endpoints.filter((u) => u !== c.url(i)), ["member", "remove", id]);
    expect(rm.code).toBe(0);
    const proc = c.servers[i]!.proc;
    await until("the removed member to exit", async () => proc.exitCode !== null);
    c.servers[i] = null;
    const after = await etcdctl(c.endpoints, ["member", "list"]);
    expect(after.stdout.trim().split("\n")).toHaveLength(3);
    // A removed ID is gone for good.
    const again = await fetch(`${c.endpoints[0]}/v2/members/${id}`, { method: "DELETE" });
    expect(again.status).toBe(410);
    expect(existsSync(c.specs[i]!.dataDir)).toBe(true);
    // Restarted on that data, it finds its removal in its own log and stops by itself again.
    const restarted = spawnOurs(c.options(i, "existing", initial));
    try {
      await until("the restarted removed member to exit", async () => restarted.proc.exitCode !== null);
    } finally {
      await restarted.kill();
    }
  }, 90_000);
});

describe("a 5-member cluster", () => {
  let c: TestCluster;
  beforeAll(async () => {
    c = await TestCluster.start(5);
  }, 60_000);
  afterAll(async () => {
    await c?.stopAll();
  });

  test("keeps serving writes with two members down, the leader among them", async () => {
    const leader = await c.leader();
    await c.kill(leader);
    await c.kill((leader + 1) % 5);
    const next = await c.leader();
    expect(next).not.toBe(leader);
    for (const url of c.endpoints) expect(await put(url, "/five", url)).not.toBeNull();
    const got = await quorumGet(c.endpoints[0]!, "/five");
    expect(got?.value).toBe(c.endpoints[c.endpoints.length - 1]);
  }, 60_000);

  test("strict reconfiguration: no add while members are down, but a down member may be removed", async () => {
    const add = await etcdctl(c.endpoints, ["member", "add", "extra", "http://127.0.0.1:1"]);
    expect(add.code).not.toBe(0);
    const members = (await (await fetch(`${c.endpoints[0]}/v2/members`)).json()) as { members: { id: string; clientURLs: string[] }[] };
    const down = members.members.find((m) => !c.endpoints.includes(m.clientURLs[0]!))!;
    const rm = await etcdctl(c.endpoints, ["member", "remove", down.id]);
    expect(rm.code).toBe(0);
    expect((await (await fetch(`${c.endpoints[0]}/v2/members`)).json()) as unknown).toMatchObject({ members: { length: 4 } });
  }, 30_000);

  test("loses quorum with three down: a write fails with etcd's 300 after the request timeout", async () => {
    const running = c.servers.map((s, i) => (s ? i : -1)).filter((i) => i >= 0);
    await c.kill(running[0]!);
    const url = c.endpoints[0]!;
    const r = await fetch(`${url}/v2/keys/nope`, { method: "PUT", body: "value=1", headers: form, signal: AbortSignal.timeout(30_000) });
    expect(r.status).toBe(500);
    expect(await r.json()).toEqual({ errorCode: 300, message: "Raft Internal Error", cause: "etcdserver: request timed out", index: 0 });
    expect((await fetch(`${url}/v2/keys/nope`)).status).toBe(404);
  }, 60_000);
});
