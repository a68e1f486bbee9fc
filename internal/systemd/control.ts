// The supervisor's control socket: newline-delimited JSON over a Unix socket, one request and one
// answer line per exchange (the shape of internal/update/status.ts):
//   {"method":"run","command":"start","unit":"x.service"} -> {"ok":true,"result":"done"|"failed"|...}
//     with "noBlock":true the answer comes once the job is queued: {"ok":true}
//   {"method":"status","unit":"x.service"}                 -> {"ok":true,"status":{...UnitStatus}}
//   {"method":"list"}                                      -> {"ok":true,"units":[UnitStatus...]}
//   {"method":"journal","unit":"x.service","lines":50}     -> {"ok":true,"entries":[JournalEntry...]}
//   {"method":"daemon-reload"}                             -> {"ok":true}
//   {"method":"reset-failed","unit":"x.service"}           -> {"ok":true}
// A failure is {"ok":false,"error":"one line","code":"not-found"|"masked"|"bad-request"|"failed"}.
import { rmSync } from "node:fs";
import { createConnection, type Server, type Socket } from "node:net";
import * as v from "valibot";
import type { UnitStatus } from "./manager.ts";
import { listenControlSocket, socketLines } from "../lines/lines.ts";

export const DEFAULT_SUPERVISOR_SOCKET = "/run/coreos/supervisor.sock";
export const SUPERVISOR_SOCKET_ENV = "COREOS_SUPERVISOR_SOCKET";

export function supervisorSocket(flag: string | undefined, env: Record<string, string | undefined> = process.env): string {
  return flag || env[SUPERVISOR_SOCKET_ENV] || DEFAULT_SUPERVISOR_SOCKET;
}

export const COMMANDS = ["start", "stop", "restart", "reload", "try-restart", "reload-or-restart", "reload-or-try-restart"] as const;

export interface JournalEntry {
  /** Position in the unit's journal since the supervisor started (for following it). */
  seq: number;
  /** Unix ms. */
  time: number;
  /** Who wrote it: the program's name, or "coreos" for the supervisor's own lines. */
  ident: string;
  pid: number;
  message: string;
}

/** How a job ended, with systemd's names. */
export type JobResult = "done" | "failed" | "canceled" | "timeout" | "dependency" | "skipped";

const unitName = v.pipe(v.string(), v.minLength(1), v.maxLength(255));

export const RequestSchema = v.variant("method", [
  v.object({ method: v.literal("run"), command: v.picklist(COMMANDS), unit: unitName, noBlock: v.optional(v.boolean()) }),
  v.object({ method: v.literal("status"), unit: unitName }),
  v.object({ method: v.literal("list") }),
  v.object({ method: v.literal("journal"), unit: unitName, lines: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0))) }),
  v.object({ method: v.literal("daemon-reload") }),
  v.object({ method: v.literal("reset-failed"), unit: unitName }),
]);
export type Request = v.InferOutput<typeof RequestSchema>;

export type ErrorCode = "not-found" | "masked" | "bad-request" | "failed" | "unsupported";

/** An error that travels to the client with a code the CLI maps to systemctl's exit codes. */
export class ControlError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
  }
}

const StatusSchema = v.object({
  name: v.string(),
  load: v.picklist(["loaded", "not-found", "masked", "error"]),
  active: v.picklist(["active", "reloading", "inactive", "failed", "activating", "deactivating"]),
  sub: v.string(),
  description: v.optional(v.string()),
  path: v.optional(v.string()),
  result: v.optional(v.string()),
  mainPid: v.optional(v.number()),
  restarts: v.optional(v.number()),
  lastExit: v.optional(v.object({ pid: v.optional(v.number()), status: v.string() })),
  since: v.optional(v.number()),
  enabled: v.optional(v.string()),
}) satisfies v.GenericSchema<unknown, UnitStatus>;

const EntrySchema = v.object({ seq: v.number(), time: v.number(), ident: v.string(), pid: v.number(), message: v.string() });

const AnswerSchema = v.union([
  v.object({ ok: v.literal(false), error: v.string(), code: v.picklist(["not-found", "masked", "bad-request", "failed", "unsupported"]) }),
  v.object({
    ok: v.literal(true),
    result: v.optional(v.picklist(["done", "failed", "canceled", "timeout", "dependency", "skipped"])),
    status: v.optional(StatusSchema),
    units: v.optional(v.array(StatusSchema)),
    entries: v.optional(v.array(EntrySchema)),
  }),
]);
export type Answer = v.InferOutput<typeof AnswerSchema>;

/** What the server asks of the supervisor. */
export interface ControlHandler {
  handle(req: Request): Promise<Answer>;
}

function errorAnswer(e: unknown): Answer {
  if (e instanceof ControlError) return { ok: false, error: e.message, code: e.code };
  return { ok: false, error: (e as Error).message ?? String(e), code: "failed" };
}

export class ControlServer {
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();

  constructor(
    readonly path: string,
    private readonly handler: ControlHandler,
  ) {}

  /** Listens; a stale socket file is replaced, a live one (another supervisor answers) is an error. */
  async start(): Promise<void> {
    this.server = await listenControlSocket(this.path, "supervisor", (sock) => this.accept(sock));
  }

  async close(): Promise<void> {
    const server = this.server;
    this.server = null;
    for (const s of this.sockets) s.destroy();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
    rmSync(this.path, { force: true });
  }

  private accept(sock: Socket): void {
    this.sockets.add(sock);
    sock.on("error", () => undefined);
    sock.on("close", () => this.sockets.delete(sock));
    // Answers go out in request order even when a later request finishes first.
    let chain = Promise.resolve();
    socketLines(sock, (line) => {
      const answer = (async (): Promise<Answer> => {
        let json: unknown;
        try {
          json = JSON.parse(line);
        } catch {
          return { ok: false, error: "bad request: not JSON", code: "bad-request" };
        }
        const r = v.safeParse(RequestSchema, json);
        if (!r.success) return { ok: false, error: `bad request: ${r.issues[0].message}`, code: "bad-request" };
        try {
          return await this.handler.handle(r.output);
        } catch (e) {
          return errorAnswer(e);
        }
      })();
      chain = chain.then(async () => {
        const a = await answer;
        if (!sock.destroyed) sock.write(`${JSON.stringify(a)}\n`);
      });
    });
  }
}

function connect(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const sock = createConnection(path);
    sock.once("connect", () => resolve(sock));
    sock.once("error", reject);
  });
}

/** The supervisor is not there to ask. */
export class NotRunningError extends Error {}

/** One request, its answer; a refused answer is thrown as a ControlError. */
export async function call(path: string, req: Request): Promise<Extract<Answer, { ok: true }>> {
  let sock: Socket;
  try {
    sock = await connect(path);
  } catch (e) {
    throw new NotRunningError(`coreos supervisor is not running (${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  let line: string;
  try {
    line = await new Promise<string>((resolve, reject) => {
      socketLines(sock, (l) => resolve(l));
      sock.once("error", reject);
      sock.once("close", () => reject(new Error(`${path}: connection closed before an answer`)));
      sock.write(`${JSON.stringify(req)}\n`);
    });
  } finally {
    sock.destroy();
  }
  let json: unknown;
  try {
    json = JSON.parse(line);
  } catch {
    throw new Error(`${path}: not JSON: ${line.slice(0, 200)}`);
  }
  const r = v.safeParse(AnswerSchema, json);
  if (!r.success) throw new Error(`${path}: unexpected answer: ${line.slice(0, 200)}`);
  if (!r.output.ok) throw new ControlError(r.output.code, r.output.error);
  return r.output;
}

