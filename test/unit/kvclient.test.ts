// The v2 client against small fake servers: failover, timeouts, the watch loop's 401 re-sync,
// and refusal of responses that are not what etcd sends.
import { afterEach, describe, expect, test } from "bun:test";
import type { Server } from "bun";
import {
  CanceledError,
  Client,
  ClusterError,
  EndpointError,
  EtcdError,
  InvalidResponseError,
  MembersError,
  type RequestLog,
  type WatchItem,
} from "../../internal/kvclient/index.ts";
import { validatePeerURLs } from "../../internal/kvclient/members.ts";
import { escapeLoop, escapePath, queryEscape } from "../../internal/kvclient/url.ts";
import { queryUnescape } from "../../internal/kv/form.ts";
import { Prng } from "../sim/prng.ts";
import { join } from "node:path";
import { cleanup, freePort, tempDir } from "../helpers/procs.ts";

interface Fake {
  url: string;
  requests: URL[];
  bodies: string[];
}

const servers: Server<undefined>[] = [];
afterEach(() => {
  for (const s of servers.splice(0)) s.stop(true);
});

/** A fake etcd on a free loopback port; `handle` answers each request. */
function fake(handle: (u: URL, req: Request) => Response | Promise<Response>, tls?: { cert: string; key: string }): Fake {
  const f: Fake = { url: "", requests: [], bodies: [] };
  const s = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    idleTimeout: 0,
    tls,
    async fetch(req) {
      const u = new URL(req.url);
      f.requests.push(u);
      f.bodies.push(await req.text());
      return handle(u, req);
    },
  });
  servers.push(s);
  f.url = `${tls ? "https" : "http"}://127.0.0.1:${s.port}`;
  return f;
}

const json = (body: unknown, status = 200, headers: Record<string, string> = {}) =>
  new Response(`${JSON.stringify(body)}\n`, { status, headers: { "Content-Type": "application/json", ...headers } });

const EVENT = { action: "get", node: { key: "/a", value: "1", modifiedIndex: 7, createdIndex: 7 } };
const dead = () => `http://127.0.0.1:${freePort()}`;

describe("failover", () => {
  test("a dead endpoint is skipped, the live one answers and stays pinned", async () => {
    const live = fake(() => json(EVENT, 200, { "X-Etcd-Index": "9" }));
    const down = dead();
    const log: RequestLog[] = [];
    const c = new Client({ endpoints: [down, live.url], onRequest: (r) => log.push(r) });
    const r = await c.get("/a");
    expect(r.node.value).toBe("1");
    expect(r.endpoint).toBe(live.url);
    expect(log.map((l) => l.url.split("/v2")[0])).toEqual([down, live.url]);
    await c.get("/a");
    // Pinned: the second call goes straight to the endpoint that answered.
    expect(log.map((l) => l.url.split("/v2")[0])).toEqual([down, live.url, live.url]);
  });

  test("a 5xx moves on to the next endpoint", async () => {
    const sick = fake(() => json({ errorCode: 300, message: "Raft Internal Error", index: 0 }, 500));
    const well = fake(() => json(EVENT));
    const c = new Client({ endpoints: [sick.url, well.url] });
    expect((await c.get("/a")).endpoint).toBe(well.url);
    expect(sick.requests.length).toBe(1);
  });

  test("a key error is an answer: no other endpoint is asked", async () => {
    const a = fake(() => json({ errorCode: 100, message: "Key not found", cause: "/a", index: 12 }, 404));
    const b = fake(() => json(EVENT));
    const c = new Client({ endpoints: [a.url, b.url] });
    const e = await c.get("/a").catch((x) => x);
    expect(e).toBeInstanceOf(EtcdError);
    expect([e.errorCode, e.message, e.errorCause, e.index]).toEqual([100, "Key not found", "/a", 12]);
    expect(b.requests.length).toBe(0);
  });

  test("every endpoint down: a ClusterError listing each failure in Go's words", async () => {
    const [d1, d2] = [dead(), dead()];
    const e = await new Client({ endpoints: [d1, d2] }).get("/a").catch((x) => x);
    expect(e).toBeInstanceOf(ClusterError);
    expect(e.connectionOnly).toBe(true);
    const p = (u: string) => u.replace("http://", "");
    expect(e.message).toBe(
      `client: etcd cluster is unavailable or misconfigured; error #0: dial tcp ${p(d1)}: connect: connection refused\n` +
        `; error #1: dial tcp ${p(d2)}: connect: connection refused\n`,
    );
    expect(e.detail()).toBe(`error #0: dial tcp ${p(d1)}: connect: connection refused\nerror #1: dial tcp ${p(d2)}: connect: connection refused\n`);
  });

  test("create and delete are never retried elsewhere (they must not run twice)", async () => {
    const live = fake(() => json({ ...EVENT, action: "create" }, 201));
    const down = dead();
    const c = new Client({ endpoints: [down, live.url] });
    for (const op of [() => c.create("/a", "1"), () => c.delete("/a"), () => c.mkdir("/d")]) {
      const e = await op().catch((x) => x);
      expect(e).toBeInstanceOf(EndpointError);
      expect(e.kind).toBe("connection");
    }
    expect(live.requests.length).toBe(0);
    // A plain set may be retried.
    expect((await c.set("/a", "1")).action).toBe("create");
  });

  test("sync replaces the endpoints with the members' client URLs", async () => {
    const live = fake((u) =>
      u.pathname === "/v2/members"
        ? json({ members: [{ id: "8e9e05c52164694d", name: "n1", peerURLs: ["http://127.0.0.1:2380"], clientURLs: [live.url] }] })
        : json(EVENT),
    );
    const down = dead();
    const c = new Client({ endpoints: [down, live.url] });
    await c.sync();
    expect(c.endpoints()).toEqual([live.url]);
  });
});

describe("timeouts", () => {
  test("a member that does not answer in headerTimeout is skipped", async () => {
    const stuck = fake(() => new Promise<Response>(() => {}));
    const well = fake(() => json(EVENT));
    const c = new Client({ endpoints: [stuck.url, well.url], headerTimeout: 150 });
    const t0 = Date.now();
    expect((await c.get("/a")).endpoint).toBe(well.url);
    expect(Date.now() - t0).toBeLessThan(2000);

    const alone = new Client({ endpoints: [stuck.url], headerTimeout: 100 });
    const e = await alone.get("/a").catch((x) => x);
    expect(e).toBeInstanceOf(ClusterError);
    expect(e.errors[0].message).toBe(`client: endpoint ${stuck.url} exceeded header timeout`);
    expect(e.connectionOnly).toBe(false);
  });

  test("the caller's deadline ends the call with Go's context error, without trying further", async () => {
    const stuck = fake(() => new Promise<Response>(() => {}));
    const other = fake(() => json(EVENT));
    const c = new Client({ endpoints: [stuck.url, other.url] });
    const e = await c.get("/a", { signal: AbortSignal.timeout(100) }).catch((x) => x);
    expect(e).toBeInstanceOf(CanceledError);
    expect(e.message).toBe("context deadline exceeded");
    expect(other.requests.length).toBe(0);

    const byOption = new Client({ endpoints: [stuck.url], requestTimeout: 100 });
    expect(await byOption.get("/a").catch((x) => x.message)).toBe("context deadline exceeded");
  });

  test("watches are exempt from the header timeout", async () => {
    const slow = fake(async () => {
      await Bun.sleep(300);
      return json({ action: "set", node: { key: "/a", value: "2", modifiedIndex: 8, createdIndex: 8 } });
    });
    const c = new Client({ endpoints: [slow.url], headerTimeout: 50 });
    expect((await c.watch("/a", { waitIndex: 8 })).node.value).toBe("2");
    expect(slow.requests[0]!.search).toBe("?recursive=false&wait=true&waitIndex=8");
  });
});

describe("watches", () => {
  test("a long poll closed without an event is re-sent; the watcher re-arms at modifiedIndex+1", async () => {
    let n = 0;
    const f = fake(() => (++n === 1 ? new Response("", { status: 200 }) : json({ action: "set", node: { key: "/a", value: String(n), modifiedIndex: 20 + n, createdIndex: 20 + n } })));
    const w = new Client({ endpoints: [f.url] }).watcher("/a", { afterIndex: 4 });
    expect((await w.next()).node.modifiedIndex).toBe(22);
    expect((await w.next()).node.modifiedIndex).toBe(23);
    expect(f.requests.map((u) => u.searchParams.get("waitIndex"))).toEqual(["5", "5", "23"]);
  });

  test("watchLoop re-syncs after 401: GET, then watch from X-Etcd-Index+1", async () => {
    const f = fake((u) => {
      if (u.searchParams.get("wait") !== "true") {
        return json({ action: "get", node: { key: "/d", dir: true, nodes: [], modifiedIndex: 3, createdIndex: 3 } }, 200, { "X-Etcd-Index": "1500" });
      }
      const wi = u.searchParams.get("waitIndex");
      if (wi === "5") {
        return json(
          { errorCode: 401, message: "The event in requested index is outdated and cleared", cause: "the requested history has been cleared [501/5]", index: 1500 },
          400,
        );
      }
      if (wi === "1501") return json({ action: "set", node: { key: "/d/x", value: "v", modifiedIndex: 1501, createdIndex: 1501 } });
      return new Promise<Response>(() => {}); // nothing more happens
    });
    const ac = new AbortController();
    const items: WatchItem[] = [];
    const loop = new Client({ endpoints: [f.url] }).watchLoop("/d", { afterIndex: 4, recursive: true, signal: ac.signal });
    for await (const it of loop) {
      items.push(it);
      if (items.length === 2) ac.abort();
      if (items.length > 5) break;
    }
    expect(items.map((i) => i.kind)).toEqual(["resync", "event"]);
    const [resync, event] = items as [Extract<WatchItem, { kind: "resync" }>, Extract<WatchItem, { kind: "event" }>];
    expect(resync.index).toBe(1500);
    expect(resync.snapshot?.node.key).toBe("/d");
    expect(event.response.node.key).toBe("/d/x");
    const seen = f.requests.map((u) => `${u.searchParams.get("wait") ?? "get"}:${u.searchParams.get("waitIndex") ?? ""}:${u.searchParams.get("recursive")}`);
    // After the abort the loop ends instead of polling 1502.
    expect(seen).toEqual(["true:5:true", "get::true", "true:1501:true"]);
  });

  test("a re-sync of a key that does not exist continues from the error's index", async () => {
    const f = fake((u) => {
      if (u.searchParams.get("wait") !== "true") return json({ errorCode: 100, message: "Key not found", cause: "/k", index: 2000 }, 404);
      if (u.searchParams.get("waitIndex") === "2") return json({ errorCode: 401, message: "cleared", index: 2000 }, 400);
      return json({ action: "create", node: { key: "/k", value: "v", modifiedIndex: 2001, createdIndex: 2001 } });
    });
    const ac = new AbortController();
    const items: WatchItem[] = [];
    for await (const it of new Client({ endpoints: [f.url] }).watchLoop("/k", { afterIndex: 1, signal: ac.signal })) {
      items.push(it);
      if (items.length === 2) break;
    }
    expect(items[0]).toEqual({ kind: "resync", snapshot: null, index: 2000 });
    expect(items[1]!.kind).toBe("event");
    expect(f.requests[2]!.searchParams.get("waitIndex")).toBe("2001");
  });
});

describe("responses are validated", () => {
  const junk: [string, () => Response][] = [
    ["not JSON", () => new Response("<html>hello</html>", { status: 200 })],
    ["unknown action", () => json({ action: "explode", node: { key: "/a" } })],
    ["no node", () => json({ action: "get" })],
    ["a key that is not a string", () => json({ action: "get", node: { key: 5 } })],
    ["a negative index", () => json({ action: "get", node: { key: "/a", modifiedIndex: -1 } })],
    ["children that are not nodes", () => json({ action: "get", node: { key: "/a", dir: true, nodes: [1, 2] } })],
    ["a bad X-Etcd-Index", () => json(EVENT, 200, { "X-Etcd-Index": "twelve" })],
    ["an error without errorCode", () => json({ message: "nope" }, 404)],
  ];
  for (const [what, answer] of junk) {
    test(`rejects ${what}`, async () => {
      const f = fake(answer);
      const e = await new Client({ endpoints: [f.url] }).get("/a").catch((x) => x);
      expect(e).toBeInstanceOf(InvalidResponseError);
      expect(e.message).toBe("client: response is invalid json. The endpoint is probably not valid etcd cluster endpoint");
    });
  }

  test("a good answer carries the event and the index headers; unknown fields are dropped", async () => {
    const f = fake(() =>
      json(
        { action: "set", node: { key: "/a", value: "2", modifiedIndex: 8, createdIndex: 8, extra: 1 }, prevNode: { key: "/a", value: "1", modifiedIndex: 7, createdIndex: 7 } },
        201,
        { "X-Etcd-Index": "8", "X-Raft-Index": "120", "X-Raft-Term": "3", "X-Etcd-Cluster-Id": "cdf818194e3a8c32" },
      ),
    );
    const r = await new Client({ endpoints: [f.url] }).set("/a", "2");
    expect(r).toEqual({
      action: "set",
      node: { key: "/a", value: "2", modifiedIndex: 8, createdIndex: 8 },
      prevNode: { key: "/a", value: "1", modifiedIndex: 7, createdIndex: 7 },
      etcdIndex: 8,
      raftIndex: 120,
      raftTerm: 3,
      clusterId: "cdf818194e3a8c32",
      endpoint: f.url,
    });
  });

  test("member lists are validated too", async () => {
    const f = fake(() => json({ members: [{ id: 42, name: "n1" }] }));
    expect(await new Client({ endpoints: [f.url] }).members().catch((x) => x)).toBeInstanceOf(InvalidResponseError);
  });
});

describe("requests", () => {
  test("parameters go where etcd's Go client puts them", async () => {
    const f = fake(() => json(EVENT));
    const c = new Client({ endpoints: [f.url] });
    await c.set("/a b", "v&1", { ttl: 30, prevValue: "old", prevIndex: 7 });
    await c.update("/a", "v", { ttl: 5 });
    await c.delete("/d", { recursive: true, dir: true });
    await c.compareAndDelete("/a", { prevValue: "x" });
    await c.createInOrder("/q", "job", { ttl: 9 });
    await c.mkdir("/d", { ttl: 4 });
    await c.get("/d", { recursive: true, sorted: true });
    const seen = f.requests.map((u, i) => `${u.pathname}${u.search} ${f.bodies[i]}`);
    expect(seen).toEqual([
      "/v2/keys/a%20b?prevIndex=7&prevValue=old ttl=30&value=v%261",
      "/v2/keys/a?prevExist=true ttl=5&value=v",
      "/v2/keys/d?dir=true&recursive=true ",
      "/v2/keys/a?prevValue=x ",
      "/v2/keys/q ttl=9&value=job",
      "/v2/keys/d?dir=true&prevExist=false ttl=4",
      "/v2/keys/d?quorum=false&recursive=true&sorted=true ",
    ]);
  });

  test("members: add/update/remove statuses as the Go client reads them", async () => {
    const f = fake((u, req) => {
      if (req.method === "POST") return json({ message: "membership: peerURL exists" }, 409);
      if (req.method === "PUT") return json({ message: "No such member: abc" }, 404);
      return new Response(null, { status: 410 });
    });
    const c = new Client({ endpoints: [f.url] });
    const add = await c.addMember(["http://127.0.0.1:2380"]).catch((x) => x);
    expect(add).toBeInstanceOf(MembersError);
    expect(add.message).toBe("membership: peerURL exists");
    expect(await c.updateMember("abc", ["http://127.0.0.1:2380"]).catch((x) => x.message)).toBe("No such member: abc");
    await c.removeMember("abc"); // 410: already removed counts as done
    expect(f.bodies[0]).toBe('{"peerURLs":["http://127.0.0.1:2380"]}');
  });

  test("peer URLs are checked before anything is sent, in etcd's words", () => {
    expect(() => validatePeerURLs(["notaurl"])).toThrow("URL scheme must be http, https, unix, or unixs: notaurl");
    expect(() => validatePeerURLs(["http://127.0.0.1"])).toThrow('URL address does not have the form "host:port": http://127.0.0.1');
    expect(() => validatePeerURLs(["http://127.0.0.1:5/x"])).toThrow("URL must not contain a path: http://127.0.0.1:5/x");
    expect(validatePeerURLs(["http://b:2", "http://a:1"])).toEqual(["http://a:1", "http://b:2"]);
  });

  test("health reads one member, 503 {health:false} included", async () => {
    const f = fake(() => json({ health: "false" }, 503));
    expect(await new Client({ endpoints: [f.url] }).health()).toBe(false);
  });
});

describe("credentials", () => {
  test("username and password go as HTTP Basic auth", async () => {
    const f = fake((_u, req) => (req.headers.get("Authorization") === `Basic ${btoa("root:s3cret")}` ? json(EVENT) : json({ errorCode: 110, message: "The request requires user authentication", cause: "Insufficient credentials", index: 0 }, 401)));
    expect((await new Client({ endpoints: [f.url], username: "root", password: "s3cret" }).get("/a")).node.value).toBe("1");
    const e = await new Client({ endpoints: [f.url] }).get("/a").catch((x) => x);
    expect([e.errorCode, e.errorCause]).toEqual([110, "Insufficient credentials"]);
  });

  test("HTTPS: the given CA is trusted, an unknown one is a misconfiguration", async () => {
    const dir = tempDir("kvclient-tls-");
    try {
      const [key, cert] = [join(dir, "key.pem"), join(dir, "cert.pem")];
      const gen = Bun.spawnSync(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"], { stderr: "ignore" });
      expect(gen.exitCode).toBe(0);
      const pem = { cert: await Bun.file(cert).text(), key: await Bun.file(key).text() };
      const f = fake(() => json(EVENT), pem);
      expect((await new Client({ endpoints: [f.url], tls: { ca: pem.cert } }).get("/a")).node.value).toBe("1");
      const e = await new Client({ endpoints: [f.url] }).get("/a").catch((x) => x);
      expect(e).toBeInstanceOf(ClusterError);
      expect(e.errors[0].message).toBe("x509: certificate signed by unknown authority");
      expect(e.connectionOnly).toBe(false);
    } finally {
      cleanup(dir);
    }
  });
});

describe("autoSync", () => {
  test("keeps following the published client URLs until stopped", async () => {
    let published: string[] = [];
    const f = fake(() => json({ members: [{ id: "a1", name: "n1", peerURLs: [], clientURLs: published }] }));
    const other = fake(() => json(EVENT));
    published = [f.url];
    const c = new Client({ endpoints: [f.url] });
    const ac = new AbortController();
    const loop = c.autoSync(20, ac.signal);
    published = [other.url, f.url];
    for (let i = 0; i < 100 && c.endpoints().length < 2; i++) await Bun.sleep(10);
    expect(c.endpoints().sort()).toEqual([f.url, other.url].sort());
    ac.abort();
    await loop;
  });
});

test("escaping: the fast path gives Go's bytes for any string, and the server's unescape inverts it", () => {
  const rng = new Prng(7);
  for (let i = 0; i < 5000; i++) {
    let s = "";
    for (let n = rng.int(12); n > 0; n--) s += String.fromCharCode(rng.chance(0.7) ? 32 + rng.int(95) : rng.int(0x10000));
    expect(queryEscape(s)).toBe(escapeLoop(s, false, true));
    expect(escapePath(s)).toBe(escapeLoop(s, true, false));
    // lone surrogates travel as U+FFFD, as Go's UTF-8 conversion writes them
    expect(queryUnescape(queryEscape(s))).toBe(new TextDecoder().decode(new TextEncoder().encode(s)));
  }
});
