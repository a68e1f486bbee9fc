// Where locksmithd hears the update engine: D-Bus com.coreos.update1 where a system bus exists
// (as the original), the engine's control socket otherwise.
import { subscribeUpdate1 } from "../dbus/update1.ts";
import { logger } from "../log/log.ts";
import { subscribe, type Status } from "../update/status.ts";
import { sleep } from "./daemon.ts";

const log = logger("locksmith");

export interface UpdateSource {
  /** The control socket used when there is no system bus. */
  socket: string;
  env: Record<string, string | undefined>;
  /** Reconnect backoff after the bus connection is lost (doubles up to max). */
  backoffMinMs?: number;
  backoffMaxMs?: number;
}

/** Every status, the current one first, until `signal` fires; a lost bus is reconnected with backoff. */
export async function* updateStatuses(o: UpdateSource, signal: AbortSignal): AsyncGenerator<Status> {
  const min = o.backoffMinMs ?? 500;
  const max = o.backoffMaxMs ?? 30_000;
  let wait = min;
  let onBus = false;
  while (!signal.aborted) {
    const queue: (Status | "closed")[] = [];
    let wake: (() => void) | null = null;
    const push = (x: Status | "closed") => {
      queue.push(x);
      wake?.();
    };
    let sub: { close(): void } | null;
    try {
      sub = await subscribeUpdate1(push, {
        onInvalid: (m) => log.warn(`dropping a StatusUpdate with body (${m.signature}), want (xdssx)`),
        onError: (e) => log.warn(`GetStatus from com.coreos.update1 failed: ${e.message}`),
        onClose: (e) => {
          log.warn(`system bus connection lost${e ? `: ${e.message}` : ""}`);
          push("closed");
        },
      }, o.env);
    } catch (e) {
      log.warn(`system bus unusable (${(e as Error).message}); retrying in ${wait}ms`);
      await sleep(wait, signal);
      wait = Math.min(wait * 2, max);
      continue;
    }
    if (sub === null && onBus) {
      // The bus we had is restarting: wait for it rather than switch transports for good.
      await sleep(wait, signal);
      wait = Math.min(wait * 2, max);
      continue;
    }
    if (sub === null) {
      log.info(`no system bus; listening to the update engine at ${o.socket}`);
      yield* subscribe(o.socket, {
        signal,
        onError: (e, ms) => log.warn(`update engine at ${o.socket}: ${e.message}; retrying in ${ms}ms`),
        onInvalid: (l) => log.warn(`dropping a status that is not one: ${l.slice(0, 200)}`),
      });
      return;
    }
    log.info("listening to com.coreos.update1 on the system bus");
    onBus = true;
    wait = min;
    const onAbort = () => push("closed");
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      for (;;) {
        while (queue.length === 0) await new Promise<void>((r) => (wake = r));
        wake = null;
        const item = queue.shift()!;
        if (item === "closed") break;
        yield item;
      }
    } finally {
      signal.removeEventListener("abort", onAbort);
      sub.close();
    }
    if (signal.aborted) return;
    await sleep(wait, signal);
    wait = Math.min(wait * 2, max);
  }
}
