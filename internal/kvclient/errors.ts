// Client-side failures. Messages copy etcd's Go client (client/v2) word for word, because
// etcdctl prints them and scripts grep them.
import { EtcdError, type ErrorCode } from "../kv/errors.ts";

/**
 * How one attempt against one endpoint failed. Only "connection" failures mean "nothing is
 * listening there" (etcdctl exits 2 when a sync fails with nothing but those).
 */
export type FailureKind = "connection" | "timeout" | "server" | "protocol";

/** One endpoint's failure inside a ClusterError (the Go client's per-endpoint error). */
export class EndpointError extends Error {
  constructor(
    readonly endpoint: string,
    readonly kind: FailureKind,
    message: string,
    readonly status = 0,
  ) {
    super(message);
  }
}

/** Every endpoint was tried and none answered usefully. */
export class ClusterError extends Error {
  constructor(readonly errors: EndpointError[]) {
    super(clusterMessage(errors));
  }

  /** The per-endpoint lines etcdctl prints after "Error: ". */
  detail(): string {
    return this.errors.map((e, i) => `error #${i}: ${e.message}\n`).join("");
  }

  /** True when every endpoint refused or dropped the connection (etcdctl's isConnectionError). */
  get connectionOnly(): boolean {
    return this.errors.length > 0 && this.errors.every((e) => e.kind === "connection");
  }
}

function clusterMessage(errors: EndpointError[]): string {
  let s = "client: etcd cluster is unavailable or misconfigured";
  errors.forEach((e, i) => (s += `; error #${i}: ${e.message}\n`));
  return s;
}

/** The caller's signal fired: Go's context errors, so etcdctl prints the same words. */
export class CanceledError extends Error {
  constructor(readonly deadline: boolean) {
    super(deadline ? "context deadline exceeded" : "context canceled");
  }
}

/** A body or header the client refuses to trust (bad JSON, wrong shape, bad index header). */
export class InvalidResponseError extends Error {
  constructor(
    readonly endpoint: string,
    readonly reason: string,
  ) {
    super("client: response is invalid json. The endpoint is probably not valid etcd cluster endpoint");
  }
}

/** Members API refusals: the server's {"message": ...} or an unexpected HTTP status. */
export class MembersError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

/** No endpoint configured, or a sync found no published client URLs. */
export class NoEndpointsError extends Error {
  constructor() {
    super("client: no endpoints available");
  }
}

/**
 * A key error from the server, as the shared EtcdError. The server's own message and any code
 * this build does not know are kept, so nothing the server said is lost.
 */
export function remoteEtcdError(code: number, message: string, cause: string, index: number): EtcdError {
  const e = new EtcdError(code as ErrorCode, cause, index);
  if (e.message !== message) e.message = message;
  return e;
}
