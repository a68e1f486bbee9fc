// The v2 discovery protocol against a small in-process registry that speaks just enough of the v2
// keys API (get, list, create with prevExist=false, recursive watch from an index), plus fault
// injection: non-etcd answers, 503s, hangs, a rival registering at the worst moment.
import { afterEach, describe, expect, test } from "bun:test";
import type { Server } from "bun";
import {
  backoffMs,
  clusterPeerURLs,
  discover,
  DiscoveryError,
  getCluster,
  identifyDataDir,
  parseURLsMap,
  registrationValue,
} from "../../internal/kv/discovery.ts";
import { CanceledError } from "../../internal/kvclient/index.ts";
import { freePort, tempDir, cleanup } from "../helpers/procs.ts";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

interface FakeNode {
  value: string;
  createdIndex: number;
  modifiedIndex: number;
}
interface FakeEvent {
  action: string;
  key: string;
  node: FakeNode;
}

/** An etcd v2 registry in miniature: flat keys, an index, a history, long-poll watches. */
class FakeRegistry {
  keys = new Map<string, FakeNode>();
  events: FakeEvent[] = [];
  index = 0;
  requests: string[] = [];
  /** Answers instead of the registry when it returns a Response (fault injection). */
  intercept: ((req: Request, path: string) => Response | undefined | Promise<Response | undefined>) | null = null;
  /** Runs just before a create is applied (a rival can register first). */
  beforeCreate: ((key: string) => void) | null = null;
  private waiters: (() => void)[] = [];
  readonly server: Server<undefined>;

  constructor(readonly prefix = "/v2/keys") {
    this.server = Bun.serve({ hostname: "127.0.0.1", port: 0, idleTimeout: 0, fetch: (req) => this.handle(req) });
  }

  get origin(): string {
    return `http://127.0.0.1:${this.server.port}`;
  }

  url(token: string): string {
    return `${this.origin}${this.prefix}/_etcd/registry/${token}`;
  }

  /** Sets a key directly (as an operator or another member would). */
  put(key: string, value: string, action = "set"): FakeNode {
    this.index++;
    const prev = this.keys.get(key);
    const node = { value, createdIndex: prev?.createdIndex ?? this.index, modifiedIndex: this.index };
    this.keys.set(key, node);
    this.record(action, key, node);
    return node;
  }

  remove(key: string): void {
    const prev = this.keys.get(key);
    if (!prev) return;
    this.index++;
    this.keys.delete(key);
    this.record("delete", key, { ...prev, modifiedIndex: this.index });
  }

  stop(): void {
    this.server.stop(true);
  }

  private record(action: string, key: string, node: FakeNode): void {
    this.events.push({ action, key, node });
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  private async handle(req: Request): Promise<Response> {
    const u = new URL(req.url);
    this.requests.push(`${req.method} ${u.pathname}${u.search}`);
    if (!u.pathname.startsWith(this.prefix)) return new Response("404 page not found\n", { status: 404 });
    const path = decodeURIComponent(u.pathname.slice(this.prefix.length)).replace(/\/+$/, "");
    const hijack = await this.intercept?.(req, path);
    if (hijack) return hijack;
    const q = u.searchParams;
    if (req.method === "PUT") {
      const form = new URLSearchParams(await req.text());
      const value = form.get("value") ?? "";
      if (q.get("prevExist") === "false") {
        this.beforeCreate?.(path);
        if (this.keys.has(path)) return this.error(105, "Key already exists", path, 412);
        return this.answer({ action: "create", node: this.nodeJSON(path, this.put(path, value, "create")) }, 201);
      }
      return this.answer({ action: "set", node: this.nodeJSON(path, this.put(path, value)) }, 200);
    }
    if (q.get("wait") === "true") {
      const from = Number(q.get("waitIndex") ?? "0") || this.index + 1;
      const recursive = q.get("recursive") === "true";
      for (let rounds = 0; rounds < 10000; rounds++) {
        const ev = this.events.find(
          (e) => e.node.modifiedIndex >= from && (e.key === path || (recursive && e.key.startsWith(`${path}/`))),
        );
        if (ev) return this.answer({ action: ev.action, node: this.nodeJSON(ev.key, ev.node) }, 200);
        await new Promise<void>((resolve) => this.waiters.push(resolve));
      }
      return new Response("", { status: 200 });
    }
    const exact = this.keys.get(path);
    if (exact) return this.answer({ action: "get", node: this.nodeJSON(path, exact) }, 200);
    const children = new Map<string, object>();
    for (const [k, n] of this.keys) {
      if (!k.startsWith(`${path}/`)) continue;
      const rest = k.slice(path.length + 1);
      const slash = rest.indexOf("/");
      if (slash < 0) children.set(k, this.nodeJSON(k, n));
      // A sub-directory (like _config) lists as a dir node: discovery must skip it.
      else children.set(`${path}/${rest.slice(0, slash)}`, { key: `${path}/${rest.slice(0, slash)}`, dir: true, createdIndex: 1, modifiedIndex: 1 });
    }
    if (children.size === 0) return this.error(100, "Key not found", path, 404);
    return this.answer({ action: "get", node: { key: path, dir: true, nodes: [...children.values()], createdIndex: 1, modifiedIndex: 1 } }, 200);
  }

  private nodeJSON(key: string, n: FakeNode) {
    return { key, value: n.value, modifiedIndex: n.modifiedIndex, createdIndex: n.createdIndex };
  }

  private answer(body: object, status: number): Response {
    return new Response(JSON.stringify(body), {
      status,
      headers: { "Content-Type": "application/json", "X-Etcd-Index": String(this.index) },
    });
  }

  private error(errorCode: number, message: string, cause: string, status: number): Response {
    return new Response(JSON.stringify({ errorCode, message, cause, index: this.index }), {
      status,
      headers: { "Content-Type": "application/json", "X-Etcd-Index": String(this.index) },
    });
  }
}

let registries: FakeRegistry[] = [];
function registry(prefix?: string): FakeRegistry {
  const r = new FakeRegistry(prefix);
  registries.push(r);
  return r;
}
afterEach(() => {
  for (const r of registries) r.stop();
  registries = [];
});

const TOKEN = "tok";
const sizeKey = (size: string | number) => [`/_etcd/registry/${TOKEN}/_config/size`, String(size)] as const;
const member = (i: number) => ({ name: `n${i}`, memberId: `a${i}`, peerURLs: [`http://127.0.0.1:${7000 + i}`] });

/** Records backoff waits instead of sleeping through them. */
function recorder() {
  const waits: number[] = [];
  return { waits, sleep: async (ms: number) => void waits.push(ms) };
}

async function rejection(p: Promise<unknown>): Promise<DiscoveryError> {
  try {
    await p;
  } catch (e) {
    return e as DiscoveryError;
  }
  throw new Error("expected a rejection");
}

describe("discover against a fake registry", () => {
  test("three members concurrently: each gets the same cluster, in registration order", async () => {
    const r = registry();
    r.put(...sizeKey(3));
    const got = await Promise.all([1, 2, 3].map((i) => discover({ url: r.url(TOKEN), ...member(i) })));
    expect(new Set(got).size).toBe(1);
    const order = [...r.keys.entries()]
      .filter(([k]) => !k.includes("_config"))
      .sort((a, b) => a[1].createdIndex - b[1].createdIndex)
      .map(([, n]) => n.value);
    expect(got[0]).toBe(order.join(","));
    expect(parseURLsMap(got[0]!).size).toBe(3);
    // The registration is a create under the member ID.
    expect(r.requests).toContain(`PUT /v2/keys/_etcd/registry/${TOKEN}/a1?prevExist=false`);
    expect(r.keys.get(`/_etcd/registry/${TOKEN}/a1`)?.value).toBe("n1=http://127.0.0.1:7001");
  });

  test("a member that came early waits (watch) for the others; _config changes and deeper keys do not count", async () => {
    const r = registry();
    r.put(...sizeKey(2));
    const early = discover({ url: r.url(TOKEN), ...member(1) });
    // Until the early one is watching, nothing else happens.
    for (let i = 0; i < 200 && !r.requests.some((q) => q.includes("wait=true") && q.includes("recursive=true")); i++) await Bun.sleep(5);
    r.put(`/_etcd/registry/${TOKEN}/_config/size`, "2");
    r.put(`/_etcd/registry/${TOKEN}/_config/note`, "x=http://127.0.0.1:1");
    r.remove(`/_etcd/registry/${TOKEN}/_config/note`);
    r.put(`/_etcd/registry/${TOKEN}/deeper/k`, "y=http://127.0.0.1:1");
    const late = await discover({ url: r.url(TOKEN), ...member(2) });
    expect(await early).toBe(late);
    expect(late).toBe("n1=http://127.0.0.1:7001,n2=http://127.0.0.1:7002");
  });

  test("cluster full: refused before registering, with the first N as the cluster", async () => {
    const r = registry();
    r.put(...sizeKey(2));
    r.put(`/_etcd/registry/${TOKEN}/b1`, "x1=http://127.0.0.1:1");
    r.put(`/_etcd/registry/${TOKEN}/b2`, "x2=http://127.0.0.1:2");
    r.put(`/_etcd/registry/${TOKEN}/b3`, "x3=http://127.0.0.1:3");
    const e = await rejection(discover({ url: r.url(TOKEN), ...member(1) }));
    expect(e).toBeInstanceOf(DiscoveryError);
    expect(e.kind).toBe("full");
    expect(e.message).toBe("discovery: cluster is full");
    expect(e.cluster).toBe("x1=http://127.0.0.1:1,x2=http://127.0.0.1:2");
    expect(r.requests.some((q) => q.startsWith("PUT"))).toBe(false);
    // What a proxy forwards to.
    expect(await getCluster({ url: r.url(TOKEN) })).toBe("x1=http://127.0.0.1:1,x2=http://127.0.0.1:2");
    expect(clusterPeerURLs(e.cluster)).toEqual(["http://127.0.0.1:1", "http://127.0.0.1:2"]);
  });

  test("cluster full found after registering: a rival got in between the check and the create", async () => {
    const r = registry();
    r.put(...sizeKey(1));
    r.beforeCreate = (key) => {
      r.beforeCreate = null;
      r.put(`/_etcd/registry/${TOKEN}/rival`, "rival=http://127.0.0.1:9");
      void key;
    };
    const e = await rejection(discover({ url: r.url(TOKEN), ...member(1) }));
    expect(e.kind).toBe("full");
    expect(e.cluster).toBe("rival=http://127.0.0.1:9");
  });

  test("duplicate id: the member's key exists already", async () => {
    const r = registry();
    r.put(...sizeKey(3));
    r.put(`/_etcd/registry/${TOKEN}/a1`, "n1=http://127.0.0.1:7001");
    const e = await rejection(discover({ url: r.url(TOKEN), ...member(1) }));
    expect(e.kind).toBe("duplicate-id");
    expect(e.message.startsWith("discovery: found duplicate id")).toBe(true);
  });

  test("duplicate name: two registrations under one name", async () => {
    const r = registry();
    r.put(...sizeKey(2));
    r.put(`/_etcd/registry/${TOKEN}/b1`, "n1=http://127.0.0.1:1");
    const e = await rejection(discover({ url: r.url(TOKEN), ...member(1) }));
    expect(e.kind).toBe("duplicate-name");
    expect(e.message).toBe("discovery: found duplicate name");
    expect(e.cluster).toBe("n1=http://127.0.0.1:1,n1=http://127.0.0.1:7001");
  });

  test.each([["not-a-url"], ["ftp://127.0.0.1:1"], ["http://127.0.0.1"], ["http://127.0.0.1:1/path"]])(
    "invalid URL in a registration (%p)",
    async (bad) => {
      const r = registry();
      r.put(...sizeKey(2));
      r.put(`/_etcd/registry/${TOKEN}/b1`, `x=${bad}`);
      const e = await rejection(discover({ url: r.url(TOKEN), ...member(1) }));
      expect(e.kind).toBe("invalid-url");
      expect(e.message).toBe("discovery: invalid URL");
    },
  );

  test("size key missing, or not a positive integer", async () => {
    const r = registry();
    r.put(`/_etcd/registry/other/_config/size`, "1");
    let e = await rejection(discover({ url: r.url(TOKEN), ...member(1) }));
    expect([e.kind, e.message]).toEqual(["size-not-found", "discovery: size key not found"]);
    for (const bad of ["three", "-1", "0", "1.5", ""]) {
      r.put(...sizeKey(bad));
      e = await rejection(discover({ url: r.url(TOKEN), ...member(1) }));
      expect(e.kind).toBe("bad-size");
      expect(e.message.startsWith("discovery: size key is bad")).toBe(true);
    }
  });

  test("not an etcd: bad discovery endpoint", async () => {
    const r = registry();
    r.intercept = () => new Response("<html>hello</html>", { status: 200, headers: { "Content-Type": "text/html" } });
    let e = await rejection(discover({ url: r.url(TOKEN), ...member(1) }));
    expect([e.kind, e.message]).toEqual(["bad-endpoint", "discovery: bad discovery endpoint"]);
    // A plain 404 page (an etcd peer port, a web server).
    r.intercept = null;
    e = await rejection(discover({ url: `${r.origin}/somewhere/${TOKEN}`, ...member(1) }));
    expect(e.kind).toBe("bad-endpoint");
  });

  test("backoff: 2^n units, capped at 2^8, bounded by maxRetries", async () => {
    expect([1, 2, 3, 7, 8, 9, 30].map((n) => backoffMs(n))).toEqual([2000, 4000, 8000, 128000, 256000, 256000, 256000]);
    expect(backoffMs(3, 10)).toBe(80);
    // Nothing listens there: every attempt is a connection error.
    const rec = recorder();
    const url = `http://127.0.0.1:${freePort()}/v2/keys/_etcd/registry/${TOKEN}`;
    const e = await rejection(discover({ url, ...member(1), sleep: rec.sleep, maxRetries: 10 }));
    expect([e.kind, e.message]).toEqual(["too-many-retries", "discovery: too many retries"]);
    expect(rec.waits).toEqual([2, 4, 8, 16, 32, 64, 128, 256, 256, 256].map((s) => s * 1000));
  });

  test("server errors and hung requests are retried until the registry answers", async () => {
    const r = registry();
    r.put(...sizeKey(1));
    let failures = 0;
    r.intercept = async (req) => {
      failures++;
      if (failures <= 2) return new Response("", { status: 503 });
      if (failures === 3) {
        await Bun.sleep(500); // longer than the request timeout below
        return new Response("late", { status: 200 });
      }
      r.intercept = null;
      return undefined;
    };
    const rec = recorder();
    const got = await discover({ url: r.url(TOKEN), ...member(1), sleep: rec.sleep, timeoutMs: 100, retryBaseMs: 1 });
    expect(got).toBe("n1=http://127.0.0.1:7001");
    expect(rec.waits).toEqual([2, 4, 8]);
  });

  test("a lost registration answer is retried; finding our own value there is success", async () => {
    const r = registry();
    r.put(...sizeKey(1));
    let dropped = false;
    r.intercept = async (req, path) => {
      if (req.method !== "PUT" || dropped) return undefined;
      dropped = true;
      // The create lands, the answer is lost.
      r.put(path, await req.text().then((t) => new URLSearchParams(t).get("value") ?? ""), "create");
      return new Response("", { status: 503 });
    };
    const rec = recorder();
    const got = await discover({ url: r.url(TOKEN), ...member(1), sleep: rec.sleep });
    expect(got).toBe("n1=http://127.0.0.1:7001");
    expect(rec.waits.length).toBe(1);
  });

  test("a registry under any path (the public service served /<token>)", async () => {
    const r = registry("/disc");
    r.put(...sizeKey(1));
    expect(await discover({ url: r.url(TOKEN), ...member(1) })).toBe("n1=http://127.0.0.1:7001");
    expect(r.requests).toContain(`PUT /disc/_etcd/registry/${TOKEN}/a1?prevExist=false`);
  });

  test("--discovery-proxy: every request goes through the HTTP proxy", async () => {
    const r = registry();
    r.put(...sizeKey(1));
    // The registry doubles as the proxy; the discovery host itself does not resolve.
    const hosts: string[] = [];
    const inner = r.intercept;
    r.intercept = (req, path) => {
      hosts.push(req.headers.get("host") ?? "");
      return inner?.(req, path);
    };
    const url = `http://registry.invalid:2379/v2/keys/_etcd/registry/${TOKEN}`;
    const proxy = `127.0.0.1:${r.server.port}`;
    expect(await discover({ url, ...member(1), proxy })).toBe("n1=http://127.0.0.1:7001");
    expect(hosts.length).toBeGreaterThan(0);
    expect(hosts.every((h) => h === "registry.invalid:2379")).toBe(true);
  });

  test("the caller's signal ends a wait", async () => {
    const r = registry();
    r.put(...sizeKey(2));
    const ctl = new AbortController();
    const p = discover({ url: r.url(TOKEN), ...member(1), signal: ctl.signal });
    for (let i = 0; i < 200 && !r.requests.some((q) => q.includes("recursive=true")); i++) await Bun.sleep(5);
    ctl.abort();
    expect(await rejection(p)).toBeInstanceOf(CanceledError);
  });
});

describe("discovery helpers", () => {
  test("registration value: sorted name=url pairs", () => {
    expect(registrationValue("m", ["http://b:2", "http://a:1"])).toBe("m=http://a:1,m=http://b:2");
  });

  test("parseURLsMap: Go's URLsMap rules", () => {
    expect([...parseURLsMap("a=http://h:1,b=https://h:2,a=http://g:1")]).toEqual([
      ["a", ["http://g:1", "http://h:1"]],
      ["b", ["https://h:2"]],
    ]);
    expect(() => parseURLsMap("a=h:1")).toThrow("URL scheme must be http, https, unix, or unixs: h:1");
    expect(() => parseURLsMap("a=http://h")).toThrow('URL address does not have the form "host:port": http://h');
    expect(() => parseURLsMap("a=http://h:1/x")).toThrow("URL must not contain a path: http://h:1/x");
    expect([...parseURLsMap("a=http://[::1]:1")]).toEqual([["a", ["http://[::1]:1"]]]);
  });

  test("identifyDataDir: member once a WAL exists, proxy after a fallback, else empty", () => {
    const d = tempDir();
    try {
      expect(identifyDataDir(join(d, "nothing"))).toBe("empty");
      mkdirSync(join(d, "member", "snap"), { recursive: true });
      expect(identifyDataDir(d)).toBe("empty");
      mkdirSync(join(d, "proxy"));
      expect(identifyDataDir(d)).toBe("proxy");
      mkdirSync(join(d, "member", "wal"));
      writeFileSync(join(d, "member", "wal", "0000000000000000-0000000000000000.wal"), "");
      expect(identifyDataDir(d)).toBe("member");
    } finally {
      cleanup(d);
    }
  });
});
