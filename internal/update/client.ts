// update_engine_client's side (spec §2.6): what it prints (the -status block, -watch_for_updates'
// lines, the progress bar -update draws on a terminal) and how it reaches the engine.
import { existsSync } from "node:fs";
import { DBusError } from "../dbus/bus.ts";
import { connectUpdate1, subscribeUpdate1 } from "../dbus/update1.ts";
import { attemptUpdate, DEFAULT_CONTROL_SOCKET, getStatus, resetStatus, subscribe, type Status } from "./status.ts";

/** The -status block, exactly as the original prints it (PROGRESS with %f). */
export function formatStatusBlock(s: Status): string {
  return (
    `LAST_CHECKED_TIME=${Math.trunc(s.last_checked_time)}\n` +
    `PROGRESS=${s.progress.toFixed(6)}\n` +
    `CURRENT_OP=${s.current_operation}\n` +
    `NEW_VERSION=${s.new_version}\n` +
    `NEW_SIZE=${Math.trunc(s.new_size)}\n`
  );
}

/** One StatusUpdate as -watch_for_updates reports it. */
export function watchLines(s: Status): string {
  return (
    `Got status update:\n` +
    `  last_checked_time: ${s.last_checked_time}\n` +
    `  progress: ${s.progress}\n` +
    `  current_operation: ${s.current_operation}\n` +
    `  new_version: ${s.new_version}\n` +
    `  new_size: ${s.new_size}\n`
  );
}

const WIDTH = 30;

/** A one-line bar, redrawn in place with "\r": `[#########.....]  45% UPDATE_STATUS_DOWNLOADING 4152.2.0`. */
export function progressBar(s: Status): string {
  const p = Math.max(0, Math.min(1, s.progress));
  const filled = Math.round(p * WIDTH);
  const op = s.current_operation.replace(/^UPDATE_STATUS_/, "");
  return `[${"#".repeat(filled)}${".".repeat(WIDTH - filled)}] ${String(Math.floor(p * 100)).padStart(3)}% ${op.padEnd(22)} ${s.new_version}`;
}

// --- how the client reaches the engine ---

/** The engine's three methods and its status stream, over the control socket or the system bus. */
export interface EngineLink {
  /** For messages: "the control socket /run/…" or "com.coreos.update1 on the system bus". */
  readonly via: string;
  getStatus(): Promise<Status>;
  attemptUpdate(): Promise<void>;
  resetStatus(): Promise<void>;
  /** The current status, then every change, until the signal fires. */
  statuses(signal: AbortSignal): AsyncGenerator<Status>;
  close(): void;
}

/** An error that means the engine is not there (yet): worth the original's retries. */
export function engineAbsent(e: unknown): boolean {
  if (e instanceof DBusError) return /ServiceUnknown|NameHasNoOwner/.test(e.errorName);
  const code = (e as NodeJS.ErrnoException).code;
  return code === "ENOENT" || code === "ECONNREFUSED";
}

export function socketLink(path: string): EngineLink {
  return {
    via: `the control socket ${path}`,
    getStatus: () => getStatus(path),
    attemptUpdate: () => attemptUpdate(path),
    resetStatus: () => resetStatus(path),
    statuses: (signal) => subscribe(path, { signal, backoffMinMs: 100, backoffMaxMs: 1000 }),
    close: () => undefined,
  };
}

/** com.coreos.update1 as the original client reaches it; null when there is no system bus. */
export async function busLink(env: Record<string, string | undefined>): Promise<EngineLink | null> {
  const c = await connectUpdate1(env);
  if (c === null) return null;
  return {
    via: "com.coreos.update1 on the system bus",
    getStatus: () => c.getStatus(),
    attemptUpdate: () => c.attemptUpdate(),
    resetStatus: () => c.resetStatus(),
    async *statuses(signal) {
      const queue: Status[] = [];
      let wake: (() => void) | null = null;
      const push = () => {
        wake?.();
        wake = null;
      };
      const sub = await subscribeUpdate1((s) => {
        queue.push(s);
        push();
      }, {}, env);
      signal.addEventListener("abort", push, { once: true });
      try {
        while (!signal.aborted) {
          if (queue.length === 0) await new Promise<void>((r) => (wake = r));
          while (queue.length > 0) yield queue.shift()!;
        }
      } finally {
        sub?.close();
      }
    },
    close: () => c.close(),
  };
}

/**
 * The control socket when one is named (flag or $UPDATE_ENGINE_CONTROL_SOCKET); otherwise the
 * system bus as the original client uses, unless nobody serves com.coreos.update1 there and the
 * default socket exists (an engine started without D-Bus); the default socket on hosts without a bus.
 */
export async function pickLink(named: string | undefined, env: Record<string, string | undefined>): Promise<EngineLink> {
  if (named) return socketLink(named);
  const bus = await busLink(env);
  if (bus === null) return socketLink(DEFAULT_CONTROL_SOCKET);
  try {
    await bus.getStatus();
    return bus;
  } catch (e) {
    if (engineAbsent(e) && existsSync(DEFAULT_CONTROL_SOCKET)) {
      bus.close();
      return socketLink(DEFAULT_CONTROL_SOCKET);
    }
    return bus;
  }
}
