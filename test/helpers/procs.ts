// Processes for integration tests: free loopback ports, the compiled binary, the real etcd.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { Subprocess } from "bun";

export const ROOT = resolve(import.meta.dir, "../..");
export const BIN = join(ROOT, "dist/coreos");
export const DIST = join(ROOT, "dist");

const handedOut = new Set<number>();

/**
 * A port the kernel says is free on 127.0.0.1 right now, never one already handed out in this
 * process (the kernel may offer a just-released port again, and a server given the same port for
 * clients and peers fails to start).
 */
export function freePort(): number {
  for (let tries = 0; tries < 100; tries++) {
    const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    const p = s.port;
    s.stop(true);
    if (!handedOut.has(p)) {
      handedOut.add(p);
      return p;
    }
  }
  throw new Error("no free port found in 100 tries");
}

/**
 * Every directory tempDir made and not yet cleaned up, with the test file that asked for it ("" when
 * no test file is on the stack, e.g. after an await in a helper). Members preallocate WAL segments
 * (tens of MB each), so none may outlive the run: see removeTempDirs.
 */
const made = new Map<string, string>();

/** The test file on the calling stack, if any. */
function callingTestFile(): string {
  return new Error().stack?.match(/\/[^\s():]+\.test\.ts/)?.[0] ?? "";
}

/**
 * Removes the directories of every test file other than `current` (test files run one after
 * another in one process, so an earlier file is done with its directories), or with no argument
 * all of them (test/helpers/preload.ts, once the run is over).
 */
export function removeTempDirs(current?: string): void {
  for (const [dir, owner] of made)
    if (current === undefined || (owner !== "" && owner !== current)) cleanup(dir);
}

/** A fresh directory under the system temp dir, removed at the latest once its test file is done. */
export function tempDir(prefix = "coreos-test-"): string {
  const owner = callingTestFile();
  if (owner !== "") removeTempDirs(owner);
  const dir = mkdtempSync(join(tmpdir(), prefix));
  made.set(dir, owner);
  return dir;
}

export interface Server {
  proc: Subprocess;
  url: string;
  peerUrl: string;
  dataDir: string;
  name: string;
  /** SIGTERM and wait. */
  stop(): Promise<void>;
  /** SIGKILL and wait. */
  kill(): Promise<void>;
}

export interface ServerOptions {
  name?: string;
  dataDir?: string;
  clientPort?: number;
  peerPort?: number;
  extraArgs?: string[];
  env?: Record<string, string>;
  /** Where readiness is polled when the client URL is not plain http on clientPort. */
  readyUrl?: string;
  readyTls?: { ca: string; cert: string; key: string };
}

function etcdArgs(o: Required<Pick<ServerOptions, "name" | "dataDir" | "clientPort" | "peerPort">>): string[] {
  const c = `http://127.0.0.1:${o.clientPort}`;
  const p = `http://127.0.0.1:${o.peerPort}`;
  return [
    "--name", o.name,
    "--data-dir", o.dataDir,
    "--listen-client-urls", c,
    "--advertise-client-urls", c,
    "--listen-peer-urls", p,
    "--initial-advertise-peer-urls", p,
    "--initial-cluster", `${o.name}=${p}`,
    "--initial-cluster-token", "t1",
  ];
}

/**
 * Polls GET /health until it answers (or the process exits, or the deadline passes). A process
 * still running at the deadline is killed: no caller has a use for it.
 */
export async function waitReady(
  url: string,
  proc: Subprocess,
  ms = 15000,
  tls?: ServerOptions["readyTls"],
): Promise<void> {
  const deadline = Date.now() + ms;
  const init = tls ? { tls: { ca: Bun.file(tls.ca), cert: Bun.file(tls.cert), key: Bun.file(tls.key) } } : {};
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) throw new Error(`server exited with ${proc.exitCode} before it was ready`);
    try {
      const r = await fetch(`${url}/health`, init);
      if (r.ok) return;
    } catch {
      // not listening yet
    }
    await Bun.sleep(50);
  }
  proc.kill("SIGKILL");
  throw new Error(`server at ${url} not ready after ${ms} ms`);
}

/** Ends a process and waits for its exit: SIGTERM lets it shut down, SIGKILL is a crash. */
export async function endProc(proc: Subprocess, signal: "SIGTERM" | "SIGKILL" = "SIGTERM"): Promise<void> {
  proc.kill(signal);
  await proc.exited;
}

/** The handle of a started member process. */
export function serverFor(proc: Subprocess, m: { name: string; dataDir: string; peerPort: number; url: string }): Server {
  return {
    proc,
    url: m.url,
    peerUrl: `http://127.0.0.1:${m.peerPort}`,
    dataDir: m.dataDir,
    name: m.name,
    stop: () => endProc(proc),
    kill: () => endProc(proc, "SIGKILL"),
  };
}

/** Starts a member process without waiting for it: the handle's URL is where it will answer. */
function spawn(cmd: string[], o: ServerOptions): Server {
  const name = o.name ?? "n1";
  const dataDir = o.dataDir ?? join(tempDir(), `${name}.etcd`);
  const clientPort = o.clientPort ?? freePort();
  const peerPort = o.peerPort ?? freePort();
  const args = [...cmd, ...etcdArgs({ name, dataDir, clientPort, peerPort }), ...(o.extraArgs ?? [])];
  const proc = Bun.spawn(args, {
    stdout: "ignore",
    stderr: process.env.TEST_VERBOSE ? "inherit" : "ignore",
    env: { ...process.env, ...o.env },
  });
  return serverFor(proc, { name, dataDir, peerPort, url: o.readyUrl ?? `http://127.0.0.1:${clientPort}` });
}

async function start(cmd: string[], o: ServerOptions): Promise<Server> {
  const server = spawn(cmd, o);
  await waitReady(server.url, server.proc, 15000, o.readyTls);
  return server;
}

/** `coreos kv serve`: the compiled binary, or with COREOS_CMD (e.g. "bun cmd/coreos.ts") the sources. */
function oursCmd(): string[] {
  return [...(process.env.COREOS_CMD?.split(" ") ?? [BIN]), "kv", "serve"];
}

/** Our `coreos kv serve` (the compiled binary) as a single member. */
export function startOurs(o: ServerOptions = {}): Promise<Server> {
  return start(oursCmd(), o);
}

/** Our member, not waited for: one expected to stop by itself before it is ever ready. */
export function spawnOurs(o: ServerOptions = {}): Server {
  return spawn(oursCmd(), o);
}

/** The real etcd (Debian etcd-server) with the v2 API on, as a single member. */
export function startEtcd(o: ServerOptions = {}): Promise<Server> {
  return start(["etcd", "--enable-v2=true"], o);
}

export function cleanup(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  made.delete(dir);
}
