// Runs a member: opens its data, serves clients and peers, stops cleanly on SIGTERM/SIGINT.
import { Hono } from "hono";
import { EtcdServer } from "./server.ts";
import { clientFetch, MAX_BODY_BYTES } from "./http.ts";
import { ETCD_CLUSTER_VERSION, ETCD_VERSION } from "./version.ts";
import { startHeapGovernor } from "./heap-governor.ts";
import type { KvConfig, Listener } from "./config.ts";
import { logger } from "../log/log.ts";
import { bootstrap } from "./discovery.ts";
import { parseInitialCluster } from "./membership.ts";
import { runProxy } from "./proxy.ts";

const log = logger("etcdmain");

function peerApp(server: EtcdServer): Hono {
  const app = new Hono();
  app.get("/version", (c) => c.json({ etcdserver: ETCD_VERSION, etcdcluster: ETCD_CLUSTER_VERSION }));
  // A member joining with --initial-cluster-state existing learns the cluster here.
  app.get("/members", (c) => c.json(server.members(), 200, { "X-Etcd-Cluster-ID": server.clusterId }));
  app.route("/", server.transport.routes());
  return app;
}

/** A listener could not be opened (port taken, address not local): one line, exit 1. */
export class ListenError extends Error {}

type Fetch = (req: Request, server: Bun.Server<{ from: string }>) => Response | undefined | Promise<Response | undefined>;

function listen(l: Listener, fetch: Fetch, what: string, websocket?: Bun.WebSocketHandler<{ from: string }>) {
  try {
    return open(l, fetch, what, websocket);
  } catch (e) {
    const code = (e as { code?: string }).code;
    const why = code === "EADDRINUSE" ? "bind: address already in use" : (e as Error).message.split("\n")[0];
    throw new ListenError(`listen tcp ${l.hostname}:${l.port}: ${why}`);
  }
}

function open(l: Listener, fetch: Fetch, what: string, websocket?: Bun.WebSocketHandler<{ from: string }>) {
  const s = Bun.serve<{ from: string }>({
    hostname: l.hostname,
    port: l.port,
    fetch,
    websocket: websocket ?? { message() {} },
    tls: l.tls
      ? {
          cert: Bun.file(l.tls.certFile),
          key: Bun.file(l.tls.keyFile),
          ...(l.tls.trustedCaFile ? { ca: Bun.file(l.tls.trustedCaFile) } : {}),
          // Without a certificate signed by the trusted CA the handshake fails: nothing reaches a handler.
          requestCert: l.tls.clientCertAuth,
          rejectUnauthorized: l.tls.clientCertAuth,
        }
      : undefined,
    // Above our own limit so the handler, not Bun, answers with etcd's error.
    maxRequestBodySize: 4 * MAX_BODY_BYTES,
    // Watches wait for events for as long as the client likes.
    idleTimeout: 0,
  });
  log.info(`serving ${what} on ${l.tls ? "https" : "http"}://${l.hostname}:${s.port}`);
  if (!l.tls) log.warn(`serving insecure ${what} on ${l.hostname}:${s.port}, this is strongly discouraged!`);
  return s;
}

/** Thrown when discovery failed for good (already explained in the log): exit 1. */
export class BootstrapFailed extends Error {}

export async function serve(cfg: KvConfig): Promise<void> {
  const s = cfg.server;
  const boot = await bootstrap({ dataDir: s.dataDir, name: s.name, peerURLs: s.advertisePeerUrls, discovery: cfg.discovery });
  if (boot.as === "exit") throw new BootstrapFailed(String(boot.error));
  if (boot.as === "proxy") {
    const proxy = await runProxy({ dataDir: s.dataDir, listen: cfg.clientListeners, peerURLs: boot.peerURLs });
    await untilSignal();
    await proxy.stop();
    return;
  }
  if (boot.initialCluster !== undefined) {
    s.initialCluster = parseInitialCluster(boot.initialCluster);
    s.clusterState = "new";
  }
  const server = await EtcdServer.open(cfg.server);
  // a full collection whenever the heap grows 1.3x past the live data: the peak RSS of a write burst
  const heap = startHeapGovernor();
  const clients = clientFetch(server);
  const peers = peerApp(server);
  const listeners = [
    ...cfg.peerListeners.map((l) =>
      listen(l, (req, srv) => server.transport.upgrade(req, srv) ?? peers.fetch(req), "peer traffic", server.transport.websocket),
    ),
    ...cfg.clientListeners.map((l) => listen(l, clients, "client requests")),
  ];
  await new Promise<void>((resolve) => {
    const stop = (why: string) => {
      log.info(`${why}, shutting down`);
      resolve();
    };
    process.once("SIGTERM", () => stop("received SIGTERM"));
    process.once("SIGINT", () => stop("received SIGINT"));
    void server.removal.then(() => stop("removed from the cluster"));
  });
  // The server first hands leadership over, which needs the peer listener for the answers.
  await server.stop();
  for (const l of listeners) l.stop(true);
  heap.stop();
  log.info("stopped");
}

function untilSignal(): Promise<void> {
  return new Promise((resolve) => {
    const stop = (why: string) => {
      log.info(`${why}, shutting down`);
      resolve();
    };
    process.once("SIGTERM", () => stop("received SIGTERM"));
    process.once("SIGINT", () => stop("received SIGINT"));
  });
}
