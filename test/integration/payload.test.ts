// downloadAndApply against a real HTTP server (a raw HTTP/1.1 server on 127.0.0.1): success, every refusal
// with its update_engine code, a connection cut mid-body resumed with Range, an aborted run
// resumed by the next call from its state directory, and a kill -9 of the real binary resumed.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash, generateKeyPairSync } from "node:crypto";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { b64, buildPayload, downloadAndApply, PayloadError, type DownloadOptions, type PayloadCheck } from "../../internal/payload/index.ts";
import { decodeManifest } from "../../internal/payload/proto.ts";
import { BIN, cleanup, ROOT, tempDir } from "../helpers/procs.ts";

const MiB = 1 << 20;

interface Req {
  range: string | null;
  acceptEncoding?: string;
  authorization?: string;
  /** Body bytes the server wrote to the socket for this request. */
  sent: number;
}

type Mode =
  | { kind: "ok" }
  | { kind: "status"; status: number }
  /** Serves only the first n bytes, as a complete response with that Content-Length. */
  | { kind: "short"; n: number }
  /** The first request's connection is closed after n body bytes (Content-Length says more). */
  | { kind: "cut"; n: number; ignoreRange?: boolean }
  /** Every connection is closed after n body bytes. */
  | { kind: "dead"; n: number }
  /** Sends 64 KiB every `ms` (so a process can be killed mid-way). */
  | { kind: "slow"; ms: number };

/**
 * A plain HTTP/1.1 file server on a raw TCP socket, so the test decides exactly which bytes go
 * out and when a connection dies (Bun.serve would turn a failed body into a chunked response).
 */
interface Conn {
  head: string;
  out: Uint8Array[];
  req?: Req;
  timer?: Timer;
  body?: { bytes: Uint8Array; pos: number; stopAt: number; step: number; ms: number };
}

class PayloadServer {
  reqs: Req[] = [];
  mode: Mode = { kind: "ok" };
  private readonly listener: Bun.TCPSocketListener<Conn>;
  constructor(private readonly data: Uint8Array) {
    const pump = (s: Bun.Socket<Conn>) => {
      const c = s.data;
      while (c.out.length > 0) {
        const first = c.out[0]!;
        const n = s.write(first);
        if (n < first.length) {
          c.out[0] = first.subarray(Math.max(n, 0));
          return;
        }
        c.out.shift();
      }
      const b = c.body;
      if (!b) return;
      if (b.pos >= b.stopAt) {
        c.body = undefined;
        s.end();
        return;
      }
      const next = () => {
        const end = Math.min(b.stopAt, b.pos + b.step);
        c.out.push(b.bytes.subarray(b.pos, end));
        c.req!.sent += end - b.pos;
        b.pos = end;
        pump(s);
      };
      if (b.ms > 0) {
        if (!c.timer) c.timer = setTimeout(() => ((c.timer = undefined), next()), b.ms);
      } else next();
    };
    this.listener = Bun.listen<Conn>({
      hostname: "127.0.0.1",
      port: 0,
      socket: {
        open: (s) => void (s.data = { head: "", out: [] }),
        data: (s, chunk) => {
          const c = s.data;
          if (c.req) return;
          c.head += new TextDecoder().decode(chunk);
          if (!c.head.includes("\r\n\r\n")) return;
          const range = /^range:\s*(.*)$/im.exec(c.head)?.[1]?.trim() ?? null;
          const header = (name: string) => new RegExp(`^${name}:\\s*(.*)$`, "im").exec(c.head)?.[1]?.trim();
          const req: Req = { range, sent: 0, acceptEncoding: header("accept-encoding"), authorization: header("authorization") };
          c.req = req;
          this.reqs.push(req);
          this.respond(s, req);
          pump(s);
        },
        drain: (s) => pump(s),
        close: (s) => void (s.data.timer && clearTimeout(s.data.timer)),
      },
    });
  }

  private respond(s: Bun.Socket<Conn>, req: Req): void {
    const mode = this.mode;
    const head = (status: string, h: Record<string, string | number>) =>
      s.data.out.push(new TextEncoder().encode(`HTTP/1.1 ${status}\r\n${Object.entries(h).map(([k, v]) => `${k}: ${v}\r\n`).join("")}connection: close\r\n\r\n`));
    if (mode.kind === "status") {
      head(`${mode.status} Oops`, { "content-length": 4 });
      s.data.out.push(new TextEncoder().encode("oops"));
      s.data.body = { bytes: new Uint8Array(0), pos: 0, stopAt: 0, step: 1, ms: 0 };
      return;
    }
    let body = mode.kind === "short" ? this.data.subarray(0, mode.n) : this.data;
    const m = mode.kind === "cut" && mode.ignoreRange ? null : /^bytes=(\d+)-$/.exec(req.range ?? "");
    if (m && Number(m[1]) >= body.length) {
      head("416 Range Not Satisfiable", { "content-length": 0 });
      s.data.body = { bytes: body, pos: 0, stopAt: 0, step: 1, ms: 0 };
      return;
    }
    const from = m ? Number(m[1]) : 0;
    if (m) {
      head("206 Partial Content", { "content-length": body.length - from, "content-range": `bytes ${from}-${body.length - 1}/${body.length}` });
      body = body.subarray(from);
    } else {
      head("200 OK", { "content-length": body.length });
    }
    const stopAt =
      mode.kind === "dead" ? Math.max(0, mode.n - from) : mode.kind === "cut" && this.reqs.length === 1 ? mode.n : body.length;
    s.data.body = { bytes: body, pos: 0, stopAt, step: 64 * 1024, ms: mode.kind === "slow" ? mode.ms : 0 };
  }

  get url(): string {
    return `http://127.0.0.1:${this.listener.port}/update.gz`;
  }
  get sent(): number {
    return this.reqs.reduce((n, r) => n + r.sent, 0);
  }
  stop(): void {
    this.listener.stop(true);
  }
}

let dir: string;
let pub: string;
let otherPub: string;
let image: Uint8Array;
let payload: Uint8Array;
let sha: string;
let srv: PayloadServer;
let n = 0;

function noise(len: number, seed: number): Uint8Array {
  const out = new Uint8Array(len);
  let x = seed;
  for (let i = 0; i < len; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

beforeAll(async () => {
  dir = tempDir("coreos-payload-dl-");
  const k = generateKeyPairSync("rsa", { modulusLength: 2048 });
  pub = k.publicKey.export({ type: "spki", format: "pem" }).toString();
  otherPub = generateKeyPairSync("rsa", { modulusLength: 2048 }).publicKey.export({ type: "spki", format: "pem" }).toString();
  writeFileSync(join(dir, "pub.pem"), pub);
  const lines = new TextEncoder().encode(Array.from({ length: 40000 }, (_, i) => `etc/file-${i} 0644\n`).join(""));
  image = Buffer.concat([noise(3 * MiB, 5), new Uint8Array(MiB), lines.subarray(0, MiB), noise(MiB + 999, 6)]);
  writeFileSync(join(dir, "usr.img"), image);
  const key = k.privateKey.export({ type: "pkcs8", format: "pem" }).toString();
  const r = await buildPayload({ imagePath: join(dir, "usr.img"), privateKeyPem: key, outPath: join(dir, "payload.bin") });
  payload = new Uint8Array(readFileSync(join(dir, "payload.bin")));
  sha = b64(r.sha256);
  srv = new PayloadServer(payload);
});

afterAll(() => {
  srv.stop();
  cleanup(dir);
});

/** A fresh disk image with the partition at 1 MiB, and the options to fill it. */
function job(over: Partial<DownloadOptions> = {}): DownloadOptions & { disk: string } {
  n++;
  const disk = join(dir, `disk-${n}.img`);
  writeFileSync(disk, new Uint8Array(10 * MiB));
  srv.reqs = [];
  srv.mode = { kind: "ok" };
  return {
    disk,
    url: srv.url,
    size: payload.length,
    sha256Base64: sha,
    publicKeyPem: pub,
    target: { path: disk, offset: MiB, length: 8 * MiB },
    stateDir: join(dir, `state-${n}`),
    retryDelayMs: 10,
    ...over,
  };
}

function partition(disk: string): Buffer {
  return readFileSync(disk).subarray(MiB, MiB + image.length);
}

async function refused(o: DownloadOptions, check: PayloadCheck, code: number): Promise<PayloadError> {
  let err: unknown;
  try {
    await downloadAndApply(o);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(PayloadError);
  expect({ check: (err as PayloadError).check, code: (err as PayloadError).code }).toEqual({ check, code });
  return err as PayloadError;
}

describe("downloadAndApply", () => {
  test("downloads, verifies and writes the partition; reports progress; leaves no state behind", async () => {
    const o = job();
    const seen: number[] = [];
    const r = await downloadAndApply({ ...o, onProgress: (d, t) => seen.push(d / t) });
    expect(Buffer.from(r.partitionHash)).toEqual(createHash("sha256").update(image).digest());
    expect(r.signatureChecked).toBe(true);
    expect(r.resumedFrom).toBe(0);
    expect(partition(o.disk)).toEqual(Buffer.from(image));
    expect(seen.at(-1)).toBe(1);
    expect(seen.length).toBeGreaterThan(3);
    // identity: a server must not gzip the ".gz" payload on the fly
    expect(srv.reqs).toEqual([{ range: null, sent: payload.length, acceptEncoding: "identity" }]);
    expect(readdirSync(o.stateDir)).toEqual([]);
  });

  test("server 500 and 503: HTTP error codes 2500/2503, nothing retried in the call", async () => {
    for (const status of [500, 503]) {
      const o = job();
      srv.mode = { kind: "status", status };
      const e = await refused(o, "http", 2000 + status);
      expect(e.message).toContain(String(status));
      expect(e.resumedFrom).toBeNull();
      expect(srv.reqs.length).toBe(1);
    }
  });

  test("truncated download (the server's file is short): size mismatch, code 11", async () => {
    const o = job({ size: undefined });
    srv.mode = { kind: "short", n: payload.length - 5000 };
    const e = await refused(o, "size", 11);
    expect(e.message).toContain("truncated");
    const o2 = job();
    srv.mode = { kind: "short", n: payload.length - 5000 };
    await refused(o2, "size", 11);
  });

  test("wrong SHA-256: code 10", async () => {
    await refused(job({ sha256Base64: b64(new Uint8Array(32).fill(1)) }), "payload-hash", 10);
  });

  test("wrong size: code 11, refused before the body is applied", async () => {
    const o = job({ size: payload.length + 1 });
    await refused(o, "size", 11);
    expect(partition(o.disk).every((b) => b === 0)).toBe(true);
  });

  test("signature by another key: code 18; the resume state is dropped", async () => {
    const o = job({ publicKeyPem: otherPub });
    await refused(o, "signature", 18);
    expect(readdirSync(o.stateDir)).toEqual([]);
  });

  test("flipped byte in the served payload: caught by its operation's hash (code 29)", async () => {
    const bad = payload.slice();
    bad[bad.length - 400_000]! ^= 0x10;
    const other = new PayloadServer(bad);
    try {
      await refused(job({ url: other.url, sha256Base64: undefined }), "operation-hash", 29);
    } finally {
      other.stop();
    }
  });

  test("a connection cut mid-body is resumed with Range from the exact byte; nothing is fetched twice", async () => {
    const o = job();
    const cut = 2 * MiB + 12345;
    srv.mode = { kind: "cut", n: cut };
    let at = 0;
    const r = await downloadAndApply({ ...o, onProgress: (d) => void (srv.reqs.length === 1 && (at = d)) });
    // The server wrote `cut` bytes before closing; the client asks for the rest from the last byte
    // it received (fetch may drop the tail that was in flight when the socket closed).
    expect(at).toBeLessThanOrEqual(cut);
    expect(at).toBeGreaterThan(cut - 256 * 1024);
    expect(srv.reqs.map((q) => q.range)).toEqual([null, `bytes=${at}-`]);
    expect(srv.reqs[1]!.sent).toBe(payload.length - at);
    expect(r.requests).toBe(2);
    expect(partition(o.disk)).toEqual(Buffer.from(image));
  });

  test("a server that ignores Range: the repeated head of the body is skipped, not applied twice", async () => {
    const o = job();
    srv.mode = { kind: "cut", n: 2 * MiB + 999, ignoreRange: true };
    const r = await downloadAndApply(o);
    expect(srv.reqs.length).toBe(2);
    expect(srv.reqs[1]!.range).toMatch(/^bytes=\d+-$/);
    expect(srv.reqs[1]!.sent).toBe(payload.length); // the whole file again, with status 200
    expect(Buffer.from(r.sha256).toString("base64")).toBe(sha);
    expect(partition(o.disk)).toEqual(Buffer.from(image));
  });

  test("a connection that keeps failing ends in a transfer error (code 9) and keeps the state for later", async () => {
    const o = job({ retries: 2 });
    srv.mode = { kind: "dead", n: 1_500_000 };
    const e = await refused(o, "transfer", 9);
    expect(e.message).toContain("download failed at byte");
    // every retry asks from where the last one stopped; the last ones got nothing new and it gave up
    const ranges = srv.reqs.map((q) => q.range);
    expect(ranges[0]).toBeNull();
    expect(ranges.length).toBeGreaterThanOrEqual(3);
    expect(ranges.length).toBeLessThanOrEqual(8);
    expect(ranges.at(-1)).toBe(ranges.at(-2)!);
    expect(ranges.at(-1)).toMatch(/^bytes=\d+-$/);
    expect(existsSync(join(o.stateDir, "state.json"))).toBe(true); // operation 0 was complete: worth a resume
  });

  test("an aborted download resumes in the next call from its last operation via Range", async () => {
    const o = job();
    const ac = new AbortController();
    await refused({ ...o, signal: ac.signal, onProgress: (d) => d > 3.5 * MiB && ac.abort() }, "aborted", 1);
    expect(existsSync(join(o.stateDir, "state.json"))).toBe(true);
    const first = srv.sent;
    srv.reqs = [];
    const r = await downloadAndApply(o);
    expect(r.resumedFrom).toBeGreaterThan(2 * MiB);
    expect(srv.reqs.map((q) => q.range)).toEqual([`bytes=${r.resumedFrom}-`]);
    expect(srv.sent).toBe(payload.length - r.resumedFrom);
    // at most the unfinished operation (1 MiB) was fetched again
    expect(first - r.resumedFrom).toBeLessThanOrEqual(MiB + 256 * 1024);
    expect(partition(o.disk)).toEqual(Buffer.from(image));
  });

  test("a failure after a resume says where the call resumed from (PayloadError.resumedFrom)", async () => {
    const o = job();
    const ac = new AbortController();
    const first = await refused({ ...o, signal: ac.signal, onProgress: (d) => d > 3.5 * MiB && ac.abort() }, "aborted", 1);
    expect(first.resumedFrom).toBeNull();
    srv.reqs = [];
    const e = await refused({ ...o, publicKeyPem: otherPub }, "signature", 18);
    expect(e.resumedFrom).toBeGreaterThan(2 * MiB);
    expect(srv.reqs.map((q) => q.range)).toEqual([`bytes=${e.resumedFrom}-`]);
  });

  test("extra request headers go with every request (a resumed one too); Range and Accept-Encoding stay ours", async () => {
    const o = job({ headers: { Authorization: "Basic dXNlcjpwYXNz", "accept-encoding": "gzip", range: "bytes=7-" } });
    srv.mode = { kind: "cut", n: 2 * MiB + 4321 };
    const r = await downloadAndApply(o);
    expect(srv.reqs.length).toBe(2);
    expect(srv.reqs.map((q) => [q.authorization, q.acceptEncoding])).toEqual([
      ["Basic dXNlcjpwYXNz", "identity"],
      ["Basic dXNlcjpwYXNz", "identity"],
    ]);
    expect(srv.reqs[0]!.range).toBeNull();
    expect(srv.reqs[1]!.range).toMatch(/^bytes=\d+-$/);
    expect(srv.reqs[1]!.range).not.toBe("bytes=7-");
    expect(partition(o.disk)).toEqual(Buffer.from(image));
  });

  test("a resume may come from another mirror (same SHA-256); a torn state file means starting over", async () => {
    const o = job();
    const ac = new AbortController();
    await refused({ ...o, signal: ac.signal, onProgress: (d) => d > 3.5 * MiB && ac.abort() }, "aborted", 1);
    const mirror = new PayloadServer(payload);
    try {
      const r = await downloadAndApply({ ...o, url: mirror.url });
      expect(r.resumedFrom).toBeGreaterThan(2 * MiB);
      expect(mirror.reqs.map((q) => q.range)).toEqual([`bytes=${r.resumedFrom}-`]);
    } finally {
      mirror.stop();
    }
    expect(partition(o.disk)).toEqual(Buffer.from(image));

    const o2 = job();
    const ac2 = new AbortController();
    await refused({ ...o2, signal: ac2.signal, onProgress: (d) => d > 3.5 * MiB && ac2.abort() }, "aborted", 1);
    const meta = join(o2.stateDir, "metadata.bin");
    writeFileSync(meta, readFileSync(meta).subarray(0, 100));
    srv.reqs = [];
    const r2 = await downloadAndApply(o2);
    expect(r2.resumedFrom).toBe(0);
    expect(srv.reqs.map((q) => q.range)).toEqual([null]);
    expect(partition(o2.disk)).toEqual(Buffer.from(image));
  });

  test("resume never trusts a target changed behind its back: the rebuilt hash is checked per operation", async () => {
    const o = job();
    const ac = new AbortController();
    await refused({ ...o, signal: ac.signal, onProgress: (d) => d > 3.5 * MiB && ac.abort() }, "aborted", 1);
    // scribble over the second operation's blocks (a REPLACE of random data)
    const f = Bun.file(o.disk);
    const disk = new Uint8Array(await f.arrayBuffer());
    disk.fill(0xee, MiB + MiB + 100, MiB + MiB + 200);
    writeFileSync(o.disk, disk);
    srv.reqs = [];
    const r = await downloadAndApply(o);
    // operation 0 still proves itself, operation 1 no longer does: the resume starts there
    const metadataSize = 20 + Number(new DataView(payload.buffer).getBigUint64(12));
    expect(r.resumedFrom).toBe(metadataSize + MiB);
    expect(srv.reqs.map((q) => q.range)).toEqual([`bytes=${metadataSize + MiB}-`]);
    expect(partition(o.disk)).toEqual(Buffer.from(image));
  });
});

describe("coreos update-engine payload apply URL", () => {
  const cmd = process.env.COREOS_CMD?.split(" ") ?? [BIN];

  test("kill -9 mid-download, then a second run resumes with Range and completes", async () => {
    const o = job();
    srv.mode = { kind: "slow", ms: 8 };
    const args = [...cmd, "update-engine", "payload", "apply", o.url, "--target", o.disk, "--offset", String(MiB), "--length", String(8 * MiB), "--key", join(dir, "pub.pem"), "--sha256", sha, "--size", String(payload.length), "--state-dir", o.stateDir];
    const first = Bun.spawn(args, { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
    // mid-way: the server is past 40% and the process has checkpointed at least one operation
    const checkpointed = () => existsSync(join(o.stateDir, "state.json"));
    for (let i = 0; i < 400 && (srv.sent < payload.length * 0.4 || !checkpointed()); i++) await Bun.sleep(25);
    expect(srv.sent).toBeGreaterThan(payload.length * 0.4);
    expect(srv.sent).toBeLessThan(payload.length);
    first.kill("SIGKILL");
    expect(await first.exited).not.toBe(0);
    const before = srv.sent;
    // where the killed process's last checkpoint says the next operation's blob starts
    const { opsDone } = JSON.parse(readFileSync(join(o.stateDir, "state.json"), "utf8")) as { opsDone: number };
    expect(opsDone).toBeGreaterThan(0);
    const manifestSize = Number(new DataView(payload.buffer).getBigUint64(12));
    const ops = decodeManifest(payload.subarray(20, 20 + manifestSize)).partitionOperations;
    const checkpoint = 20 + manifestSize + ops.slice(0, opsDone).reduce((n, op) => n + op.dataLength!, 0);
    srv.reqs = [];
    srv.mode = { kind: "ok" };
    const second = Bun.spawn(args, { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
    const code = await second.exited;
    const out = await new Response(second.stdout).text();
    expect({ code, err: code === 0 ? "" : await new Response(second.stderr).text() }).toEqual({ code: 0, err: "" });
    const resumed = Number(/resumed at byte:\s+(\d+)/.exec(out)?.[1]);
    expect(resumed).toBe(checkpoint);
    expect(resumed).toBeLessThan(before);
    expect(srv.reqs.map((q) => q.range)).toEqual([`bytes=${resumed}-`]);
    expect(srv.reqs[0]!.sent).toBe(payload.length - resumed);
    expect(out).toContain("signature:         verified");
    expect(partition(o.disk)).toEqual(Buffer.from(image));
  });

  test("a bad payload is one readable line and exit 1", async () => {
    const o = job();
    const p = Bun.spawn([...cmd, "update-engine", "payload", "apply", o.url, "--target", o.disk, "--state-dir", o.stateDir, "--sha256", b64(new Uint8Array(32))], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
    expect(await p.exited).toBe(1);
    const err = await new Response(p.stderr).text();
    expect(err.trim().split("\n").filter((l) => !/^apply: \d+%$/.test(l))).toEqual([expect.stringMatching(/^coreos update-engine payload apply: payload SHA-256 is .* \(error 10\)$/)]);
  });
});
