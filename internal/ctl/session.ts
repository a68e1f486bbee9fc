// The state one etcdctl run shares across commands: global flags, the client built from them,
// the total-timeout deadline and the --debug trace (ctlv2/command/util.go).
import { readFileSync } from "node:fs";
import { Client } from "../kvclient/client.ts";
import { CanceledError, ClusterError, EndpointError, NoEndpointsError } from "../kvclient/errors.ts";
import type { RequestLog } from "../kvclient/transport.ts";
import { normaliseEndpoint } from "../kvclient/url.ts";
import { handleError } from "./format.ts";
import { goQuote, type FlagValue } from "./goflag.ts";
import { Exit, ExitCode, type IO } from "./io.ts";
import { DEFAULT_ENDPOINTS } from "./spec.ts";

export class Session {
  constructor(
    readonly io: IO,
    private readonly g: Map<string, FlagValue>,
    /** Fires on SIGINT: watches end and etcdctl exits 0. */
    readonly interrupt: AbortSignal,
  ) {}

  get output(): string {
    return String(this.g.get("output"));
  }

  get debug(): boolean {
    return this.g.get("debug") === true;
  }

  private str(name: string): string {
    return String(this.g.get(name) ?? "");
  }

  /** A signal for one command's request, as contextWithTotalTimeout; 0 means already expired. */
  totalTimeout(): AbortSignal {
    const ms = Number(this.g.get("total-timeout"));
    const deadline = ms > 0 ? AbortSignal.timeout(ms) : AbortSignal.abort(new DOMException("deadline", "TimeoutError"));
    return AbortSignal.any([deadline, this.interrupt]);
  }

  /** getPeersFlagValue: flag, then environment, in etcdctl's order of precedence. */
  endpointList(): string[] {
    const env = this.io.env;
    const s =
      this.str("endpoints") ||
      env.ETCDCTL_ENDPOINTS ||
      this.str("endpoint") ||
      env.ETCDCTL_ENDPOINT ||
      this.str("peers") ||
      env.ETCDCTL_PEERS ||
      DEFAULT_ENDPOINTS;
    return s.split(",");
  }

  private printCurl = (r: RequestLog): void => {
    this.io.err(`cURL Command: curl -X ${r.method} ${r.url}${r.body !== undefined ? ` -d ${goQuote(r.body)}` : ""}\n`);
  };

  /** newClient; a bad endpoint or credential option prints the reason and exits 1. */
  async newClient(plain?: { endpoint: string }): Promise<Client> {
    const env = this.io.env;
    if (this.str("discovery-srv") || env.ETCDCTL_DISCOVERY_SRV) {
      this.io.err("--discovery-srv: DNS SRV discovery is not supported; give --endpoints\n");
      throw new Exit(ExitCode.BadArgs);
    }
    try {
      const endpoints = plain ? [plain.endpoint] : this.endpointList().map(normaliseEndpoint);
      const cert = this.str("cert-file") || env.ETCDCTL_CERT_FILE || "";
      const key = this.str("key-file") || env.ETCDCTL_KEY_FILE || "";
      const ca = this.str("ca-file") || env.ETCDCTL_CA_FILE || "";
      const read = (f: string) => (f ? readFileSync(f, "utf8") : undefined);
      const tls = cert || key || ca ? { cert: read(cert), key: read(key), ca: read(ca) } : undefined;
      const creds = await this.credentials();
      return new Client({
        endpoints,
        headerTimeout: plain ? 0 : Number(this.g.get("timeout")),
        shuffle: true,
        tls,
        ...creds,
        onRequest: this.debug && !plain ? this.printCurl : undefined,
      });
    } catch (e) {
      if (e instanceof Exit) throw e;
      this.io.err(`${(e as Error).message}\n`);
      throw new Exit(ExitCode.BadArgs);
    }
  }

  private creds?: Promise<{ username?: string; password?: string }>;

  /** Asked for at most once per run, however many clients the command builds. */
  private credentials(): Promise<{ username?: string; password?: string }> {
    this.creds ??= this.askCredentials();
    return this.creds;
  }

  private async askCredentials(): Promise<{ username?: string; password?: string }> {
    const u = this.str("username") || this.io.env.ETCDCTL_USERNAME || "";
    if (u === "") return {};
    const colon = u.indexOf(":");
    if (colon >= 0) return { username: u.slice(0, colon), password: u.slice(colon + 1) };
    this.io.out("Password: ");
    const password = await this.io.readSecret();
    this.io.out("\n");
    return { username: u, password };
  }

  /** mustNewClient: syncs endpoints from /v2/members unless --no-sync, tracing with --debug. */
  async mustNewClient(): Promise<Client> {
    const c = await this.newClient();
    if (this.g.get("no-sync") !== true) {
      if (this.debug) this.io.err(`start to sync cluster using endpoints(${c.endpoints().join(",")})\n`);
      try {
        await c.sync({ signal: this.totalTimeout() });
      } catch (e) {
        if (e instanceof NoEndpointsError) {
          this.io.err("etcd cluster has no published client endpoints.\n");
          this.io.err(`Try '--no-sync' if you want to access non-published client endpoints(${c.endpoints().join(",")}).\n`);
          handleError(this.io, ExitCode.ServerError, e);
        }
        if (isConnectionError(e)) handleError(this.io, ExitCode.BadConnection, e);
        // Anything else (a member without leader, junk): carry on with the given endpoints.
      }
      if (this.debug) this.io.err(`got endpoints(${c.endpoints().join(",")}) after sync\n`);
    }
    if (this.debug) this.io.err(`Cluster-Endpoints: ${c.endpoints().join(", ")}\n`);
    return c;
  }

  /**
   * cluster-health asks each member with a plain HTTP client: no curl trace, no header timeout,
   * no failover.
   */
  memberClient(endpoint: string): Promise<Client> {
    return this.newClient({ endpoint });
  }

  /** mustNewClientNoSync (cluster-health). */
  async mustNewClientNoSync(): Promise<Client> {
    const c = await this.newClient();
    if (this.debug) this.io.err(`Cluster-Endpoints: ${c.endpoints().join(", ")}\n`);
    return c;
  }
}

/** etcdctl's isConnectionError: refused/dropped connections and deadlines, on every endpoint. */
export function isConnectionError(e: unknown): boolean {
  if (e instanceof ClusterError) return e.connectionOnly;
  if (e instanceof EndpointError) return e.kind === "connection";
  return e instanceof CanceledError && e.deadline;
}
