// `kv serve` flags: etcd's names, defaults and ETCD_* environment variables, validated into a
// ServerConfig plus the addresses to listen on.
import * as v from "valibot";
import { FlagError, type FlagDef, type FlagValues } from "../flags/flags.ts";
import { parseInitialCluster } from "./membership.ts";
import type { ServerConfig } from "./server.ts";
import type { DiscoveryFlags } from "./discovery.ts";

export const kvFlags = {
  name: { kind: "string", default: "default", description: "Human-readable name for this member" },
  "data-dir": { kind: "string", default: "", description: "Path to the data directory (default ${name}.etcd)" },
  "listen-client-urls": { kind: "string", default: "http://localhost:2379", description: "List of URLs to listen on for client traffic" },
  "advertise-client-urls": { kind: "string", default: "http://localhost:2379", description: "List of this member's client URLs to advertise to the rest of the cluster" },
  "listen-peer-urls": { kind: "string", default: "http://localhost:2380", description: "List of URLs to listen on for peer traffic" },
  "initial-advertise-peer-urls": { kind: "string", default: "http://localhost:2380", description: "List of this member's peer URLs to advertise to the rest of the cluster" },
  "initial-cluster": { kind: "string", default: "default=http://localhost:2380", description: "Initial cluster configuration for bootstrapping" },
  "initial-cluster-state": { kind: "string", default: "new", description: "Initial cluster state ('new' or 'existing')" },
  "initial-cluster-token": { kind: "string", default: "etcd-cluster", description: "Initial cluster token for the etcd cluster during bootstrap" },
  discovery: { kind: "string", default: "", description: "Discovery URL used to bootstrap the cluster" },
  "discovery-fallback": { kind: "string", default: "proxy", description: "Expected behavior ('exit' or 'proxy') when discovery services fails. 'proxy' supports v2 API only" },
  "discovery-proxy": { kind: "string", default: "", description: "HTTP proxy to use for traffic to discovery service" },
  "heartbeat-interval": { kind: "uint", default: 100, description: "Time (in milliseconds) of a heartbeat interval" },
  "election-timeout": { kind: "uint", default: 1000, description: "Time (in milliseconds) for an election to timeout" },
  "snapshot-count": { kind: "uint", default: 100000, description: "Number of committed transactions to trigger a snapshot to disk" },
  "enable-v2": { kind: "bool", default: true, description: "Accept etcd V2 client requests (always on here; accepted for compatibility)" },
  "cert-file": { kind: "string", default: "", description: "Path to the client server TLS cert file" },
  "key-file": { kind: "string", default: "", description: "Path to the client server TLS key file" },
  "client-cert-auth": { kind: "bool", default: false, description: "Enable client cert authentication" },
  "trusted-ca-file": { kind: "string", default: "", description: "Path to the client server TLS trusted CA cert file" },
  "peer-cert-file": { kind: "string", default: "", description: "Path to the peer server TLS cert file" },
  "peer-key-file": { kind: "string", default: "", description: "Path to the peer server TLS key file" },
  "peer-client-cert-auth": { kind: "bool", default: false, description: "Enable peer client cert authentication" },
  "peer-trusted-ca-file": { kind: "string", default: "", description: "Path to the peer server TLS trusted CA file" },
} as const satisfies Record<string, FlagDef>;

const HttpUrl = v.pipe(
  v.string(),
  v.url(),
  v.check((s) => /^https?:\/\//.test(s), "URL scheme must be http or https"),
);
const UrlList = v.pipe(
  v.string(),
  v.transform((s) => s.split(",").map((u) => u.trim()).filter((u) => u !== "")),
  v.minLength(1, "at least one URL is required"),
  v.array(HttpUrl),
);

function urls(flag: string, raw: string): string[] {
  const r = v.safeParse(UrlList, raw);
  if (!r.success) throw new FlagError(`invalid value "${raw}" for --${flag}: ${r.issues[0].message}`);
  return r.output;
}

/** TLS for one side (clients or peers): paths as given on the command line. */
export interface TlsFiles {
  certFile: string;
  keyFile: string;
  /** With clientCertAuth, only clients whose certificate this CA signed get in. */
  trustedCaFile: string;
  clientCertAuth: boolean;
}

export interface Listener {
  hostname: string;
  port: number;
  tls: TlsFiles | null;
}

/** Where Bun should bind for a listen URL; `localhost` binds IPv4 loopback as etcd does. */
export function listenerFor(url: string, tls: TlsFiles | null = null): Listener {
  const u = new URL(url);
  const host = u.hostname.replace(/^\[|\]$/g, "");
  const secure = u.protocol === "https:";
  return {
    hostname: host === "localhost" ? "127.0.0.1" : host,
    port: Number(u.port || (secure ? 443 : 80)),
    tls: secure ? tls : null,
  };
}

function tlsFiles(f: FlagValues<typeof kvFlags>, side: "client" | "peer", urls: string[]): TlsFiles | null {
  const p = side === "peer" ? "peer-" : "";
  const files: TlsFiles = {
    certFile: f[`${p}cert-file`],
    keyFile: f[`${p}key-file`],
    trustedCaFile: f[`${p}trusted-ca-file`],
    clientCertAuth: f[`${p}client-cert-auth`],
  };
  const https = urls.some((u) => u.startsWith("https://"));
  if (https && (files.certFile === "" || files.keyFile === ""))
    throw new FlagError(`TLS key/cert (--${p}cert-file, --${p}key-file) must be provided for ${side} url with HTTPS scheme`);
  if (files.clientCertAuth && files.trustedCaFile === "")
    throw new FlagError(`--${p}client-cert-auth needs --${p}trusted-ca-file`);
  return https ? files : null;
}

export interface KvConfig {
  server: ServerConfig;
  clientListeners: Listener[];
  peerListeners: Listener[];
  /** --discovery and friends; null without --discovery. */
  discovery: DiscoveryFlags | null;
}

export function kvConfig(f: FlagValues<typeof kvFlags>): KvConfig {
  const clusterState = f["initial-cluster-state"];
  if (clusterState !== "new" && clusterState !== "existing")
    throw new FlagError(`invalid value "${clusterState}" for --initial-cluster-state: want new or existing`);
  if (f["heartbeat-interval"] === 0) throw new FlagError("--heartbeat-interval must be > 0");
  if (f["election-timeout"] < 5 * f["heartbeat-interval"])
    throw new FlagError("--election-timeout must be at least 5 times --heartbeat-interval");
  if (f["election-timeout"] > 50000) throw new FlagError("--election-timeout is too long, and should be set less than 50 seconds");
  if (f["snapshot-count"] === 0) throw new FlagError("--snapshot-count must be > 0");

  const advertisePeerUrls = urls("initial-advertise-peer-urls", f["initial-advertise-peer-urls"]);
  const fallback = f["discovery-fallback"];
  if (fallback !== "exit" && fallback !== "proxy")
    throw new FlagError(`invalid value "${fallback}" for flag -discovery-fallback: valid values are ["exit" "proxy"]`);
  const discovering = f.discovery !== "";
  if (discovering) {
    if (f["initial-cluster"] !== kvFlags["initial-cluster"].default)
      throw new FlagError(`multiple discovery or bootstrap flags are set. Choose one of "initial-cluster", "discovery" or "discovery-srv"`);
    if (!/^https?:\/\//.test(f.discovery)) throw new FlagError(`invalid value "${f.discovery}" for --discovery: URL scheme must be http or https`);
  }
  // etcd: with the default cluster string and a custom name (or with --discovery, until it
  // answers), the cluster is just this member.
  const clusterString =
    f["initial-cluster"] === kvFlags["initial-cluster"].default && (f.name !== "default" || discovering)
      ? advertisePeerUrls.map((u) => `${f.name}=${u}`).join(",")
      : f["initial-cluster"];
  let initialCluster: Map<string, string[]>;
  try {
    initialCluster = parseInitialCluster(clusterString);
  } catch (e) {
    throw new FlagError((e as Error).message);
  }
  for (const [name, list] of initialCluster) urls(`initial-cluster (member ${name})`, list.join(","));
  const mine = initialCluster.get(f.name);
  if (!mine) throw new FlagError(`couldn't find local name "${f.name}" in the initial cluster configuration`);
  if ([...mine].sort().join(",") !== [...advertisePeerUrls].sort().join(","))
    throw new FlagError(
      `--initial-cluster has ${f.name}=${mine.join(",")} but missing from --initial-advertise-peer-urls=${advertisePeerUrls.join(",")}`,
    );

  return {
    server: {
      name: f.name,
      dataDir: f["data-dir"] || `${f.name}.etcd`,
      advertiseClientUrls: urls("advertise-client-urls", f["advertise-client-urls"]),
      advertisePeerUrls,
      initialCluster,
      clusterState,
      // etcd derives member and cluster IDs from the discovery URL when discovering.
      clusterToken: discovering ? f.discovery : f["initial-cluster-token"],
      heartbeatMs: f["heartbeat-interval"],
      electionMs: f["election-timeout"],
      peerTls: {
        ca: f["peer-trusted-ca-file"] || undefined,
        cert: f["peer-cert-file"] || undefined,
        key: f["peer-key-file"] || undefined,
      },
      snapshotCount: f["snapshot-count"],
    },
    clientListeners: listeners(f, "client", urls("listen-client-urls", f["listen-client-urls"])),
    peerListeners: listeners(f, "peer", urls("listen-peer-urls", f["listen-peer-urls"])),
    discovery: discovering ? { url: f.discovery, fallback, proxy: f["discovery-proxy"] } : null,
  };
}

function listeners(f: FlagValues<typeof kvFlags>, side: "client" | "peer", list: string[]): Listener[] {
  const tls = tlsFiles(f, side, list);
  return list.map((u) => listenerFor(u, tls));
}
