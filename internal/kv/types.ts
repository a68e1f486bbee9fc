// Shapes shared by the v2 store, the write path and the HTTP layer.
import type { ConfChange } from "./cluster.ts";

export type Action =
  | "get"
  | "set"
  | "create"
  | "update"
  | "compareAndSwap"
  | "delete"
  | "compareAndDelete"
  | "expire";

/** A node as etcd serialises it: every field omitempty, in this order. */
export interface NodeJSON {
  key?: string;
  value?: string;
  dir?: true;
  expiration?: string;
  ttl?: number;
  nodes?: NodeJSON[];
  modifiedIndex?: number;
  createdIndex?: number;
}

export interface EventJSON {
  action: Action;
  node: NodeJSON;
  prevNode?: NodeJSON;
}

/**
 * A store event. `etcdIndex` is the store index the response's X-Etcd-Index carries
 * (for a watch: the index when the watch was registered). The node/prevNode are rendered
 * lazily with the clock of the member that answers, so `ttl` is right at response time.
 */
export interface StoreEvent {
  readonly action: Action;
  readonly index: number;
  etcdIndex: number;
  /** Whether the event was a refresh: kept in history for index arithmetic, never delivered. */
  readonly refresh: boolean;
  toJSON(now: number): EventJSON;
  /** The key the event is about (for watch matching). */
  readonly key: string;
  /** True when the event's node is a directory (delete/expire of a dir reach descendant watchers). */
  readonly dir: boolean;
}

/**
 * A replicated mutation of the store: the data of one log entry.
 * Times are absolute milliseconds since the Unix epoch, fixed by the member that took the request,
 * so applying the same command on every replica gives the same result.
 * `expireAt: null` means no TTL.
 */
export type Command =
  /** refresh=true (PUT refresh without prevExist): the key must exist, keeps its value, is replaced (new createdIndex) and no watcher is told. */
  | { op: "set"; key: string; value: string; dir: boolean; expireAt: number | null; refresh: boolean }
  | { op: "create"; key: string; value: string; dir: boolean; unique: boolean; expireAt: number | null }
  | { op: "update"; key: string; value: string | null; expireAt: number | null; refresh: boolean }
  | {
      op: "compareAndSwap";
      key: string;
      value: string;
      prevValue: string | null;
      prevIndex: number;
      expireAt: number | null;
      refresh: boolean;
    }
  | { op: "delete"; key: string; dir: boolean; recursive: boolean }
  | { op: "compareAndDelete"; key: string; prevValue: string | null; prevIndex: number }
  /** The leader's clock: every replica expires the keys whose expireAt <= time. */
  | { op: "sync"; time: number }
  /** A linearizable read (v2 quorum=true) placed in the log. */
  | { op: "get"; key: string; recursive: boolean; sorted: boolean };

/** A log entry as the WAL and (later) Raft carry it. */
export interface Entry {
  term: number;
  index: number;
  /** 0 = normal (data is a JSON-encoded Proposal), 1 = configuration change. */
  type: 0 | 1;
  data: Uint8Array;
}

/** Raft's persistent state. `vote` is the member ID voted for ("" for none). */
export interface HardState {
  term: number;
  vote: string;
  commit: number;
}

/**
 * What goes in an entry: a store command or a membership change, plus the id the proposing member
 * waits on.
 */
export type Proposal = { id: string; cmd: Command } | { id: string; conf: ConfChange };
