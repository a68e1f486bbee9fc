// etcd's v2 discovery (etcdserver/api/v2discovery): a new member finds the other founding members
// of its cluster through a token directory on a separate etcd v2 keys API, then boots with the
// `name=peerURL,...` string it learned in place of --initial-cluster.
//
//   <url>/_config/size        N, set by the operator (hidden, so listings skip it)
//   <url>/<memberIDhex>       "name=peerURL[,name=peerURL2]", created once by each member
//
// The first N keys by createdIndex are the cluster; anyone later finds it full.
import { existsSync } from "node:fs";
import { join } from "node:path";
import {
  CanceledError,
  Client,
  ClusterError,
  EndpointError,
  ErrorCode,
  EtcdError,
  InvalidResponseError,
  type KeyResponse,
} from "../kvclient/index.ts";
import type { NodeJSON } from "./types.ts";
import { logger } from "../log/log.ts";
import { Wal } from "../wal/wal.ts";
import { memberId } from "./membership.ts";

const log = logger("discovery");

export type DiscoveryErrorKind =
  | "full"
  | "duplicate-id"
  | "duplicate-name"
  | "duplicate-url"
  | "size-not-found"
  | "bad-size"
  | "bad-endpoint"
  | "invalid-url"
  | "too-many-retries";

// etcd's words (v2discovery's Err* values), so logs and scripts read the same.
const MESSAGES: Record<DiscoveryErrorKind, string> = {
  full: "discovery: cluster is full",
  "duplicate-id": "discovery: found duplicate id",
  "duplicate-name": "discovery: found duplicate name",
  "duplicate-url": "discovery: found duplicate url",
  "size-not-found": "discovery: size key not found",
  "bad-size": "discovery: size key is bad",
  "bad-endpoint": "discovery: bad discovery endpoint",
  "invalid-url": "discovery: invalid URL",
  "too-many-retries": "discovery: too many retries",
};

/** A discovery failure the caller decides about (exit, or become a proxy when the cluster is full). */
export class DiscoveryError extends Error {
  constructor(
    readonly kind: DiscoveryErrorKind,
    /**
     * The cluster as the registry has it, `name=url,...`, when known: for "full" the first N
     * registrations (what a proxy forwards to), for "duplicate-name"/"invalid-url" the bad string.
     */
    readonly cluster = "",
    detail = "",
  ) {
    super(detail === "" ? MESSAGES[kind] : `${MESSAGES[kind]}: ${detail}`);
    this.name = "DiscoveryError";
  }
}

export interface DiscoveryOptions {
  /** The token directory: `http://host:port/v2/keys/_etcd/registry/<token>` (any path works). */
  url: string;
  /** --discovery-proxy: an HTTP proxy for every request to the registry ("host:port" means http). */
  proxy?: string;
  signal?: AbortSignal;
  /** Milliseconds per registry request (etcd: 5 s). Watches never time out. */
  timeoutMs?: number;
  /** Backoff unit: the n-th retry waits 2^min(n,8) units (etcd: 1 s, so 2 s ... 256 s). */
  retryBaseMs?: number;
  /** Give up with "too many retries" after this many (etcd: 2^32-1, i.e. never). */
  maxRetries?: number;
  /** For tests: how a backoff waits. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  fetch?: typeof fetch;
}

export interface DiscoverOptions extends DiscoveryOptions {
  /** This member's --name. */
  name: string;
  /** This member's ID in hex, derived with the discovery URL as the cluster token (etcd does). */
  memberId: string;
  /** This member's --initial-advertise-peer-urls. */
  peerURLs: string[];
}

/**
 * Registers this member under the token and waits until N members have registered. Returns the
 * initial cluster, `name=peerURL,...` in registration order. Network and server failures are
 * retried with backoff for as long as it takes; the answers that settle it throw DiscoveryError.
 */
export async function discover(o: DiscoverOptions): Promise<string> {
  const value = registrationValue(o.name, o.peerURLs);
  return new Discovery(o, o.memberId).join(value);
}

/**
 * etcd's GetCluster: the cluster the token describes, without registering. Waits for N members;
 * when more than N registered, the first N (what a discovery proxy forwards to).
 */
export async function getCluster(o: DiscoveryOptions): Promise<string> {
  return new Discovery(o, "").get();
}

/** The registration value: `name=url` pairs, sorted, as etcd's URLsMap.String() writes them. */
export function registrationValue(name: string, peerURLs: string[]): string {
  return peerURLs
    .map((u) => `${name}=${u}`)
    .sort()
    .join(",");
}

/** Backoff before the n-th retry (n >= 1): 2^min(n, 8) units. */
export function backoffMs(retry: number, baseMs = 1000): number {
  return 2 ** Math.min(Math.max(retry, 0), 8) * baseMs;
}

/**
 * etcd's types.NewURLsMap on an initial-cluster string: name -> sorted URLs. Throws with Go's
 * message when a URL is not scheme://host:port without a path.
 */
export function parseURLsMap(s: string): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (const part of s.split(",")) {
    if (part === "") continue;
    const eq = part.indexOf("=");
    const name = eq >= 0 ? part.slice(0, eq) : part;
    const url = eq >= 0 ? part.slice(eq + 1) : "";
    m.set(name, [...(m.get(name) ?? []), url]);
  }
  for (const [name, urls] of m) m.set(name, urls.map(checkURL).sort());
  return m;
}

function checkURL(raw: string): string {
  const s = raw.trim();
  const scheme = /^([a-zA-Z][a-zA-Z0-9+.-]*):/.exec(s)?.[1]?.toLowerCase() ?? "";
  if (!["http", "https", "unix", "unixs"].includes(scheme)) throw new Error(`URL scheme must be http, https, unix, or unixs: ${s}`);
  const rest = s.slice(scheme.length + 1);
  const m = /^\/\/([^/?#]*)([^?#]*)/.exec(rest);
  const host = m?.[1] ?? "";
  if (!/^(\[[^\]]*\]|[^:[\]]*):[^:]*$/.test(host)) throw new Error(`URL address does not have the form "host:port": ${s}`);
  if ((m?.[2] ?? "") !== "") throw new Error(`URL must not contain a path: ${s}`);
  return s;
}

/** The peer URLs of an initial-cluster string, in order, without duplicates. */
export function clusterPeerURLs(cluster: string): string[] {
  return [...new Set([...parseURLsMap(cluster).values()].flat())];
}

/**
 * What a data dir holds, as etcd's identifyDataDir sees it: a member (a WAL exists: discovery is
 * never run again), a proxy (`proxy/` from an earlier cluster-full fallback), or nothing yet.
 */
export function identifyDataDir(dataDir: string): "member" | "proxy" | "empty" {
  if (!existsSync(dataDir)) return "empty";
  if (Wal.exists(join(dataDir, "member", "wal"))) return "member";
  if (existsSync(join(dataDir, "proxy"))) return "proxy";
  return "empty";
}

/**
 * etcdmain's explanation of a discovery failure (one line per fact, on the etcdmain tag). The
 * caller exits 1 afterwards.
 */
export function explainDiscoveryFailure(e: unknown, o: { name: string; url: string; dataDir: string }): void {
  const main = logger("etcdmain");
  const kind = e instanceof DiscoveryError ? e.kind : null;
  const msg = e instanceof Error ? e.message : String(e);
  if (kind === "duplicate-id") {
    main.error(`member ${JSON.stringify(o.name)} has previously registered with discovery service token (${o.url}).`);
    main.error(`But etcd could not find valid cluster configuration in the given data dir (${o.dataDir}).`);
    main.info("Please check the given data dir path if the previous bootstrap succeeded");
    main.info("or use a new discovery token if the previous bootstrap failed.");
  } else if (kind === "duplicate-name") {
    main.error(`member with duplicated name has registered with discovery service token(${o.url}).`);
    main.error("please check (cURL) the discovery token for more information.");
    main.error("please do not reuse the discovery token and generate a new one to bootstrap the cluster.");
  } else {
    main.error(`failed to join discovery cluster (${msg})`);
    main.info(`discovery token ${o.url} was used, but failed to bootstrap the cluster.`);
    main.info("please generate a new discovery token and try to bootstrap again.");
  }
}

export interface DiscoveryFlags {
  /** --discovery */
  url: string;
  /** --discovery-fallback: what a member whose cluster is full does. */
  fallback: "exit" | "proxy";
  /** --discovery-proxy ("" = none) */
  proxy: string;
}

export type Bootstrap =
  /** Start the member; `initialCluster` (name=peerURL,...) replaces --initial-cluster when discovered. */
  | { as: "member"; initialCluster?: string }
  /** Start the v2 proxy (runProxy); `peerURLs` are undefined when the data dir's cluster file decides. */
  | { as: "proxy"; peerURLs?: string[] }
  /** Discovery failed for good and was explained in the log: exit 1. */
  | { as: "exit"; error: unknown };

/**
 * etcdmain's start-up decision for a data dir: a member with a WAL restarts as it is; a data dir
 * that fell back to proxying before stays a proxy; a new member with --discovery discovers its
 * cluster, and one whose cluster is full becomes a proxy (or exits, with --discovery-fallback=exit).
 * `clusterToken` must be the discovery URL when discovering (etcd derives member IDs from it).
 */
export async function bootstrap(o: {
  dataDir: string;
  name: string;
  peerURLs: string[];
  discovery: DiscoveryFlags | null;
  signal?: AbortSignal;
}): Promise<Bootstrap> {
  const kind = identifyDataDir(o.dataDir);
  if (kind === "member") return { as: "member" };
  if (kind === "proxy") {
    logger("etcdmain").info("the server is already initialized as proxy before, starting as etcd proxy...");
    return { as: "proxy" };
  }
  const d = o.discovery;
  if (d === null || d.url === "") return { as: "member" };
  logger("etcdmain").info(`discovery URL= ${d.url}`);
  try {
    const initialCluster = await discover({
      url: d.url,
      proxy: d.proxy || undefined,
      name: o.name,
      peerURLs: o.peerURLs,
      memberId: memberId(o.peerURLs, d.url),
      signal: o.signal,
    });
    return { as: "member", initialCluster };
  } catch (e) {
    if (e instanceof DiscoveryError && e.kind === "full" && d.fallback === "proxy") {
      logger("etcdmain").info("discovery cluster full, falling back to proxy");
      return { as: "proxy", peerURLs: clusterPeerURLs(e.cluster) };
    }
    if (o.signal?.aborted) throw e;
    explainDiscoveryFailure(e, { name: o.name, url: d.url, dataDir: o.dataDir });
    return { as: "exit", error: e };
  }
}

interface Checked {
  /** Registrations (not _config), by createdIndex; cut to the first N when the cluster is full. */
  nodes: NodeJSON[];
  size: number;
  /** X-Etcd-Index of the listing: the watch starts after it. */
  index: number;
  /** The token directory's key on the registry (the parent of every registration). */
  dirKey: string;
}

const SIZE_KEY = "/_config/size";

class Discovery {
  private readonly client: Client;
  private readonly url: string;
  private readonly selfKey: string;
  private readonly timeoutMs: number;
  private readonly signal: AbortSignal | undefined;
  private retries = 0;

  constructor(
    private readonly o: DiscoveryOptions,
    private readonly id: string,
  ) {
    let u: URL;
    try {
      u = new URL(o.url);
    } catch {
      throw new Error(`discovery: invalid discovery URL ${JSON.stringify(o.url)}`);
    }
    if (u.protocol !== "http:" && u.protocol !== "https:") throw new Error(`discovery: unsupported protocol scheme in ${JSON.stringify(o.url)}`);
    this.url = o.url;
    this.selfKey = `/${id}`;
    this.timeoutMs = o.timeoutMs ?? 5000;
    this.signal = o.signal;
    const proxy = o.proxy ? proxyURL(o.proxy) : undefined;
    if (proxy) log.info(`using proxy ${JSON.stringify(proxy)}`);
    // The client speaks /v2/keys/<key>; keys here are relative to the token directory, which
    // may sit under any path (the public service used /<token>), so the prefix is rewritten.
    const origin = u.origin;
    const tokenPath = u.pathname.replace(/\/+$/, "");
    const base = o.fetch ?? fetch;
    const rewrite = (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
      let target = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
      const prefix = `${origin}/v2/keys`;
      if (target.startsWith(prefix)) target = origin + tokenPath + target.slice(prefix.length);
      const withProxy = proxy ? ({ ...init, proxy } as RequestInit) : init;
      return base(target, withProxy);
    };
    this.client = new Client({
      endpoints: [origin],
      headerTimeout: this.timeoutMs,
      requestTimeout: this.timeoutMs,
      fetch: rewrite as typeof fetch,
    });
  }

  async join(value: string): Promise<string> {
    // Fast path: a full cluster is refused before registering.
    await this.checkCluster();
    await this.createSelf(value);
    const c = await this.checkCluster();
    const all = await this.waitNodes(c);
    return nodesToCluster(all, c.size);
  }

  async get(): Promise<string> {
    let c: Checked;
    try {
      c = await this.checkCluster();
    } catch (e) {
      // Full is what a proxy wants to hear: the first N are the cluster.
      if (e instanceof DiscoveryError && e.kind === "full") return e.cluster;
      throw e;
    }
    return nodesToCluster(await this.waitNodes(c), c.size);
  }

  /** GET _config/size, then the token directory; throws "full" when N others are already in. */
  private async checkCluster(): Promise<Checked> {
    for (;;) {
      let sizeResp: KeyResponse;
      try {
        sizeResp = await this.client.get(SIZE_KEY, { signal: this.signal });
      } catch (e) {
        if (e instanceof EtcdError && e.errorCode === ErrorCode.KeyNotFound) throw new DiscoveryError("size-not-found");
        if (e instanceof InvalidResponseError) throw new DiscoveryError("bad-endpoint");
        if (!this.retryable(e)) throw e;
        log.warn(`failed to get ${SIZE_KEY} from ${this.url}: ${describe(e)}`);
        await this.backoff("cluster status check");
        continue;
      }
      const raw = sizeResp.node.value ?? "";
      const size = /^\d+$/.test(raw) ? Number(raw) : NaN;
      // Go's ParseUint accepts 0, which can never bootstrap anything; it is refused here.
      if (!Number.isSafeInteger(size) || size < 1) throw new DiscoveryError("bad-size", "", JSON.stringify(raw));

      let dir: KeyResponse;
      try {
        dir = await this.client.get("", { signal: this.signal });
      } catch (e) {
        if (e instanceof InvalidResponseError) throw new DiscoveryError("bad-endpoint");
        if (!this.retryable(e)) throw e;
        log.warn(`failed to get the token directory from ${this.url}: ${describe(e)}`);
        await this.backoff("cluster status check");
        continue;
      }
      const nodes = (dir.node.nodes ?? [])
        // Registrations are keys: _config (and any other directory) is not one.
        .filter((n) => base(n.key ?? "") !== "_config" && !n.dir)
        .sort((a, b) => (a.createdIndex ?? 0) - (b.createdIndex ?? 0));
      // etcd's loop: self among the first N is fine; N others before it means full.
      for (let i = 0; i < nodes.length; i++) {
        if (this.id !== "" && base(nodes[i]!.key ?? "") === this.id) break;
        if (i >= size - 1) {
          const first = nodes.slice(0, size);
          log.warn(`cluster is full: ${size} member(s) registered under ${this.url}${this.id ? `, ${this.id} is not among them` : ""}`);
          throw new DiscoveryError("full", first.map((n) => n.value ?? "").join(","));
        }
      }
      return { nodes, size, index: dir.etcdIndex, dirKey: dir.node.key ?? "" };
    }
  }

  /** PUT <url>/<id>?prevExist=false, then wait until the registry shows it. */
  private async createSelf(value: string): Promise<void> {
    let uncertain = false;
    let created: KeyResponse | null = null;
    while (created === null) {
      try {
        created = await this.client.create(this.selfKey, value, { signal: this.signal });
        log.info(`registered ${this.id} as ${JSON.stringify(value)}`);
      } catch (e) {
        if (e instanceof EtcdError && e.errorCode === ErrorCode.NodeExist) {
          // A create whose answer was lost may have landed: our own value there is our key.
          if (uncertain) {
            const mine = await this.ownKey(value);
            if (mine) {
              created = mine;
              log.info(`registered ${this.id} as ${JSON.stringify(value)} (found after a retry)`);
              break;
            }
          }
          throw new DiscoveryError("duplicate-id", "", this.id);
        }
        if (e instanceof InvalidResponseError) throw new DiscoveryError("bad-endpoint");
        if (!this.retryable(e)) throw e;
        uncertain = true;
        log.warn(`failed to register ${this.id} at ${this.url}: ${describe(e)}`);
        await this.backoff("registration");
      }
    }
    // Ensure our key is visible on the registry member we talk to.
    const waitIndex = created.node.createdIndex ?? 0;
    for (;;) {
      try {
        await this.client.watch(this.selfKey, { waitIndex, signal: this.signal });
        return;
      } catch (e) {
        // Already compacted out of the history: it is long visible.
        if (e instanceof EtcdError && e.errorCode === ErrorCode.EventIndexCleared) return;
        if (!this.retryable(e)) throw e;
        log.warn(`failed to see ${this.id} registered at ${this.url}: ${describe(e)}`);
        await this.backoff("registration check");
      }
    }
  }

  private async ownKey(value: string): Promise<KeyResponse | null> {
    try {
      const r = await this.client.get(this.selfKey, { signal: this.signal });
      return r.node.value === value ? r : null;
    } catch {
      return null;
    }
  }

  /** Watches the token directory from the listing's index until N members registered. */
  private async waitNodes(start: Checked): Promise<NodeJSON[]> {
    let c = start;
    for (;;) {
      const all = c.nodes.slice(0, c.size);
      const seen = new Set(all.map((n) => base(n.key ?? "")));
      for (const n of all) {
        const b = base(n.key ?? "");
        if (this.id !== "" && b === this.id) log.info(`found self ${b} in the cluster`);
        else log.info(`found peer ${b} in the cluster`);
      }
      const w = this.client.watcher("", { afterIndex: c.index, recursive: true });
      let lost = false;
      while (all.length < c.size) {
        log.info(`found ${all.length} peer(s), waiting for ${c.size - all.length} more`);
        let r: KeyResponse;
        try {
          r = await w.next(this.signal);
        } catch (e) {
          if (e instanceof EtcdError && e.errorCode === ErrorCode.EventIndexCleared) {
            log.warn(`watch on ${this.url} fell behind the registry's history; listing again`);
          } else {
            if (e instanceof InvalidResponseError) throw new DiscoveryError("bad-endpoint");
            if (!this.retryable(e)) throw e;
            log.warn(`error while waiting for peers at ${this.url}: ${describe(e)}`);
            await this.backoff("waiting for other nodes");
          }
          lost = true;
          break;
        }
        const n = r.node;
        const key = n.key ?? "";
        const b = base(key);
        // Only new registrations count: not _config, not deletions, not a key seen already.
        if (parent(key) !== c.dirKey || b === "_config" || n.dir) continue;
        if (r.action === "delete" || r.action === "expire" || r.action === "compareAndDelete") continue;
        if (seen.has(b)) continue;
        seen.add(b);
        log.info(`found peer ${b} in the cluster`);
        all.push(n);
      }
      if (!lost) {
        log.info(`found ${all.length} needed peer(s)`);
        return all;
      }
      c = await this.checkCluster();
    }
  }

  private retryable(e: unknown): boolean {
    if (this.signal?.aborted) return false;
    if (e instanceof ClusterError || e instanceof EndpointError) return true;
    // The per-request timeout (the caller's own cancellation was ruled out above).
    return e instanceof CanceledError;
  }

  private async backoff(step: string): Promise<void> {
    const max = this.o.maxRetries ?? 2 ** 32 - 1;
    if (this.retries >= max) throw new DiscoveryError("too-many-retries");
    this.retries++;
    const ms = backoffMs(this.retries, this.o.retryBaseMs ?? 1000);
    log.info(`${step}: error connecting to ${this.url}, retrying in ${formatDuration(ms)}`);
    await (this.o.sleep ?? sleep)(ms, this.signal);
  }
}

/** etcd's nodesToCluster: the values joined; bad URLs or fewer names than N refuse it. */
function nodesToCluster(nodes: NodeJSON[], size: number): string {
  const s = nodes.map((n) => n.value ?? "").join(",");
  let m: Map<string, string[]>;
  try {
    m = parseURLsMap(s);
  } catch (e) {
    log.error(`registry holds an invalid member URL: ${(e as Error).message}`);
    throw new DiscoveryError("invalid-url", s);
  }
  if (m.size !== size) {
    log.error(`registry holds ${m.size} distinct name(s) for ${size} member(s): ${s}`);
    throw new DiscoveryError("duplicate-name", s);
  }
  const urls = [...m.values()].flat();
  if (new Set(urls).size !== urls.length) {
    log.error(`registry holds the same peer URL twice: ${s}`);
    throw new DiscoveryError("duplicate-url", s);
  }
  return s;
}

function base(key: string): string {
  const k = key.replace(/\/+$/, "");
  return k.slice(k.lastIndexOf("/") + 1);
}

function parent(key: string): string {
  const k = key.replace(/\/+$/, "");
  return k.slice(0, k.lastIndexOf("/"));
}

/** Go's newProxyFunc: a proxy without an http(s) scheme gets "http://". */
function proxyURL(raw: string): string {
  if (/^https?:\/\//i.test(raw)) return raw;
  try {
    return new URL(`http://${raw}`).href;
  } catch {
    throw new Error(`invalid proxy address ${JSON.stringify(raw)}`);
  }
}

function describe(e: unknown): string {
  if (e instanceof ClusterError) return e.errors.map((x) => x.message).join("; ") || e.message;
  return e instanceof Error ? e.message : String(e);
}

function formatDuration(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new CanceledError(false));
    const onAbort = () => {
      clearTimeout(t);
      reject(new CanceledError(false));
    };
    const t = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
