// Request parsing: Go's form rules and etcd's parameter checks, table-driven from etcd-v2.md §1.3-1.4.
import { describe, expect, test } from "bun:test";
import { parseForm, queryUnescape } from "../../internal/kv/form.ts";
import { parseKeysRequest } from "../../internal/kv/keys-request.ts";
import { EtcdError } from "../../internal/kv/errors.ts";
import { cleanPath } from "../../internal/kv/paths.ts";
import { goDuration } from "../../internal/kv/duration.ts";

const NOW = 1_700_000_000_000;

function err(f: () => unknown): { code: number; cause: string; index: number } {
  try {
    f();
  } catch (e) {
    if (e instanceof EtcdError) return { code: e.errorCode, cause: e.errorCause, index: e.index };
    throw e;
  }
  throw new Error("no error");
}

describe("Go form parsing", () => {
  test("unescape: %XX, + as space in queries, + kept in paths, UTF-8 bytes", () => {
    expect(queryUnescape("a+b%20c")).toBe("a b c");
    expect(queryUnescape("a+b", true)).toBe("a+b");
    expect(queryUnescape("%C3%A9t%C3%A9")).toBe("été");
    expect(() => queryUnescape("%zz")).toThrow('invalid URL escape "%zz"');
    expect(() => queryUnescape("ab%4")).toThrow('invalid URL escape "%4"');
  });
  test("the body's values come first, so they win over the query's", () => {
    const f = parseForm("value=query&ttl=5", "value=body");
    expect(f.get("value")).toEqual(["body", "query"]);
    expect(f.get("ttl")).toEqual(["5"]);
  });
  test("semicolons are refused as Go 1.17+ does", () => {
    expect(() => parseForm("a=1;b=2", null)).toThrow("invalid semicolon separator in query");
  });
});

describe("parseKeysRequest", () => {
  const put = (body: string, query = "") => parseKeysRequest("PUT", "/k", query, body, NOW);
  test.each([
    ["value=v", { op: "set", key: "/k", value: "v", dir: false, expireAt: null, refresh: false }],
    ["value=v&prevExist=true", { op: "update", key: "/k", value: "v", expireAt: null, refresh: false }],
    ["value=v&prevExist=false&prevValue=x", { op: "create", key: "/k", value: "v", dir: false, unique: false, expireAt: null }],
    ["value=v&prevValue=x", { op: "compareAndSwap", key: "/k", value: "v", prevValue: "x", prevIndex: 0, expireAt: null, refresh: false }],
    ["value=v&prevIndex=7&prevExist=true", { op: "compareAndSwap", key: "/k", value: "v", prevValue: null, prevIndex: 7, expireAt: null, refresh: false }],
    ["value=v&ttl=10", { op: "set", key: "/k", value: "v", dir: false, expireAt: NOW + 10_000, refresh: false }],
    ["value=v&ttl=", { op: "set", key: "/k", value: "v", dir: false, expireAt: null, refresh: false }],
    ["ttl=5&refresh=true&prevExist=true", { op: "update", key: "/k", value: null, expireAt: NOW + 5000, refresh: true }],
    ["dir=t", { op: "set", key: "/k", value: "", dir: true, expireAt: null, refresh: false }],
  ])("PUT %s", (body, cmd) => {
    expect(put(body)).toEqual({ kind: "write", noValueOnSuccess: false, cmd: cmd as never });
  });
  test("POST creates a unique child; DELETE picks delete or compareAndDelete", () => {
    expect(parseKeysRequest("POST", "/q", "", "value=j&prevValue=ignored", NOW)).toMatchObject({
      cmd: { op: "create", unique: true, value: "j" },
    });
    expect(parseKeysRequest("DELETE", "/d", "recursive=true", null, NOW)).toMatchObject({
      cmd: { op: "delete", dir: false, recursive: true },
    });
    expect(parseKeysRequest("DELETE", "/d", "prevIndex=3", null, NOW)).toMatchObject({
      cmd: { op: "compareAndDelete", prevIndex: 3, prevValue: null },
    });
  });
  test("GET: get, quorum get, watch; HEAD is a get without body; keys are cleaned", () => {
    expect(parseKeysRequest("GET", "/a//b/", "recursive=1&sorted=true&quorum=T", null, NOW)).toEqual({
      kind: "get", key: "/a/b", recursive: true, sorted: true, quorum: true, head: false,
    });
    expect(parseKeysRequest("GET", "/w", "wait=true&waitIndex=9&stream=true", null, NOW)).toEqual({
      kind: "watch", key: "/w", recursive: false, stream: true, waitIndex: 9,
    });
    expect(parseKeysRequest("HEAD", "", "", null, NOW)).toMatchObject({ kind: "get", key: "/", head: true });
  });
  test.each([
    ["value=1&ttl=abc", 202, 'invalid value for "ttl"'],
    ["value=1&ttl=-1", 202, 'invalid value for "ttl"'],
    ["value=1&ttl=99999999999999999999", 202, 'invalid value for "ttl"'],
    ["value=1&prevIndex=x", 203, 'invalid value for "prevIndex"'],
    ["value=1&recursive=maybe", 209, 'invalid value for "recursive"'],
    ["value=1&prevExist=maybe", 209, "invalid value for prevExist"],
    ["value=1&prevValue=", 201, '"prevValue" cannot be empty'],
    ["refresh=true", 212, "No TTL value set"],
    ["refresh=true&ttl=1&value=x", 211, "A value was provided on a refresh"],
    ["value=1&wait=true", 209, '"wait" can only be used with GET requests'],
    ["value=%zz", 210, 'invalid URL escape "%zz"'],
  ])("PUT %s -> %d", (body, code, cause) => {
    expect(err(() => put(body))).toEqual({ code, cause, index: 0 });
  });
  test("checks run in etcd's order: prevIndex before recursive before prevValue", () => {
    expect(err(() => put("prevIndex=x&recursive=x&prevValue=")).code).toBe(203);
    expect(err(() => put("recursive=x&prevValue=")).code).toBe(209);
  });
});

describe("small Go compatibility pieces", () => {
  test.each([
    ["/v2/keys/a", "/v2/keys/a"],
    ["/v2//keys/a", "/v2/keys/a"],
    ["/v2/keys/./a/", "/v2/keys/a/"],
    ["/v2/keys/a/../b", "/v2/keys/b"],
  ])("cleanPath(%s)", (p, want) => expect(cleanPath(p)).toBe(want));
  test.each([
    [0, "0s"],
    [0.5, "500µs"],
    [350, "350ms"],
    [1005.464933, "1.005464933s"],
    [60_580, "1m0.58s"],
    [3_723_500, "1h2m3.5s"],
  ])("goDuration(%p)", (ms, want) => expect(goDuration(ms)).toBe(want));
});
