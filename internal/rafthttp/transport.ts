// Peer transport: raft messages over HTTP(S) between members' peer URLs. Per peer, one request in
// flight at a time; whatever raft sends meanwhile goes out as the next batch, so a busy leader
// sends few large requests instead of one per message. Raft retransmits what is lost, so a
// failed batch is dropped and the peer reported unreachable.
import { Hono } from "hono";
import type { Message } from "../raft/index.ts";
import { decodeBatch, decodeSnapshotMessage, encodeBatch, encodeSnapshotMessage } from "./codec.ts";
import { logger } from "../log/log.ts";

const log = logger("rafthttp");

export interface PeerTls {
  ca?: string;
  cert?: string;
  key?: string;
}

export interface TransportOptions {
  selfId: string;
  clusterId: string;
  tls?: PeerTls;
  /** A message from a peer, for raft to step. */
  onMessage(m: Message): void;
  onUnreachable(id: string): void;
  onSnapshotStatus(id: string, ok: boolean): void;
  /** Whether a member ID was removed from the cluster (its requests get 410 Gone). */
  isRemoved(id: string): boolean;
  /** A peer answered 410: this member was removed from the cluster. */
  onRemoved(): void;
}

/** Round-trip statistics of one follower, as /v2/stats/leader shows them. */
export class LatencyStats {
  current = 0;
  private n = 0;
  private sum = 0;
  private sumSq = 0;
  minimum = Number.POSITIVE_INFINITY;
  maximum = 0;
  success = 0;
  fail = 0;

  /** A batch delivered by request, in `ms`. */
  record(ms: number): void {
    this.sample(ms);
    this.success++;
  }

  /** A round trip measured without delivering anything (a probe). */
  sample(ms: number): void {
    this.current = ms;
    this.n++;
    this.sum += ms;
    this.sumSq += ms * ms;
    this.minimum = Math.min(this.minimum, ms);
    this.maximum = Math.max(this.maximum, ms);
  }

  toJSON() {
    const average = this.n ? this.sum / this.n : 0;
    const variance = this.n ? this.sumSq / this.n - average * average : 0;
    return {
      latency: {
        current: this.current,
        average,
        standardDeviation: Math.sqrt(Math.max(0, variance)),
        minimum: this.n ? this.minimum : 0,
        maximum: this.maximum,
      },
      counts: { fail: this.fail, success: this.success },
    };
  }
}

/** fetch options for requests to peers: their CA, and our certificate when peers check clients. */
export function peerFetchInit(tls: PeerTls | undefined): RequestInit {
  if (!tls || (!tls.ca && !tls.cert)) return {};
  return {
    tls: {
      ...(tls.ca ? { ca: Bun.file(tls.ca) } : {}),
      ...(tls.cert ? { cert: Bun.file(tls.cert) } : {}),
      ...(tls.key ? { key: Bun.file(tls.key) } : {}),
    },
  } as RequestInit;
}

const SEND_TIMEOUT_MS = 5000;
const PROBE_INTERVAL_MS = 1000;
/** How soon a closed stream to a peer is tried again (requests carry the traffic meanwhile). */
const STREAM_RETRY_MS = 500;
/** A stream closed with this code tells its sender it was removed (the 410 of a request). */
const REMOVED_CLOSE_CODE = 4410;
const SNAPSHOT_TIMEOUT_MS = 120_000;

class Peer {
  private queue: Message[] = [];
  private sending = false;
  private next = 0;
  readonly stats = new LatencyStats();
  /** When the peer last answered, for the strict reconfiguration check. */
  activeSince: number | null = null;

  constructor(
    readonly id: string,
    public urls: string[],
    private readonly t: Transport,
  ) {}

  /** The long-lived stream to this peer: every batch is one frame, no request per batch. */
  private ws: WebSocket | null = null;
  private wsOpen = false;
  private wsRetryAt = 0;
  private flushScheduled = false;

  send(m: Message): void {
    if (m.type === "MsgSnap") {
      void this.sendSnapshot(m);
      return;
    }
    this.queue.push(m);
    if (this.wsOpen) {
      // Everything raft hands over in one Ready goes out as one frame.
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        queueMicrotask(() => this.flushStream());
      }
      return;
    }
    this.connect();
    if (!this.sending) void this.flush();
  }

  private flushStream(): void {
    this.flushScheduled = false;
    if (this.queue.length === 0) return;
    if (!this.wsOpen || !this.ws) {
      if (!this.sending) void this.flush();
      return;
    }
    const batch = this.queue;
    this.queue = [];
    this.ws.send(encodeBatch(batch));
    this.stats.success++;
  }

  private connect(): void {
    if (this.ws || Date.now() < this.wsRetryAt) return;
    const url = `${this.url().replace(/^http/, "ws")}/raft/stream`;
    const ws = new WebSocket(url, {
      headers: { "X-Etcd-Cluster-ID": this.t.opts.clusterId, "X-Server-From": this.t.opts.selfId },
      ...(this.t.tlsInit as { tls?: Record<string, unknown> }),
    } as Bun.WebSocketOptions);
    this.ws = ws;
    ws.onopen = () => {
      this.wsOpen = true;
      log.info(`stream to peer ${this.id} is open`);
      this.markActive();
      if (!this.sending) this.flushStream();
    };
    ws.onclose = (ev) => {
      if (ev.code === REMOVED_CLOSE_CODE) {
        this.t.opts.onRemoved();
        return;
      }
      if (this.wsOpen) log.warn(`stream to peer ${this.id} closed`);
      this.ws = null;
      this.wsOpen = false;
      this.wsRetryAt = Date.now() + STREAM_RETRY_MS;
      // Whatever was queued for the stream goes by request instead.
      if (this.queue.length > 0 && !this.sending) void this.flush();
    };
  }

  stop(): void {
    this.ws?.close();
  }

  private markActive(): void {
    if (this.activeSince === null) {
      this.activeSince = Date.now();
      log.info(`peer ${this.id} became active`);
    }
  }

  private url(): string {
    return this.urls[this.next % this.urls.length]!;
  }

  private async flush(): Promise<void> {
    this.sending = true;
    try {
      while (this.queue.length > 0) {
        const batch = this.queue;
        this.queue = [];
        const started = performance.now();
        try {
          const r = await this.t.post(`${this.url()}/raft`, encodeBatch(batch), "application/json", SEND_TIMEOUT_MS);
          if (r.status === 410) {
            this.t.opts.onRemoved();
            return;
          }
          if (!r.ok) throw new Error(`status ${r.status}: ${(await r.text()).trim()}`);
          this.stats.record(performance.now() - started);
          this.markActive();
        } catch (e) {
          this.failed(e);
        }
        if (this.wsOpen) break;
      }
    } finally {
      this.sending = false;
    }
    if (this.wsOpen) this.flushStream();
  }

  /**
   * Followers only ever write to the leader, so without this they would not know whether the
   * other peers are up: the strict reconfiguration checks need that on every member. It also
   * tells a member it was removed when nothing else would: one removed before it applied its
   * own addition never counts itself a voter, so it never campaigns or answers, and no message
   * of its could get the 410.
   */
  async probe(): Promise<void> {
    const started = performance.now();
    try {
      const r = await fetch(`${this.url()}/raft/probe`, {
        headers: { "X-Etcd-Cluster-ID": this.t.opts.clusterId, "X-Server-From": this.t.opts.selfId },
        signal: AbortSignal.timeout(1000),
        ...this.t.tlsInit,
      });
      if (r.status === 410) {
        this.t.opts.onRemoved();
        return;
      }
      if (!r.ok) throw new Error(`status ${r.status}`);
      // With a stream there is no answer per batch: the probe's round trip is the latency.
      this.stats.sample(performance.now() - started);
      this.markActive();
    } catch (e) {
      if (this.activeSince !== null) {
        log.warn(`peer ${this.id} became inactive: ${(e as Error).message}`);
        this.activeSince = null;
      }
    }
  }

  private failed(e: unknown): void {
    this.stats.fail++;
    if (this.activeSince !== null) {
      log.warn(`peer ${this.id} became inactive: ${(e as Error).message}`);
      this.activeSince = null;
    }
    this.next++;
    this.t.opts.onUnreachable(this.id);
  }

  private async sendSnapshot(m: Message): Promise<void> {
    const size = m.snapshot?.data.byteLength ?? 0;
    log.info(`sending snapshot at index ${m.snapshot?.index} (${size} bytes) to ${this.id}`);
    const started = performance.now();
    try {
      const r = await this.t.post(`${this.url()}/raft/snapshot`, encodeSnapshotMessage(m), "application/octet-stream", SNAPSHOT_TIMEOUT_MS);
      if (!r.ok) throw new Error(`status ${r.status}: ${(await r.text()).trim()}`);
      log.info(`sent snapshot to ${this.id} in ${Math.round(performance.now() - started)} ms`);
      this.t.opts.onSnapshotStatus(this.id, true);
    } catch (e) {
      log.warn(`sending snapshot to ${this.id} failed: ${(e as Error).message}`);
      this.failed(e);
      this.t.opts.onSnapshotStatus(this.id, false);
    }
  }
}

export class Transport {
  private readonly peers = new Map<string, Peer>();
  readonly tlsInit: RequestInit;
  private readonly prober: ReturnType<typeof setInterval>;

  constructor(readonly opts: TransportOptions) {
    this.tlsInit = peerFetchInit(opts.tls);
    this.prober = setInterval(() => {
      for (const p of this.peers.values()) void p.probe();
    }, PROBE_INTERVAL_MS);
  }

  stop(): void {
    clearInterval(this.prober);
    for (const p of this.peers.values()) p.stop();
  }

  post(url: string, body: string | Uint8Array, type: string, timeoutMs: number): Promise<Response> {
    return fetch(url, {
      method: "POST",
      body,
      headers: { "Content-Type": type, "X-Etcd-Cluster-ID": this.opts.clusterId, "X-Server-From": this.opts.selfId },
      signal: AbortSignal.timeout(timeoutMs),
      ...this.tlsInit,
    });
  }

  /** Makes the peer set exactly these members (other than this one). */
  setPeers(members: { id: string; peerURLs: string[] }[]): void {
    const want = new Map(members.filter((m) => m.id !== this.opts.selfId).map((m) => [m.id, m.peerURLs]));
    for (const [id, p] of this.peers)
      if (!want.has(id)) {
        p.stop();
        this.peers.delete(id);
      }
    for (const [id, urls] of want) {
      const p = this.peers.get(id);
      if (p) p.urls = urls;
      else this.peers.set(id, new Peer(id, urls, this));
    }
  }

  /** MsgApp counts for /v2/stats/self. */
  readonly counts = { sendAppend: 0, recvAppend: 0 };

  send(msgs: Message[]): void {
    for (const m of msgs) {
      const p = this.peers.get(m.to);
      if (!p) continue;
      if (m.type === "MsgApp") this.counts.sendAppend++;
      p.send(m);
    }
  }

  activeSince(id: string): number | null {
    return this.peers.get(id)?.activeSince ?? null;
  }

  followerStats(): Record<string, ReturnType<LatencyStats["toJSON"]>> {
    return Object.fromEntries([...this.peers].map(([id, p]) => [id, p.stats.toJSON()]));
  }

  /** Accepts a peer's stream (`/raft/stream`); null when the request is something else. */
  upgrade(req: Request, server: Bun.Server<unknown>): Response | undefined | null {
    if (!req.url.endsWith("/raft/stream") || req.headers.get("upgrade")?.toLowerCase() !== "websocket") return null;
    const bad = this.check(req);
    if (bad) return bad;
    return server.upgrade(req, { data: { from: req.headers.get("x-server-from") ?? "" } }) ? undefined : new Response("upgrade failed\n", { status: 400 });
  }

  /** Bun.serve's websocket handlers for the peer listener: each frame is a batch. */
  readonly websocket: Bun.WebSocketHandler<{ from: string }> = {
    message: (ws, data) => {
      if (this.opts.isRemoved(ws.data.from)) {
        ws.close(REMOVED_CLOSE_CODE, "the member has been permanently removed from the cluster");
        return;
      }
      let msgs: Message[];
      try {
        msgs = decodeBatch(typeof data === "string" ? data : new TextDecoder().decode(data));
      } catch (e) {
        log.warn(`bad raft frame: ${(e as Error).message}`);
        return;
      }
      this.receive(msgs);
    },
  };

  private receive(msgs: Message[]): void {
    for (const m of msgs) {
      if (m.type === "MsgApp") this.counts.recvAppend++;
      this.opts.onMessage(m);
    }
  }

  private check(req: Request): Response | null {
    const cid = req.headers.get("x-etcd-cluster-id");
    if (cid !== null && cid !== this.opts.clusterId) {
      log.warn(`rejected a message from cluster ${cid} (this is ${this.opts.clusterId})`);
      return new Response("cluster ID mismatch\n", { status: 412 });
    }
    const from = req.headers.get("x-server-from");
    if (from !== null && this.opts.isRemoved(from)) return new Response("the member has been permanently removed from the cluster\n", { status: 410 });
    return null;
  }

  /** The receiving side, mounted on the peer listener. */
  routes(): Hono {
    const app = new Hono();
    const check = (req: Request) => this.check(req);
    app.get("/raft/probe", (c) => check(c.req.raw) ?? c.text("ok\n"));
    app.post("/raft", async (c) => {
      const bad = check(c.req.raw);
      if (bad) return bad;
      let msgs: Message[];
      try {
        msgs = decodeBatch(await c.req.text());
      } catch (e) {
        return c.text(`bad raft batch: ${(e as Error).message}\n`, 400);
      }
      this.receive(msgs);
      return c.body(null, 204);
    });
    app.post("/raft/snapshot", async (c) => {
      const bad = check(c.req.raw);
      if (bad) return bad;
      const body = new Uint8Array(await c.req.arrayBuffer());
      let m: Message;
      try {
        m = decodeSnapshotMessage(body);
      } catch (e) {
        return c.text(`bad snapshot message: ${(e as Error).message}\n`, 400);
      }
      log.info(`received snapshot at index ${m.snapshot?.index} (${m.snapshot?.data.byteLength} bytes) from ${m.from}`);
      this.opts.onMessage(m);
      return c.body(null, 204);
    });
    return app;
  }
}
