// v2 discovery with a real registry: the real etcd (and our server) hosts the token directory,
// discover() runs in-process for several members at once; the real etcd's own --discovery
// registers next to ours; the cluster-full fallback proxy forwards to a real cluster.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { clusterPeerURLs, discover, DiscoveryError, getCluster } from "../../internal/kv/discovery.ts";
import { runProxy, type ProxyHandle } from "../../internal/kv/proxy.ts";
import { memberId } from "../../internal/kv/membership.ts";
import { Client } from "../../internal/kvclient/index.ts";
import { cleanup, freePort, startEtcd, startOurs, tempDir, waitReady, type Server } from "../helpers/procs.ts";

const dirs: string[] = [];
function dir(): string {
  const d = tempDir("coreos-discovery-");
  dirs.push(d);
  return d;
}
afterAll(() => dirs.forEach(cleanup));

/** A peer URL nobody listens on (discovery only passes it around). */
function peer(): string {
  return `http://127.0.0.1:${freePort()}`;
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error("expected a rejection");
}

/** The protocol, the same for every registry. */
function registrySuite(which: string, start: () => Promise<Server>) {
  describe(`registry on ${which}`, () => {
    let reg: Server;
    let client: Client;
    beforeAll(async () => {
      reg = await start();
      client = new Client({ endpoints: [reg.url] });
    });
    afterAll(async () => {
      await reg?.stop();
    });
    const tokenURL = (t: string) => `${reg.url}/v2/keys/_etcd/registry/${t}`;

    test("three members at once get the same cluster; a fourth finds it full", async () => {
      await client.set("/_etcd/registry/t3/_config/size", "3");
      const url = tokenURL("t3");
      const members = [1, 2, 3].map((i) => {
        const peerURLs = [peer()];
        return { name: `m${i}`, peerURLs, memberId: memberId(peerURLs, url) };
      });
      const got = await Promise.all(members.map((m) => discover({ url, ...m })));
      expect(new Set(got).size).toBe(1);
      const names = got[0]!.split(",").map((p) => p.split("=")[0]);
      expect([...names].sort()).toEqual(["m1", "m2", "m3"]);
      // The registry holds one key per member ID with its name=peerURL, in createdIndex order.
      const listed = (await client.ls("/_etcd/registry/t3", { sorted: true }))
        .filter((n) => !n.dir)
        .sort((a, b) => (a.createdIndex ?? 0) - (b.createdIndex ?? 0));
      expect(listed.map((n) => n.value).join(",")).toBe(got[0]!);
      for (const m of members) {
        const r = await client.get(`/_etcd/registry/t3/${m.memberId}`);
        expect(r.node.value).toBe(`${m.name}=${m.peerURLs[0]}`);
      }

      const fourth = { name: "m4", peerURLs: [peer()] };
      const e = await rejection(discover({ url, ...fourth, memberId: memberId(fourth.peerURLs, url) }));
      expect(e).toBeInstanceOf(DiscoveryError);
      expect((e as DiscoveryError).kind).toBe("full");
      expect((e as DiscoveryError).message).toBe("discovery: cluster is full");
      expect((e as DiscoveryError).cluster).toBe(got[0]!);
      expect(await getCluster({ url })).toBe(got[0]!);
    }, 30_000);

    test("a member registered earlier waits until the others come", async () => {
      await client.set("/_etcd/registry/t2/_config/size", "2");
      const url = tokenURL("t2");
      const a = { name: "a", peerURLs: [peer()] };
      const early = discover({ url, ...a, memberId: memberId(a.peerURLs, url) });
      // Until the first has registered, the second does not start.
      for (let i = 0; i < 400; i++) {
        const nodes = await client.ls("/_etcd/registry/t2").catch(() => []);
        if (nodes.some((n) => !n.dir)) break;
        await Bun.sleep(10);
      }
      const b = { name: "b", peerURLs: [peer(), peer()] };
      const late = await discover({ url, ...b, memberId: memberId(b.peerURLs, url) });
      expect(await early).toBe(late);
      expect(late).toBe(`a=${a.peerURLs[0]},${[...b.peerURLs].sort().map((u) => `b=${u}`).join(",")}`);
    }, 30_000);

    test("size key missing or bad, duplicate id, duplicate name", async () => {
      const m = { name: "x", peerURLs: [peer()] };
      let url = tokenURL("nosize");
      let e = await rejection(discover({ url, ...m, memberId: memberId(m.peerURLs, url) }));
      expect((e as DiscoveryError).kind).toBe("size-not-found");

      await client.set("/_etcd/registry/badsize/_config/size", "three");
      url = tokenURL("badsize");
      e = await rejection(discover({ url, ...m, memberId: memberId(m.peerURLs, url) }));
      expect((e as DiscoveryError).kind).toBe("bad-size");

      await client.set("/_etcd/registry/dup/_config/size", "2");
      url = tokenURL("dup");
      const id = memberId(m.peerURLs, url);
      await client.set(`/_etcd/registry/dup/${id}`, `x=${m.peerURLs[0]}`);
      e = await rejection(discover({ url, ...m, memberId: id }));
      expect((e as DiscoveryError).kind).toBe("duplicate-id");
      expect((e as Error).message.startsWith("discovery: found duplicate id")).toBe(true);

      // Another member under the same name registered first.
      const other = { name: "x", peerURLs: [peer()] };
      e = await rejection(discover({ url, ...other, memberId: memberId(other.peerURLs, url) }));
      expect((e as DiscoveryError).kind).toBe("duplicate-name");
      expect((e as Error).message).toBe("discovery: found duplicate name");
    }, 30_000);

    test("a peer port is not a registry: bad discovery endpoint", async () => {
      const m = { name: "x", peerURLs: [peer()] };
      const url = `${reg.peerUrl}/v2/keys/_etcd/registry/t`;
      const e = await rejection(discover({ url, ...m, memberId: memberId(m.peerURLs, url) }));
      expect((e as DiscoveryError).kind).toBe("bad-endpoint");
      expect((e as Error).message).toBe("discovery: bad discovery endpoint");
    }, 30_000);
  });
}

registrySuite("the real etcd", () => startEtcd({ name: "registry" }));
registrySuite("our server", () => startOurs({ name: "registry" }));

function nextToRealEtcd(which: string, start: () => Promise<Server>) {
  describe(`next to the real etcd's own discovery, registry on ${which}`, () => {
    let reg: Server;
    const procs: Subprocess[] = [];
    beforeAll(async () => {
      reg = await start();
    });
    afterAll(async () => {
      for (const p of procs) p.kill("SIGKILL");
      await Promise.all(procs.map((p) => p.exited));
      await reg?.stop();
    });

    /** A real etcd member bootstrapping through discovery (no --initial-cluster). */
    function realMember(name: string, url: string, extra: string[] = []) {
      const client = `http://127.0.0.1:${freePort()}`;
      const peerURL = `http://127.0.0.1:${freePort()}`;
      const proc = Bun.spawn(
        [
          "etcd", "--enable-v2=true", "--name", name, "--data-dir", join(dir(), `${name}.etcd`),
          "--listen-client-urls", client, "--advertise-client-urls", client,
          "--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
          "--discovery", url, ...extra,
        ],
        { stdout: "ignore", stderr: process.env.TEST_VERBOSE ? "inherit" : "ignore" },
      );
      procs.push(proc);
      return { proc, client, peerURL };
    }

    test("the real etcd and discover() register the same way and agree on the cluster", async () => {
      const c = new Client({ endpoints: [reg.url] });
      await c.set("/_etcd/registry/mixed/_config/size", "2");
      const url = `${reg.url}/v2/keys/_etcd/registry/mixed`;
      const real = realMember("real1", url);
      // The real etcd registers under memberId(peer URLs, token = the discovery URL).
      const realKey = `/_etcd/registry/mixed/${memberId([real.peerURL], url)}`;
      let value = "";
      for (let i = 0; i < 400 && value === ""; i++) {
        value = await c.get(realKey).then((r) => r.node.value ?? "", () => "");
        if (value === "") await Bun.sleep(25);
      }
      expect(value).toBe(`real1=${real.peerURL}`);
      const ours = { name: "ours1", peerURLs: [peer()] };
      const got = await discover({ url, ...ours, memberId: memberId(ours.peerURLs, url) });
      expect(got).toBe(`real1=${real.peerURL},ours1=${ours.peerURLs[0]}`);
    }, 30_000);

    test("cluster full: the fallback proxy forwards to the cluster the real etcd bootstrapped", async () => {
      const c = new Client({ endpoints: [reg.url] });
      await c.set("/_etcd/registry/one/_config/size", "1");
      const url = `${reg.url}/v2/keys/_etcd/registry/one`;
      const real = realMember("solo", url);
      await waitReady(real.client, real.proc, 20_000);

      const late = { name: "late", peerURLs: [peer()] };
      const e = await rejection(discover({ url, ...late, memberId: memberId(late.peerURLs, url) }));
      expect((e as DiscoveryError).kind).toBe("full");
      const dataDir = dir();
      const proxy = await runProxy({
        dataDir,
        listen: [{ hostname: "127.0.0.1", port: freePort() }],
        peerURLs: clusterPeerURLs((e as DiscoveryError).cluster),
      });
      try {
        expect(proxy.endpoints()).toEqual([real.client]);
        const pc = new Client({ endpoints: proxy.urls });
        await pc.set("/via/proxy", "hello");
        expect((await new Client({ endpoints: [real.client] }).get("/via/proxy")).node.value).toBe("hello");
        expect(JSON.parse(readFileSync(join(dataDir, "proxy", "cluster"), "utf8"))).toEqual({ PeerURLs: [real.peerURL] });
      } finally {
        await proxy.stop();
      }
    }, 40_000);
  });

}

nextToRealEtcd("the real etcd", () => startEtcd({ name: "registry" }));
nextToRealEtcd("our server", () => startOurs({ name: "registry" }));

describe("the fallback proxy in front of our server", () => {
  let cluster: Server;
  let proxy: ProxyHandle;
  let dataDir: string;
  beforeAll(async () => {
    cluster = await startOurs({ name: "c1" });
    dataDir = dir();
    proxy = await runProxy({ dataDir, listen: [{ hostname: "127.0.0.1", port: freePort() }], peerURLs: [cluster.peerUrl] });
  });
  afterAll(async () => {
    await proxy?.stop();
    await cluster?.stop();
  });

  test("learns the client URLs from a peer's /members and keeps the cluster file", async () => {
    expect(proxy.endpoints()).toEqual([cluster.url]);
    const r = await fetch(`${proxy.urls[0]}/v2/config/local/proxy`);
    expect(await r.json()).toEqual({ endpoints: [cluster.url] });
    expect(existsSync(join(dataDir, "proxy"))).toBe(true);
    expect(JSON.parse(readFileSync(join(dataDir, "proxy", "cluster"), "utf8"))).toEqual({ PeerURLs: [cluster.peerUrl] });
  });

  test("PUT, GET, conditions and errors pass through with their headers", async () => {
    const put = await fetch(`${proxy.urls[0]}/v2/keys/p/a?prevExist=false`, {
      method: "PUT",
      body: "value=one",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
    });
    expect(put.status).toBe(201);
    expect(put.headers.get("x-etcd-index")).not.toBeNull();
    const body = (await put.json()) as { action: string; node: { value: string } };
    expect([body.action, body.node.value]).toEqual(["create", "one"]);

    const again = await fetch(`${proxy.urls[0]}/v2/keys/p/a?prevExist=false`, {
      method: "PUT",
      body: "value=two",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
    });
    expect(again.status).toBe(412);
    expect(((await again.json()) as { errorCode: number }).errorCode).toBe(105);

    const pc = new Client({ endpoints: proxy.urls });
    expect((await pc.get("/p/a")).node.value).toBe("one");
    await pc.delete("/p/a");
    expect((await fetch(`${proxy.urls[0]}/v2/keys/p/a`)).status).toBe(404);
  });

  test("a long-poll watch and a stream watch come through as the events happen", async () => {
    const pc = new Client({ endpoints: proxy.urls });
    const direct = new Client({ endpoints: [cluster.url] });
    const start = await direct.set("/w/k", "0");

    const once = pc.watch("/w/k", { waitIndex: start.node.modifiedIndex! + 1 });
    const ctl = new AbortController();
    const streamed: string[] = [];
    const stream = (async () => {
      const r = await fetch(`${proxy.urls[0]}/v2/keys/w/k?wait=true&stream=true&waitIndex=${start.node.modifiedIndex! + 1}`, {
        signal: ctl.signal,
      });
      let buf = "";
      try {
        for await (const chunk of r.body as ReadableStream<Uint8Array>) {
          buf += new TextDecoder().decode(chunk);
          for (let nl = buf.indexOf("\n"); nl >= 0; nl = buf.indexOf("\n")) {
            const line = buf.slice(0, nl).trim();
            buf = buf.slice(nl + 1);
            if (line !== "") streamed.push((JSON.parse(line) as { node: { value: string } }).node.value);
          }
          if (streamed.length >= 2) break;
        }
      } catch {
        // aborted
      }
    })();
    await direct.set("/w/k", "1");
    await direct.set("/w/k", "2");
    expect((await once).node.value).toBe("1");
    for (let i = 0; i < 400 && streamed.length < 2; i++) await Bun.sleep(10);
    ctl.abort();
    await stream;
    expect(streamed.slice(0, 2)).toEqual(["1", "2"]);
  }, 20_000);
});
