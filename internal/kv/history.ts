// Store events and the ring of the last 1000 of them that watches with a waitIndex read from.
import type { Action, EventJSON, NodeJSON, StoreEvent } from "./types.ts";
import { formatExpiration, ttlOf, type Node } from "./node.ts";

export const HISTORY_SIZE = 1000;

/** A node as it was before a mutation (a prevNode is never recursive, so a flat copy suffices). */
export class PrevNode {
  constructor(
    /** undefined for a directory */
    readonly value: string | undefined,
    readonly expireAt: number,
    readonly modifiedIndex: number,
    readonly createdIndex: number,
  ) {}

  static of(n: Node): PrevNode {
    return new PrevNode(n.children === null ? n.value : undefined, n.expireAt, n.modifiedIndex, n.createdIndex);
  }

  render(key: string, now: number): NodeJSON {
    const o: NodeJSON = { key };
    if (this.value !== undefined) o.value = this.value;
    else o.dir = true;
    if (this.expireAt !== 0) {
      o.expiration = formatExpiration(this.expireAt);
      const ttl = ttlOf(this.expireAt, now);
      if (ttl !== undefined) o.ttl = ttl;
    }
    if (this.modifiedIndex !== 0) o.modifiedIndex = this.modifiedIndex;
    if (this.createdIndex !== 0) o.createdIndex = this.createdIndex;
    return o;
  }
}

/**
 * The event of one mutation (one index). Immutable once made, so one object goes to the history
 * and to every watcher; `etcdIndex` stays the event's own index and a watch response takes its
 * X-Etcd-Index from `Watcher.etcdIndex`.
 */
export class KvEvent implements StoreEvent {
  etcdIndex: number;
  constructor(
    readonly action: Exclude<Action, "get">,
    readonly index: number,
    readonly key: string,
    readonly dir: boolean,
    /** the node's value: undefined for dirs and for delete/compareAndDelete/expire */
    readonly value: string | undefined,
    readonly expireAt: number,
    readonly createdIndex: number,
    readonly prev: PrevNode | null,
    readonly refresh: boolean,
  ) {
    this.etcdIndex = index;
  }

  /** HTTP answers 201 for "create" and for a "set" without a prevNode. */
  get hasPrev(): boolean {
    return this.prev !== null;
  }

  toJSON(now: number): EventJSON {
    const node: NodeJSON = { key: this.key };
    if (this.value !== undefined) node.value = this.value;
    if (this.dir) node.dir = true;
    if (this.expireAt !== 0) {
      node.expiration = formatExpiration(this.expireAt);
      const ttl = ttlOf(this.expireAt, now);
      if (ttl !== undefined) node.ttl = ttl;
    }
    node.modifiedIndex = this.index;
    if (this.createdIndex !== 0) node.createdIndex = this.createdIndex;
    return this.prev === null
      ? { action: this.action, node }
      : { action: this.action, node, prevNode: this.prev.render(this.key, now) };
  }
}

/** A GET answer: the subtree was copied when the read ran, only `ttl` waits for the clock. */
export class GetEvent implements StoreEvent {
  readonly action = "get" as const;
  readonly refresh = false;
  constructor(
    readonly key: string,
    readonly index: number,
    public etcdIndex: number,
    readonly dir: boolean,
    private readonly node: NodeJSON,
    /** [node, expireAt, node, expireAt, ...] */
    private readonly ttls: Array<NodeJSON | number>,
  ) {}

  get hasPrev(): boolean {
    return false;
  }

  toJSON(now: number): EventJSON {
    const t = this.ttls;
    for (let i = 0; i < t.length; i += 2) (t[i] as NodeJSON).ttl = ttlOf(t[i + 1] as number, now);
    return { action: "get", node: this.node };
  }
}

/**
 * One event per index, contiguous (checklist item 1: waitIndex arithmetic relies on it), so
 * event i lives at slot i % size and no search is needed.
 */
export class EventHistory {
  private readonly ring: Array<KvEvent | undefined> = new Array(HISTORY_SIZE);
  /** oldest retained index; 0 while empty */
  start = 0;
  last = 0;

  add(e: KvEvent): void {
    if (this.start !== 0 && e.index !== this.last + 1) {
      throw new Error(`event history gap: event ${e.index} after ${this.last}`);
    }
    this.ring[e.index % HISTORY_SIZE] = e;
    this.last = e.index;
    if (this.start === 0) this.start = e.index;
    else if (this.last - this.start >= HISTORY_SIZE) this.start = this.last - HISTORY_SIZE + 1;
  }

  /** Retained events from `from` (clamped to the oldest) to the newest, in index order. */
  *from(from: number): Generator<KvEvent> {
    if (this.start === 0) return;
    for (let i = Math.max(from, this.start); i <= this.last; i++) yield this.ring[i % HISTORY_SIZE]!;
  }

  get size(): number {
    return this.start === 0 ? 0 : this.last - this.start + 1;
  }
}
