// The cluster-full fallback proxy against fake members: a peer /members answer (the real etcd's
// numeric IDs included), backends that echo what they got, a dead endpoint to fail over from.
import { afterEach, describe, expect, test } from "bun:test";
import type { Server } from "bun";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { runProxy, type ProxyHandle } from "../../internal/kv/proxy.ts";
import { cleanup, freePort, tempDir } from "../helpers/procs.ts";

let servers: Server<undefined>[] = [];
let proxies: ProxyHandle[] = [];
let dirs: string[] = [];
afterEach(async () => {
  for (const p of proxies) await p.stop();
  for (const s of servers) s.stop(true);
  dirs.forEach(cleanup);
  servers = [];
  proxies = [];
  dirs = [];
});

function serve(fetch: (req: Request) => Response | Promise<Response>): string {
  const s = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch, idleTimeout: 0 });
  servers.push(s);
  return `http://127.0.0.1:${s.port}`;
}

/** A backend that answers with what it received. */
function echo(name: string): string {
  return serve(async (req) => {
    const u = new URL(req.url);
    const headers: Record<string, string> = {};
    req.headers.forEach((v, k) => (headers[k] = v));
    return Response.json(
      { name, method: req.method, path: u.pathname, search: u.search, body: await req.text(), headers },
      { status: 202, headers: { "X-Etcd-Index": "7", Connection: "keep-alive", "X-Backend": name } },
    );
  });
}

/** A peer listener whose /members lists the given client URLs (IDs as the real etcd writes them). */
function peerWith(clientURLs: string[], peerURL = "http://127.0.0.1:1"): string {
  return serve((req) => {
    if (new URL(req.url).pathname !== "/members") return new Response("404 page not found\n", { status: 404 });
    const body = `[{"id":17010963214147749224,"peerURLs":["${peerURL}"],"name":"m1","clientURLs":${JSON.stringify(clientURLs)}}]`;
    return new Response(body, { headers: { "Content-Type": "application/json", "X-Etcd-Cluster-Id": "dfd396ec7b4c7b9e" } });
  });
}

async function proxy(o: { peerURLs?: string[]; dataDir?: string; failureWaitMs?: number }): Promise<ProxyHandle> {
  const dataDir = o.dataDir ?? tempDir();
  dirs.push(dataDir);
  const p = await runProxy({
    dataDir,
    listen: [{ hostname: "127.0.0.1", port: 0 }],
    peerURLs: o.peerURLs,
    failureWaitMs: o.failureWaitMs,
    // The members' order, so the dead endpoint below is tried first.
    shuffle: false,
  });
  proxies.push(p);
  return p;
}

describe("runProxy", () => {
  test("forwards method, path, query, body and headers; strips hop-by-hop headers; adds X-Forwarded-For", async () => {
    const backend = echo("b1");
    const p = await proxy({ peerURLs: [peerWith([backend])] });
    const r = await fetch(`${p.urls[0]}/v2/keys/a/b?prevExist=false&ttl=5`, {
      method: "PUT",
      body: "value=x%20y",
      headers: { "Content-Type": "application/x-www-form-urlencoded", Authorization: "Basic dTpw", "X-Forwarded-For": "10.0.0.1" },
    });
    expect(r.status).toBe(202);
    expect(r.headers.get("x-etcd-index")).toBe("7");
    expect(r.headers.get("x-backend")).toBe("b1");
    expect(r.headers.get("connection")).not.toBe("keep-alive");
    const got = (await r.json()) as { method: string; path: string; search: string; body: string; headers: Record<string, string> };
    expect([got.method, got.path, got.search, got.body]).toEqual(["PUT", "/v2/keys/a/b", "?prevExist=false&ttl=5", "value=x%20y"]);
    expect(got.headers["content-type"]).toBe("application/x-www-form-urlencoded");
    expect(got.headers.authorization).toBe("Basic dTpw");
    expect(got.headers["x-forwarded-for"]).toBe("10.0.0.1, 127.0.0.1");
  });

  test("fails over from an endpoint that refuses connections, and leaves it out for a while", async () => {
    const dead = `http://127.0.0.1:${freePort()}`;
    const live = echo("live");
    const p = await proxy({ peerURLs: [peerWith([dead, live])], failureWaitMs: 60_000 });
    expect(p.endpoints()).toEqual([dead, live]);
    for (let i = 0; i < 4; i++) {
      const r = await fetch(`${p.urls[0]}/v2/keys/k`);
      expect(r.status).toBe(202);
      expect(((await r.json()) as { name: string }).name).toBe("live");
    }
    expect(p.endpoints()).toEqual([live]);
  });

  test("no endpoint answers: 502; none known: 503 (etcd's httpproxy messages)", async () => {
    const dead = `http://127.0.0.1:${freePort()}`;
    const p = await proxy({ peerURLs: [peerWith([dead])], failureWaitMs: 60_000 });
    let r = await fetch(`${p.urls[0]}/v2/keys/k`);
    expect(r.status).toBe(502);
    expect(await r.json()).toEqual({ message: "httpproxy: unable to get response from 1 endpoint(s)" });
    r = await fetch(`${p.urls[0]}/v2/keys/k`);
    expect(r.status).toBe(503);
    expect(await r.json()).toEqual({ message: "httpproxy: zero endpoints currently available" });
  });

  test("/v2/config/local/proxy lists the endpoints; other methods get 405", async () => {
    const backend = echo("b");
    const p = await proxy({ peerURLs: [peerWith([backend])] });
    expect(await (await fetch(`${p.urls[0]}/v2/config/local/proxy`)).json()).toEqual({ endpoints: [backend] });
    const r = await fetch(`${p.urls[0]}/v2/config/local/proxy`, { method: "PUT" });
    expect(r.status).toBe(405);
    expect(r.headers.get("allow")).toBe("GET");
  });

  test("a peer that does not answer is skipped; the cluster file records the members' peer URLs", async () => {
    const backend = echo("b");
    const deadPeer = `http://127.0.0.1:${freePort()}`;
    const livePeer = peerWith([backend], "http://127.0.0.1:2380");
    const dataDir = tempDir();
    const p = await proxy({ peerURLs: [deadPeer, livePeer], dataDir });
    expect(p.endpoints()).toEqual([backend]);
    expect(JSON.parse(readFileSync(join(dataDir, "proxy", "cluster"), "utf8"))).toEqual({ PeerURLs: ["http://127.0.0.1:2380"] });
  });

  test("a restarted proxy uses its cluster file, not what discovery says", async () => {
    const backend = echo("from-file");
    const livePeer = peerWith([backend], "http://127.0.0.1:2380");
    const dataDir = tempDir();
    mkdirSync(join(dataDir, "proxy"));
    writeFileSync(join(dataDir, "proxy", "cluster"), JSON.stringify({ PeerURLs: [livePeer] }));
    const p = await proxy({ peerURLs: [`http://127.0.0.1:${freePort()}`], dataDir });
    expect(p.endpoints()).toEqual([backend]);
  });

  test("without a cluster file or peer URLs it refuses to start", async () => {
    const dataDir = tempDir();
    dirs.push(dataDir);
    await expect(runProxy({ dataDir, listen: [{ hostname: "127.0.0.1", port: 0 }] })).rejects.toThrow("no peer URLs");
  });
});
