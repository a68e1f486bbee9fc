// The etcd v2 client library: one import for every tool.
export { Client, type ClientOptions } from "./client.ts";
export {
  CanceledError,
  ClusterError,
  EndpointError,
  InvalidResponseError,
  MembersError,
  NoEndpointsError,
  type FailureKind,
} from "./errors.ts";
export type { DeleteOptions, GetOptions, KeyResponse, RequestOptions, SetOptions, WaitOptions } from "./keys.ts";
export type { Member } from "./schema.ts";
export type { RequestLog, TLSFiles } from "./transport.ts";
export { Watcher, type WatchItem, type WatchLoopOptions, type WatcherOptions } from "./watch.ts";
export { EtcdError, ErrorCode } from "../kv/errors.ts";
