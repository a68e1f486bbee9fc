// locksmithd's flow (B3, v0.6.2 plus Flatcar's window re-check), with the outside world passed in
// so the same code runs the real daemon and the unit tests.
import { goDuration } from "../kv/duration.ts";
import { logger } from "../log/log.ts";
import { formatStatus, Operation, type Status } from "../update/status.ts";
import type { EtcdLock } from "./etcdlock.ts";
import type { CoordinatorState } from "./host.ts";
import { SemaphoreError, setMax } from "./semaphore.ts";
import { isStrategy } from "./strategy.ts";
import { durationToStart, type Periodic } from "./window.ts";

const log = logger("locksmith");

export interface DaemonTimings {
  /** After start, before the first unlock attempt; also its first retry interval (5s). */
  unlockDelayMs: number;
  /** First wait after a failed lock attempt (10s). */
  lockRetryMs: number;
  /** Cap of both backoffs (5 min). */
  retryMaxMs: number;
  /** Grace given to logged-in users after the wall message (5 min). */
  loginDelayMs: number;
  /** --lock-ttl in ms; the held lock is renewed every third of it. 0 = off. */
  lockTtlMs: number;
}

export interface DaemonDeps {
  strategy: string;
  window: Periodic | null;
  machineId: string;
  /** --max from cloud-config: set on the semaphore at start when it differs; null = leave it. */
  max: number | null;
  /** A fresh client with the semaphore initialised (may fail: etcd down). */
  openLock(): Promise<EtcdLock>;
  /** The update engine's statuses, the current one first, until the signal fires. */
  statuses(signal: AbortSignal): AsyncIterable<Status>;
  reboot(): Promise<void>;
  /** Tells logged-in users; returns how many terminals took the message. */
  wall(message: string): number;
  setState(s: CoordinatorState): void;
  now(): Date;
  timings: DaemonTimings;
  /** SIGINT/SIGTERM: the daemon returns 0 wherever it is. */
  signal: AbortSignal;
}

export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, Math.max(0, ms));
    function done() {
      clearTimeout(t);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
}

const backoff = (ms: number, max: number) => Math.min(ms * 2, max);

/** Returns the exit code. */
export async function runDaemon(d: DaemonDeps): Promise<number> {
  if (d.strategy === "off") {
    log.info('Reboot strategy is "off"; exiting');
    return 0;
  }
  d.setState("starting");
  const etcdLock = d.strategy === "etcd-lock";
  const stopUnlock = new AbortController();
  const unlockTask = etcdLock ? unlockHeldLocks(d, AbortSignal.any([stopUnlock.signal, d.signal])) : Promise.resolve();
  d.setState("running");

  const need = await waitNeedReboot(d);
  stopUnlock.abort();
  await unlockTask;
  if (!need) return 0;

  if (!isStrategy(d.strategy)) {
    log.error(`unknown strategy: ${JSON.stringify(d.strategy)}`);
    return 1;
  }
  if (!(await waitWindow(d))) return 0;
  d.setState("reboot-planned");

  let lock: EtcdLock | null = null;
  const stopRenew = new AbortController();
  if (etcdLock) {
    lock = await acquire(d);
    if (lock === null) return 0;
    if (d.timings.lockTtlMs > 0) void renewLoop(d, lock, AbortSignal.any([stopRenew.signal, d.signal]));
  }

  const n = d.wall(`\nBroadcast message from locksmithd at ${d.now().toString()}:\n\nSystem reboot in 5 minutes!\n\n`);
  if (n > 0) {
    log.info(`told ${n} logged-in terminal(s); rebooting in ${goDuration(d.timings.loginDelayMs)}`);
    await sleep(d.timings.loginDelayMs, d.signal);
    if (d.signal.aborted) return 0;
  }
  d.setState("rebooting");
  log.info("Rebooting");
  try {
    await d.reboot();
  } catch (e) {
    log.error(`reboot failed: ${(e as Error).message}`);
    stopRenew.abort();
    return 1;
  }
  // A real reboot ends this process; until it does (or a reboot command returns), wait.
  await new Promise<void>((resolve) => {
    if (d.signal.aborted) return resolve();
    d.signal.addEventListener("abort", () => resolve(), { once: true });
  });
  stopRenew.abort();
  return 0;
}

/** B3 step 4: after boot, release this machine's lock; retries with backoff until stopped. */
async function unlockHeldLocks(d: DaemonDeps, signal: AbortSignal): Promise<void> {
  let interval = d.timings.unlockDelayMs;
  let maxDone = d.max === null;
  for (;;) {
    await sleep(interval, signal);
    if (signal.aborted) return;
    try {
      const lock = await d.openLock();
      if (!maxDone) {
        const { before } = await lock.update((s) => (s.max === d.max ? s : setMax(s, d.max!)));
        if (before.max !== d.max) log.info(`set max of ${lock.key} from ${before.max} to ${d.max}`);
        maxDone = true;
      }
      await lock.unlockIfHeld(d.machineId);
      log.info(`released any lock held by ${d.machineId}`);
      return;
    } catch (e) {
      interval = backoff(interval, d.timings.retryMaxMs);
      log.warn(`Unlocking old locks failed: ${(e as Error).message}. Retrying in ${goDuration(interval)}.`);
    }
  }
}

/** B3 step 5: true once the engine says a reboot is needed; false when stopped first. */
async function waitNeedReboot(d: DaemonDeps): Promise<boolean> {
  const stop = new AbortController();
  const signal = AbortSignal.any([stop.signal, d.signal]);
  try {
    for await (const s of d.statuses(signal)) {
      process.stderr.write(`${formatStatus(s)}\n`);
      if (s.current_operation === Operation.UpdatedNeedReboot) return true;
    }
    return false;
  } finally {
    stop.abort();
  }
}

/** Sleeps until the window opens; false when stopped first. */
async function waitWindow(d: DaemonDeps): Promise<boolean> {
  if (d.window === null) return true;
  const wait = durationToStart(d.window, d.now());
  if (wait <= 0) return true;
  log.info(`Waiting for ${goDuration(wait)} to reboot (outside the reboot window)`);
  await sleep(wait, d.signal);
  return !d.signal.aborted;
}

/**
 * B3 step 7.1: unlockIfHeld, then Lock until it succeeds ("holder exists" counts). Every failure
 * backs off and re-checks the window, so a lock won late never reboots outside it (Flatcar PR #10).
 */
async function acquire(d: DaemonDeps): Promise<EtcdLock | null> {
  let interval = d.timings.lockRetryMs;
  for (;;) {
    if (d.signal.aborted) return null;
    try {
      const lock = await d.openLock();
      await lock.unlockIfHeld(d.machineId);
      try {
        await lock.lock(d.machineId);
      } catch (e) {
        if (!(e instanceof SemaphoreError && e.kind === "exists")) throw e;
      }
      log.info(`took the reboot lock ${lock.key} as ${d.machineId}`);
      return lock;
    } catch (e) {
      log.info(`Retrying in ${goDuration(interval)}. Error locking: ${(e as Error).message}`);
      await sleep(interval, d.signal);
      interval = backoff(interval, d.timings.retryMaxMs);
      if (!(await waitWindow(d))) return null;
    }
  }
}

/** --lock-ttl: keeps the held lock fresh while this machine is alive to say so. */
async function renewLoop(d: DaemonDeps, lock: EtcdLock, signal: AbortSignal): Promise<void> {
  const every = Math.max(1000, Math.floor(d.timings.lockTtlMs / 3));
  for (;;) {
    await sleep(every, signal);
    if (signal.aborted) return;
    try {
      await lock.renew(d.machineId);
    } catch (e) {
      log.warn(`renewing the reboot lock failed: ${(e as Error).message}`);
    }
  }
}
