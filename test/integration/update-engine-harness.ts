// The pieces the update engine's end-to-end tests share: a machine root (update.conf, release,
// machine id, payload key), a small CoreOS disk image, payloads built with the payload module, an
// Omaha server in-process (Bun.serve on 127.0.0.1) whose replies the test steers and whose request
// log it reads, and the daemon and client as real processes.
import { generateKeyPairSync, createHash } from "node:crypto";
import { mkdirSync, openSync, closeSync, readFileSync, writeFileSync, writeSync } from "node:fs";
import { dirname, join } from "node:path";
import type { Subprocess } from "bun";
import { initDisk, LAYOUTS, readDisk, partitionRange, type Partition } from "../../internal/gpt/index.ts";
import { buildResponse, normalizeAppId, parseRequest, type ParsedApp, type ParsedEvent, type UpdateCheckReply } from "../../internal/omaha/index.ts";
import { buildPayload } from "../../internal/payload/index.ts";
import { getStatus, type Status } from "../../internal/update/status.ts";
import { BIN } from "../helpers/procs.ts";

export const COREOS: string[] = process.env.COREOS_CMD?.split(" ") ?? [BIN];
export const NO_BUS = { DBUS_SYSTEM_BUS_ADDRESS: "unix:path=/nonexistent/coreos-test-no-bus" };
export const APPID = "{e96281a6-d1af-4bde-9a0a-97b76e56dc57}";
export const TEST_URL_FLAG = 1 << 28;

export function keyPair(): { publicPem: string; privatePem: string } {
  const k = generateKeyPairSync("rsa", { modulusLength: 2048 });
  return {
    publicPem: k.publicKey.export({ type: "spki", format: "pem" }).toString(),
    privatePem: k.privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
  };
}

function write(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, text);
}

/** A machine root as update_engine sees it: the image's update.conf and release, /etc overrides, the key. */
export function makeRoot(root: string, o: { server: string; version: string; publicPem: string; group?: string }): void {
  write(join(root, "usr/share/coreos/update.conf"), `SERVER=https://public.update.core-os.net/v1/update/\nGROUP=stable\n`);
  write(join(root, "usr/share/coreos/release"), `COREOS_RELEASE_VERSION=${o.version}\nCOREOS_RELEASE_BOARD=amd64-usr\nCOREOS_RELEASE_APPID=${APPID}\n`);
  write(join(root, "etc/coreos/update.conf"), `SERVER=${o.server}\nGROUP="${o.group ?? "stable"}"\n`);
  write(join(root, "etc/machine-id"), "0b2c6f1f4d7e4a9c8f3e2d1c0b9a8f7e\n");
  write(join(root, "usr/share/update_engine/update-payload-key.pub.pem"), o.publicPem);
}

/** Another machine in `dir`: root-NAME at version 1.0.0 asking `server`, and disk-NAME.img. */
export function makeMachine(dir: string, name: string, o: { server: string; publicPem: string }): { root: string; disk: string } {
  const m = { root: join(dir, `root-${name}`), disk: join(dir, `disk-${name}.img`) };
  makeRoot(m.root, { server: o.server, version: "1.0.0", publicPem: o.publicPem });
  makeDisk(m.disk);
  return m;
}

export function setVersion(root: string, version: string): void {
  write(join(root, "usr/share/coreos/release"), `COREOS_RELEASE_VERSION=${version}\nCOREOS_RELEASE_BOARD=amd64-usr\nCOREOS_RELEASE_APPID=${APPID}\n`);
}

/** The small CoreOS layout (USR-A/B of 16 MiB) on a sparse image, with something in USR-A. */
export function makeDisk(path: string): void {
  initDisk(path, { bytes: 64 * 1024 * 1024, sizes: LAYOUTS.small });
  const a = partitionRange(readDisk(path), 3);
  const fd = openSync(path, "r+");
  writeSync(fd, Buffer.alloc(4096, "usr-a"), 0, 4096, a.offset);
  closeSync(fd);
}

export function usr(path: string): { a: Partition; b: Partition } {
  const t = readDisk(path);
  return { a: t.partitions.find((p) => p.number === 3)!, b: t.partitions.find((p) => p.number === 4)! };
}

/** The boot attributes of USR-A and USR-B, for comparing before and after. */
export function attrs(path: string): string {
  const { a, b } = usr(path);
  const f = (p: Partition) => `P${p.priority} T${p.tries} S${p.successful ? 1 : 0} raw=${p.attributes.toString(16)}`;
  return `A ${f(a)} | B ${f(b)}`;
}

export interface BuiltPayload {
  file: string;
  bytes: Uint8Array;
  size: number;
  sha256: string;
  sha1: string;
  image: Uint8Array;
}

/** A USR image of some compressible and some random MiB, and its signed full payload. */
export function makePayload(dir: string, privatePem: string, name = "payload", kernel?: Uint8Array): Promise<BuiltPayload> {
  const image = new Uint8Array(3 * 512 * 1024);
  image.fill(7, 0, 512 * 1024);
  crypto.getRandomValues(image.subarray(512 * 1024, 1024 * 1024));
  image.set(new TextEncoder().encode(`usr-b ${name} `.repeat(20000)).subarray(0, 512 * 1024), 1024 * 1024);
  return payloadOf(dir, privatePem, name, image, kernel);
}

/** The signed full payload of the given USR image (kept as dir/NAME.img, the payload as dir/NAME.gz). */
export async function payloadOf(dir: string, privatePem: string, name: string, image: Uint8Array, kernel?: Uint8Array): Promise<BuiltPayload> {
  const imagePath = join(dir, `${name}.img`);
  writeFileSync(imagePath, image);
  const file = join(dir, `${name}.gz`);
  let kernelPath: string | undefined;
  if (kernel) {
    kernelPath = join(dir, `${name}.vmlinuz`);
    writeFileSync(kernelPath, kernel);
  }
  await buildPayload({ imagePath, privateKeyPem: privatePem, outPath: file, kernelPath });
  const bytes = new Uint8Array(readFileSync(file));
  return {
    file,
    bytes,
    size: bytes.length,
    sha256: createHash("sha256").update(bytes).digest("base64"),
    sha1: createHash("sha1").update(bytes).digest("base64"),
    image,
  };
}

/** One app of one request as the server parsed it, for asserting on the log. */
export interface Logged {
  kind: "check" | "ping" | "event";
  installsource: string;
  app: ParsedApp;
  events: ParsedEvent[];
}

export type Reply =
  | { kind: "noupdate" }
  | { kind: "update"; version: string; payload: BuiltPayload; size?: number; sha256?: string }
  | { kind: "http"; status: number }
  | { kind: "raw"; body: string };

/** A small Omaha server in the shape of §1.6, answering update checks with whatever `reply` says. */
export class OmahaServer {
  readonly log: Logged[] = [];
  reply: Reply = { kind: "noupdate" };
  /**
   * How the payload is served: whole, cut to its first half (Content-Length of the half), or
   * slowly (64 KiB every 20 ms, so a test can kill the client in the middle).
   */
  payloadMode: "whole" | "truncated" | "slow" = "whole";
  payloadRequests: string[] = [];
  /** Payload bytes handed to the network so far. */
  payloadBytesSent = 0;
  private server: ReturnType<typeof Bun.serve>;

  constructor() {
    this.server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: (r) => this.handle(r) });
  }

  get url(): string {
    return `http://127.0.0.1:${this.server.port}/v1/update/`;
  }

  stop(): void {
    this.server.stop(true);
  }

  events(): ParsedEvent[] {
    return this.log.flatMap((l) => l.events);
  }

  private async handle(req: Request): Promise<Response> {
    const u = new URL(req.url);
    if (u.pathname.startsWith("/payloads/")) return this.payload(req, u.pathname.slice("/payloads/".length));
    if (u.pathname !== "/v1/update/" || req.method !== "POST") return new Response("not found", { status: 404 });
    const parsed = parseRequest(await req.text());
    if (!parsed.ok) return new Response(parsed.error, { status: 400 });
    const apps = parsed.request.apps;
    for (const app of apps) {
      const kind = app.updatecheck ? "check" : app.ping ? "ping" : "event";
      this.log.push({ kind, installsource: parsed.request.installsource, app, events: app.events });
    }
    const check = apps.some((a) => a.updatecheck);
    if (check && this.reply.kind === "http") return new Response("server trouble", { status: this.reply.status });
    if (check && this.reply.kind === "raw") return new Response(this.reply.body, { headers: { "Content-Type": "text/xml" } });
    const body = buildResponse({
      server: "coreos-test",
      apps: apps.map((a) => ({
        appid: a.appid,
        status: normalizeAppId(a.appid) === normalizeAppId(APPID) ? "ok" : "error-unknownApplication",
        ping: a.ping !== null,
        events: a.events.length,
        updatecheck: a.updatecheck ? this.updatecheck() : undefined,
      })),
    });
    return new Response(body, { headers: { "Content-Type": "text/xml" } });
  }

  private updatecheck(): UpdateCheckReply {
    const r = this.reply;
    if (r.kind !== "update") return { status: "noupdate" };
    return {
      status: "ok",
      codebases: [`http://127.0.0.1:${this.server.port}/payloads/${r.version}/`],
      version: r.version,
      packages: [{ name: "coreos_production_update.gz", hash: r.payload.sha1, size: r.size ?? r.payload.size, required: true }],
      postinstall: { sha256: r.sha256 ?? r.payload.sha256, disablePayloadBackoff: true },
    };
  }

  private payload(req: Request, path: string): Response {
    this.payloadRequests.push(`${path} ${req.headers.get("range") ?? ""}`.trim());
    const r = this.reply;
    if (r.kind !== "update") return new Response("no payload", { status: 404 });
    let bytes = r.payload.bytes;
    if (this.payloadMode === "truncated") bytes = bytes.subarray(0, Math.floor(bytes.length / 2));
    const range = /^bytes=(\d+)-$/.exec(req.headers.get("range") ?? "");
    const from = range ? Number(range[1]) : 0;
    if (from >= bytes.length) return new Response(null, { status: 416 });
    const headers: Record<string, string> = { "Content-Length": String(bytes.length - from) };
    if (range) headers["Content-Range"] = `bytes ${from}-${bytes.length - 1}/${bytes.length}`;
    return new Response(this.body(bytes.subarray(from)), { status: range ? 206 : 200, headers });
  }

  private body(bytes: Uint8Array): Uint8Array | ReadableStream<Uint8Array> {
    if (this.payloadMode !== "slow") {
      this.payloadBytesSent += bytes.length;
      return bytes;
    }
    let at = 0;
    return new ReadableStream({
      pull: async (c) => {
        if (at >= bytes.length) return c.close();
        await Bun.sleep(20);
        const chunk = bytes.subarray(at, at + 64 * 1024);
        at += chunk.length;
        this.payloadBytesSent += chunk.length;
        c.enqueue(chunk);
      },
    });
  }
}

export interface Daemon {
  proc: Subprocess<"ignore", "pipe", "pipe">;
  socket: string;
  /** Everything the daemon logged so far. */
  stderr(): string;
  stop(): Promise<number>;
}

/** update_engine as a real process on this root and disk; resolves once its control socket answers. */
export async function startDaemon(o: { root: string; disk: string; usrPartition: string; extra?: string[]; env?: Record<string, string> }): Promise<Daemon> {
  const socket = join(o.root, "run/update-engine/control.sock");
  const proc = Bun.spawn(
    [...COREOS, "update-engine", "daemon", "--root-dir", o.root, "--disk", o.disk, "--usr-partition", o.usrPartition, "--control-socket", socket, ...(o.extra ?? [])],
    { env: { ...process.env, ...NO_BUS, COREOS_LOG_LEVEL: "3", ...o.env }, stdin: "ignore", stdout: "pipe", stderr: "pipe" },
  );
  let err = "";
  const decoder = new TextDecoder();
  void (async () => {
    for await (const chunk of proc.stderr) err += decoder.decode(chunk);
  })();
  const d: Daemon = {
    proc,
    socket,
    stderr: () => err,
    async stop() {
      proc.kill("SIGTERM");
      return proc.exited;
    },
  };
  const deadline = Date.now() + 15000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`update_engine exited with ${proc.exitCode}: ${err}`);
    try {
      await getStatus(socket, AbortSignal.timeout(1000));
      return d;
    } catch {
      if (Date.now() > deadline) {
        proc.kill("SIGKILL");
        throw new Error(`update_engine not answering on ${socket}: ${err}`);
      }
      await Bun.sleep(50);
    }
  }
}

export async function client(args: string[], socket: string): Promise<{ code: number; out: string; err: string }> {
  const p = Bun.spawn([...COREOS, "update-engine", "client", ...args, "-control_socket", socket, "-retry_delay", "100ms"], {
    env: { ...process.env, ...NO_BUS },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, out, err };
}

export async function coreos(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const p = Bun.spawn([...COREOS, ...args], { env: { ...process.env, ...NO_BUS }, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, out, err };
}

/** Polls until `f` holds (bounded). */
export async function until(what: string, f: () => boolean | Promise<boolean>, ms = 15000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await f())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(25);
  }
}

export function parseStatusBlock(out: string): Record<string, string> {
  return Object.fromEntries(out.trim().split("\n").map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]));
}

export type { Status };
