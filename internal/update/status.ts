// The update engine's status and its control socket: the contract between update_engine (the
// server) and its readers (locksmithd, update_engine_client, locksmithctl send-need-reboot).
//
// The record is D-Bus com.coreos.update1.Manager.GetStatus's five values. Where no system bus
// exists, the same record travels over a Unix socket as newline-delimited JSON:
//   {"method":"GetStatus"}                  -> one status line
//   {"method":"Subscribe"}                  -> the current status, then one line per change, until either side closes
//   {"method":"StatusUpdate","status":{…}}  -> {"ok":true}; the status goes to every subscriber, like the
//                                              D-Bus signal anyone on the bus may emit (the engine's own
//                                              GetStatus answer is unchanged, as on D-Bus)
//   {"method":"AttemptUpdate"}              -> {"ok":true} once the engine took the request (D-Bus AttemptUpdate)
//   {"method":"ResetStatus"}                -> {"ok":true}, or {"error":"…"} when the engine refuses (D-Bus ResetStatus)
// Anything else gets {"error":"…"} and the connection stays open. The engine may also serve the same
// protocol on a TCP address; clients name it "tcp://HOST:PORT" wherever a socket path goes.
import { rmSync } from "node:fs";
import { createConnection, createServer, type NetConnectOpts, type Server, type Socket } from "node:net";
import * as v from "valibot";
import { listenControlSocket, socketLines } from "../lines/lines.ts";

export const DEFAULT_CONTROL_SOCKET = "/run/update-engine/control.sock";
/** Read by every client and server when no flag names the socket. */
export const CONTROL_SOCKET_ENV = "UPDATE_ENGINE_CONTROL_SOCKET";

export const Operation = {
  Idle: "UPDATE_STATUS_IDLE",
  CheckingForUpdate: "UPDATE_STATUS_CHECKING_FOR_UPDATE",
  UpdateAvailable: "UPDATE_STATUS_UPDATE_AVAILABLE",
  Downloading: "UPDATE_STATUS_DOWNLOADING",
  Verifying: "UPDATE_STATUS_VERIFYING",
  Finalizing: "UPDATE_STATUS_FINALIZING",
  UpdatedNeedReboot: "UPDATE_STATUS_UPDATED_NEED_REBOOT",
  ReportingErrorEvent: "UPDATE_STATUS_REPORTING_ERROR_EVENT",
} as const;
export type Operation = (typeof Operation)[keyof typeof Operation];

export interface Status {
  /** Unix seconds (D-Bus int64). */
  last_checked_time: number;
  /** 0..1 (D-Bus double). */
  progress: number;
  /** One of Operation; kept as a string so a newer engine's operation is not a protocol error. */
  current_operation: string;
  new_version: string;
  /** Bytes (D-Bus int64). */
  new_size: number;
}

export const IDLE: Status = { last_checked_time: 0, progress: 0, current_operation: Operation.Idle, new_version: "", new_size: 0 };

/** The body `locksmithctl send-need-reboot` sends (B2): (0, 0, NEED_REBOOT, "", 0). */
export const NEED_REBOOT: Status = { ...IDLE, current_operation: Operation.UpdatedNeedReboot };

const int = v.pipe(v.number(), v.integer());
// Like locksmith 0.6.2's check of the signal body: a record missing a field or with a wrong type is dropped.
export const StatusSchema = v.object({
  last_checked_time: int,
  progress: v.number(),
  current_operation: v.string(),
  new_version: v.string(),
  new_size: int,
});

const RequestSchema = v.variant("method", [
  v.object({ method: v.literal("GetStatus") }),
  v.object({ method: v.literal("Subscribe") }),
  v.object({ method: v.literal("StatusUpdate"), status: StatusSchema }),
  v.object({ method: v.literal("AttemptUpdate") }),
  v.object({ method: v.literal("ResetStatus") }),
]);

/** What the engine does for the two commands; a server without them (a stand-in) refuses both. */
export interface ControlHandlers {
  attemptUpdate(): Promise<void>;
  /** Throws with the reason when the engine's state does not allow a reset. */
  resetStatus(): Promise<void>;
}

const TCP_PREFIX = "tcp://";

/** "tcp://HOST:PORT" as connect options; null for a Unix socket path. */
export function tcpAddress(address: string): { host: string; port: number } | null {
  if (!address.startsWith(TCP_PREFIX)) return null;
  const rest = address.slice(TCP_PREFIX.length);
  const colon = rest.lastIndexOf(":");
  const port = Number(rest.slice(colon + 1));
  if (colon <= 0 || !Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`${address}: not tcp://HOST:PORT`);
  return { host: rest.slice(0, colon).replace(/^\[(.*)\]$/, "$1"), port };
}

export function parseStatus(line: string): Status | null {
  try {
    const r = v.safeParse(StatusSchema, JSON.parse(line));
    return r.success ? r.output : null;
  } catch {
    return null;
  }
}

function encode(s: Status): string {
  const { last_checked_time, progress, current_operation, new_version, new_size } = s;
  return JSON.stringify({ last_checked_time, progress, current_operation, new_version, new_size });
}

/** The line locksmithd prints for each status it receives (B3). */
export function formatStatus(s: Status): string {
  return `LastCheckedTime=${s.last_checked_time} Progress=${s.progress} CurrentOperation=${JSON.stringify(s.current_operation)} NewVersion=${s.new_version} NewSize=${s.new_size}`;
}

export function socketPath(flag: string | undefined, env: Record<string, string | undefined>): string {
  return flag || env[CONTROL_SOCKET_ENV] || DEFAULT_CONTROL_SOCKET;
}

// --- server ---

/** Serves a status given to it and publishes its changes; the update engine daemon owns one. */
export class StatusServer {
  private server: Server | null = null;
  private tcp: Server | null = null;
  private readonly subscribers = new Set<Socket>();
  private readonly sockets = new Set<Socket>();
  private current: Status;

  constructor(
    readonly path: string,
    initial: Status = IDLE,
    private readonly handlers?: ControlHandlers,
  ) {
    this.current = { ...initial };
  }

  get status(): Status {
    return { ...this.current };
  }

  /** Listens; a stale socket file is replaced, a live one (another server answers) is an error. */
  async start(): Promise<void> {
    this.server = await listenControlSocket(this.path, "update engine", (sock) => this.accept(sock));
  }

  /** Serves the same protocol on a TCP address too (for tests and hosts without a shared /run); returns the bound port. */
  async listenTcp(host: string, port: number): Promise<number> {
    const server = createServer((sock) => this.accept(sock));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen({ host, port }, () => resolve());
    });
    this.tcp = server;
    const a = server.address();
    return typeof a === "object" && a ? a.port : port;
  }

  /** Replaces the status; subscribers hear it when anything changed. */
  setStatus(s: Status): void {
    const changed = encode(s) !== encode(this.current);
    this.current = { ...s };
    if (changed) this.broadcast(this.current);
  }

  /** Sends a status to every subscriber without changing the served one (a StatusUpdate signal). */
  broadcast(s: Status): void {
    const line = `${encode(s)}\n`;
    for (const sock of this.subscribers) sock.write(line);
  }

  async close(): Promise<void> {
    const server = this.server;
    const tcp = this.tcp;
    this.server = null;
    this.tcp = null;
    for (const s of this.sockets) s.destroy();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
    if (tcp) await new Promise<void>((resolve) => tcp.close(() => resolve()));
    if (server) rmSync(this.path, { force: true });
  }

  private accept(sock: Socket): void {
    this.sockets.add(sock);
    sock.on("error", () => undefined);
    sock.on("close", () => {
      this.sockets.delete(sock);
      this.subscribers.delete(sock);
    });
    socketLines(sock, (line) => {
      let req: v.InferOutput<typeof RequestSchema>;
      try {
        const r = v.safeParse(RequestSchema, JSON.parse(line));
        if (!r.success) {
          sock.write(`${JSON.stringify({ error: `bad request: ${r.issues[0].message}` })}\n`);
          return;
        }
        req = r.output;
      } catch {
        sock.write(`${JSON.stringify({ error: "bad request: not JSON" })}\n`);
        return;
      }
      switch (req.method) {
        case "GetStatus":
          sock.write(`${encode(this.current)}\n`);
          return;
        case "Subscribe":
          this.subscribers.add(sock);
          sock.write(`${encode(this.current)}\n`);
          return;
        case "StatusUpdate":
          this.broadcast(req.status);
          sock.write(`${JSON.stringify({ ok: true })}\n`);
          return;
        case "AttemptUpdate":
        case "ResetStatus": {
          const h = this.handlers;
          if (!h) {
            sock.write(`${JSON.stringify({ error: `${req.method}: not an update engine` })}\n`);
            return;
          }
          (req.method === "AttemptUpdate" ? h.attemptUpdate() : h.resetStatus()).then(
            () => sock.write(`${JSON.stringify({ ok: true })}\n`),
            (e: Error) => sock.write(`${JSON.stringify({ error: e.message })}\n`),
          );
          return;
        }
      }
    });
  }
}

// --- client ---

function connect(path: string, signal?: AbortSignal): Promise<Socket> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const tcp = tcpAddress(path);
    const sock = createConnection((tcp ?? { path }) as NetConnectOpts);
    const onAbort = () => {
      sock.destroy();
      reject(signal!.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    sock.once("connect", () => {
      signal?.removeEventListener("abort", onAbort);
      resolve(sock);
    });
    sock.once("error", (e) => {
      signal?.removeEventListener("abort", onAbort);
      reject(e);
    });
  });
}

/** One request, its first answer line. */
async function call(path: string, req: object, signal?: AbortSignal): Promise<string> {
  const sock = await connect(path, signal);
  try {
    return await new Promise<string>((resolve, reject) => {
      socketLines(sock, (l) => resolve(l));
      sock.once("error", reject);
      sock.once("close", () => reject(new Error(`${path}: connection closed before an answer`)));
      signal?.addEventListener("abort", () => reject(signal.reason), { once: true });
      sock.write(`${JSON.stringify(req)}\n`);
    });
  } finally {
    sock.destroy();
  }
}

export async function getStatus(path: string, signal?: AbortSignal): Promise<Status> {
  const line = await call(path, { method: "GetStatus" }, signal);
  const s = parseStatus(line);
  if (!s) throw new Error(`${path}: not a status: ${line.slice(0, 200)}`);
  return s;
}

function okOrThrow(path: string, method: string, line: string): void {
  let answer: unknown;
  try {
    answer = JSON.parse(line);
  } catch {
    throw new Error(`${path}: ${method}: not an answer: ${line.slice(0, 200)}`);
  }
  const a = answer as { ok?: unknown; error?: unknown };
  if (a.ok === true) return;
  throw new Error(typeof a.error === "string" ? a.error : `${path}: ${method}: refused: ${line.slice(0, 200)}`);
}

/** Asks the engine for an update check now (interactive, like D-Bus AttemptUpdate). */
export async function attemptUpdate(path: string, signal?: AbortSignal): Promise<void> {
  okOrThrow(path, "AttemptUpdate", await call(path, { method: "AttemptUpdate" }, signal));
}

/** Asks the engine to go back to idle after an applied update (D-Bus ResetStatus); throws the engine's reason when refused. */
export async function resetStatus(path: string, signal?: AbortSignal): Promise<void> {
  okOrThrow(path, "ResetStatus", await call(path, { method: "ResetStatus" }, signal));
}

/** Emits a StatusUpdate to the server's subscribers. */
export async function emitStatus(path: string, status: Status, signal?: AbortSignal): Promise<void> {
  const line = await call(path, { method: "StatusUpdate", status }, signal);
  if (!line.includes('"ok":true')) throw new Error(`${path}: StatusUpdate refused: ${line.slice(0, 200)}`);
}

export interface SubscribeOptions {
  signal: AbortSignal;
  /** Reconnect backoff in ms: doubles from min to max, back to min after a successful connect. */
  backoffMinMs?: number;
  backoffMaxMs?: number;
  /** Each failed connection attempt (the engine may start after us: coreos/bugs#1011). */
  onError?: (e: Error, retryInMs: number) => void;
  /** A line that is not a status (dropped). */
  onInvalid?: (line: string) => void;
}

/**
 * Every status the engine reports, starting with the current one, across reconnects; ends when
 * the signal fires. After a reconnect the current status comes again, so nothing is missed.
 */
export async function* subscribe(path: string, o: SubscribeOptions): AsyncGenerator<Status> {
  const min = o.backoffMinMs ?? 100;
  const max = o.backoffMaxMs ?? 5000;
  let wait = min;
  while (!o.signal.aborted) {
    let sock: Socket;
    try {
      sock = await connect(path, o.signal);
    } catch (e) {
      if (o.signal.aborted) return;
      o.onError?.(e as Error, wait);
      await sleep(wait, o.signal);
      wait = Math.min(wait * 2, max);
      continue;
    }
    wait = min;
    const queue: (Status | null)[] = [];
    let wake: (() => void) | null = null;
    const push = (x: Status | null) => {
      queue.push(x);
      wake?.();
    };
    socketLines(sock, (l) => {
      const s = parseStatus(l);
      if (s) push(s);
      else o.onInvalid?.(l);
    });
    sock.on("error", () => undefined);
    sock.on("close", () => push(null));
    const onAbort = () => sock.destroy();
    o.signal.addEventListener("abort", onAbort, { once: true });
    sock.write(`${JSON.stringify({ method: "Subscribe" })}\n`);
    try {
      for (;;) {
        while (queue.length === 0) await new Promise<void>((r) => (wake = r));
        wake = null;
        const item = queue.shift()!;
        if (item === null) break;
        yield item;
      }
    } finally {
      o.signal.removeEventListener("abort", onAbort);
      sock.destroy();
    }
    if (o.signal.aborted) return;
    o.onError?.(new Error(`${path}: connection closed`), wait);
    await sleep(wait, o.signal);
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}
