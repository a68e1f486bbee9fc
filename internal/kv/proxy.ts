// The v2 HTTP proxy a discovering member becomes when its cluster is full
// (--discovery-fallback=proxy), as etcd's startProxy + proxy/httpproxy: it keeps
// `<data-dir>/proxy/cluster` ({"PeerURLs":[...]}), learns the members' client URLs from a peer's
// GET /members, and forwards every client request (method, path, query, body, headers) to one of
// them, moving on to the next when a connection fails. Responses, watches included, stream through.
import { mkdirSync, openSync, fsyncSync, closeSync, readFileSync, renameSync, writeFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { Hono } from "hono";
import type { Server } from "bun";
import { logger } from "../log/log.ts";

const log = logger("proxy");

export interface ProxyOptions {
  /** The member's --data-dir; the proxy keeps its state in `<dataDir>/proxy`. */
  dataDir: string;
  /** Client listeners (--listen-client-urls). Port 0 picks a free one (see ProxyHandle.urls). */
  listen: { hostname: string; port: number }[];
  /**
   * The cluster's peer URLs, from discovery (clusterPeerURLs(DiscoveryError.cluster)). Ignored
   * once `<dataDir>/proxy/cluster` exists, as etcd ignores the discovery token then.
   */
  peerURLs?: string[];
  /** --proxy-refresh-interval: how often the members are asked again (etcd: 30 s). */
  refreshMs?: number;
  /** --proxy-failure-wait: how long an endpoint that failed is left out (etcd: 5 s). */
  failureWaitMs?: number;
  /** Milliseconds for one peer /members request (etcd: 10 s). */
  membersTimeoutMs?: number;
  /** Spread clients over the members in random order, as etcd does (default true; tests pin the order). */
  shuffle?: boolean;
  fetch?: typeof fetch;
}

export interface ProxyHandle {
  /** One `http://host:port` per listener, in the order given. */
  urls: string[];
  /** The client URLs requests currently go to. */
  endpoints(): string[];
  /** Asks the members again now (the timer does this every refreshMs). */
  refresh(): Promise<void>;
  stop(): Promise<void>;
}

// Hop-by-hop headers (Go's httputil list, as etcd's reverse proxy strips them both ways).
const HOP_BY_HOP = ["connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers", "transfer-encoding", "upgrade"];

interface Endpoint {
  url: string;
  available: boolean;
  timer?: ReturnType<typeof setTimeout>;
}

interface PeerMember {
  name?: string;
  peerURLs?: string[] | null;
  clientURLs?: string[] | null;
}

/** Starts the proxy; it runs until stop(). */
export async function runProxy(o: ProxyOptions): Promise<ProxyHandle> {
  log.info("this proxy supports v2 API only!");
  const dir = join(o.dataDir, "proxy");
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const clusterFile = join(dir, "cluster");
  const doFetch = o.fetch ?? fetch;
  const failureWaitMs = o.failureWaitMs ?? 5000;
  const refreshMs = o.refreshMs ?? 30000;
  const membersTimeoutMs = o.membersTimeoutMs ?? 10000;

  let peerURLs: string[];
  if (existsSync(clusterFile)) {
    const saved = JSON.parse(readFileSync(clusterFile, "utf8")) as { PeerURLs?: unknown };
    if (!Array.isArray(saved.PeerURLs) || !saved.PeerURLs.every((u) => typeof u === "string"))
      throw new Error(`proxy: ${clusterFile} holds no PeerURLs list`);
    peerURLs = saved.PeerURLs as string[];
    if (o.peerURLs) log.warn(`discovery token ignored since the proxy has already been initialized. Valid cluster file found at ${JSON.stringify(clusterFile)}`);
    log.info(`using peer urls [${peerURLs.join(" ")}] from cluster file ${JSON.stringify(clusterFile)}`);
  } else {
    if (!o.peerURLs || o.peerURLs.length === 0) throw new Error("proxy: no peer URLs to proxy to (no cluster file, nothing discovered)");
    peerURLs = [...o.peerURLs];
    log.info(`using peer urls [${peerURLs.join(" ")}]`);
  }

  let endpoints: Endpoint[] = [];
  let announced = false;

  /** etcd's GetClusterFromRemotePeers: the first peer that answers /members with a cluster ID. */
  async function askMembers(): Promise<PeerMember[] | null> {
    for (const u of peerURLs) {
      const url = `${u.replace(/\/+$/, "")}/members`;
      try {
        const r = await doFetch(url, { signal: AbortSignal.timeout(membersTimeoutMs) });
        const text = await r.text();
        if (!r.ok) {
          log.warn(`could not get cluster response from ${u}: HTTP ${r.status}`);
          continue;
        }
        if (!r.headers.get("x-etcd-cluster-id")) {
          log.warn(`could not get cluster response from ${u}: no X-Etcd-Cluster-ID header`);
          continue;
        }
        // The real etcd writes member IDs as JSON numbers beyond 2^53; they are not needed here.
        const list = JSON.parse(text.replace(/"id":\s*(\d+)/g, '"id":"$1"')) as unknown;
        if (!Array.isArray(list)) {
          log.warn(`could not unmarshal cluster response from ${u}: not a member list`);
          continue;
        }
        return list as PeerMember[];
      } catch (e) {
        log.warn(`could not get cluster response from ${u}: ${(e as Error).message}`);
      }
    }
    return null;
  }

  async function refresh(): Promise<void> {
    const members = await askMembers();
    if (members === null) {
      // etcd drops every endpoint here; keeping the last known ones serves through a blip.
      log.warn(`could not retrieve cluster information from the given URLs [${peerURLs.join(" ")}]; keeping ${endpoints.length} endpoint(s)`);
      return;
    }
    const clientURLs = [...new Set(members.flatMap((m) => m.clientURLs ?? []))];
    const newPeers = [...new Set(members.flatMap((m) => m.peerURLs ?? []))].sort();
    try {
      writeClusterFile(clusterFile, newPeers);
    } catch (e) {
      log.warn(`error on writing urls ${(e as Error).message}`);
    }
    if (newPeers.join(",") !== [...peerURLs].sort().join(",")) {
      log.info(`updated peer urls in cluster file from [${peerURLs.join(" ")}] to [${newPeers.join(" ")}]`);
    }
    if (newPeers.length > 0) peerURLs = newPeers;
    const old = new Map(endpoints.map((e) => [e.url, e]));
    const next: Endpoint[] = [];
    for (const u of clientURLs) {
      try {
        new URL(u);
      } catch {
        log.warn(`upstream URL invalid: ${u}`);
        continue;
      }
      next.push(old.get(u) ?? { url: u, available: true });
    }
    for (const e of endpoints) if (!next.includes(e)) clearTimeout(e.timer);
    endpoints = o.shuffle === false ? next : shuffle(next);
    if (!announced && endpoints.length > 0) {
      announced = true;
      log.info(`endpoints found ${JSON.stringify(endpoints.map((e) => e.url))}`);
    }
  }

  function available(): Endpoint[] {
    return endpoints.filter((e) => e.available);
  }

  function failed(ep: Endpoint): void {
    if (!ep.available) return;
    ep.available = false;
    log.warn(`marked endpoint ${ep.url} unavailable`);
    ep.timer = setTimeout(() => {
      ep.available = true;
      log.info(`marked endpoint ${ep.url} available, to retest connectivity`);
    }, failureWaitMs);
  }

  await refresh();
  let stopped = false;
  let refreshTimer: ReturnType<typeof setTimeout> | undefined;
  const schedule = () => {
    if (stopped) return;
    // With no endpoint at all, ask again after a second (etcd's director does the same).
    const wait = endpoints.length === 0 && refreshMs >= 30000 ? 1000 : refreshMs;
    refreshTimer = setTimeout(() => void refresh().finally(schedule), wait);
  };
  schedule();

  const app = new Hono();
  app.all("/v2/config/local/proxy", (c) => {
    if (c.req.method !== "GET") {
      return c.text("Method Not Allowed\n", 405, { Allow: "GET", "X-Content-Type-Options": "nosniff" });
    }
    return c.body(`${JSON.stringify({ endpoints: available().map((e) => e.url) })}\n`, 200, { "Content-Type": "application/json" });
  });
  app.all("*", async (c) => {
    const req = c.req.raw;
    const eps = available();
    if (eps.length === 0) {
      log.warn("zero endpoints currently available");
      return httpError(503, "httpproxy: zero endpoints currently available");
    }
    const body = req.method === "GET" || req.method === "HEAD" ? undefined : new Uint8Array(await req.arrayBuffer());
    const headers = new Headers(req.headers);
    for (const h of [...HOP_BY_HOP, "host", "content-length"]) headers.delete(h);
    const ip = (c.env as { ip?: string } | undefined)?.ip;
    if (ip) {
      const prior = headers.get("x-forwarded-for");
      headers.set("X-Forwarded-For", prior ? `${prior}, ${ip}` : ip);
    }
    const u = new URL(req.url);
    for (const ep of eps) {
      const target = `${new URL(ep.url).origin}${u.pathname}${u.search}`;
      let res: Response;
      try {
        res = await doFetch(target, { method: req.method, headers, body, signal: req.signal, redirect: "manual", decompress: false } as RequestInit);
      } catch (e) {
        if (req.signal.aborted) {
          log.info(`client closed request prematurely`);
          return new Response(null, { status: 499 });
        }
        log.warn(`failed to direct request to ${ep.url}: ${(e as Error).message}`);
        failed(ep);
        continue;
      }
      const out = new Headers(res.headers);
      for (const h of HOP_BY_HOP) out.delete(h);
      return new Response(res.body, { status: res.status, headers: out });
    }
    log.warn(`unable to get response from ${eps.length} endpoint(s)`);
    return httpError(502, `httpproxy: unable to get response from ${eps.length} endpoint(s)`);
  });

  const servers: Server<undefined>[] = [];
  try {
    for (const l of o.listen) {
      const s: Server<undefined> = Bun.serve({
        hostname: l.hostname,
        port: l.port,
        // The client's address goes into X-Forwarded-For.
        fetch: (req, server) => app.fetch(req, { ip: server.requestIP(req)?.address }),
        // Watches last as long as the client likes.
        idleTimeout: 0,
        maxRequestBodySize: 16 * 1024 * 1024,
      });
      servers.push(s);
      log.info(`v2 proxy started listening on client requests on ${JSON.stringify(`http://${l.hostname}:${s.port}`)}`);
    }
  } catch (e) {
    stopped = true;
    clearTimeout(refreshTimer);
    for (const s of servers) s.stop(true);
    throw e;
  }

  return {
    urls: servers.map((s, i) => `http://${o.listen[i]!.hostname}:${s.port}`),
    endpoints: () => available().map((e) => e.url),
    refresh,
    async stop() {
      stopped = true;
      clearTimeout(refreshTimer);
      for (const e of endpoints) clearTimeout(e.timer);
      for (const s of servers) s.stop(true);
      log.info("proxy stopped");
    },
  };
}

/** The cluster file, written as etcd writes it: `<file>.bak`, fsync, rename. */
function writeClusterFile(file: string, peerURLs: string[]): void {
  const tmp = `${file}.bak`;
  writeFileSync(tmp, JSON.stringify({ PeerURLs: peerURLs }), { mode: 0o600 });
  const fd = openSync(tmp, "r+");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
}

/** etcd's httptypes.HTTPError body. */
function httpError(status: number, message: string): Response {
  return new Response(JSON.stringify({ message }), { status, headers: { "Content-Type": "application/json" } });
}

function shuffle<T>(xs: T[]): T[] {
  const a = [...xs];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}
