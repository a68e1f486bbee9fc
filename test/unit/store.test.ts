// The v2 store against the compatibility contract (spec etcd-v2.md §1.2-1.9, §9). Expected bodies
// are etcd 3.4.23's (checked with curl), field order included, so they are compared as JSON text.
import { describe, expect, test } from "bun:test";
import { EtcdError } from "../../internal/kv/errors.ts";
import { normalizeKey, Store, type KvEvent } from "../../internal/kv/store.ts";
import type { Command, StoreEvent } from "../../internal/kv/types.ts";

const NOW = Date.UTC(2026, 10, 21, 22, 37, 53, 482);
type Cmd = Exclude<Command, { op: "sync" }>;

const set = (key: string, value = "", o: Partial<Extract<Cmd, { op: "set" }>> = {}): Cmd => ({
  op: "set", key, value, dir: false, expireAt: null, refresh: false, ...o,
});
const mkdir = (key: string, expireAt: number | null = null): Cmd => set(key, "", { dir: true, expireAt });
const create = (key: string, value = "", o: Partial<Extract<Cmd, { op: "create" }>> = {}): Cmd => ({
  op: "create", key, value, dir: false, unique: false, expireAt: null, ...o,
});
const update = (key: string, value: string | null, o: Partial<Extract<Cmd, { op: "update" }>> = {}): Cmd => ({
  op: "update", key, value, expireAt: null, refresh: false, ...o,
});
const cas = (key: string, value: string, prevValue: string | null, prevIndex: number, o: Partial<Extract<Cmd, { op: "compareAndSwap" }>> = {}): Cmd => ({
  op: "compareAndSwap", key, value, prevValue, prevIndex, expireAt: null, refresh: false, ...o,
});
const del = (key: string, dir = false, recursive = false): Cmd => ({ op: "delete", key, dir, recursive });
const cad = (key: string, prevValue: string | null, prevIndex: number): Cmd => ({ op: "compareAndDelete", key, prevValue, prevIndex });

const js = (e: StoreEvent, now = NOW): string => JSON.stringify(e.toJSON(now));

function storeWith(...cmds: Cmd[]): Store {
  const s = new Store();
  for (const c of cmds) s.apply(c);
  return s;
}

/** The error an operation throws, as its etcd JSON body. */
function failure(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (e instanceof EtcdError) return JSON.stringify(e.toJSON());
    throw e;
  }
  throw new Error("expected an EtcdError");
}

/** Microtasks (history deliveries) run. */
const flush = () => new Promise<void>((r) => setTimeout(r, 0));

describe("normalizeKey", () => {
  test.each([
    ["", "/"],
    ["/", "/"],
    ["a", "/a"],
    ["/a/", "/a"],
    ["/a//b/", "/a/b"],
    ["//a///b", "/a/b"],
    ["/a/./b", "/a/b"],
    ["/a/../b", "/b"],
    ["../../x", "/x"],
    ["/a/b/..", "/a"],
    ["/..", "/"],
    ["/.", "/"],
    ["/a/..b/.c", "/a/..b/.c"],
    ["/e/k/", "/e/k"],
    ["/_h/x", "/_h/x"],
    ["/a\n/", "/a\n"],
    ["/a b/\u00e9/", "/a b/\u00e9"],
    ["/a/.../b", "/a/.../b"],
  ])("%p -> %p", (input, want) => {
    expect(normalizeKey(input)).toBe(want);
  });
});

describe("successful operations: JSON shapes and indexes", () => {
  test("set new, set replace (new createdIndex), CAS keeps createdIndex", () => {
    const s = new Store();
    const e1 = s.apply(set("/t/k1", "v1"));
    expect(js(e1)).toBe('{"action":"set","node":{"key":"/t/k1","value":"v1","modifiedIndex":1,"createdIndex":1}}');
    expect(e1.etcdIndex).toBe(1);
    expect((e1 as KvEvent).hasPrev).toBe(false);
    const e2 = s.apply(set("/t/k1", "v2"));
    expect(js(e2)).toBe(
      '{"action":"set","node":{"key":"/t/k1","value":"v2","modifiedIndex":2,"createdIndex":2},' +
        '"prevNode":{"key":"/t/k1","value":"v1","modifiedIndex":1,"createdIndex":1}}',
    );
    expect((e2 as KvEvent).hasPrev).toBe(true);
    const e3 = s.apply(cas("/t/k1", "v3", "v2", 0));
    expect(js(e3)).toBe(
      '{"action":"compareAndSwap","node":{"key":"/t/k1","value":"v3","modifiedIndex":3,"createdIndex":2},' +
        '"prevNode":{"key":"/t/k1","value":"v2","modifiedIndex":2,"createdIndex":2}}',
    );
    expect(s.apply(cas("/t/k1", "v4", null, 3)).index).toBe(4);
    expect(s.apply(cas("/t/k1", "v5", "v4", 4)).index).toBe(5);
    expect(s.index).toBe(5);
  });

  test("implicit parent dirs get the index of the write", () => {
    const s = storeWith(set("/x", "1"), set("/a/b/c", "v"));
    expect(js(s.get("/a", true, true))).toBe(
      '{"action":"get","node":{"key":"/a","dir":true,"nodes":[{"key":"/a/b","dir":true,"nodes":[' +
        '{"key":"/a/b/c","value":"v","modifiedIndex":2,"createdIndex":2}],"modifiedIndex":2,"createdIndex":2}],' +
        '"modifiedIndex":2,"createdIndex":2}}',
    );
  });

  test("empty value is kept as \"\"", () => {
    const s = storeWith(set("/e", ""));
    expect(js(s.get("/e", false, false))).toBe('{"action":"get","node":{"key":"/e","value":"","modifiedIndex":1,"createdIndex":1}}');
  });

  test("mkdir, dir=true over a key replaces it, set with dir ignores value", () => {
    const s = new Store();
    expect(js(s.apply(mkdir("/d1")))).toBe('{"action":"set","node":{"key":"/d1","dir":true,"modifiedIndex":1,"createdIndex":1}}');
    s.apply(set("/k", "v"));
    expect(js(s.apply(set("/k", "ignored", { dir: true })))).toBe(
      '{"action":"set","node":{"key":"/k","dir":true,"modifiedIndex":3,"createdIndex":3},' +
        '"prevNode":{"key":"/k","value":"v","modifiedIndex":2,"createdIndex":2}}',
    );
    expect(js(s.get("/k", false, false))).toBe('{"action":"get","node":{"key":"/k","dir":true,"modifiedIndex":3,"createdIndex":3}}');
  });

  test("create, unique create (20-digit names, parent made), unique dir", () => {
    const s = storeWith(set("/a", "1"));
    expect(js(s.apply(create("/t/k", "c")))).toBe('{"action":"create","node":{"key":"/t/k","value":"c","modifiedIndex":2,"createdIndex":2}}');
    expect(js(s.apply(create("/q", "job1", { unique: true })))).toBe(
      '{"action":"create","node":{"key":"/q/00000000000000000003","value":"job1","modifiedIndex":3,"createdIndex":3}}',
    );
    expect(js(s.apply(create("/q/", "", { unique: true, dir: true })))).toBe(
      '{"action":"create","node":{"key":"/q/00000000000000000004","dir":true,"modifiedIndex":4,"createdIndex":4}}',
    );
    expect(s.apply(create("/", "r", { unique: true })).key).toBe("/00000000000000000005");
    expect((s.apply(create("/z", "")) as KvEvent).hasPrev).toBe(false);
  });

  test("update: value, keeps createdIndex; null value keeps the value; TTL removal", () => {
    const s = storeWith(set("/k", "a", { expireAt: NOW + 100_000 }));
    expect(js(s.apply(update("/k", "b")))).toBe(
      '{"action":"update","node":{"key":"/k","value":"b","modifiedIndex":2,"createdIndex":1},' +
        '"prevNode":{"key":"/k","value":"a","expiration":"2026-11-21T22:39:33.482Z","ttl":100,"modifiedIndex":1,"createdIndex":1}}',
    );
    expect(s.nextExpiry()).toBeNull();
    expect(js(s.apply(update("/k", null, { expireAt: NOW + 5000 })))).toBe(
      '{"action":"update","node":{"key":"/k","value":"b","expiration":"2026-11-21T22:37:58.482Z","ttl":5,"modifiedIndex":3,"createdIndex":1},' +
        '"prevNode":{"key":"/k","value":"b","modifiedIndex":2,"createdIndex":1}}',
    );
    expect(s.nextExpiry()).toBe(NOW + 5000);
  });

  test("update of a dir's TTL: the event has the new modifiedIndex, the stored dir keeps the old (quirk)", () => {
    const s = storeWith(mkdir("/d", NOW + 100_000));
    expect(js(s.apply(update("/d", null, { expireAt: NOW + 200_000 })))).toBe(
      '{"action":"update","node":{"key":"/d","dir":true,"expiration":"2026-11-21T22:41:13.482Z","ttl":200,"modifiedIndex":2,"createdIndex":1},' +
        '"prevNode":{"key":"/d","dir":true,"expiration":"2026-11-21T22:39:33.482Z","ttl":100,"modifiedIndex":1,"createdIndex":1}}',
    );
    expect(js(s.get("/d", false, false))).toBe(
      '{"action":"get","node":{"key":"/d","dir":true,"expiration":"2026-11-21T22:41:13.482Z","ttl":200,"modifiedIndex":1,"createdIndex":1}}',
    );
    // value "" on a dir is allowed and drops the TTL
    expect(js(s.apply(update("/d", "")))).toBe(
      '{"action":"update","node":{"key":"/d","dir":true,"modifiedIndex":3,"createdIndex":1},' +
        '"prevNode":{"key":"/d","dir":true,"expiration":"2026-11-21T22:41:13.482Z","ttl":200,"modifiedIndex":1,"createdIndex":1}}',
    );
    expect(s.nextExpiry()).toBeNull();
  });

  test("delete: key (whatever dir says), empty dir, recursive dir; node has no value", () => {
    const s = storeWith(set("/t/k2", "c2"), mkdir("/d1"), set("/r/a/b", "x"));
    expect(js(s.apply(del("/t/k2", true)))).toBe(
      '{"action":"delete","node":{"key":"/t/k2","modifiedIndex":4,"createdIndex":1},' +
        '"prevNode":{"key":"/t/k2","value":"c2","modifiedIndex":1,"createdIndex":1}}',
    );
    expect(js(s.apply(del("/d1", true)))).toBe(
      '{"action":"delete","node":{"key":"/d1","dir":true,"modifiedIndex":5,"createdIndex":2},' +
        '"prevNode":{"key":"/d1","dir":true,"modifiedIndex":2,"createdIndex":2}}',
    );
    // recursive implies dir; the subtree goes with one index
    expect(js(s.apply(del("/r", false, true)))).toBe(
      '{"action":"delete","node":{"key":"/r","dir":true,"modifiedIndex":6,"createdIndex":3},' +
        '"prevNode":{"key":"/r","dir":true,"modifiedIndex":3,"createdIndex":3}}',
    );
    expect(s.index).toBe(6);
    expect(failure(() => s.get("/r/a/b", false, false))).toBe('{"errorCode":100,"message":"Key not found","cause":"/r","index":6}');
  });

  test("compareAndDelete by value and by index", () => {
    const s = storeWith(set("/t/k2", "c2"), set("/t/k3", "c3"));
    expect(js(s.apply(cad("/t/k2", "c2", 0)))).toBe(
      '{"action":"compareAndDelete","node":{"key":"/t/k2","modifiedIndex":3,"createdIndex":1},' +
        '"prevNode":{"key":"/t/k2","value":"c2","modifiedIndex":1,"createdIndex":1}}',
    );
    expect(s.apply(cad("/t/k3", null, 2)).index).toBe(4);
    expect(s.apply(create("/t/k3", "")).index).toBe(5);
  });

  test("quorum get through apply does not take an index", () => {
    const s = storeWith(set("/a", "1"));
    const e = s.apply({ op: "get", key: "/a", recursive: false, sorted: false });
    expect(js(e)).toBe('{"action":"get","node":{"key":"/a","value":"1","modifiedIndex":1,"createdIndex":1}}');
    expect(e.etcdIndex).toBe(1);
    expect(s.index).toBe(1);
  });
});

describe("errors: code, cause and index", () => {
  const base = () => storeWith(set("/k", "v"), mkdir("/d"), set("/d/x", "1"), mkdir("/e"));
  const cases: Array<[string, (s: Store) => unknown, string]> = [
    ["get missing: first missing component", (s) => s.get("/zz/yy", false, false), '{"errorCode":100,"message":"Key not found","cause":"/zz","index":4}'],
    ["get below a missing child", (s) => s.get("/d/y/z", false, false), '{"errorCode":100,"message":"Key not found","cause":"/d/y","index":4}'],
    ["get through a key", (s) => s.get("/k/a/b", false, false), '{"errorCode":104,"message":"Not a directory","cause":"/k","index":4}'],
    ["set through a key", (s) => s.apply(set("/k/x/y", "1")), '{"errorCode":104,"message":"Not a directory","cause":"/k","index":4}'],
    ["set onto a dir", (s) => s.apply(set("/d", "1")), '{"errorCode":102,"message":"Not a file","cause":"/d","index":4}'],
    ["set dir=true onto a dir", (s) => s.apply(mkdir("/d")), '{"errorCode":102,"message":"Not a file","cause":"/d","index":4}'],
    ["set root", (s) => s.apply(set("/", "1")), '{"errorCode":107,"message":"Root is read only","cause":"/","index":4}'],
    ["set refresh of a missing key", (s) => s.apply(set("/nope/a", "", { refresh: true, expireAt: NOW })), '{"errorCode":100,"message":"Key not found","cause":"/nope","index":4}'],
    ["create existing key", (s) => s.apply(create("/k", "1")), '{"errorCode":105,"message":"Key already exists","cause":"/k","index":4}'],
    ["create existing dir", (s) => s.apply(create("/d", "", { dir: true })), '{"errorCode":105,"message":"Key already exists","cause":"/d","index":4}'],
    ["create through a key", (s) => s.apply(create("/k/x", "1")), '{"errorCode":104,"message":"Not a directory","cause":"/k","index":4}'],
    ["unique create under a key", (s) => s.apply(create("/k", "1", { unique: true })), '{"errorCode":104,"message":"Not a directory","cause":"/k","index":4}'],
    ["create root", (s) => s.apply(create("/", "1")), '{"errorCode":107,"message":"Root is read only","cause":"/","index":4}'],
    ["update missing", (s) => s.apply(update("/nope", "1")), '{"errorCode":100,"message":"Key not found","cause":"/nope","index":4}'],
    ["update dir with a value", (s) => s.apply(update("/d", "x")), '{"errorCode":102,"message":"Not a file","cause":"/d","index":4}'],
    ["update root", (s) => s.apply(update("/", "x")), '{"errorCode":107,"message":"Root is read only","cause":"/","index":4}'],
    ["update through a key", (s) => s.apply(update("/k/a", "x")), '{"errorCode":104,"message":"Not a directory","cause":"/k","index":4}'],
    ["CAS missing", (s) => s.apply(cas("/nope", "1", "a", 0)), '{"errorCode":100,"message":"Key not found","cause":"/nope","index":4}'],
    ["CAS on a dir", (s) => s.apply(cas("/d", "1", "a", 0)), '{"errorCode":102,"message":"Not a file","cause":"/d","index":4}'],
    ["CAS value mismatch", (s) => s.apply(cas("/k", "1", "prev", 0)), '{"errorCode":101,"message":"Compare failed","cause":"[prev != v]","index":4}'],
    ["CAS index mismatch", (s) => s.apply(cas("/k", "1", null, 12)), '{"errorCode":101,"message":"Compare failed","cause":"[12 != 1]","index":4}'],
    ["CAS both mismatch", (s) => s.apply(cas("/k", "1", "zz", 12)), '{"errorCode":101,"message":"Compare failed","cause":"[zz != v] [12 != 1]","index":4}'],
    ["CAS value ok, index mismatch", (s) => s.apply(cas("/k", "1", "v", 2)), '{"errorCode":101,"message":"Compare failed","cause":"[2 != 1]","index":4}'],
    ["CAS root", (s) => s.apply(cas("/", "1", "a", 0)), '{"errorCode":107,"message":"Root is read only","cause":"/","index":4}'],
    ["delete missing", (s) => s.apply(del("/nope")), '{"errorCode":100,"message":"Key not found","cause":"/nope","index":4}'],
    ["delete dir without dir", (s) => s.apply(del("/e")), '{"errorCode":102,"message":"Not a file","cause":"/e","index":4}'],
    ["delete non-empty dir", (s) => s.apply(del("/d", true)), '{"errorCode":108,"message":"Directory not empty","cause":"/d","index":4}'],
    ["delete root", (s) => s.apply(del("/", true, true)), '{"errorCode":107,"message":"Root is read only","cause":"/","index":4}'],
    ["CAD missing", (s) => s.apply(cad("/nope", "a", 0)), '{"errorCode":100,"message":"Key not found","cause":"/nope","index":4}'],
    ["CAD on a dir", (s) => s.apply(cad("/e", "a", 0)), '{"errorCode":102,"message":"Not a file","cause":"/e","index":4}'],
    ["CAD on the root (etcd: 102 without cause)", (s) => s.apply(cad("/", "a", 0)), '{"errorCode":102,"message":"Not a file","index":4}'],
    ["CAD mismatch", (s) => s.apply(cad("/k", "a", 7)), '{"errorCode":101,"message":"Compare failed","cause":"[a != v] [7 != 1]","index":4}'],
  ];
  test.each(cases)("%s", (_name, op, want) => {
    const s = base();
    const before = s.toSnapshot();
    expect(failure(() => op(s))).toBe(want);
    expect(s.index).toBe(4);
    // a failed operation changes nothing but the fail counters
    const strip = (x: string) => JSON.stringify({ ...JSON.parse(x), stats: null });
    expect(strip(s.toSnapshot())).toBe(strip(before));
  });

  test("HTTP statuses of the store errors", () => {
    const status = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return (e as EtcdError).status;
      }
      return 0;
    };
    const s = base();
    expect(status(() => s.get("/nope", false, false))).toBe(404);
    expect(status(() => s.apply(cas("/k", "1", "x", 0)))).toBe(412);
    expect(status(() => s.apply(create("/k", "")))).toBe(412);
    expect(status(() => s.apply(set("/d", "")))).toBe(403);
    expect(status(() => s.apply(del("/d", true)))).toBe(403);
    expect(status(() => s.apply(del("/")))).toBe(400);
  });

  test("a dir holding only hidden children is not empty", () => {
    const s = storeWith(set("/d/_h", "h"));
    expect(failure(() => s.apply(del("/d", true)))).toBe('{"errorCode":108,"message":"Directory not empty","cause":"/d","index":1}');
    expect(js(s.get("/d", true, false))).toBe('{"action":"get","node":{"key":"/d","dir":true,"modifiedIndex":1,"createdIndex":1}}');
  });
});

describe("get listings", () => {
  const s = storeWith(
    set("/l/b", "2"),
    set("/l/a", "1"),
    set("/l/_hidden", "h"),
    set("/l/sub/x", "x"),
    set("/l/sub/_y", "y"),
    mkdir("/l/empty"),
    set("/l/_hd/z", "z"),
  );

  test("non-recursive: children only, child dirs without nodes, hidden skipped", () => {
    expect(js(s.get("/l", false, true))).toBe(
      '{"action":"get","node":{"key":"/l","dir":true,"nodes":[' +
        '{"key":"/l/a","value":"1","modifiedIndex":2,"createdIndex":2},' +
        '{"key":"/l/b","value":"2","modifiedIndex":1,"createdIndex":1},' +
        '{"key":"/l/empty","dir":true,"modifiedIndex":6,"createdIndex":6},' +
        '{"key":"/l/sub","dir":true,"modifiedIndex":4,"createdIndex":4}],' +
        '"modifiedIndex":1,"createdIndex":1}}',
    );
  });

  test("recursive sorted: every level sorted, empty dir has no nodes field", () => {
    expect(js(s.get("/l", true, true))).toBe(
      '{"action":"get","node":{"key":"/l","dir":true,"nodes":[' +
        '{"key":"/l/a","value":"1","modifiedIndex":2,"createdIndex":2},' +
        '{"key":"/l/b","value":"2","modifiedIndex":1,"createdIndex":1},' +
        '{"key":"/l/empty","dir":true,"modifiedIndex":6,"createdIndex":6},' +
        '{"key":"/l/sub","dir":true,"nodes":[{"key":"/l/sub/x","value":"x","modifiedIndex":4,"createdIndex":4}],"modifiedIndex":4,"createdIndex":4}],' +
        '"modifiedIndex":1,"createdIndex":1}}',
    );
  });

  test("unsorted lists the same children", () => {
    const keys = (s.get("/l", false, false).toJSON(NOW).node.nodes ?? []).map((n) => n.key).sort();
    expect(keys).toEqual(["/l/a", "/l/b", "/l/empty", "/l/sub"]);
  });

  test("hidden nodes are readable directly", () => {
    expect(js(s.get("/l/_hidden", false, false))).toBe('{"action":"get","node":{"key":"/l/_hidden","value":"h","modifiedIndex":3,"createdIndex":3}}');
    expect(js(s.get("/l/_hd", true, false))).toBe(
      '{"action":"get","node":{"key":"/l/_hd","dir":true,"nodes":[{"key":"/l/_hd/z","value":"z","modifiedIndex":7,"createdIndex":7}],"modifiedIndex":7,"createdIndex":7}}',
    );
  });

  test("root has no key and no indexes", () => {
    const r = storeWith(set("/_x", "1"), set("/b", "2"), set("/a/c", "3"));
    expect(js(r.get("/", false, true))).toBe(
      '{"action":"get","node":{"dir":true,"nodes":[{"key":"/a","dir":true,"modifiedIndex":3,"createdIndex":3},{"key":"/b","value":"2","modifiedIndex":2,"createdIndex":2}]}}',
    );
    expect(js(new Store().get("", true, true))).toBe('{"action":"get","node":{"dir":true}}');
    expect(r.get("/", false, false).etcdIndex).toBe(3);
  });

  test("sorted is byte-wise (code point) order", () => {
    const names = ["b", "B", "a", "\u{1F600}", "\uFF21", "aa", "a-", "é"];
    const t = new Store();
    for (const n of names) t.apply(set("/s/" + n, ""));
    const got = (t.get("/s", false, true).toJSON(NOW).node.nodes ?? []).map((n) => n.key!.slice(3));
    const bytes = [...names].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
    expect(got).toEqual(bytes);
    expect(got.indexOf("\uFF21")).toBeLessThan(got.indexOf("\u{1F600}"));
  });

  test("a get answer is a copy: later writes do not change it", () => {
    const t = storeWith(set("/c/a", "1"));
    const g = t.apply({ op: "get", key: "/c", recursive: true, sorted: true });
    t.apply(set("/c/b", "2"));
    t.apply(set("/c/a", "changed"));
    expect(js(g)).toBe(
      '{"action":"get","node":{"key":"/c","dir":true,"nodes":[{"key":"/c/a","value":"1","modifiedIndex":1,"createdIndex":1}],"modifiedIndex":1,"createdIndex":1}}',
    );
  });

  test("gets count in stats", () => {
    const t = storeWith(set("/a", "1"));
    t.get("/a", false, false);
    t.apply({ op: "get", key: "/a", recursive: false, sorted: false });
    expect(() => t.get("/b", false, false)).toThrow(EtcdError);
    expect(t.stats().getsSuccess).toBe(2);
    expect(t.stats().getsFail).toBe(1);
  });
});

describe("TTL and expiry", () => {
  test("expiration text and ttl = ceil(remaining s), omitted when not positive", () => {
    const s = storeWith(
      set("/a", "1", { expireAt: Date.UTC(2026, 10, 21, 22, 37, 53, 0) + 3000 }),
      set("/b", "1", { expireAt: Date.UTC(2026, 10, 21, 22, 37, 53, 480) + 1 }),
    );
    expect(js(s.get("/a", false, false), Date.UTC(2026, 10, 21, 22, 37, 53, 0) + 1)).toBe(
      '{"action":"get","node":{"key":"/a","value":"1","expiration":"2026-11-21T22:37:56Z","ttl":3,"modifiedIndex":1,"createdIndex":1}}',
    );
    expect(js(s.get("/a", false, false), Date.UTC(2026, 10, 21, 22, 37, 56, 0))).toBe(
      '{"action":"get","node":{"key":"/a","value":"1","expiration":"2026-11-21T22:37:56Z","modifiedIndex":1,"createdIndex":1}}',
    );
    expect(s.get("/b", false, false).toJSON(0).node.expiration).toBe("2026-11-21T22:37:53.481Z");
    const c = storeWith(set("/c", "1", { expireAt: Date.UTC(2026, 0, 1, 0, 0, 0, 400) }));
    expect(c.get("/c", false, false).toJSON(0).node.expiration).toBe("2026-01-01T00:00:00.4Z");
  });

  test("the same get answer renders ttl with the clock it is given", () => {
    const s = storeWith(set("/d/a", "1", { expireAt: NOW + 10_000 }));
    const g = s.get("/d", true, false);
    expect(g.toJSON(NOW).node.nodes![0]!.ttl).toBe(10);
    expect(g.toJSON(NOW + 8_500).node.nodes![0]!.ttl).toBe(2);
    expect(JSON.stringify(g.toJSON(NOW + 20_000))).not.toContain('"ttl"');
  });

  test("expiration times before 2000 mean no TTL", () => {
    const s = storeWith(set("/a", "1", { expireAt: 946684799999 }), set("/b", "1", { expireAt: 0 }));
    expect(s.nextExpiry()).toBeNull();
    expect(js(s.get("/a", false, false))).toBe('{"action":"get","node":{"key":"/a","value":"1","modifiedIndex":1,"createdIndex":1}}');
    s.apply(set("/c", "1", { expireAt: 946684800000 }));
    expect(s.nextExpiry()).toBe(946684800000);
  });

  test("deleteExpired: one index and one expire event per node, a dir takes its subtree", async () => {
    const s = storeWith(
      mkdir("/x/d", NOW + 1000),
      set("/x/d/a", "1"),
      set("/x/d/b/c", "2", { expireAt: NOW + 5000 }),
      set("/x/k", "kk", { expireAt: NOW + 1000 }),
      set("/x/later", "l", { expireAt: NOW + 9000 }),
    );
    const seen: string[] = [];
    const below: string[] = [];
    const child = s.watch("/x/d/b/c", { recursive: false, stream: false, sinceIndex: 0 }, (e) => below.push(js(e)));
    s.watch("/x", { recursive: true, stream: true, sinceIndex: 0 }, (e) => seen.push(e.action + " " + e.key + " " + e.index));
    expect(s.nextExpiry()).toBe(NOW + 1000);
    s.deleteExpired(NOW + 999);
    expect(s.index).toBe(5);
    s.deleteExpired(NOW + 1000);
    expect(s.index).toBe(7);
    expect(below).toEqual([
      '{"action":"expire","node":{"key":"/x/d","dir":true,"modifiedIndex":6,"createdIndex":1},' +
        '"prevNode":{"key":"/x/d","dir":true,"expiration":"2026-11-21T22:37:54.482Z","ttl":1,"modifiedIndex":1,"createdIndex":1}}',
    ]);
    expect(seen).toEqual(["expire /x/d 6", "expire /x/k 7"]);
    expect(js(s.get("/x", true, true), NOW + 1000)).toBe(
      '{"action":"get","node":{"key":"/x","dir":true,"nodes":[{"key":"/x/later","value":"l","expiration":"2026-11-21T22:38:02.482Z","ttl":8,"modifiedIndex":5,"createdIndex":5}],"modifiedIndex":1,"createdIndex":1}}',
    );
    // /x/d/b/c went with its dir: its own heap entry is stale and must not expire anything
    expect(s.nextExpiry()).toBe(NOW + 9000);
    s.deleteExpired(NOW + 9000);
    expect(s.index).toBe(8);
    expect(s.nextExpiry()).toBeNull();
    expect(s.stats().expireCount).toBe(3);
    expect(child.etcdIndex).toBe(5);
  });

  test("replaced, updated and deleted TTL nodes leave only stale heap entries", () => {
    const s = storeWith(
      set("/a", "1", { expireAt: NOW + 1000 }),
      set("/a", "2", { expireAt: NOW + 5000 }),
      set("/b", "1", { expireAt: NOW + 1000 }),
      update("/b", null, { expireAt: NOW + 6000 }),
      set("/c", "1", { expireAt: NOW + 1000 }),
      del("/c"),
      set("/d", "1", { expireAt: NOW + 1000 }),
      cas("/d", "2", "1", 0),
    );
    expect(s.nextExpiry()).toBe(NOW + 5000);
    s.deleteExpired(NOW + 4999);
    expect(s.index).toBe(8);
    s.deleteExpired(NOW + 10_000);
    expect(s.index).toBe(10);
    expect(js(s.get("/", true, true))).toBe(
      '{"action":"get","node":{"dir":true,"nodes":[{"key":"/d","value":"2","modifiedIndex":8,"createdIndex":7}]}}',
    );
  });

  test("equal expiry times expire in key order", () => {
    const s = storeWith(set("/b", "", { expireAt: NOW }), set("/a", "", { expireAt: NOW }), set("/c", "", { expireAt: NOW }));
    const got: string[] = [];
    s.watch("/", { recursive: true, stream: true, sinceIndex: 0 }, (e) => got.push(e.key));
    s.deleteExpired(NOW);
    expect(got).toEqual(["/a", "/b", "/c"]);
  });

  test("many TTL rewrites of one key keep the heap bounded and correct", () => {
    const s = storeWith(set("/k", "v", { expireAt: NOW + 1 }));
    for (let i = 2; i < 20_000; i++) s.apply(update("/k", null, { expireAt: NOW + i, refresh: true }));
    expect(s.nextExpiry()).toBe(NOW + 19_999);
    s.deleteExpired(NOW + 19_998);
    expect(s.get("/k", false, false).toJSON(NOW).node.value).toBe("v");
    s.deleteExpired(NOW + 19_999);
    expect(s.nextExpiry()).toBeNull();
    expect(s.stats().expireCount).toBe(1);
  });
});

describe("refresh", () => {
  test("update refresh: value kept, index +1, watchers not told, history stays contiguous", async () => {
    const s = storeWith(set("/r", "v", { expireAt: NOW + 100_000 }));
    const live: string[] = [];
    s.watch("/r", { recursive: false, stream: true, sinceIndex: 0 }, (e) => live.push(e.action + e.index));
    const e = s.apply(update("/r", null, { expireAt: NOW + 200_000, refresh: true }));
    expect(js(e)).toBe(
      '{"action":"update","node":{"key":"/r","value":"v","expiration":"2026-11-21T22:41:13.482Z","ttl":200,"modifiedIndex":2,"createdIndex":1},' +
        '"prevNode":{"key":"/r","value":"v","expiration":"2026-11-21T22:39:33.482Z","ttl":100,"modifiedIndex":1,"createdIndex":1}}',
    );
    expect(e.refresh).toBe(true);
    expect(s.index).toBe(2);
    // a watch from the refresh's index skips it and reports the next real change
    const got: StoreEvent[] = [];
    s.watch("/r", { recursive: false, stream: false, sinceIndex: 2 }, (ev) => got.push(ev));
    s.apply(set("/r", "w"));
    await flush();
    expect(got.map((g) => g.index)).toEqual([3]);
    expect(live).toEqual(["set3"]);
    expect(s.stats().updateSuccess).toBe(1);
    // a value sent with a refresh is ignored (the HTTP layer refuses it earlier with 211)
    expect(s.apply(update("/r", "ignored", { refresh: true, expireAt: NOW + 1000 })).toJSON(NOW).node.value).toBe("w");
  });

  test("CAS refresh keeps the value and is not delivered", () => {
    const s = storeWith(set("/r", "v"));
    const live: number[] = [];
    s.watch("/r", { recursive: false, stream: true, sinceIndex: 0 }, (e) => live.push(e.index));
    const e = s.apply(cas("/r", "", "v", 0, { refresh: true, expireAt: NOW + 5000 }));
    expect(js(e)).toBe(
      '{"action":"compareAndSwap","node":{"key":"/r","value":"v","expiration":"2026-11-21T22:37:58.482Z","ttl":5,"modifiedIndex":2,"createdIndex":1},' +
        '"prevNode":{"key":"/r","value":"v","modifiedIndex":1,"createdIndex":1}}',
    );
    expect(live).toEqual([]);
  });

  test("set refresh replaces the node (new createdIndex) keeping the value, not delivered", () => {
    const s = storeWith(set("/r", "v", { expireAt: NOW + 1000 }));
    const live: number[] = [];
    s.watch("/", { recursive: true, stream: true, sinceIndex: 0 }, (e) => live.push(e.index));
    const e = s.apply(set("/r", "", { refresh: true, expireAt: NOW + 50_000 }));
    expect(js(e)).toBe(
      '{"action":"set","node":{"key":"/r","value":"v","expiration":"2026-11-21T22:38:43.482Z","ttl":50,"modifiedIndex":2,"createdIndex":2},' +
        '"prevNode":{"key":"/r","value":"v","expiration":"2026-11-21T22:37:54.482Z","ttl":1,"modifiedIndex":1,"createdIndex":1}}',
    );
    expect(live).toEqual([]);
    s.deleteExpired(NOW + 1000);
    expect(s.index).toBe(2);
  });
});

describe("watch", () => {
  test("sinceIndex 0 waits for the next change; etcdIndex is the index at registration", () => {
    const s = storeWith(set("/a", "1"), set("/b", "1"));
    const got: StoreEvent[] = [];
    const w = s.watch("/a", { recursive: false, stream: false, sinceIndex: 0 }, (e) => got.push(e));
    expect(w.etcdIndex).toBe(2);
    expect(s.stats().watchers).toBe(1);
    s.apply(set("/b", "2"));
    expect(got).toEqual([]);
    s.apply(set("/a", "2"));
    expect(got.map((e) => e.index)).toEqual([4]);
    // delivered synchronously, then removed (non-stream)
    s.apply(set("/a", "3"));
    expect(got.length).toBe(1);
    expect(s.stats().watchers).toBe(0);
  });

  test("history scan: first matching event at or after sinceIndex, delivered after watch() returns", async () => {
    const s = storeWith(set("/a", "1"), set("/b", "1"), set("/a", "2"), set("/b", "2"));
    const got: StoreEvent[] = [];
    let returned = false;
    const w = s.watch("/a", { recursive: false, stream: false, sinceIndex: 2 }, (e) => {
      expect(returned).toBe(true);
      got.push(e);
    });
    returned = true;
    expect(got).toEqual([]);
    await flush();
    expect(got.map((e) => e.index)).toEqual([3]);
    expect(w.etcdIndex).toBe(4);
    expect(s.stats().watchers).toBe(0);
  });

  test("cancel before the history delivery runs: nothing delivered", async () => {
    const s = storeWith(set("/a", "1"));
    const got: StoreEvent[] = [];
    s.watch("/a", { recursive: false, stream: false, sinceIndex: 1 }, (e) => got.push(e)).cancel();
    const w2 = s.watch("/a", { recursive: false, stream: true, sinceIndex: 1 }, (e) => got.push(e));
    w2.cancel();
    s.apply(set("/a", "2"));
    await flush();
    expect(got).toEqual([]);
    expect(s.stats().watchers).toBe(0);
  });

  test("no history match: registered live with the given sinceIndex", () => {
    const s = storeWith(set("/a", "1"), set("/b", "1"));
    const got: number[] = [];
    s.watch("/a", { recursive: false, stream: false, sinceIndex: 2 }, (e) => got.push(e.index));
    expect(s.stats().watchers).toBe(1);
    s.apply(set("/a", "2"));
    expect(got).toEqual([3]);
    // a future sinceIndex skips earlier events
    s.watch("/a", { recursive: false, stream: false, sinceIndex: 6 }, (e) => got.push(e.index));
    s.apply(set("/a", "3"));
    s.apply(set("/a", "4"));
    s.apply(set("/a", "5"));
    expect(got).toEqual([3, 6]);
  });

  test("401 when sinceIndex is older than the 1000-event history", () => {
    const s = new Store();
    for (let i = 0; i < 1137; i++) s.apply(set("/h/" + (i % 7), String(i)));
    expect(s.index).toBe(1137);
    const f = failure(() => s.watch("/h", { recursive: true, stream: false, sinceIndex: 13 }, () => {}));
    expect(f).toBe(
      '{"errorCode":401,"message":"The event in requested index is outdated and cleared","cause":"the requested history has been cleared [138/13]","index":1137}',
    );
    try {
      s.watch("/h", { recursive: true, stream: false, sinceIndex: 137 }, () => {});
    } catch (e) {
      expect((e as EtcdError).status).toBe(400);
    }
    expect(() => s.watch("/h", { recursive: true, stream: false, sinceIndex: 138 }, () => {})).not.toThrow();
  });

  test("oldest retained event is still found", async () => {
    const s = new Store();
    for (let i = 1; i <= 1500; i++) s.apply(set(i === 501 ? "/first" : "/other", String(i)));
    const got: number[] = [];
    s.watch("/first", { recursive: false, stream: false, sinceIndex: 501 }, (e) => got.push(e.index));
    await flush();
    expect(got).toEqual([501]);
  });

  test("recursive watch sees descendants; non-recursive dir watch does not", () => {
    const s = storeWith(mkdir("/w"));
    const rec: string[] = [];
    const flat: string[] = [];
    s.watch("/w", { recursive: true, stream: true, sinceIndex: 0 }, (e) => rec.push(e.key));
    s.watch("/w", { recursive: false, stream: true, sinceIndex: 0 }, (e) => flat.push(e.key));
    s.apply(set("/w/a", "1"));
    s.apply(set("/w/b/c", "1"));
    s.apply(set("/wx", "1")); // a sibling sharing the prefix is not below /w
    s.apply(update("/w", null, { expireAt: NOW + 1000 }));
    expect(rec).toEqual(["/w/a", "/w/b/c", "/w"]);
    expect(flat).toEqual(["/w"]);
  });

  test("delete of an ancestor dir reaches non-recursive watchers below it, existing or not", async () => {
    const s = storeWith(set("/w/vis", "1"), set("/w/a/b", "1"));
    const got: string[] = [];
    s.watch("/w/vis", { recursive: false, stream: false, sinceIndex: 0 }, (e) => got.push("vis " + e.action + " " + e.key));
    s.watch("/w/a/b", { recursive: false, stream: false, sinceIndex: 0 }, (e) => got.push("b " + e.key));
    s.watch("/w/nothere/x", { recursive: false, stream: false, sinceIndex: 0 }, (e) => got.push("nothere " + e.key));
    s.watch("/w/_hid", { recursive: false, stream: false, sinceIndex: 0 }, (e) => got.push("hid " + e.key));
    s.watch("/wx", { recursive: false, stream: false, sinceIndex: 0 }, (e) => got.push("wx " + e.key));
    s.apply(del("/w", false, true));
    expect(got.sort()).toEqual(["b /w", "hid /w", "nothere /w", "vis delete /w"]);
    expect(s.stats().watchers).toBe(1);
    // and from history
    const hist: string[] = [];
    s.watch("/w/vis", { recursive: false, stream: false, sinceIndex: 3 }, (e) => hist.push(e.action + " " + e.key + " " + e.index));
    s.watch("/wz", { recursive: false, stream: false, sinceIndex: 3 }, (e) => hist.push("wz " + e.key));
    await flush();
    expect(hist).toEqual(["delete /w 3"]);
  });

  test("deleting a key does not reach watchers of paths below it", () => {
    const s = storeWith(set("/k", "1"));
    const got: string[] = [];
    s.watch("/k/x", { recursive: false, stream: false, sinceIndex: 0 }, (e) => got.push(e.key));
    s.apply(del("/k"));
    expect(got).toEqual([]);
  });

  test("hidden keys: not sent to watchers above the hidden component, live or from history", async () => {
    const s = storeWith(mkdir("/h"));
    const got: string[] = [];
    const watch = (key: string, since = 0) =>
      s.watch(key, { recursive: true, stream: true, sinceIndex: since }, (e) => got.push(`${key} <- ${e.key}`));
    watch("/");
    watch("/h");
    watch("/h/_x");
    watch("/h/_x/y");
    watch("/h/_k");
    s.apply(set("/h/_x/y/z", "1"));
    s.apply(set("/h/_k", "2"));
    s.apply(set("/h/v", "3"));
    expect(got.sort()).toEqual(
      ["/ <- /h/v", "/h <- /h/v", "/h/_k <- /h/_k", "/h/_x <- /h/_x/y/z", "/h/_x/y <- /h/_x/y/z"].sort(),
    );
    got.length = 0;
    watch("/", 2);
    watch("/h/_x", 2);
    watch("/h/_k", 2);
    await flush();
    expect(got.sort()).toEqual(["/ <- /h/v", "/h/_k <- /h/_k", "/h/_x <- /h/_x/y/z"]);
  });

  test("stream: all matching history in order, then live events, never reordered", async () => {
    const s = storeWith(set("/s/a", "1"), set("/o", "1"), set("/s/b", "1"));
    const got: number[] = [];
    const w = s.watch("/s", { recursive: true, stream: true, sinceIndex: 1 }, (e) => got.push(e.index));
    s.apply(set("/s/c", "1")); // live, before the history replay has run
    expect(got).toEqual([]);
    await flush();
    expect(got).toEqual([1, 3, 4]);
    s.apply(set("/s/d", "1"));
    expect(got).toEqual([1, 3, 4, 5]);
    expect(s.stats().watchers).toBe(1);
    w.cancel();
    w.cancel();
    s.apply(set("/s/e", "1"));
    expect(got).toEqual([1, 3, 4, 5]);
    expect(s.stats().watchers).toBe(0);
  });

  test("1000 watchers on one key all get the event and are removed", () => {
    const s = storeWith(set("/hot", "0"));
    let n = 0;
    for (let i = 0; i < 1000; i++) s.watch("/hot", { recursive: false, stream: false, sinceIndex: 0 }, () => n++);
    s.watch("/cold", { recursive: false, stream: false, sinceIndex: 0 }, () => n += 1000);
    expect(s.stats().watchers).toBe(1001);
    s.apply(set("/hot", "1"));
    expect(n).toBe(1000);
    expect(s.stats().watchers).toBe(1);
  });

  test("a watcher callback may cancel, re-watch and write without breaking the notification", () => {
    const s = new Store();
    const got: string[] = [];
    let w2: { cancel(): void } | undefined;
    s.watch("/k", { recursive: false, stream: false, sinceIndex: 0 }, (e) => {
      got.push("w1 " + e.index);
      w2?.cancel();
      s.watch("/k", { recursive: false, stream: false, sinceIndex: 0 }, (e2) => got.push("w3 " + e2.index));
    });
    w2 = s.watch("/k", { recursive: false, stream: false, sinceIndex: 0 }, (e) => got.push("w2 " + e.index));
    s.apply(set("/k", "1"));
    expect(got).toEqual(["w1 1"]);
    s.apply(set("/k", "2"));
    expect(got).toEqual(["w1 1", "w3 2"]);
  });

  test("a callback that throws is cancelled and reported; the write and other watchers go on", async () => {
    const s = new Store();
    const errors: unknown[] = [];
    s.onWatcherError = (err) => errors.push(err);
    const got: number[] = [];
    s.watch("/k", { recursive: false, stream: true, sinceIndex: 0 }, () => {
      throw new Error("consumer gone");
    });
    s.watch("/k", { recursive: false, stream: true, sinceIndex: 0 }, (e) => got.push(e.index));
    expect(s.apply(set("/k", "1")).index).toBe(1);
    s.apply(set("/k", "2"));
    expect(got).toEqual([1, 2]);
    expect(errors.map((e) => (e as Error).message)).toEqual(["consumer gone"]);
    expect(s.stats().watchers).toBe(1);
    s.watch("/k", { recursive: false, stream: true, sinceIndex: 1 }, () => {
      throw new Error("history consumer gone");
    });
    await flush();
    expect(errors.length).toBe(2);
    expect(s.stats().watchers).toBe(1);
  });

  test("the watched key is normalised", () => {
    const s = new Store();
    const got: number[] = [];
    s.watch("a//b/", { recursive: false, stream: false, sinceIndex: 0 }, (e) => got.push(e.index));
    s.apply(set("/a/b", "1"));
    expect(got).toEqual([1]);
  });
});

describe("stats", () => {
  test("keys in etcd's order and counts per operation", () => {
    const s = storeWith(set("/a", "1"), create("/b", "1"), update("/b", "2"), cas("/b", "3", "2", 0), cad("/b", "3", 0), del("/a"));
    for (const bad of [set("/", ""), create("/a/..", ""), update("/zz", ""), cas("/zz", "", "x", 0), cad("/zz", "x", 0), del("/zz")]) {
      expect(() => s.apply(bad)).toThrow(EtcdError);
    }
    s.watch("/x", { recursive: false, stream: false, sinceIndex: 0 }, () => {});
    expect(JSON.stringify(s.stats())).toBe(
      '{"getsSuccess":0,"getsFail":0,"setsSuccess":1,"setsFail":1,"deleteSuccess":1,"deleteFail":1,"updateSuccess":1,"updateFail":1,' +
        '"createSuccess":1,"createFail":1,"compareAndSwapSuccess":1,"compareAndSwapFail":1,"compareAndDeleteSuccess":1,' +
        '"compareAndDeleteFail":1,"expireCount":0,"watchers":1}',
    );
  });
});

describe("snapshot", () => {
  function busyStore(): Store {
    const s = storeWith(
      set("/a/b", "1"),
      set("/a/_h", "hidden"),
      set("/c", "", { expireAt: NOW + 1000 }),
      mkdir("/d", NOW + 2000),
      set("/d/x", "x", { expireAt: NOW + 500 }),
      create("/q", "j", { unique: true }),
      update("/a/b", null, { refresh: true, expireAt: NOW + 3000 }),
      set("/e", "unicode \u00e9 \u{1F600} \"quoted\"\n"),
      set("/9", "numeric-looking name"),
      set("/1", "another"),
    );
    s.apply(del("/c"));
    s.get("/a", false, false);
    return s;
  }

  test("round trip keeps tree, child order, index, history and stats", async () => {
    const s = busyStore();
    const text = s.toSnapshot();
    const r = Store.fromSnapshot(text);
    expect(r.toSnapshot()).toBe(text);
    expect(r.index).toBe(s.index);
    expect(js(r.get("/", true, false))).toBe(js(s.get("/", true, false)));
    expect(js(r.get("/a/_h", false, false))).toBe(js(s.get("/a/_h", false, false)));
    const { watchers: _a, getsSuccess: _b, ...rest } = r.stats();
    const { watchers: _c, getsSuccess: _d, ...restS } = s.stats();
    expect(rest).toEqual(restS);
    // history: a watch from an old index replays the same events
    const a: string[] = [];
    const b: string[] = [];
    s.watch("/", { recursive: true, stream: true, sinceIndex: 1 }, (e) => a.push(js(e)));
    r.watch("/", { recursive: true, stream: true, sinceIndex: 1 }, (e) => b.push(js(e)));
    await flush();
    expect(b).toEqual(a);
    expect(b.length).toBe(9); // 11 events minus the hidden one and the refresh
  });

  test("the TTL heap is rebuilt: expiry after restore matches the original", () => {
    const s = busyStore();
    const r = Store.fromSnapshot(s.toSnapshot());
    expect(r.nextExpiry()).toBe(s.nextExpiry());
    expect(r.nextExpiry()).toBe(NOW + 500);
    const ev = (st: Store) => {
      const out: string[] = [];
      st.watch("/", { recursive: true, stream: true, sinceIndex: 0 }, (e) => out.push(js(e)));
      st.deleteExpired(NOW + 10_000);
      return out;
    };
    const a = ev(s);
    expect(ev(r)).toEqual(a);
    expect(a.map((x) => JSON.parse(x).node.key)).toEqual(["/d/x", "/d", "/a/b"]);
    expect(r.toSnapshot()).toBe(s.toSnapshot());
  });

  test("history past 1000 events round-trips with its oldest index", () => {
    const s = new Store();
    for (let i = 0; i < 1234; i++) s.apply(set("/k", String(i)));
    const r = Store.fromSnapshot(s.toSnapshot());
    expect(failure(() => r.watch("/k", { recursive: false, stream: false, sinceIndex: 234 }, () => {}))).toContain("[235/234]");
    r.apply(set("/k", "next"));
    expect(failure(() => r.watch("/k", { recursive: false, stream: false, sinceIndex: 235 }, () => {}))).toContain("[236/235]");
  });

  test("rejects an unknown version", () => {
    expect(() => Store.fromSnapshot('{"version":99}')).toThrow();
  });

  test("snapshotChunks: small pieces that join to toSnapshot, one node or event per line", () => {
    const s = busyStore();
    s.apply(mkdir("/empty"));
    s.apply(set("/deep/er/still", "v\u2028w"));
    const text = s.toSnapshot();
    // each piece is a view of one reused buffer: copy it before taking the next
    const pieces = Array.from(s.snapshotChunks(16), (p) => p.slice());
    expect(pieces.length).toBeGreaterThan(10);
    expect(new TextDecoder().decode(Buffer.concat(pieces))).toBe(text);
    expect(Buffer.concat(pieces)).toEqual(Buffer.from(text));
    const lines = text.split("\n");
    const i = s.index;
    expect(lines[0]).toStartWith(`{"version":1,"index":${i},"stats":{`);
    expect(lines).toContain(`,"empty",[${i - 1},${i - 1},0,[]]`);
    expect(lines.at(-1)).toBe("]}");
    // still one JSON document, with the fields readers use
    const doc = JSON.parse(text) as { index: number; root: unknown[]; history: unknown[] };
    expect(doc.index).toBe(i);
    expect(doc.history.length).toBe(i);
  });

  test("fromSnapshotLines rebuilds from lines cut anywhere by the pieces, and reads the one-line layout", () => {
    const s = busyStore();
    s.apply(mkdir("/empty"));
    s.apply(set("/deep/er/still", "x", { expireAt: NOW + 9000 }));
    const text = s.toSnapshot();
    function* lines(): Generator<string> {
      let rest = "";
      const dec = new TextDecoder();
      for (const piece of s.snapshotChunks(7)) {
        const parts = (rest + dec.decode(piece, { stream: true })).split("\n");
        rest = parts.pop()!;
        yield* parts;
      }
      yield rest;
    }
    const r = Store.fromSnapshotLines(lines());
    expect(r.toSnapshot()).toBe(text);
    expect(js(r.get("/", true, true))).toBe(js(s.get("/", true, true)));
    expect(r.nextExpiry()).toBe(s.nextExpiry());
    // the layout written before: the same document on one line
    const old = JSON.stringify(JSON.parse(text));
    expect(old).not.toContain("\n");
    expect(Store.fromSnapshot(old).toSnapshot()).toBe(text);
  });

  test("names and values are written exactly as JSON.stringify writes them", () => {
    const tricky = [
      "plain",
      'quote " and backslash \\',
      "controls \u0000\u0001\t\n\r\u001f",
      "caf\u00e9 \u4e2d\u6587 \u{1F600}",
      "lone \ud800 surrogate \udc00",
      "separators \u2028\u2029",
      "x".repeat(70_000), // larger than a piece
      "\u00e9".repeat(40_000),
      "",
    ];
    const s = new Store();
    tricky.forEach((v, i) => s.apply(set(`/${v.slice(0, 30) || "empty"}${i}/k`, v, { expireAt: i === 1 ? NOW : null })));
    const text = s.toSnapshot();
    const lines = text.split("\n");
    const rootAt = lines.indexOf('],"root":[');
    let leaves = 0;
    for (const line of lines.slice(rootAt + 1)) {
      if (line === "]]" || line === "]}") continue;
      const l = line.startsWith(",") ? line.slice(1) : line;
      const open = l.endsWith("[");
      const [name, node] = JSON.parse(`[${l}${open ? "]]]" : "]"}`) as [string, unknown[]];
      const again = `${JSON.stringify(name)},${JSON.stringify(node)}`;
      expect(open ? again.slice(0, -2) : again).toBe(l);
      if (!open) leaves++;
    }
    expect(leaves).toBe(tricky.length);
    const r = Store.fromSnapshot(text);
    expect(r.toSnapshot()).toBe(text);
    for (let i = 0; i < tricky.length; i++) {
      const key = `/${tricky[i]!.slice(0, 30) || "empty"}${i}/k`;
      expect(r.get(key, false, false).toJSON(NOW).node.value).toBe(tricky[i]!);
    }
  });

  test("an empty store round-trips", () => {
    const s = new Store();
    expect(Store.fromSnapshot(s.toSnapshot()).toSnapshot()).toBe(s.toSnapshot());
    expect(JSON.parse(s.toSnapshot())).toEqual({ version: 1, index: 0, stats: expect.any(Object), history: [], root: [] });
  });

  test("a store changed while its snapshot is being read makes the reader throw", () => {
    const s = busyStore();
    for (let i = 0; i < 100; i++) s.apply(set(`/many/k${i}`, "v"));
    const it = s.snapshotChunks(64);
    it.next();
    s.apply(set("/late", "v"));
    expect(() => [...it]).toThrow(/changed during a snapshot/);
  });

  test("malformed line layouts are refused", () => {
    const text = busyStore().toSnapshot();
    const lines = text.split("\n");
    expect(() => Store.fromSnapshotLines(lines.slice(0, -1))).toThrow(/unexpected end/);
    expect(() => Store.fromSnapshotLines(lines.filter((l) => l !== "]]"))).toThrow(/unbalanced|unexpected end/);
    expect(() => Store.fromSnapshotLines([...lines, "junk"])).toThrow(/after the document/);
    expect(() => Store.fromSnapshotLines([])).toThrow(/empty/);
  });
});
