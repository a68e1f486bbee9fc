// Watchers: registration in a trie of watched paths, live notification and history replay.
import { EtcdError } from "./errors.ts";
import type { EventHistory, KvEvent } from "./history.ts";
import type { StoreEvent } from "./types.ts";

export interface Watcher {
  /** The store index when the watch was registered: the X-Etcd-Index of the watch response. */
  readonly etcdIndex: number;
  cancel(): void;
}

export type Deliver = (e: StoreEvent) => void;

/**
 * One trie node per watched path component. A change walks only the components of its own key
 * (O(depth), however many watchers exist elsewhere), and a directory delete finds the watchers
 * below it, including those on paths that do not exist, without walking the store.
 */
class WatchNode {
  children: Map<string, WatchNode> | null = null;
  watchers: Set<WatcherImpl> | null = null;
  constructor(
    readonly parent: WatchNode | null,
    readonly name: string,
  ) {}
}

class WatcherImpl implements Watcher {
  /** the trie node while registered for live events */
  at: WatchNode | null = null;
  /** history events not yet handed over; live events queue behind them so order holds */
  pending: KvEvent[] | null = null;
  done = false;
  constructor(
    readonly hub: WatcherHub,
    readonly recursive: boolean,
    readonly stream: boolean,
    readonly sinceIndex: number,
    readonly etcdIndex: number,
    readonly deliver: Deliver,
  ) {}

  cancel(): void {
    if (this.done) return;
    this.done = true;
    this.pending = null;
    this.hub.unregister(this);
  }
}

function isUnder(k: string, dir: string): boolean {
  if (dir === "/") return k !== "/";
  return k.length > dir.length && k.charCodeAt(dir.length) === 47 && k.startsWith(dir);
}

/** Whether a component of `k` below the directory `dir` is hidden (its name starts with "_"). */
function hiddenBelow(dir: string, k: string): boolean {
  return k.indexOf("/_", dir === "/" ? 0 : dir.length) >= 0;
}

/** Whether a watch on `key` reports `e` (the same rules as live notification). */
export function matches(e: KvEvent, key: string, recursive: boolean): boolean {
  if (e.refresh) return false;
  const k = e.key;
  if (k === key) return true;
  if (recursive && isUnder(k, key) && !hiddenBelow(key, k)) return true;
  return e.dir && (e.action === "delete" || e.action === "expire") && isUnder(key, k);
}

/**
 * A callback that throws must not abort the mutation that is notifying (the store has changed
 * already), nor crash the process from a microtask: its consumer is treated as gone.
 */
function safeDeliver(w: WatcherImpl, e: KvEvent): void {
  try {
    w.deliver(e);
  } catch (err) {
    w.cancel();
    w.hub.onError?.(err);
  }
}

export class WatcherHub {
  private readonly root = new WatchNode(null, "");
  /** registered live watchers (stats().watchers) */
  count = 0;
  /** told about callbacks that threw (their watchers are cancelled) */
  onError: ((err: unknown) => void) | null = null;

  constructor(public history: EventHistory) {}

  /**
   * `since` is already resolved (0 → current+1). Matching history events are handed over in a
   * microtask so the caller holds the Watcher first; live ones synchronously during the mutation.
   */
  watch(key: string, recursive: boolean, stream: boolean, since: number, current: number, deliver: Deliver): Watcher {
    const h = this.history;
    if (h.start !== 0 && since < h.start) {
      throw new EtcdError(401, `the requested history has been cleared [${h.start}/${since}]`, current);
    }
    const w = new WatcherImpl(this, recursive, stream, since, current, deliver);
    if (since <= h.last) {
      const found: KvEvent[] = [];
      for (const e of h.from(since)) {
        if (matches(e, key, recursive)) {
          found.push(e);
          if (!stream) break;
        }
      }
      if (found.length > 0 && !stream) {
        queueMicrotask(() => {
          if (w.done) return;
          w.done = true;
          safeDeliver(w, found[0]!);
        });
        return w;
      }
      if (found.length > 0) {
        w.pending = found;
        queueMicrotask(() => {
          const q = w.pending;
          // q grows if live events arrive while it is being handed over
          for (let i = 0; q !== null && i < q.length && !w.done; i++) safeDeliver(w, q[i]!);
          w.pending = null;
        });
      }
    }
    this.register(w, key);
    return w;
  }

  private register(w: WatcherImpl, key: string): void {
    let t = this.root;
    if (key !== "/") {
      let pos = 1;
      for (;;) {
        const slash = key.indexOf("/", pos);
        const name = slash < 0 ? key.slice(pos) : key.slice(pos, slash);
        t.children ??= new Map();
        let c = t.children.get(name);
        if (c === undefined) {
          c = new WatchNode(t, name);
          t.children.set(name, c);
        }
        t = c;
        if (slash < 0) break;
        pos = slash + 1;
      }
    }
    (t.watchers ??= new Set()).add(w);
    w.at = t;
    this.count++;
  }

  unregister(w: WatcherImpl): void {
    let t = w.at;
    if (t === null) return;
    w.at = null;
    t.watchers!.delete(w);
    this.count--;
    // prune so the trie only holds paths somebody watches
    while (t.parent !== null && (t.watchers === null || t.watchers.size === 0) && (t.children === null || t.children.size === 0)) {
      t.parent.children!.delete(t.name);
      t = t.parent;
    }
  }

  /** Records the event and tells the watchers it matches. Refreshes are recorded only. */
  add(e: KvEvent): void {
    this.history.add(e);
    if (e.refresh || this.count === 0) return;
    const key = e.key;
    const comps = key.split("/"); // ["", "a", "b"] for "/a/b"
    const depth = comps.length - 1;
    // watchers above the last hidden component do not see the change
    let lastHidden = 0;
    for (let d = 1; d <= depth; d++) if (comps[d]!.charCodeAt(0) === 95) lastHidden = d;

    const hits: WatcherImpl[] = [];
    let t: WatchNode | undefined = this.root;
    for (let d = 0; ; d++) {
      const ws = t.watchers;
      if (ws !== null && ws.size > 0) {
        const own = d === depth;
        if (own || d >= lastHidden) {
          for (const w of ws) if ((own || w.recursive) && e.index >= w.sinceIndex) hits.push(w);
        }
      }
      if (d === depth) break;
      t = t.children?.get(comps[d + 1]!);
      if (t === undefined) break;
    }
    // a removed directory takes every watcher below it, recursive or not, hidden or not
    if (t !== undefined && e.dir && (e.action === "delete" || e.action === "expire") && t.children !== null) {
      const stack: WatchNode[] = [...t.children.values()];
      while (stack.length > 0) {
        const n = stack.pop()!;
        if (n.watchers !== null) for (const w of n.watchers) if (e.index >= w.sinceIndex) hits.push(w);
        if (n.children !== null) for (const c of n.children.values()) stack.push(c);
      }
    }
    // deliver after collecting: callbacks may cancel or add watchers
    for (const w of hits) {
      if (w.done) continue;
      if (!w.stream) {
        w.done = true;
        this.unregister(w);
      }
      if (w.pending !== null) w.pending.push(e);
      else safeDeliver(w, e);
    }
  }
}
