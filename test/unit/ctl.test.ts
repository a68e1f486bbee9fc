// etcdctl's parsing quirks, output formats and dispatch, in-process against a fake server.
// (Byte-for-byte agreement with the real etcdctl is test/integration/ctl-vs-etcd.test.ts.)
import { afterEach, describe, expect, test } from "bun:test";
import type { Server } from "bun";
import { runApp } from "../../internal/ctl/app.ts";
import { goJSONString, goResponseJSON } from "../../internal/ctl/format.ts";
import { FlagError, parseFlags, parseGoDuration, parseGoInt, reorderArgs, type FlagDef } from "../../internal/ctl/goflag.ts";
import { commandHelp, flagLine } from "../../internal/ctl/help.ts";
import type { IO } from "../../internal/ctl/io.ts";
import { COMMANDS, GLOBAL_FLAGS } from "../../internal/ctl/spec.ts";
import type { KeyResponse } from "../../internal/kvclient/keys.ts";
import { freePort } from "../helpers/procs.ts";

const flags = (name: string): FlagDef[] => [...COMMANDS.find((c) => c.name === name)!.flags, { names: ["help", "h"], kind: "bool", usage: "" }];
const parseCmd = (name: string, args: string[]) => parseFlags(flags(name), reorderArgs(flags(name), args));

describe("flag parsing (urfave/cli v1.22 over Go's flag package)", () => {
  test("a command's own flags count after the arguments", () => {
    const p = parseCmd("set", ["/k", "v", "--ttl", "5"]);
    expect(p.args).toEqual(["/k", "v"]);
    expect(p.values.get("ttl")).toBe(5);
  });

  test("a foreign flag after the arguments is just an argument; before them it is an error", () => {
    expect(parseCmd("get", ["/k", "-z"]).args).toEqual(["/k", "-z"]);
    expect(() => parseCmd("get", ["-z", "/k"])).toThrow(new FlagError("flag provided but not defined: -z"));
  });

  test("the word after a flag is taken as its value, even after a boolean", () => {
    // etcdctl watch -r / --after-index 5: parsing stops at "/", after-index stays 0.
    const p = parseCmd("watch", ["-r", "/", "--after-index", "5"]);
    expect(p.values.get("recursive")).toBe(true);
    expect(p.values.get("after-index")).toBe(0);
    expect(p.args).toEqual(["/", "--after-index", "5"]);
    expect(() => parseCmd("set", ["/k", "v", "--ttl"])).toThrow('invalid value "/k" for flag -ttl: parse error');
  });

  test("-- ends flags wherever it is", () => {
    expect(parseCmd("set", ["--", "/k", "-v"]).args).toEqual(["/k", "-v"]);
    expect(parseCmd("set", ["/k", "--", "-v"]).args).toEqual(["/k", "-v"]);
    expect(parseCmd("exec-watch", ["--after-index", "3", "/k", "--", "sh", "-c", "x"]).args).toEqual(["/k", "sh", "-c", "x"]);
  });

  test("Go's flag syntax: =values, single dashes, booleans, two forms of one flag", () => {
    const p = parseCmd("rm", ["-r=false", "--with-index=0x10", "-dir", "/k"]);
    expect([p.values.get("recursive"), p.values.get("with-index"), p.values.get("dir"), p.args]).toEqual([false, 16, true, ["/k"]]);
    expect(() => parseCmd("rm", ["-r=maybe", "/k"])).toThrow('invalid boolean value "maybe" for -r: parse error');
    expect(() => parseCmd("rm", ["-r", "--recursive", "/k"])).toThrow("Cannot use two forms of the same flag: r recursive");
    expect(() => parseFlags(GLOBAL_FLAGS, ["--timeout"])).toThrow("flag needs an argument: -timeout");
    expect(() => parseFlags(GLOBAL_FLAGS, ["---x"])).toThrow("bad flag syntax: ---x");
  });

  test("numbers and durations as strconv and time.ParseDuration read them", () => {
    expect([parseGoInt("010"), parseGoInt("0b11"), parseGoInt("-7"), parseGoInt("1_000")]).toEqual([8, 3, -7, "parse error"]);
    expect(parseGoInt("9223372036854775808")).toBe("value out of range");
    expect([parseGoDuration("2s"), parseGoDuration("1m30s"), parseGoDuration("1.5ms"), parseGoDuration("3")]).toEqual([2000, 90000, 1.5, "parse error"]);
  });
});

describe("help text", () => {
  test("flag lines use urfave's placeholders and defaults", () => {
    expect(GLOBAL_FLAGS.filter((f) => ["output", "timeout"].includes(f.names[0]!)).map(flagLine)).toEqual([
      "--output simple, -o simple\toutput response in the given format (simple, `extended` or `json`) (default: \"simple\")",
      "--timeout value\tconnection timeout per request (default: 2s)",
    ]);
  });

  test("a command's help is aligned like Go's tabwriter", () => {
    expect(commandHelp(COMMANDS.find((c) => c.name === "get")!)).toBe(
      "NAME:\n   etcdctl get - retrieve the value of a key\n\nUSAGE:\n   etcdctl get [command options] <key>\n\nOPTIONS:\n" +
        "   --sort        returns result in sorted order\n   --quorum, -q  require quorum for get request\n   \n",
    );
  });
});

describe("output formats", () => {
  const r: KeyResponse = {
    action: "set",
    node: { key: "/a", value: 'x<&>"\u0001\b\u2028é', expiration: "2030-01-01T00:00:00.5Z", ttl: 9, modifiedIndex: 5, createdIndex: 5 },
    prevNode: { key: "/a", value: "old", modifiedIndex: 4, createdIndex: 4 },
    etcdIndex: 5,
    raftIndex: 0,
    raftTerm: 0,
    clusterId: "",
    endpoint: "",
  };

  test("json is Go's Marshal of client.Response", () => {
    expect(goJSONString("a\uD800b")).toBe('"a\\ufffdb"');
    expect(goResponseJSON(r)).toBe(
      '{"action":"set","node":{"key":"/a","value":"x\\u003c\\u0026\\u003e\\"\\u0001\\u0008\\u2028é","nodes":null,"createdIndex":5,"modifiedIndex":5,' +
        '"expiration":"2030-01-01T00:00:00.5Z","ttl":9},"prevNode":{"key":"/a","value":"old","nodes":null,"createdIndex":4,"modifiedIndex":4}}',
    );
    expect(goResponseJSON({ ...r, action: "get", node: { dir: true, nodes: [] }, prevNode: undefined })).toBe(
      '{"action":"get","node":{"key":"","dir":true,"value":"","nodes":[],"createdIndex":0,"modifiedIndex":0},"prevNode":null}',
    );
  });
});

// --- in-process runs against a fake etcd ---

const servers: Server<undefined>[] = [];
afterEach(() => {
  for (const s of servers.splice(0)) s.stop(true);
});

function capture(stdin = ""): IO & { stdout: string; stderr: string } {
  const io = {
    stdout: "",
    stderr: "",
    out: (s: string) => void (io.stdout += s),
    err: (s: string) => void (io.stderr += s),
    readStdin: async () => stdin,
    readSecret: async () => stdin.split("\n")[0] ?? "",
    env: {} as Record<string, string | undefined>,
  };
  return io;
}

/** A one-member fake etcd: members, and a store of plain keys. */
function fakeEtcd(): { url: string; seen: string[] } {
  const keys = new Map<string, string>();
  const seen: string[] = [];
  let index = 10;
  let url = "";
  const s = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(req): Promise<Response> {
      const u = new URL(req.url);
      seen.push(`${req.method} ${u.pathname}${u.search}`);
      const hdr = { "Content-Type": "application/json", "X-Etcd-Index": String(index) };
      if (u.pathname === "/v2/members") {
        return Response.json({ members: [{ id: "aa", name: "n1", peerURLs: ["http://127.0.0.1:1"], clientURLs: [url] }] });
      }
      const key = u.pathname.slice("/v2/keys".length);
      if (req.method === "PUT") {
        const value = new URLSearchParams(await req.text()).get("value") ?? "";
        keys.set(key, value);
        index++;
        return new Response(JSON.stringify({ action: "set", node: { key, value, modifiedIndex: index, createdIndex: index } }), {
          status: 201,
          headers: { ...hdr, "X-Etcd-Index": String(index) },
        });
      }
      const v = keys.get(key);
      if (v === undefined) {
        return new Response(JSON.stringify({ errorCode: 100, message: "Key not found", cause: key, index }), { status: 404, headers: hdr });
      }
      return new Response(JSON.stringify({ action: "get", node: { key, value: v, modifiedIndex: 11, createdIndex: 11 } }), { headers: hdr });
    },
  });
  servers.push(s);
  url = `http://127.0.0.1:${s.port}`;
  return { url, seen };
}

const run = async (io: IO, ...argv: string[]) => runApp(argv, io, new AbortController().signal);

describe("etcdctl in-process", () => {
  test("set reads a missing value from stdin; get prints it; sync happens first", async () => {
    const f = fakeEtcd();
    const io = capture("from stdin");
    expect(await run(io, "--endpoints", f.url, "set", "/k")).toBe(0);
    expect(await run(io, "--endpoints", f.url, "-o", "extended", "get", "/k")).toBe(0);
    expect(io.stdout).toBe("from stdin\nKey: /k\nCreated-Index: 11\nModified-Index: 11\nTTL: 0\nIndex: 11\n\nfrom stdin\n");
    expect(f.seen).toEqual([
      "GET /v2/members",
      "PUT /v2/keys/k",
      "GET /v2/members",
      "GET /v2/keys/k?quorum=false&recursive=false&sorted=false",
    ]);
  });

  test("a key error is printed as etcdctl does and exits 4", async () => {
    const f = fakeEtcd();
    const io = capture();
    expect(await run(io, "--endpoints", f.url, "get", "/nope")).toBe(4);
    expect(io.stderr).toBe("Error:  100: Key not found (/nope) [10]\n");
  });

  test("nothing listening: exit 2 from the sync, 4 with --no-sync", async () => {
    const dead = `http://127.0.0.1:${freePort()}`;
    const refused = `dial tcp ${dead.slice(7)}: connect: connection refused`;
    const io = capture();
    expect(await run(io, "--endpoints", dead, "get", "/k")).toBe(2);
    expect(io.stderr).toBe(`Error:  client: etcd cluster is unavailable or misconfigured; error #0: ${refused}\n\nerror #0: ${refused}\n\n`);
    const io2 = capture();
    expect(await run(io2, "--endpoints", dead, "--no-sync", "mk", "/k", "v")).toBe(4);
    expect(io2.stderr).toBe(`Error:  ${refused}\n`);
  });

  test("-u user:password authenticates every request, the sync included", async () => {
    const auths: (string | null)[] = [];
    const s = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch(req) {
        auths.push(req.headers.get("Authorization"));
        if (new URL(req.url).pathname === "/v2/members") return Response.json({ members: [] });
        return Response.json({ action: "get", node: { key: "/k", value: "ok", modifiedIndex: 1, createdIndex: 1 } });
      },
    });
    servers.push(s);
    const io = capture();
    // No published client URLs: etcdctl explains and gives up, unless told --no-sync.
    expect(await run(io, "--endpoints", `http://127.0.0.1:${s.port}`, "-u", "root:pw", "get", "/k")).toBe(4);
    expect(io.stderr.split("\n")[0]).toBe("etcd cluster has no published client endpoints.");
    expect(await run(io, "--endpoints", `http://127.0.0.1:${s.port}`, "--no-sync", "-u", "root:pw", "get", "/k")).toBe(0);
    expect(io.stdout).toBe("ok\n");
    expect(auths).toEqual(Array(2).fill(`Basic ${btoa("root:pw")}`));
  });

  test("usage errors: unknown command exits 3, bad flags exit 1 with help on stdout", async () => {
    const io = capture();
    expect(await run(io, "frobnicate")).toBe(3);
    expect(io.stderr).toBe("No help topic for 'frobnicate'\n");
    const io2 = capture();
    expect(await run(io2, "get", "--sort=maybe", "/k")).toBe(1);
    expect(io2.stdout.startsWith('Incorrect Usage: invalid boolean value "maybe" for -sort: parse error\n\nNAME:\n   etcdctl get')).toBe(true);
    expect(io2.stderr).toBe('invalid boolean value "maybe" for -sort: parse error\n');
  });
});
