// update_engine against a misbehaving server or payload, end to end: a truncated download, a wrong
// SHA-256, a bad signature, a wrong size, HTTP 500/503, malformed XML, an empty body, an error
// status. In every case the partition table is unchanged (the running USR-A still boots) and the
// right error event (code | TestOmahaUrlFlag, since the server is not the production one) reached
// the server. HTTP 500/503 back off: the daemon's scheduled checks double their interval.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { closeSync, openSync, readSync } from "node:fs";
import { join } from "node:path";
import { partitionRange, readDisk } from "../../internal/gpt/index.ts";
import { cleanup, tempDir } from "../helpers/procs.ts";
import {
  attrs,
  client,
  keyPair,
  makeDisk,
  makeMachine,
  makePayload,
  makeRoot,
  OmahaServer,
  parseStatusBlock,
  payloadOf,
  startDaemon,
  TEST_URL_FLAG,
  until,
  type BuiltPayload,
  type Daemon,
  type Reply,
} from "./update-engine-harness.ts";

const dir = tempDir("coreos-ue-faults-");
const server = new OmahaServer();
const keys = keyPair();
const root = join(dir, "root");
const disk = join(dir, "disk.img");
let good: BuiltPayload;
let otherKey: BuiltPayload;
let d: Daemon;

beforeAll(async () => {
  good = await makePayload(dir, keys.privatePem, "good");
  otherKey = await makePayload(dir, keyPair().privatePem, "other-key");
  makeRoot(root, { server: server.url, version: "1.0.0", publicPem: keys.publicPem });
  makeDisk(disk);
  d = await startDaemon({ root, disk, usrPartition: "3" });
});

/** Another machine (its root at 1.0.0 and its disk) on its own Omaha server, stopped afterwards. */
async function withMachine(name: string, fn: (m: { root: string; disk: string; srv: OmahaServer }) => Promise<void>): Promise<void> {
  const srv = new OmahaServer();
  try {
    await fn({ ...makeMachine(dir, name, { server: srv.url, publicPem: keys.publicPem }), srv });
  } finally {
    srv.stop();
  }
}

afterAll(async () => {
  if (d && d.proc.exitCode === null) await d.stop();
  server.stop();
  cleanup(dir);
});

type Case = [name: string, reply: () => Reply, mode: "whole" | "truncated", downloads: boolean, code: number];

const CASES: Case[] = [
  ["truncated download", () => ({ kind: "update", version: "2.0.0", payload: good }), "truncated", true, 11],
  ["wrong SHA-256", () => ({ kind: "update", version: "2.0.0", payload: good, sha256: otherKey.sha256 }), "whole", true, 10],
  ["bad signature", () => ({ kind: "update", version: "2.0.0", payload: otherKey }), "whole", true, 18],
  ["wrong size", () => ({ kind: "update", version: "2.0.0", payload: good, size: good.size + 1 }), "whole", true, 11],
  ["HTTP 500", () => ({ kind: "http", status: 500 }), "whole", false, 2500],
  ["HTTP 503", () => ({ kind: "http", status: 503 }), "whole", false, 2503],
  ["malformed XML", () => ({ kind: "raw", body: '<response protocol="3.0"><app appid="x"><updatecheck status="ok">' }), "whole", false, 31],
  ["empty body", () => ({ kind: "raw", body: "" }), "whole", false, 30],
  ["updatecheck status error-internal", () => ({ kind: "raw", body: '<response protocol="3.0"><app appid="x" status="ok"><updatecheck status="error-internal"/></app></response>' }), "whole", false, 34],
  ["a package without size", () => ({ kind: "raw", body: '<response><app><updatecheck status="ok"><urls><url codebase="http://127.0.0.1:1/"/></urls><manifest version="2"><packages><package name="p"/></packages><actions><action event="postinstall" sha256="x"/></actions></manifest></updatecheck></app></response>' }), "whole", false, 34],
];

describe("faults", () => {
  test.each(CASES)("%s: table unchanged, error event sent", async (_name, reply, mode, downloads, code) => {
    const table = attrs(disk);
    server.reply = reply();
    server.payloadMode = mode;
    const from = server.log.length;
    const r = await client(["-update"], d.socket);
    expect(r.code).toBe(0);
    expect(r.err).toContain("Update failed.");
    expect(attrs(disk)).toBe(table);
    const got = server.log.slice(from).map((l) => `${l.kind} ${l.events.map((e) => `${e.type}/${e.result}${e.errorCode !== undefined ? `/${e.errorCode}` : ""}`).join(",")}`);
    expect(got).toEqual(["check 3/2", ...(downloads ? ["event 13/1"] : []), `event 3/0/${code | TEST_URL_FLAG}`]);
    const st = parseStatusBlock((await client(["-status"], d.socket)).out);
    expect(st.CURRENT_OP).toBe("UPDATE_STATUS_IDLE");
  }, 30000);

  test("after all that, a good payload still installs", async () => {
    server.reply = { kind: "update", version: "2.0.0", payload: good };
    server.payloadMode = "whole";
    const r = await client(["-update"], d.socket);
    expect(r.err).toContain("Update succeeded");
    expect(attrs(disk)).toStartWith("A P1 T0 S1 raw=101000000000000 | B P2 T1 S0");
  }, 30000);
});

describe("backoff on 500/503", () => {
  test("scheduled checks double their interval up to 4 h, and fall back to 45 min after a good answer", async () => {
    await withMachine("backoff", async ({ root: r2, disk: disk2, srv }) => {
      srv.reply = { kind: "http", status: 503 };
      // 45 min ≈ 27 ms: the daemon's own schedule runs through several checks quickly.
      const b = await startDaemon({ root: r2, disk: disk2, usrPartition: "3", extra: ["--interval-scale", "0.00001", "--seed", "5"] });
      try {
        const checks = () => srv.log.filter((l) => l.kind === "check").length;
        await until("five scheduled checks", () => checks() >= 5);
        srv.reply = { kind: "noupdate" };
        const answered = checks();
        await until("a check after the server recovered", () => checks() > answered + 1);
        await b.stop();
        // The request log: scheduled checks, each 503 answered by the client with a 3/0 2503 event.
        const log = srv.log.slice(0, 10).map((l) => `${l.kind} ${l.installsource} ${l.events.map((e) => `${e.type}/${e.result}/${e.errorCode ?? ""}`).join(",")}`);
        expect(log.slice(0, 4)).toEqual([
          "check scheduler 3/2/",
          `event scheduler 3/0/${2503 | TEST_URL_FLAG}`,
          "check scheduler 3/2/",
          `event scheduler 3/0/${2503 | TEST_URL_FLAG}`,
        ]);
        // The daemon's scheduling decisions, in real seconds: 45 min floor after the 7 min first
        // check, then 90 min, 3 h, 4 h, 4 h, and the regular 45 min once the server answers.
        const intervals = [...b.stderr().matchAll(/next update check in \d+s \(interval (\d+)s/g)].map((m) => Number(m[1]));
        expect(intervals.slice(0, 6)).toEqual([420, 2700, 5400, 10800, 14400, 14400]);
        expect(intervals.at(-1)).toBe(2700);
        expect(b.stderr()).toContain("backing off after a server error");
      } finally {
        if (b.proc.exitCode === null) await b.stop();
      }
    });
  }, 30000);
});

describe("kill -9 during the download", () => {
  test("the restarted daemon resumes with a Range request and installs", async () => {
    await withMachine("kill", async ({ root: r3, disk: disk3, srv }) => {
      // Four 1 MiB operations of random data: resume points at each MiB.
      const image = new Uint8Array(4 * 1024 * 1024);
      for (let i = 0; i < image.length; i += 65536) crypto.getRandomValues(image.subarray(i, i + 65536));
      const big = await payloadOf(dir, keys.privatePem, "big", image);
      srv.reply = { kind: "update", version: "3.0.0", payload: big };
      srv.payloadMode = "slow";
      const table = attrs(disk3);
      const first = await startDaemon({ root: r3, disk: disk3, usrPartition: "3" });
      await client(["-check_for_update"], first.socket);
      await until("half the payload sent", () => srv.payloadBytesSent > 2.5 * 1024 * 1024);
      first.proc.kill("SIGKILL");
      await first.proc.exited;
      expect(attrs(disk3)).toBe(table);

      srv.payloadMode = "whole";
      const second = await startDaemon({ root: r3, disk: disk3, usrPartition: "3" });
      try {
        const r = await client(["-update"], second.socket);
        expect(r.err).toContain("Update succeeded");
        expect(srv.payloadRequests).toHaveLength(2);
        expect(srv.payloadRequests[0]).toBe("3.0.0/coreos_production_update.gz");
        const resumedFrom = Number(/bytes=(\d+)-$/.exec(srv.payloadRequests[1]!)?.[1]);
        expect(resumedFrom).toBeGreaterThanOrEqual(1024 * 1024);
        // What was sent again is less than the whole payload.
        expect(srv.payloadBytesSent).toBeLessThan(2 * big.size);
        const b = partitionRange(readDisk(disk3), 4);
        const got = new Uint8Array(image.length);
        const fd = openSync(disk3, "r");
        readSync(fd, got, 0, got.length, b.offset);
        closeSync(fd);
        expect(Buffer.from(got).equals(Buffer.from(image))).toBe(true);
        expect(attrs(disk3)).toStartWith("A P1 T0 S1 raw=101000000000000 | B P2 T1 S0");
        expect(second.stderr()).toContain("resuming");
      } finally {
        await second.stop();
      }
    });
  }, 60000);
});
