// `coreos kv serve --discovery`: three processes bootstrap one cluster through a registry on the
// real etcd, a fourth finds it full and becomes the v2 proxy (--discovery-fallback proxy, the
// default), a fifth with --discovery-fallback exit exits 1 with etcd's explanation.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { Client } from "../../internal/kvclient/index.ts";
import { BIN, cleanup, freePort, startEtcd, startOurs, tempDir, waitReady, type Server } from "../helpers/procs.ts";

const CMD = process.env.COREOS_CMD?.split(" ") ?? [BIN];

interface Proc {
  proc: Subprocess<"ignore", "ignore", "pipe">;
  client: string;
  dataDir: string;
  log(): string;
}

// The registry on the real etcd, then on a single member of ours.
for (const registry of ["etcd", "ours"] as const)
describe(`kv serve --discovery, registry on ${registry}`, () => {
  let reg: Server;
  const base = tempDir("coreos-discovery-serve-");
  const procs: Proc[] = [];
  let url = "";

  beforeAll(async () => {
    reg = registry === "etcd" ? await startEtcd({ name: "registry" }) : await startOurs({ name: "registry" });
    await new Client({ endpoints: [reg.url] }).set("/_etcd/registry/serve/_config/size", "3");
    url = `${reg.url}/v2/keys/_etcd/registry/serve`;
  });
  afterAll(async () => {
    for (const p of procs) p.proc.kill("SIGTERM");
    await Promise.all(procs.map((p) => p.proc.exited));
    await reg?.stop();
    cleanup(base);
  });

  function start(name: string, extra: string[] = []): Proc {
    const client = `http://127.0.0.1:${freePort()}`;
    const peer = `http://127.0.0.1:${freePort()}`;
    const dataDir = join(base, `${name}.etcd`);
    const proc = Bun.spawn(
      [
        ...CMD, "kv", "serve", "--name", name, "--data-dir", dataDir,
        "--listen-client-urls", client, "--advertise-client-urls", client,
        "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
        "--discovery", url, ...extra,
      ],
      { stdin: "ignore", stdout: "ignore", stderr: "pipe" },
    );
    let log = "";
    void (async () => {
      for await (const chunk of proc.stderr) log += new TextDecoder().decode(chunk);
    })();
    const p = { proc, client, dataDir, log: () => log };
    procs.push(p);
    return p;
  }

  test("three members form one cluster; a fourth proxies to it; with fallback exit a fifth exits 1", async () => {
    const members = ["d1", "d2", "d3"].map((n) => start(n));
    await Promise.all(members.map((m) => waitReady(m.client, m.proc, 30_000)));
    const c = new Client({ endpoints: members.map((m) => m.client) });
    let listed: string[] = [];
    for (let i = 0; i < 200 && listed.length < 3; i++) {
      listed = (await c.members().catch(() => [])).map((m) => m.name).filter((n) => n !== "");
      if (listed.length < 3) await Bun.sleep(50);
    }
    expect(listed.sort()).toEqual(["d1", "d2", "d3"]);
    const ids = await Promise.all(members.map(async (m) => (await fetch(`${m.client}/v2/keys/`)).headers.get("x-etcd-cluster-id")));
    expect(new Set(ids).size).toBe(1);

    const proxy = start("d4");
    await waitReady(proxy.client, proxy.proc, 30_000);
    const pc = new Client({ endpoints: [proxy.client] });
    await pc.set("/through/proxy", "yes", {});
    expect((await c.get("/through/proxy", { quorum: true })).node.value).toBe("yes");
    expect(existsSync(join(proxy.dataDir, "proxy", "cluster"))).toBe(true);
    expect(proxy.log()).toContain("discovery cluster full, falling back to proxy");

    const refused = start("d5", ["--discovery-fallback", "exit"]);
    expect(await refused.proc.exited).toBe(1);
    for (let i = 0; i < 100 && !refused.log().includes("please generate"); i++) await Bun.sleep(10);
    expect(refused.log()).toContain("failed to join discovery cluster (discovery: cluster is full)");
    expect(refused.log()).toContain(`discovery token ${url} was used, but failed to bootstrap the cluster.`);
    expect(refused.log()).toContain("please generate a new discovery token and try to bootstrap again.");
  }, 90_000);
});
