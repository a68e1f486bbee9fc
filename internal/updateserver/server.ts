// The update server process: SQLite state in the data dir, the Omaha endpoint, hosted payloads,
// the admin API, metrics and the dashboard behind one fetch handler.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { Hono } from "hono";
import { logger } from "../log/log.ts";
import { apiApp } from "./api.ts";
import { bearer, Tokens } from "./auth.ts";
import { Committer } from "./commit.ts";
import { dashboardApp } from "./dashboard.ts";
import { openDatabase, WalSync, type Durability } from "./db.ts";
import { ApiError } from "./errors.ts";
import { metricsText } from "./metrics.ts";
import { handleOmaha, type OmahaCounters } from "./omaha-http.ts";
import { payloadDir, servePayload, validFilename } from "./payloads.ts";
import type { Clock } from "./policy.ts";
import { Rollout } from "./rollout.ts";
import { Store } from "./store.ts";

const log = logger("update-server");

export interface UpdateServerOptions {
  dataDir: string;
  clock?: Clock;
  /** Base of hosted payload URLs (e.g. https://updates.example.com); default: from the request's Host. */
  publicUrl?: string;
  maxPayloadBytes?: number;
  durability?: Durability;
}

export interface UpdateServer {
  store: Store;
  tokens: Tokens;
  /** The token made at first start (no token existed), to be shown once; null afterwards. */
  firstToken: string | null;
  fetch(req: Request, ip: string): Response | Promise<Response>;
  close(): Promise<void>;
}

const OMAHA_PATHS = new Set(["/v1/update", "/v1/update/"]);

function pathOf(url: string): string {
  const start = url.indexOf("/", url.indexOf("//") + 2);
  const q = url.indexOf("?", start);
  return q === -1 ? url.slice(start) : url.slice(start, q);
}

export function createUpdateServer(o: UpdateServerOptions): UpdateServer {
  mkdirSync(o.dataDir, { recursive: true });
  const clock = o.clock ?? Date.now;
  const dbFile = join(o.dataDir, "update-server.db");
  const db = openDatabase(dbFile);
  const walSync = (o.durability ?? "power") === "power" ? new WalSync(`${dbFile}-wal`) : null;
  const store = new Store(db, clock);
  const tokens = new Tokens(db, clock);
  const firstToken = tokens.empty ? tokens.create("admin").token : null;
  const rollout = new Rollout(store);
  const committer = new Committer(
    db,
    () => store.changed(),
    walSync && (() => walSync.sync()),
  );
  const counters: OmahaCounters = { requests: 0, badRequests: 0, updateChecks: 0, updatesOffered: 0, events: 0 };
  const publicUrl = o.publicUrl?.replace(/\/+$/, "");
  // The origin the machine used (Bun builds req.url from the Host header).
  const baseUrl = (req: Request) => () => publicUrl ?? req.url.slice(0, req.url.indexOf("/", req.url.indexOf("//") + 2));

  const app = new Hono<{ Bindings: { ip: string } }>();
  app.onError((e, c) => {
    if (e instanceof ApiError) return c.json({ error: e.message }, e.status);
    log.error(`${c.req.method} ${c.req.path}: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    return c.json({ error: "internal error" }, 500);
  });
  app.notFound((c) => c.json({ error: `no route for ${c.req.method} ${c.req.path}` }, 404));
  app.get("/", (c) => c.redirect("/dashboard", 302));
  app.get("/health", (c) => c.text("OK"));
  app.get("/metrics", (c) => c.text(metricsText(store, counters, committer), 200, { "Content-Type": "text/plain; version=0.0.4; charset=utf-8" }));
  app.on(["GET", "HEAD"], "/payloads/:pkg/:name", (c) => {
    const p = store.cat().packages.get(c.req.param("pkg"));
    const name = c.req.param("name");
    if (!p || !p.hosted || !validFilename(name) || (name !== p.filename && !p.extraFiles.some((f) => f.name === name))) {
      return c.text("payload not found\n", 404);
    }
    return servePayload(join(payloadDir(o.dataDir, p.id), name), c.req.raw);
  });
  app.use("/api/*", async (c, next) => {
    if (!tokens.valid(bearer(c.req.header("authorization")))) {
      return c.json({ error: "missing or invalid bearer token" }, 401, { "WWW-Authenticate": 'Bearer realm="coreos-update-server"' });
    }
    await next();
  });
  // Admin changes (a paused group, a new channel pin) are as durable as the Omaha answers.
  if (walSync) {
    app.use("*", async (c, next) => {
      await next();
      if (c.req.method !== "GET" && c.req.method !== "HEAD") await walSync.sync();
    });
  }
  app.route("/api", apiApp({ store, tokens, dataDir: o.dataDir, maxPayloadBytes: o.maxPayloadBytes ?? 8 * 1024 * 1024 * 1024 }));
  app.route("/dashboard", dashboardApp(store, tokens));

  return {
    store,
    tokens,
    firstToken,
    fetch(req, ip) {
      // The hot path skips the router: machines only ever POST here.
      if (OMAHA_PATHS.has(pathOf(req.url))) {
        if (req.method !== "POST") return new Response("Expected a POST\n", { status: 400 });
        return handleOmaha(req, ip, baseUrl(req), rollout, committer, counters);
      }
      return app.fetch(req, { ip });
    },
    async close() {
      committer.drain();
      await walSync?.sync();
      await walSync?.close();
      db.close();
    },
  };
}
