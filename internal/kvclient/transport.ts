// Endpoint failover, as etcd's Go client does it: try the pinned endpoint first, move on after a
// connection error, a header timeout or a 5xx, pin whichever answered. Key errors (4xx) are
// answers, not failures: they never move to the next endpoint.
import { CanceledError, ClusterError, EndpointError, NoEndpointsError } from "./errors.ts";
import { schemeOf } from "./url.ts";

export interface HTTPAction {
  method: "GET" | "PUT" | "POST" | "DELETE";
  /** The full URL of this action against one endpoint. */
  url(endpoint: string): string;
  body?: string;
  contentType?: string;
  /** A long-poll watch: the per-request header timeout does not apply. */
  wait?: boolean;
}

export interface HTTPResult {
  status: number;
  headers: Headers;
  body: string;
  endpoint: string;
}

/** What --debug prints as a curl line: one per attempt, before it is sent. */
export interface RequestLog {
  method: string;
  url: string;
  body?: string;
}

export interface TLSFiles {
  cert?: string;
  key?: string;
  ca?: string;
}

export interface TransportOptions {
  endpoints: string[];
  /** Milliseconds to wait for response headers per attempt; 0 = none. Never applies to watches. */
  headerTimeout?: number;
  /** Shuffle endpoints whenever they are set (the Go client's random selection). */
  shuffle?: boolean;
  onRequest?: (r: RequestLog) => void;
  username?: string;
  password?: string;
  /** PEM contents (not paths) for HTTPS endpoints. */
  tls?: TLSFiles;
  /** For tests. */
  fetch?: typeof fetch;
}

export interface DoOptions {
  signal?: AbortSignal;
  /**
   * Give up after the first failed attempt and report its own error (the Go client does this for
   * create and delete, which must not run twice).
   */
  oneShot?: boolean;
}

export class Transport {
  private eps: string[] = [];
  private pinned = 0;

  constructor(private readonly opts: TransportOptions) {
    this.setEndpoints(opts.endpoints);
  }

  endpoints(): string[] {
    return [...this.eps];
  }

  setEndpoints(eps: string[]): void {
    if (eps.length === 0) throw new NoEndpointsError();
    this.eps = this.opts.shuffle ? shuffled(eps) : [...eps];
    this.pinned = 0;
  }

  async do(action: HTTPAction, o: DoOptions = {}): Promise<HTTPResult> {
    const eps = this.eps;
    if (eps.length === 0) throw new NoEndpointsError();
    const start = this.pinned;
    const errors: EndpointError[] = [];
    for (let i = start; i < start + eps.length; i++) {
      const k = i % eps.length;
      const ep = eps[k]!;
      let res: HTTPResult;
      try {
        res = await this.send(ep, action, o.signal);
      } catch (e) {
        if (!(e instanceof EndpointError)) throw e;
        errors.push(e);
        if (o.oneShot) throw e;
        continue;
      }
      if (res.status >= 500 && res.status <= 599) {
        const e =
          res.status === 500 || res.status === 503
            ? new EndpointError(ep, "server", `client: etcd member ${ep} has no leader`, res.status)
            : new EndpointError(ep, "server", `client: etcd member ${ep} returns server error [${statusText(res.status)}]`, res.status);
        errors.push(e);
        if (o.oneShot) throw e;
        continue;
      }
      this.pinned = k;
      return res;
    }
    throw new ClusterError(errors);
  }

  /** One attempt against one endpoint, any status accepted (no failover, no 5xx logic). */
  async send(ep: string, action: HTTPAction, signal?: AbortSignal): Promise<HTTPResult> {
    if (signal?.aborted) throw canceled(signal);
    const url = action.url(ep);
    this.opts.onRequest?.({ method: action.method, url, body: action.body });
    const scheme = schemeOf(ep);
    if (scheme !== "http" && scheme !== "https") {
      throw new EndpointError(ep, "protocol", `unsupported protocol scheme ${JSON.stringify(scheme)}`);
    }

    const limit = action.wait ? 0 : (this.opts.headerTimeout ?? 0);
    // Below a millisecond no answer can arrive in time (Go's 1ns always times out).
    if (limit > 0 && limit < 1) throw new EndpointError(ep, "timeout", `client: endpoint ${ep} exceeded header timeout`);
    const ctl = new AbortController();
    const onAbort = () => ctl.abort();
    signal?.addEventListener("abort", onAbort, { once: true });
    let headerTimedOut = false;
    const timer =
      limit > 0
        ? setTimeout(() => {
            headerTimedOut = true;
            ctl.abort();
          }, limit)
        : undefined;
    try {
      const headers: Record<string, string> = {};
      if (action.contentType) headers["Content-Type"] = action.contentType;
      if (this.opts.username !== undefined) {
        headers.Authorization = `Basic ${btoa(`${this.opts.username}:${this.opts.password ?? ""}`)}`;
      }
      const init: RequestInit & { tls?: TLSFiles } = {
        method: action.method,
        headers,
        body: action.body,
        signal: ctl.signal,
      };
      if (this.opts.tls) init.tls = this.opts.tls;
      const res = await (this.opts.fetch ?? fetch)(url, init);
      clearTimeout(timer);
      // Like the Go client, the body is read inside the attempt: a connection lost mid-body
      // (a watch whose member died) moves on to the next endpoint.
      const body = await res.text();
      return { status: res.status, headers: res.headers, body, endpoint: ep };
    } catch (e) {
      if (signal?.aborted) throw canceled(signal);
      if (headerTimedOut) throw new EndpointError(ep, "timeout", `client: endpoint ${ep} exceeded header timeout`);
      throw networkError(ep, e);
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
    }
  }
}

export function canceled(signal: AbortSignal): CanceledError {
  const r: unknown = signal.reason;
  return new CanceledError(r instanceof Error && r.name === "TimeoutError");
}

function hostPort(ep: string): string {
  try {
    const u = new URL(ep);
    return `${u.hostname}:${u.port || (u.protocol === "https:" ? "443" : "80")}`;
  } catch {
    return ep;
  }
}

/** Go's wording for the dial/read errors a Go client would have seen. */
function networkError(ep: string, e: unknown): EndpointError {
  const code = typeof e === "object" && e !== null && "code" in e ? String((e as { code: unknown }).code) : "";
  const msg = e instanceof Error ? e.message : String(e);
  switch (code) {
    case "ECONNREFUSED":
    case "ConnectionRefused":
      return new EndpointError(ep, "connection", `dial tcp ${hostPort(ep)}: connect: connection refused`);
    case "ENOTFOUND":
    case "EAI_NONAME":
      return new EndpointError(ep, "connection", `dial tcp: lookup ${new URL(ep).hostname}: no such host`);
    case "ETIMEDOUT":
      return new EndpointError(ep, "connection", `dial tcp ${hostPort(ep)}: i/o timeout`);
    case "ECONNRESET":
    case "ConnectionClosed":
      return new EndpointError(ep, "connection", `read tcp ${hostPort(ep)}: connection reset by peer`);
    // A TLS handshake that failed is a misconfiguration, not a member that is down.
    case "DEPTH_ZERO_SELF_SIGNED_CERT":
    case "SELF_SIGNED_CERT_IN_CHAIN":
    case "UNABLE_TO_VERIFY_LEAF_SIGNATURE":
    case "UNABLE_TO_GET_ISSUER_CERT_LOCALLY":
      return new EndpointError(ep, "protocol", "x509: certificate signed by unknown authority");
    case "CERT_HAS_EXPIRED":
    case "CERT_NOT_YET_VALID":
      return new EndpointError(ep, "protocol", "x509: certificate has expired or is not yet valid");
    default:
      return new EndpointError(ep, code === "" ? "protocol" : "connection", msg);
  }
}

function shuffled<T>(xs: T[]): T[] {
  const a = [...xs];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

const STATUS_TEXT: Record<number, string> = {
  501: "Not Implemented",
  502: "Bad Gateway",
  504: "Gateway Timeout",
  505: "HTTP Version Not Supported",
  506: "Variant Also Negotiates",
  507: "Insufficient Storage",
  508: "Loop Detected",
  510: "Not Extended",
  511: "Network Authentication Required",
};

function statusText(status: number): string {
  return STATUS_TEXT[status] ?? "";
}
