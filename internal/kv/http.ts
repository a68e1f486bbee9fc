// The client-facing HTTP API of a member (etcd v2: keys, members, stats, machines, version, health).
import { Hono, type Context } from "hono";
import { EtcdError, ErrorCode } from "./errors.ts";
import { FormError, queryUnescape } from "./form.ts";
import { parseKeysRequest, type KeysRequest } from "./keys-request.ts";
import type { EtcdServer } from "./server.ts";
import type { StoreEvent } from "./types.ts";
import { goDuration } from "./duration.ts";
import { cleanPath } from "./paths.ts";
import { membersApp } from "./members-http.ts";
import { CORS, messageResponse, text } from "./respond.ts";
import { ETCD_CLUSTER_VERSION, ETCD_VERSION } from "./version.ts";

/** Bodies past this are refused before parsing (the 1.5 MiB request limit, etcd's v3 limit). */
export const MAX_BODY_BYTES = 1.5 * 1024 * 1024;

const KEYS_PREFIX = "/v2/keys";
const encoder = new TextEncoder();

function splitUrl(url: string): { path: string; query: string } {
  const start = url.indexOf("/", url.indexOf("//") + 2);
  const q = url.indexOf("?", start);
  return q === -1 ? { path: url.slice(start), query: "" } : { path: url.slice(start, q), query: url.slice(q + 1) };
}

function jsonHeaders(server: EtcdServer, etcdIndex: number, raft: boolean): Headers {
  const h = new Headers(CORS);
  h.set("Content-Type", "application/json");
  h.set("X-Etcd-Cluster-Id", server.clusterId);
  h.set("X-Etcd-Index", String(etcdIndex));
  if (raft) {
    h.set("X-Raft-Index", String(server.commitIndex));
    h.set("X-Raft-Term", String(server.term));
  }
  return h;
}

function errorResponse(server: EtcdServer, e: unknown): Response {
  const err =
    e instanceof EtcdError ? e : new EtcdError(ErrorCode.RaftInternal, e instanceof Error ? e.message : String(e), 0);
  return new Response(`${JSON.stringify(err)}\n`, { status: err.status, headers: jsonHeaders(server, err.index, false) });
}



async function readForm(req: Request): Promise<string | null> {
  if (req.method !== "PUT" && req.method !== "POST") return null;
  const ct = (req.headers.get("content-type") ?? "").split(";")[0]!.trim().toLowerCase();
  if (ct !== "application/x-www-form-urlencoded") return null;
  const declared = Number(req.headers.get("content-length") ?? "0");
  if (declared > MAX_BODY_BYTES) throw new EtcdError(ErrorCode.InvalidForm, "http: POST too large", 0);
  const body = await req.text();
  if (body.length > MAX_BODY_BYTES) throw new EtcdError(ErrorCode.InvalidForm, "http: POST too large", 0);
  return body;
}

function eventResponse(server: EtcdServer, ev: StoreEvent, req: KeysRequest): Response {
  const json = ev.toJSON(Date.now());
  const created = ev.action === "create" || (ev.action === "set" && json.prevNode === undefined);
  const body =
    req.kind === "write" && req.noValueOnSuccess ? `{"action":"${ev.action}"}\n` : `${JSON.stringify(json)}\n`;
  const headers = jsonHeaders(server, ev.etcdIndex, true);
  if (req.kind === "get" && req.head) {
    headers.set("Content-Length", String(encoder.encode(body).length));
    return new Response(null, { status: 200, headers });
  }
  return new Response(body, { status: created ? 201 : 200, headers });
}

/**
 * One event goes to every watcher of its key: render it once per delivery round, not once per
 * watcher (1,000 watchers on a key would otherwise stringify it 1,000 times).
 */
let renderedEvent: StoreEvent | null = null;
let renderedAt = 0;
let renderedBytes = new Uint8Array(0);
function watchBytes(ev: StoreEvent): Uint8Array {
  const now = Date.now();
  if (ev !== renderedEvent || now !== renderedAt) {
    renderedEvent = ev;
    renderedAt = now;
    renderedBytes = encoder.encode(`${JSON.stringify(ev.toJSON(now))}\n`);
  }
  return renderedBytes;
}

function watchResponse(server: EtcdServer, req: Request, w: KeysRequest & { kind: "watch" }): Response | Promise<Response> {
  const opts = { recursive: w.recursive, stream: w.stream, sinceIndex: w.waitIndex };
  if (!w.stream) {
    // One event, then the response ends: a plain body answered when the event comes is far
    // cheaper per watcher than a stream (1,000 watchers on a key all answer at once).
    return new Promise<Response>((resolve) => {
      // Throws 401 synchronously, before any byte is sent, so the caller answers with the error.
      const watcher = server.store.watch(w.key, opts, (ev) => {
        resolve(new Response(watchBytes(ev), { status: 200, headers: jsonHeaders(server, watcher.etcdIndex, true) }));
      });
      req.signal.addEventListener("abort", () => watcher.cancel(), { once: true });
    });
  }
  let closed = false;
  // Assigned by the stream's start(), which runs inside the constructor: before any delivery,
  // since history hits are delivered on a microtask and live events later still.
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  const finish = () => {
    closed = true;
    watcher.cancel();
  };
  const watcher = server.store.watch(w.key, opts, (ev) => {
    if (closed) return;
    controller.enqueue(watchBytes(ev));
    if ((controller.desiredSize ?? 0) < -100) {
      // A stream consumer 100 events behind is dropped, as etcd drops slow watchers.
      finish();
      controller.close();
    }
  });
  const body = new ReadableStream<Uint8Array>({
    start(c) {
      controller = c;
    },
    cancel: finish,
  });
  req.signal.addEventListener("abort", finish, { once: true });
  return new Response(body, { status: 200, headers: jsonHeaders(server, watcher.etcdIndex, true) });
}

async function handleKeys(server: EtcdServer, req: Request, rawKey: string, query: string): Promise<Response> {
  let key: string;
  try {
    key = queryUnescape(rawKey, true);
  } catch (e) {
    if (e instanceof FormError) return text(400, "400 Bad Request", { Connection: "close" });
    throw e;
  }
  let kr: KeysRequest;
  try {
    kr = parseKeysRequest(req.method, key, query, await readForm(req), Date.now());
  } catch (e) {
    return errorResponse(server, e);
  }
  try {
    switch (kr.kind) {
      case "get":
        if (kr.quorum) await server.linearizableRead();
        return eventResponse(server, server.store.get(kr.key, kr.recursive, kr.sorted), kr);
      case "watch":
        return watchResponse(server, req, kr);
      case "write":
        return eventResponse(server, await server.propose(kr.cmd), kr);
    }
  } catch (e) {
    return errorResponse(server, e);
  }
}

const KEYS_METHODS = new Set(["GET", "HEAD", "PUT", "POST", "DELETE"]);

/**
 * The client API as a fetch handler. /v2/keys requests (nearly all the traffic) go straight to
 * handleKeys and answer exactly as through the Hono route (same redirect rule, same onError):
 * Hono's routing, middleware and Context cost about 50 allocations per request, a third of all.
 */
export function clientFetch(server: EtcdServer): (req: Request) => Response | Promise<Response> {
  const app = clientApp(server);
  return (req) => {
    const { path, query } = splitUrl(req.url);
    if (path.startsWith(`${KEYS_PREFIX}/`) && KEYS_METHODS.has(req.method) && cleanPath(path) === path) {
      // errors that escape (a watch refused with 401 rejects its promise) get app.onError's answer
      return handleKeys(server, req, path.slice(KEYS_PREFIX.length), query).catch((e) => errorResponse(server, e));
    }
    return app.fetch(req);
  };
}

export function clientApp(server: EtcdServer): Hono {
  const app = new Hono();
  const clusterHeader = () => ({ "X-Etcd-Cluster-Id": server.clusterId });
  const json = (c: Context, value: unknown, newline = true) =>
    c.body(`${JSON.stringify(value)}${newline ? "\n" : ""}`, 200, {
      ...CORS,
      "Content-Type": "application/json",
    });

  // Go's ServeMux answers unclean paths with a redirect to the cleaned one.
  app.use("*", async (c, next) => {
    const { path, query } = splitUrl(c.req.url);
    const clean = cleanPath(path);
    if (clean !== path) return c.body(null, 301, { ...CORS, Location: query ? `${clean}?${query}` : clean });
    await next();
  });

  app.all(`${KEYS_PREFIX}/*`, keysRoute);
  app.all(KEYS_PREFIX, keysRoute);
  function keysRoute(c: Context): Response | Promise<Response> {
    const req = c.req.raw;
    switch (req.method) {
      case "GET":
      case "HEAD":
      case "PUT":
      case "POST":
      case "DELETE": {
        const { path, query } = splitUrl(req.url);
        return handleKeys(server, req, path.slice(KEYS_PREFIX.length), query);
      }
      default:
        return text(405, "Method Not Allowed\n", { Allow: "HEAD,GET,PUT,POST,DELETE", "X-Content-Type-Options": "nosniff" });
    }
  }

  app.route("/v2/members", membersApp(server));
  app.on(["GET", "HEAD"], "/v2/machines", () =>
    text(200, server.members().flatMap((m) => m.clientURLs).join(", ")),
  );
  app.get("/v2/stats/store", (c) => json(c, server.store.stats(), false));
  app.get("/v2/stats/self", (c) =>
    json(
      c,
      {
        name: server.cfg.name,
        id: server.id,
        state: server.state,
        startTime: server.startTime.toISOString(),
        leaderInfo: {
          leader: server.leaderId ?? "",
          uptime: goDuration(Date.now() - server.leaderSince.getTime()),
          startTime: server.leaderSince.toISOString(),
        },
        recvAppendRequestCnt: server.transport.counts.recvAppend,
        sendAppendRequestCnt: server.transport.counts.sendAppend,
      },
      false,
    ),
  );
  app.get("/v2/stats/leader", (c) =>
    server.state === "StateLeader"
      ? json(c, { leader: server.id, followers: server.transport.followerStats() }, false)
      : messageResponse(403, "not current leader"),
  );
  app.get("/version", (c) => json(c, { etcdserver: ETCD_VERSION, etcdcluster: ETCD_CLUSTER_VERSION }, false));
  app.get("/health", () =>
    server.leaderId && server.published ? text(200, `{"health":"true"}`) : text(503, `{"health":"false"}`),
  );
  app.notFound(() => text(404, "404 page not found\n"));
  app.onError((e) => errorResponse(server, e));
  return app;
}
