// The v2 store's tree: compact nodes, path normalisation and the JSON rendering of nodes.
import type { NodeJSON } from "./types.ts";

/** Expiration times before 2000-01-01 mean "no TTL" (etcd's minExpireTime: a zero time serialised through JS). */
export const MIN_EXPIRE = 946684800000;

/**
 * A key (children === null) or a directory. Nodes carry neither their name nor their path nor a
 * parent pointer: the path is known to whoever walked to the node, and leaving it out keeps 100k
 * keys small. expireAt 0 = permanent.
 */
export class Node {
  constructor(
    public value: string,
    public children: Map<string, Node> | null,
    public createdIndex: number,
    public modifiedIndex: number,
    public expireAt: number,
  ) {}
}

/** `null`/pre-2000 expirations collapse to 0 (permanent), as etcd does. */
export function normExpire(at: number | null): number {
  return at === null || !(at >= MIN_EXPIRE) ? 0 : at;
}

// A path already clean needs no allocation; most keys are.
const UNCLEAN = /\/\/|\/\.\.?(?:\/|$)/;

/** Go's path.Clean(path.Join("/", p)). */
export function normalizeKey(p: string): string {
  if (p.charCodeAt(0) === 47 && (p.length === 1 || p.charCodeAt(p.length - 1) !== 47) && !UNCLEAN.test(p)) return p;
  const out: string[] = [];
  for (const c of p.split("/")) {
    if (c === "" || c === ".") continue;
    if (c === "..") out.pop();
    else out.push(c);
  }
  return "/" + out.join("/");
}

/** The key of `name` inside the directory `dir`. */
export function childKey(dir: string, name: string): string {
  return dir === "/" ? "/" + name : dir + "/" + name;
}

/** [parent key, own name] of a non-root normalised key. */
export function splitKey(key: string): [string, string] {
  const i = key.lastIndexOf("/");
  return [i === 0 ? "/" : key.slice(0, i), key.slice(i + 1)];
}

export function isHiddenName(name: string): boolean {
  return name.charCodeAt(0) === 95; // "_"
}

/**
 * Go compares strings by UTF-8 bytes, i.e. by code point. UTF-16 code-unit order only differs
 * when a surrogate meets a unit in U+E000..U+FFFF, so fix up just that case.
 */
export function compareBytes(a: string, b: string): number {
  const n = a.length < b.length ? a.length : b.length;
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    if (x >= 0xd800 && y >= 0xd800) {
      x = x >= 0xe000 ? x - 0x800 : x + 0x2000;
      y = y >= 0xe000 ? y - 0x800 : y + 0x2000;
    }
    return x - y;
  }
  return a.length - b.length;
}

const HIGH = /[\ud800-\uffff]/;
const nativeCompare = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** Trailing zeros of the fraction trimmed, like Go's RFC3339Nano. */
export function formatExpiration(ms: number): string {
  const s = new Date(ms).toISOString();
  if (s.endsWith(".000Z")) return s.slice(0, -5) + "Z";
  if (s.endsWith("00Z")) return s.slice(0, -3) + "Z";
  if (s.endsWith("0Z")) return s.slice(0, -2) + "Z";
  return s;
}

/** ceil(remaining seconds); undefined (omitted) once it is not positive. */
export function ttlOf(expireAt: number, now: number): number | undefined {
  const t = Math.ceil((expireAt - now) / 1000);
  return t > 0 ? t : undefined;
}

/**
 * Renders `n` as a GET response node. The tree is copied now (a quorum GET's answer may be
 * serialised after later writes), but `ttl` depends on the clock at response time: nodes with an
 * expiration get a `ttl` placeholder (in its serialisation slot) and are listed in `ttls` as
 * [node, expireAt] pairs for the caller to fill in.
 */
export function renderTree(
  key: string,
  n: Node,
  expand: boolean,
  recursive: boolean,
  sorted: boolean,
  ttls: Array<NodeJSON | number>,
): NodeJSON {
  const o: NodeJSON = {};
  if (key !== "/") o.key = key;
  const ch = n.children;
  if (ch === null) o.value = n.value;
  else o.dir = true;
  if (n.expireAt !== 0) {
    o.expiration = formatExpiration(n.expireAt);
    o.ttl = undefined;
    ttls.push(o, n.expireAt);
  }
  if (ch !== null && expand && ch.size > 0) {
    const names: string[] = [];
    for (const name of ch.keys()) if (!isHiddenName(name)) names.push(name);
    if (names.length > 0) {
      if (sorted) names.sort(names.some((s) => HIGH.test(s)) ? compareBytes : nativeCompare);
      const nodes: NodeJSON[] = new Array(names.length);
      for (let i = 0; i < names.length; i++) {
        const name = names[i]!;
        nodes[i] = renderTree(childKey(key, name), ch.get(name)!, recursive, recursive, sorted, ttls);
      }
      o.nodes = nodes;
    }
  }
  if (n.modifiedIndex !== 0) o.modifiedIndex = n.modifiedIndex;
  if (n.createdIndex !== 0) o.createdIndex = n.createdIndex;
  return o;
}
