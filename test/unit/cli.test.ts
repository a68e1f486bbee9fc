// The pieces of the command line every daemon shares: Go-style flags with ETCD_* variables,
// the multi-call dispatch, and kv serve's validation into a server configuration.
import { describe, expect, test } from "bun:test";
import { FlagError, parseFlags } from "../../internal/flags/flags.ts";
import { dispatch } from "../../cmd/tools.ts";
import { kvConfig, kvFlags } from "../../internal/kv/config.ts";
import { clusterId, memberId, parseInitialCluster } from "../../internal/kv/membership.ts";

const parse = (argv: string[], env: Record<string, string> = {}) => parseFlags(kvFlags, argv, env, "ETCD");

describe("flags", () => {
  test("-x v, --x v, --x=v, bare booleans; the command line beats the environment", () => {
    const p = parse(["-name", "a", "--data-dir=/d", "--snapshot-count", "5", "--enable-v2"], {
      ETCD_NAME: "fromenv",
      ETCD_HEARTBEAT_INTERVAL: "50",
    });
    expect(p.values.name).toBe("a");
    expect(p.values["data-dir"]).toBe("/d");
    expect(p.values["snapshot-count"]).toBe(5);
    expect(p.values["heartbeat-interval"]).toBe(50);
    expect(p.values["enable-v2"]).toBe(true);
    expect([...p.given].sort()).toEqual(["data-dir", "enable-v2", "heartbeat-interval", "name", "snapshot-count"]);
  });
  test.each([
    [["--bogus"], "flag provided but not defined: -bogus"],
    [["--name"], "flag needs an argument: -name"],
    [["--snapshot-count", "-1"], 'invalid value "-1" for flag -snapshot-count: parse error'],
    [["--enable-v2=maybe"], 'invalid boolean value "maybe" for flag -enable-v2'],
  ])("%p is refused with one line", (argv, message) => {
    expect(() => parse(argv)).toThrow(new FlagError(message));
  });
  test("a bad environment value names the variable", () => {
    expect(() => parse([], { ETCD_ELECTION_TIMEOUT: "soon" })).toThrow("ETCD_ELECTION_TIMEOUT");
  });
});

describe("dispatch", () => {
  test.each([
    ["/usr/bin/etcd", ["--name", "x"], "kv", ["serve", "--name", "x"]],
    ["./etcdctl", ["get", "/a"], "ctl", ["get", "/a"]],
    ["coreos", ["ctl", "get", "/a"], "ctl", ["get", "/a"]],
    ["/opt/dist/coreos", ["kv", "serve"], "kv", ["serve"]],
    ["locksmithctl", ["status"], "locksmith", ["locksmithctl", "status"]],
    ["coreos", ["--help"], null, ["--help"]],
  ])("%s %p", (argv0, args, tool, rest) => {
    expect(dispatch(argv0, args)).toEqual({ tool: tool as never, args: rest });
  });
});

describe("kv serve configuration", () => {
  test("defaults are etcd's; a custom name makes a one-member cluster of itself", () => {
    const c = kvConfig(parse(["--name", "n1"]).values);
    expect(c.server.dataDir).toBe("n1.etcd");
    expect([...c.server.initialCluster]).toEqual([["n1", ["http://localhost:2380"]]]);
    expect(c.clientListeners).toEqual([{ hostname: "127.0.0.1", port: 2379, tls: null }]);
    expect(c.server.electionMs).toBe(1000);
  });
  test.each([
    [["--listen-client-urls", "not a url"], "--listen-client-urls"],
    [["--initial-cluster-state", "maybe"], "--initial-cluster-state"],
    [["--election-timeout", "100"], "--election-timeout"],
    [["--name", "x", "--initial-cluster", "y=http://127.0.0.1:1"], 'couldn\'t find local name "x"'],
    [["--listen-peer-urls", "ftp://h:1"], "scheme"],
  ])("%p is refused", (argv, fragment) => {
    expect(() => kvConfig(parse(argv).values)).toThrow(fragment);
  });
});

describe("identity", () => {
  test("member and cluster IDs are the ones the real etcd derives from the same flags", () => {
    // Observed from etcd 3.4.23 started with --initial-cluster-token t1 and this peer URL.
    const id = memberId(["http://127.0.0.1:34599"], "t1");
    expect(id).toBe("3757ede43a3cccf1");
    expect(clusterId([id])).toBe("9166f0cbc8267425");
  });
  test("--initial-cluster lists names with one or more URLs", () => {
    expect([...parseInitialCluster("a=http://x:1,a=http://y:1,b=http://z:1")]).toEqual([
      ["a", ["http://x:1", "http://y:1"]],
      ["b", ["http://z:1"]],
    ]);
    expect(() => parseInitialCluster("nonsense")).toThrow("name=url");
  });
});
