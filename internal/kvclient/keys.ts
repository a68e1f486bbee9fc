// The v2 keys API as requests and validated responses. Parameters go where etcd's Go client puts
// them (conditions in the query, value and ttl in a form body), which works against any v2 server.
import type { EventJSON } from "../kv/types.ts";
import { InvalidResponseError, remoteEtcdError } from "./errors.ts";
import { ErrorBodySchema, EventSchema, parseJSON } from "./schema.ts";
import type { HTTPAction, HTTPResult, Transport } from "./transport.ts";
import { apiURL, encodeQuery } from "./url.ts";

export const KEYS_PREFIX = "/v2/keys";

/** An event plus the response headers that place it in the cluster's history. */
export interface KeyResponse extends EventJSON {
  /** X-Etcd-Index: the store index when the server answered (for a watch: when it registered). */
  etcdIndex: number;
  /** X-Raft-Index / X-Raft-Term; 0 when the server did not send them. */
  raftIndex: number;
  raftTerm: number;
  clusterId: string;
  /** The endpoint that answered. */
  endpoint: string;
}

export interface RequestOptions {
  signal?: AbortSignal;
}

export interface GetOptions extends RequestOptions {
  recursive?: boolean;
  sorted?: boolean;
  /** Read through Raft (linearizable) instead of from the member's local store. */
  quorum?: boolean;
}

export interface SetOptions extends RequestOptions {
  /** Seconds; 0 or absent = no TTL. */
  ttl?: number;
  prevValue?: string;
  /** 0 or absent = no index condition. */
  prevIndex?: number;
  /** true: must exist (update); false: must not exist (create); absent: either. */
  prevExist?: boolean;
  dir?: boolean;
  /** Reset the TTL without notifying watchers (value must be empty). */
  refresh?: boolean;
}

export interface DeleteOptions extends RequestOptions {
  recursive?: boolean;
  dir?: boolean;
  prevValue?: string;
  prevIndex?: number;
}

export interface WaitOptions extends RequestOptions {
  /** First index to report; 0 = the next change. */
  waitIndex?: number;
  recursive?: boolean;
}

/** A 200/201 with no body: the server ended a long poll without an event. */
export class EmptyBodyError extends Error {
  constructor() {
    super("client: response body is empty");
  }
}

export function getAction(key: string, o: GetOptions): HTTPAction {
  const q = { recursive: String(!!o.recursive), sorted: String(!!o.sorted), quorum: String(!!o.quorum) };
  return { method: "GET", url: (ep) => apiURL(ep, KEYS_PREFIX, key, q) };
}

export function waitAction(key: string, o: WaitOptions): HTTPAction {
  const q = { wait: "true", waitIndex: String(o.waitIndex ?? 0), recursive: String(!!o.recursive) };
  return { method: "GET", url: (ep) => apiURL(ep, KEYS_PREFIX, key, q), wait: true };
}

export function setAction(key: string, value: string, o: SetOptions): HTTPAction {
  const q: Record<string, string> = {};
  const form: Record<string, string> = {};
  // A directory has no value and cannot be compared by value (the Go client drops both).
  if (o.dir) q.dir = "true";
  else {
    if (o.prevValue) q.prevValue = o.prevValue;
    form.value = value;
  }
  if (o.prevIndex) q.prevIndex = String(o.prevIndex);
  if (o.prevExist !== undefined) q.prevExist = String(o.prevExist);
  if (o.ttl && o.ttl > 0) form.ttl = String(Math.floor(o.ttl));
  if (o.refresh) form.refresh = "true";
  return {
    method: "PUT",
    url: (ep) => apiURL(ep, KEYS_PREFIX, key, q),
    body: encodeQuery(form),
    contentType: "application/x-www-form-urlencoded",
  };
}

export function deleteAction(key: string, o: DeleteOptions): HTTPAction {
  const q: Record<string, string> = {};
  if (o.prevValue) q.prevValue = o.prevValue;
  if (o.prevIndex) q.prevIndex = String(o.prevIndex);
  if (o.dir) q.dir = "true";
  if (o.recursive) q.recursive = "true";
  return { method: "DELETE", url: (ep) => apiURL(ep, KEYS_PREFIX, key, q), contentType: "application/x-www-form-urlencoded" };
}

export function createInOrderAction(dir: string, value: string, o: { ttl?: number }): HTTPAction {
  const form: Record<string, string> = { value };
  if (o.ttl && o.ttl > 0) form.ttl = String(Math.floor(o.ttl));
  return {
    method: "POST",
    url: (ep) => apiURL(ep, KEYS_PREFIX, dir),
    body: encodeQuery(form),
    contentType: "application/x-www-form-urlencoded",
  };
}

/** Runs one keys action and turns the answer into a KeyResponse or a thrown error. */
export async function doKeys(t: Transport, action: HTTPAction, o: RequestOptions & { oneShot?: boolean }): Promise<KeyResponse> {
  return decodeKeys(await t.do(action, o));
}

export function decodeKeys(r: HTTPResult): KeyResponse {
  if (r.status === 200 || r.status === 201) {
    if (r.body === "") throw new EmptyBodyError();
    const ev = parseJSON(EventSchema, r.body);
    if (ev === null) throw new InvalidResponseError(r.endpoint, "not a v2 event");
    return {
      ...ev,
      etcdIndex: headerIndex(r, "X-Etcd-Index"),
      raftIndex: headerIndex(r, "X-Raft-Index"),
      raftTerm: headerIndex(r, "X-Raft-Term"),
      clusterId: r.headers.get("X-Etcd-Cluster-Id") ?? "",
      endpoint: r.endpoint,
    };
  }
  const err = parseJSON(ErrorBodySchema, r.body);
  if (err === null) throw new InvalidResponseError(r.endpoint, `HTTP ${r.status} without a v2 error body`);
  throw remoteEtcdError(err.errorCode, err.message, err.cause, err.index);
}

function headerIndex(r: HTTPResult, name: string): number {
  const raw = r.headers.get(name);
  if (raw === null || raw === "") return 0;
  if (!/^\d+$/.test(raw)) throw new InvalidResponseError(r.endpoint, `bad ${name} header ${JSON.stringify(raw)}`);
  return Number(raw);
}
