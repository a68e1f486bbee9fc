// The etcd v2 client every tool shares (etcdctl now; fleet and locksmith next). It speaks only
// the public v2 HTTP API, so it works against the real etcd as well as ours.
import type { NodeJSON } from "../kv/types.ts";
import { InvalidResponseError, NoEndpointsError } from "./errors.ts";
import {
  createInOrderAction,
  deleteAction,
  doKeys,
  getAction,
  setAction,
  type DeleteOptions,
  type GetOptions,
  type KeyResponse,
  type RequestOptions,
  type SetOptions,
  type WaitOptions,
} from "./keys.ts";
import { addMember, leader, listMembers, removeMember, updateMember } from "./members.ts";
import { HealthSchema, VersionSchema, parseJSON, type Member } from "./schema.ts";
import { Transport, type RequestLog, type TLSFiles } from "./transport.ts";
import { joinURL, normaliseEndpoint } from "./url.ts";
import { Watcher, watchLoop, type WatchItem, type WatchLoopOptions, type WatcherOptions } from "./watch.ts";

export interface ClientOptions {
  /** Client URLs; "host:port" without a scheme is not accepted, "host" means http://host. */
  endpoints: string[];
  /** Per attempt: milliseconds until response headers; 0 = none (default 0). Watches never time out. */
  headerTimeout?: number;
  /** Per call, over all attempts: milliseconds; 0 = none (default 0). Watches never time out. */
  requestTimeout?: number;
  /** Spread load the way the Go client does: endpoints in random order (default false). */
  shuffle?: boolean;
  username?: string;
  password?: string;
  tls?: TLSFiles;
  /** Sees every attempt before it is sent (etcdctl --debug prints them as curl lines). */
  onRequest?: (r: RequestLog) => void;
  fetch?: typeof fetch;
}

export class Client {
  readonly transport: Transport;

  constructor(private readonly opts: ClientOptions) {
    this.transport = new Transport({ ...opts, endpoints: opts.endpoints.map(normaliseEndpoint) });
  }

  endpoints(): string[] {
    return this.transport.endpoints();
  }

  /**
   * Replaces the endpoints with the client URLs the cluster publishes in /v2/members.
   * Unchanged membership keeps the current order (and the pinned endpoint).
   */
  async sync(o: RequestOptions = {}): Promise<void> {
    const members = await listMembers(this.transport, { signal: this.signal(o) });
    const eps = members.flatMap((m) => m.clientURLs).sort();
    if (eps.length === 0) throw new NoEndpointsError();
    const cur = this.transport.endpoints().sort();
    if (eps.length === cur.length && eps.every((e, i) => e === cur[i])) return;
    this.transport.setEndpoints(eps);
  }

  /**
   * Re-syncs every `intervalMs` until the signal fires. A failed sync keeps the endpoints it
   * had (a member may be down); the next round tries again.
   */
  async autoSync(intervalMs: number, signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      await this.sync({ signal }).catch(() => undefined);
      await new Promise<void>((resolve) => {
        const t = setTimeout(done, intervalMs);
        function done() {
          clearTimeout(t);
          signal.removeEventListener("abort", done);
          resolve();
        }
        signal.addEventListener("abort", done, { once: true });
      });
    }
  }

  // --- keys ---

  get(key: string, o: GetOptions = {}): Promise<KeyResponse> {
    return doKeys(this.transport, getAction(key, o), { signal: this.signal(o) });
  }

  /** The children of a directory (all descendants with `recursive`); a key lists as itself. */
  async ls(key: string, o: GetOptions = {}): Promise<NodeJSON[]> {
    const r = await this.get(key, o);
    return r.node.dir ? (r.node.nodes ?? []) : [r.node];
  }

  set(key: string, value: string, o: SetOptions = {}): Promise<KeyResponse> {
    // A create must not run twice, so it is never retried on another endpoint.
    return doKeys(this.transport, setAction(key, value, o), { signal: this.signal(o), oneShot: o.prevExist === false });
  }

  create(key: string, value: string, o: { ttl?: number } & RequestOptions = {}): Promise<KeyResponse> {
    return this.set(key, value, { ...o, prevExist: false });
  }

  update(key: string, value: string, o: { ttl?: number } & RequestOptions = {}): Promise<KeyResponse> {
    return this.set(key, value, { ...o, prevExist: true });
  }

  compareAndSwap(
    key: string,
    value: string,
    o: { prevValue?: string; prevIndex?: number; ttl?: number } & RequestOptions,
  ): Promise<KeyResponse> {
    if (!o.prevValue && !o.prevIndex) return Promise.reject(new Error("compareAndSwap needs prevValue or prevIndex"));
    return this.set(key, value, o);
  }

  mkdir(key: string, o: { ttl?: number } & RequestOptions = {}): Promise<KeyResponse> {
    return this.set(key, "", { ...o, dir: true, prevExist: false });
  }

  /** Creates a directory, or sets the TTL of an existing one. */
  setDir(key: string, o: { ttl?: number } & RequestOptions = {}): Promise<KeyResponse> {
    return this.set(key, "", { ...o, dir: true });
  }

  updateDir(key: string, o: { ttl?: number } & RequestOptions = {}): Promise<KeyResponse> {
    return this.set(key, "", { ...o, dir: true, prevExist: true });
  }

  delete(key: string, o: DeleteOptions = {}): Promise<KeyResponse> {
    return doKeys(this.transport, deleteAction(key, o), { signal: this.signal(o), oneShot: true });
  }

  compareAndDelete(key: string, o: { prevValue?: string; prevIndex?: number } & RequestOptions): Promise<KeyResponse> {
    if (!o.prevValue && !o.prevIndex) return Promise.reject(new Error("compareAndDelete needs prevValue or prevIndex"));
    return this.delete(key, o);
  }

  /** POST: a new key under `dir` named by the index that created it (queues, elections). */
  createInOrder(dir: string, value: string, o: { ttl?: number } & RequestOptions = {}): Promise<KeyResponse> {
    return doKeys(this.transport, createInOrderAction(dir, value, o), { signal: this.signal(o) });
  }

  // --- watches ---

  /** One event: the first change at or after `waitIndex` (0 = the next change). */
  watch(key: string, o: WaitOptions = {}): Promise<KeyResponse> {
    const w = new Watcher(this.transport, key, { recursive: o.recursive });
    w.waitIndex = o.waitIndex ?? 0;
    return w.next(o.signal);
  }

  /** A Go-style watcher: next() returns one event and re-arms after it. */
  watcher(key: string, o: WatcherOptions = {}): Watcher {
    return new Watcher(this.transport, key, o);
  }

  /** Events until the signal fires; re-syncs after lost history (error 401). */
  watchLoop(key: string, o: WatchLoopOptions = {}): AsyncGenerator<WatchItem> {
    return watchLoop(this.transport, key, o);
  }

  // --- members ---

  members(o: RequestOptions = {}): Promise<Member[]> {
    return listMembers(this.transport, { signal: this.signal(o) });
  }

  leader(o: RequestOptions = {}): Promise<Member> {
    return leader(this.transport, { signal: this.signal(o) });
  }

  addMember(peerURLs: string[], o: RequestOptions = {}): Promise<Member> {
    return addMember(this.transport, peerURLs, { signal: this.signal(o) });
  }

  removeMember(id: string, o: RequestOptions = {}): Promise<void> {
    return removeMember(this.transport, id, { signal: this.signal(o) });
  }

  updateMember(id: string, peerURLs: string[], o: RequestOptions = {}): Promise<void> {
    return updateMember(this.transport, id, peerURLs, { signal: this.signal(o) });
  }

  // --- server ---

  /**
   * One member's /health (no failover: the question is about that member). `url` defaults to
   * the pinned endpoint. Throws an EndpointError when it cannot be asked.
   */
  async health(url?: string, o: RequestOptions = {}): Promise<boolean> {
    const ep = url ?? this.transport.endpoints()[0]!;
    // 503 {"health":"false"} is an answer here, not a failed member.
    const r = await this.transport.send(ep, { method: "GET", url: (e) => joinURL(e, "health") }, this.signal(o));
    const h = parseJSON(HealthSchema, r.body);
    if (h === null) throw new InvalidResponseError(ep, "not a health answer");
    return h.health === true || h.health === "true";
  }

  async version(o: RequestOptions = {}): Promise<{ server: string; cluster: string }> {
    const r = await this.transport.do({ method: "GET", url: (e) => joinURL(e, "version") }, { signal: this.signal(o) });
    const v = r.status === 200 ? parseJSON(VersionSchema, r.body) : null;
    if (v === null) throw new InvalidResponseError(r.endpoint, `HTTP ${r.status} without a version`);
    return { server: v.etcdserver, cluster: v.etcdcluster };
  }

  private signal(o: RequestOptions): AbortSignal | undefined {
    const ms = this.opts.requestTimeout ?? 0;
    if (ms <= 0) return o.signal;
    const t = AbortSignal.timeout(ms);
    return o.signal ? AbortSignal.any([o.signal, t]) : t;
  }
}
