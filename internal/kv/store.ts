// The etcd v2 store (v2store/store.go semantics): a pure in-memory state machine. No I/O, no
// timers, no clock: every time arrives inside a command or as an argument, so replicas that apply
// the same commands end in the same state.
import { EtcdError } from "./errors.ts";
import { EventHistory, GetEvent, KvEvent, PrevNode } from "./history.ts";
import { Node, childKey, normExpire, normalizeKey, renderTree, splitKey } from "./node.ts";
import { TtlHeap, type TtlEntry } from "./ttlheap.ts";
import type { Command, NodeJSON, StoreEvent } from "./types.ts";
import { WatcherHub, type Deliver, type Watcher } from "./watchers.ts";

export { normalizeKey } from "./node.ts";
export { GetEvent, KvEvent } from "./history.ts";
export type { Watcher } from "./watchers.ts";

/** /v2/stats/store counters, in etcd's JSON order (watchers is appended live). */
const STAT_NAMES = [
  "getsSuccess",
  "getsFail",
  "setsSuccess",
  "setsFail",
  "deleteSuccess",
  "deleteFail",
  "updateSuccess",
  "updateFail",
  "createSuccess",
  "createFail",
  "compareAndSwapSuccess",
  "compareAndSwapFail",
  "compareAndDeleteSuccess",
  "compareAndDeleteFail",
  "expireCount",
] as const;
type StatName = (typeof STAT_NAMES)[number];

const SUCCESS: Record<Exclude<Command["op"], "sync">, [StatName, StatName]> = {
  get: ["getsSuccess", "getsFail"],
  set: ["setsSuccess", "setsFail"],
  create: ["createSuccess", "createFail"],
  update: ["updateSuccess", "updateFail"],
  compareAndSwap: ["compareAndSwapSuccess", "compareAndSwapFail"],
  delete: ["deleteSuccess", "deleteFail"],
  compareAndDelete: ["compareAndDeleteSuccess", "compareAndDeleteFail"],
};

const SNAPSHOT_VERSION = 1;

/** Snapshot form of a node: [createdIndex, modifiedIndex, expireAt, value | [name, node, ...]]. */
type SnapNode = [number, number, number, string | unknown[]];
/** Snapshot form of an event: [action, index, key, dir, value|null, expireAt, createdIndex, refresh, prev|null]. */
type SnapEvent = [KvEvent["action"], number, string, 0 | 1, string | null, number, number, 0 | 1, SnapPrev | null];
type SnapPrev = [string | null, number, number, number];

interface Snapshot {
  version: number;
  index: number;
  root: unknown[];
  history: SnapEvent[];
  stats: Record<string, number>;
}

const utf8 = new TextEncoder();

/**
 * JSON text built as UTF-8 straight into one reused buffer: a snapshot of 100k keys then makes no
 * garbage per key (joined strings, number strings, entry arrays), which otherwise piled up faster
 * than the collector ran and showed as tens of MB of peak RSS.
 */
class JsonBytes {
  buf: Uint8Array;
  len = 0;

  constructor(size: number) {
    this.buf = new Uint8Array(size);
  }

  private room(n: number): void {
    if (this.len + n <= this.buf.length) return;
    const b = new Uint8Array(Math.max(this.buf.length * 2, this.len + n));
    b.set(this.buf.subarray(0, this.len));
    this.buf = b;
  }

  /** `s` as UTF-8, unquoted. */
  text(s: string): void {
    this.room(s.length * 3); // UTF-8 takes at most 3 bytes per UTF-16 unit
    const b = this.buf;
    let p = this.len;
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x80) {
        this.len = p;
        this.len += utf8.encodeInto(s.slice(i), b.subarray(p)).written;
        return;
      }
      b[p++] = c;
    }
    this.len = p;
  }

  /** `s` as a JSON string, exactly as JSON.stringify writes it. */
  str(s: string): void {
    this.room(s.length + 2);
    const b = this.buf;
    let p = this.len;
    b[p++] = 34;
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      // quote, backslash and controls are escaped, anything past ASCII is encoded: the slow way
      if (c < 0x20 || c === 34 || c === 92 || c >= 0x80) return this.text(JSON.stringify(s));
      b[p++] = c;
    }
    b[p++] = 34;
    this.len = p;
  }

  /** A number as JSON.stringify writes it. */
  num(n: number): void {
    if (!(Number.isSafeInteger(n) && n >= 0)) return this.text(JSON.stringify(n));
    let digits = 1;
    for (let x = n; x >= 10; x = Math.floor(x / 10)) digits++;
    this.room(digits);
    const b = this.buf;
    let p = this.len + digits;
    this.len = p;
    do {
      b[--p] = 48 + (n % 10);
      n = Math.floor(n / 10);
    } while (n > 0);
  }

  /** The bytes so far (a view: valid until the next write), and start over. */
  take(): Uint8Array {
    const v = this.buf.subarray(0, this.len);
    this.len = 0;
    return v;
  }
}

export class Store {
  private root = new Node("", new Map(), 0, 0, 0);
  private current = 0;
  private readonly hub = new WatcherHub(new EventHistory());
  private ttl = new TtlHeap((e) => this.isLive(e));
  private readonly counters: Record<StatName, number> = Object.fromEntries(STAT_NAMES.map((n) => [n, 0])) as Record<
    StatName,
    number
  >;

  get index(): number {
    return this.current;
  }

  /** Called with the error of a watch callback that threw; that watcher is cancelled. */
  get onWatcherError(): ((err: unknown) => void) | null {
    return this.hub.onError;
  }

  set onWatcherError(f: ((err: unknown) => void) | null) {
    this.hub.onError = f;
  }

  get(key: string, recursive: boolean, sorted: boolean): GetEvent {
    try {
      const e = this.doGet(normalizeKey(key), recursive, sorted);
      this.counters.getsSuccess++;
      return e;
    } catch (err) {
      this.counters.getsFail++;
      throw err;
    }
  }

  apply(cmd: Exclude<Command, { op: "sync" }>): KvEvent | GetEvent {
    const names = SUCCESS[cmd.op];
    if (names === undefined) throw new Error(`unknown store command ${(cmd as { op: string }).op}`);
    const [ok, fail] = names;
    let e: KvEvent | GetEvent;
    try {
      switch (cmd.op) {
        case "get":
          e = this.doGet(normalizeKey(cmd.key), cmd.recursive, cmd.sorted);
          break;
        case "set":
          e = this.set(normalizeKey(cmd.key), cmd.value, cmd.dir, normExpire(cmd.expireAt), cmd.refresh === true);
          break;
        case "create":
          e = this.create(normalizeKey(cmd.key), cmd.value, cmd.dir, cmd.unique, normExpire(cmd.expireAt));
          break;
        case "update":
          e = this.update(normalizeKey(cmd.key), cmd.value, normExpire(cmd.expireAt), cmd.refresh);
          break;
        case "compareAndSwap":
          e = this.compareAndSwap(normalizeKey(cmd.key), cmd);
          break;
        case "delete":
          e = this.delete(normalizeKey(cmd.key), cmd.dir, cmd.recursive);
          break;
        case "compareAndDelete":
          e = this.compareAndDelete(normalizeKey(cmd.key), cmd.prevValue, cmd.prevIndex);
          break;
        default:
          throw new Error("unreachable");
      }
    } catch (err) {
      // etcd 3.4 miscounts some failures (a create's failed parent walk also bumps setsFail; an
      // update/CAD refused after the lookup counts as a success); we count what happened
      this.counters[fail]++;
      throw err;
    }
    this.counters[ok]++;
    if (e instanceof KvEvent) this.hub.add(e);
    return e;
  }

  deleteExpired(time: number): void {
    for (;;) {
      const t = this.ttl.top();
      if (t === undefined || t.at > time) return;
      this.ttl.pop();
      const [parentKey, name] = splitKey(t.key);
      const parent = this.lookup(parentKey)!;
      parent.children!.delete(name);
      const n = t.node;
      const index = ++this.current;
      const dir = n.children !== null;
      this.counters.expireCount++;
      this.hub.add(new KvEvent("expire", index, t.key, dir, undefined, 0, n.createdIndex, PrevNode.of(n), false));
    }
  }

  nextExpiry(): number | null {
    return this.ttl.top()?.at ?? null;
  }

  watch(key: string, opts: { recursive: boolean; stream: boolean; sinceIndex: number }, deliver: Deliver): Watcher {
    const since = opts.sinceIndex === 0 ? this.current + 1 : opts.sinceIndex;
    return this.hub.watch(normalizeKey(key), opts.recursive, opts.stream, since, this.current, deliver);
  }

  stats(): Record<string, number> {
    const o: Record<string, number> = {};
    for (const n of STAT_NAMES) o[n] = this.counters[n];
    o.watchers = this.hub.count;
    return o;
  }

  // ---- reads -------------------------------------------------------------------------------

  /** The node at `key`, or null if some component is missing. A path through a key → 104. */
  private lookup(key: string): Node | null {
    let n = this.root;
    if (key === "/") return n;
    let pos = 1;
    for (;;) {
      const ch = n.children;
      if (ch === null) throw new EtcdError(104, key.slice(0, pos - 1), this.current);
      const slash = key.indexOf("/", pos);
      const c = ch.get(slash < 0 ? key.slice(pos) : key.slice(pos, slash));
      if (c === undefined) return null;
      if (slash < 0) return c;
      n = c;
      pos = slash + 1;
    }
  }

  /** Like lookup, but a missing node is 100 with the first missing component as cause. */
  private find(key: string): Node {
    const n = this.lookup(key);
    if (n !== null) return n;
    let pos = 1;
    for (;;) {
      const slash = key.indexOf("/", pos);
      const prefix = slash < 0 ? key : key.slice(0, slash);
      if (slash < 0 || this.lookup(prefix) === null) throw new EtcdError(100, prefix, this.current);
      pos = slash + 1;
    }
  }

  private isLive(e: TtlEntry): boolean {
    if (e.node.expireAt !== e.at) return false;
    try {
      return this.lookup(e.key) === e.node;
    } catch {
      return false;
    }
  }

  private doGet(key: string, recursive: boolean, sorted: boolean): GetEvent {
    const n = this.find(key);
    const ttls: Array<NodeJSON | number> = [];
    const node = renderTree(key, n, true, recursive, sorted, ttls);
    return new GetEvent(key, n.modifiedIndex, this.current, n.children !== null, node, ttls);
  }

  // ---- writes ------------------------------------------------------------------------------

  private readOnlyRoot(key: string): void {
    if (key === "/") throw new EtcdError(107, "/", this.current);
  }

  /**
   * The children of `key`'s parent, creating missing dirs with `index` (etcd's checkDir). Callers
   * make sure nothing can fail after this: once a component is missing, the rest are created too.
   */
  private parentDir(key: string, index: number): Map<string, Node> {
    let ch = this.root.children!;
    let pos = 1;
    for (;;) {
      const slash = key.indexOf("/", pos);
      if (slash < 0) return ch;
      const name = key.slice(pos, slash);
      let c = ch.get(name);
      if (c === undefined) {
        c = new Node("", new Map(), index, index, 0);
        ch.set(name, c);
      } else if (c.children === null) {
        throw new EtcdError(104, key.slice(0, slash), this.current);
      }
      ch = c.children!;
      pos = slash + 1;
    }
  }

  private attach(key: string, index: number, value: string, dir: boolean, expireAt: number): Node {
    const n = new Node(dir ? "" : value, dir ? new Map() : null, index, index, expireAt);
    this.parentDir(key, index).set(splitKey(key)[1], n);
    if (expireAt !== 0) this.ttl.push(expireAt, key, n);
    return n;
  }

  private setTTL(key: string, n: Node, expireAt: number): void {
    if (expireAt === n.expireAt) return;
    n.expireAt = expireAt;
    // the old heap entry goes stale by itself (its time no longer matches)
    if (expireAt !== 0) this.ttl.push(expireAt, key, n);
  }

  private set(key: string, value: string, dir: boolean, expireAt: number, refresh: boolean): KvEvent {
    const prev = this.lookup(key);
    if (refresh) {
      if (prev === null) this.find(key);
      value = prev!.value;
    }
    this.readOnlyRoot(key);
    if (prev !== null && prev.children !== null) throw new EtcdError(102, key, this.current);
    const index = this.current + 1;
    this.attach(key, index, value, dir, expireAt);
    this.current = index;
    return new KvEvent(
      "set",
      index,
      key,
      dir,
      dir ? undefined : value,
      expireAt,
      index,
      prev === null ? null : PrevNode.of(prev),
      refresh,
    );
  }

  private create(key: string, value: string, dir: boolean, unique: boolean, expireAt: number): KvEvent {
    const index = this.current + 1;
    if (unique) key = normalizeKey(key + "/" + String(index).padStart(20, "0"));
    this.readOnlyRoot(key);
    const parent = this.parentDir(key, index);
    if (parent.has(splitKey(key)[1])) throw new EtcdError(105, key, this.current);
    this.attach(key, index, value, dir, expireAt);
    this.current = index;
    return new KvEvent("create", index, key, dir, dir ? undefined : value, expireAt, index, null, false);
  }

  private update(key: string, value: string | null, expireAt: number, refresh: boolean): KvEvent {
    this.readOnlyRoot(key);
    const n = this.find(key);
    const isDir = n.children !== null;
    if (isDir && value !== null && value !== "") throw new EtcdError(102, key, this.current);
    const index = this.current + 1;
    const prev = PrevNode.of(n);
    // a dir's own modifiedIndex stays: etcd's write of a dir is a no-op, only the event moves (obs)
    if (!isDir) {
      if (!refresh && value !== null) n.value = value;
      n.modifiedIndex = index;
    }
    this.setTTL(key, n, expireAt);
    this.current = index;
    return new KvEvent("update", index, key, isDir, isDir ? undefined : n.value, n.expireAt, n.createdIndex, prev, refresh);
  }

  private compare(n: Node, prevValue: string | null, prevIndex: number): void {
    // an empty prevValue is a wildcard in etcd's store too (the HTTP layer rejects it with 201)
    const valueOk = prevValue === null || prevValue === "" || n.value === prevValue;
    const indexOk = prevIndex === 0 || n.modifiedIndex === prevIndex;
    if (valueOk && indexOk) return;
    const cause = !valueOk && !indexOk
      ? `[${prevValue} != ${n.value}] [${prevIndex} != ${n.modifiedIndex}]`
      : !valueOk
        ? `[${prevValue} != ${n.value}]`
        : `[${prevIndex} != ${n.modifiedIndex}]`;
    throw new EtcdError(101, cause, this.current);
  }

  private compareAndSwap(key: string, c: Extract<Command, { op: "compareAndSwap" }>): KvEvent {
    this.readOnlyRoot(key);
    const n = this.find(key);
    if (n.children !== null) throw new EtcdError(102, key, this.current);
    this.compare(n, c.prevValue, c.prevIndex);
    const index = this.current + 1;
    const prev = PrevNode.of(n);
    if (!c.refresh) n.value = c.value;
    n.modifiedIndex = index;
    this.setTTL(key, n, normExpire(c.expireAt));
    this.current = index;
    return new KvEvent("compareAndSwap", index, key, false, n.value, n.expireAt, n.createdIndex, prev, c.refresh);
  }

  private delete(key: string, dir: boolean, recursive: boolean): KvEvent {
    this.readOnlyRoot(key);
    const n = this.find(key);
    const isDir = n.children !== null;
    if (isDir) {
      if (!dir && !recursive) throw new EtcdError(102, key, this.current);
      // hidden children count: a dir holding only "_x" is not empty
      if (n.children!.size > 0 && !recursive) throw new EtcdError(108, key, this.current);
    }
    return this.remove(key, n, "delete", isDir);
  }

  private compareAndDelete(key: string, prevValue: string | null, prevIndex: number): KvEvent {
    const n = this.find(key);
    // no root check here in etcd: the root is a dir, and its internal path is trimmed to "" (obs)
    if (n.children !== null) throw new EtcdError(102, key === "/" ? "" : key, this.current);
    this.compare(n, prevValue, prevIndex);
    return this.remove(key, n, "compareAndDelete", false);
  }

  private remove(key: string, n: Node, action: "delete" | "compareAndDelete", isDir: boolean): KvEvent {
    const [parentKey, name] = splitKey(key);
    this.lookup(parentKey)!.children!.delete(name);
    const index = ++this.current;
    return new KvEvent(action, index, key, isDir, undefined, 0, n.createdIndex, PrevNode.of(n), false);
  }

  // ---- snapshots ---------------------------------------------------------------------------

  /** The store as JSON text (one node or event per line; see snapshotChunks). */
  toSnapshot(): string {
    const dec = new TextDecoder();
    let text = "";
    for (const piece of this.snapshotChunks()) text += dec.decode(piece, { stream: true });
    return text + dec.decode();
  }

  /**
   * The snapshot as UTF-8 JSON in pieces of about `chunkBytes`; together they are toSnapshot().
   * Each piece is a view into one reused buffer: write it out (or decode it) before asking for
   * the next. The document puts one event or node per line (JSON allows the newlines), so it can
   * be read back line by line (fromSnapshotLines) without the whole text, or a parsed copy of it,
   * in memory at once:
   *
   *     {"version":1,"index":7,"stats":{...},"history":[
   *     ["set",6,"/d/x",0,"v",0,6,0,null]
   *     ,["set",7,"/k",0,"w",0,7,0,null]
   *     ],"root":[
   *     "d",[6,6,0,[
   *     "x",[6,6,0,"v"]
   *     ]]
   *     ,"k",[7,7,0,"w"]
   *     ]}
   *
   * Consume it without yielding to the event loop (the pieces are made as they are asked for); a
   * store changed in between makes the generator throw rather than describe two states.
   */
  *snapshotChunks(chunkBytes = 64 << 10): Generator<Uint8Array> {
    const at = this.current;
    const stats: Record<string, number> = {};
    for (const n of STAT_NAMES) stats[n] = this.counters[n];
    const w = new JsonBytes(chunkBytes + 4096);
    w.text(`{"version":${SNAPSHOT_VERSION},"index":${at},"stats":${JSON.stringify(stats)},"history":[\n`);
    let first = true;
    for (const e of this.hub.history.from(0)) {
      const p = e.prev;
      const ev: SnapEvent = [
        e.action,
        e.index,
        e.key,
        e.dir ? 1 : 0,
        e.value ?? null,
        e.expireAt,
        e.createdIndex,
        e.refresh ? 1 : 0,
        p === null ? null : [p.value ?? null, p.expireAt, p.modifiedIndex, p.createdIndex],
      ];
      if (!first) w.text(",");
      w.text(JSON.stringify(ev));
      w.text("\n");
      first = false;
      if (w.len >= chunkBytes) {
        yield w.take();
        this.checkUnchanged(at);
      }
    }
    w.text(`],"root":[\n`);
    yield* this.snapshotDir(this.root.children!, w, chunkBytes, at);
    w.text("]}");
    yield w.take();
  }

  private checkUnchanged(at: number): void {
    if (this.current !== at) throw new Error(`store changed during a snapshot (index ${at}, now ${this.current})`);
  }

  /**
   * The lines of one directory's children, depth-first in insertion order (the order GETs list
   * them in). for-of over keys() allocates nothing per child, unlike entries() or next() calls.
   */
  private *snapshotDir(ch: Map<string, Node>, w: JsonBytes, chunkBytes: number, at: number): Generator<Uint8Array> {
    let first = true;
    for (const name of ch.keys()) {
      const n = ch.get(name)!;
      if (!first) w.text(",");
      first = false;
      w.str(name);
      w.text(",[");
      w.num(n.createdIndex);
      w.text(",");
      w.num(n.modifiedIndex);
      w.text(",");
      w.num(n.expireAt);
      w.text(",");
      const kids = n.children;
      if (kids === null) {
        w.str(n.value);
        w.text("]\n");
      } else if (kids.size === 0) {
        w.text("[]]\n");
      } else {
        w.text("[\n");
        yield* this.snapshotDir(kids, w, chunkBytes, at);
        w.text("]]\n");
      }
      if (w.len >= chunkBytes) {
        yield w.take();
        this.checkUnchanged(at);
      }
    }
  }

  /**
   * Takes over the data of `from` (a snapshot a follower received from its leader) while keeping
   * this store's watchers, as etcd's store recovery does: they see the events that follow.
   */
  recover(from: Store): void {
    this.root = from.root;
    this.current = from.current;
    this.hub.history = from.hub.history;
    this.ttl = new TtlHeap((e) => this.isLive(e));
    from.ttl.forEach((at, key, n) => this.ttl.push(at, key, n));
    for (const n of STAT_NAMES) this.counters[n] = from.counters[n];
  }

  static fromSnapshot(text: string): Store {
    return Store.fromSnapshotLines(text.split("\n"));
  }

  /**
   * Rebuilds a store from the lines of a snapshot (the text split at "\n", without the newlines),
   * one line at a time: the lines can come straight from a file. Also reads the older layout, the
   * whole document on one line.
   */
  static fromSnapshotLines(lines: Iterable<string>): Store {
    const it = lines[Symbol.iterator]();
    let lineNo = 0;
    const next = (): string | undefined => {
      const r = it.next();
      lineNo++;
      return r.done ? undefined : r.value;
    };
    const bad = (why: string) => new Error(`store snapshot: ${why} at line ${lineNo}`);
    const head = next();
    if (head === undefined) throw bad("empty snapshot");
    if (!head.endsWith("[")) {
      // the older layout: one JSON document on one line
      let text = head;
      for (let l = next(); l !== undefined; l = next()) text += "\n" + l;
      return Store.fromParsed(JSON.parse(text) as Snapshot);
    }
    const h = JSON.parse(head + "]}") as { version: number; index: number; stats: Record<string, number> };
    if (h.version !== SNAPSHOT_VERSION) throw new Error(`unsupported store snapshot version ${h.version}`);
    const st = new Store();
    const unComma = (l: string) => (l.charCodeAt(0) === 44 /* , */ ? l.slice(1) : l);
    for (;;) {
      const l = next();
      if (l === undefined) throw bad("unexpected end in the history");
      if (l === '],"root":[') break;
      st.addSnapEvent(JSON.parse(unComma(l)) as SnapEvent);
    }
    const dirs: Array<{ key: string; children: Map<string, Node> }> = [{ key: "/", children: st.root.children! }];
    for (;;) {
      const l = next();
      if (l === undefined) throw bad("unexpected end in the tree");
      if (l === "]]" || l === "]}") {
        if ((l === "]}") !== (dirs.length === 1)) throw bad("unbalanced tree");
        if (l === "]}") break;
        dirs.pop();
        continue;
      }
      const open = l.endsWith("[");
      const [name, [ci, mi, exp, body]] = JSON.parse(`[${unComma(l)}${open ? "]]]" : "]"}`) as [string, SnapNode];
      const dir = dirs[dirs.length - 1]!;
      const isDir = typeof body !== "string";
      if (isDir && !open && (body as unknown[]).length > 0) throw bad("a directory's children on its own line");
      const n = isDir ? new Node("", new Map(), ci, mi, exp) : new Node(body, null, ci, mi, exp);
      dir.children.set(name, n);
      if (exp !== 0 || open) {
        const key = childKey(dir.key, name);
        if (exp !== 0) st.ttl.push(exp, key, n);
        if (open) dirs.push({ key, children: n.children! });
      }
    }
    for (let l = next(); l !== undefined; l = next()) if (l !== "") throw bad("text after the document");
    st.current = h.index;
    for (const n of STAT_NAMES) st.counters[n] = h.stats[n] ?? 0;
    return st;
  }

  private static fromParsed(s: Snapshot): Store {
    if (s.version !== SNAPSHOT_VERSION) throw new Error(`unsupported store snapshot version ${s.version}`);
    const st = new Store();
    const fill = (into: Map<string, Node>, dirKey: string, kids: unknown[]): void => {
      for (let i = 0; i < kids.length; i += 2) {
        const name = kids[i] as string;
        const [ci, mi, exp, body] = kids[i + 1] as SnapNode;
        const key = childKey(dirKey, name);
        const n = typeof body === "string" ? new Node(body, null, ci, mi, exp) : new Node("", new Map(), ci, mi, exp);
        into.set(name, n);
        if (exp !== 0) st.ttl.push(exp, key, n);
        if (typeof body !== "string") fill(n.children!, key, body);
      }
    };
    fill(st.root.children!, "/", s.root);
    st.current = s.index;
    for (const e of s.history) st.addSnapEvent(e);
    for (const n of STAT_NAMES) st.counters[n] = s.stats[n] ?? 0;
    return st;
  }

  private addSnapEvent([action, index, key, dir, value, exp, ci, refresh, p]: SnapEvent): void {
    const prev = p === null ? null : new PrevNode(p[0] ?? undefined, p[1], p[2], p[3]);
    this.hub.history.add(new KvEvent(action, index, key, dir === 1, value ?? undefined, exp, ci, prev, refresh === 1));
  }
}

export type { StoreEvent };
